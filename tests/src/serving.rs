//! A server task of the test process that stops when told: what the
//! in-process `pledged` ([`crate::server`]) and witness ([`crate::witness`])
//! run as. Also [`serve`], a bare axum router on 127.0.0.1:0 for the rest of
//! the test (the [`crate::proxy`], fake logs and witnesses).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::{JoinError, JoinHandle};
use tokio::time::error::Elapsed;

/// The shutdown future handed to a server: ready once [`Serving`] is told to
/// stop, or dropped (a failing test stops its servers too).
#[derive(Debug)]
pub struct StopSignal(oneshot::Receiver<()>);

impl Future for StopSignal {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

/// How a stop ended: `Err(Elapsed)` if the task still ran after the wait, else
/// how the task ended (a panic is the `JoinError`).
pub type Stopped = Result<Result<io::Result<()>, JoinError>, Elapsed>;

/// A spawned server task listening on 127.0.0.1.
#[derive(Debug)]
pub struct Serving {
    /// The address it listens on.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<io::Result<()>>,
}

impl Serving {
    /// Binds 127.0.0.1:0 and spawns `serve(listener, stop)`, which must
    /// return once `stop` is ready.
    pub async fn spawn<F, Fut>(serve: F) -> Self
    where
        F: FnOnce(TcpListener, StopSignal) -> Fut,
        Fut: Future<Output = io::Result<()>> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, StopSignal(rx)));
        Self {
            addr,
            stop: Some(tx),
            task,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Tells the task to stop and returns at once (a second call does nothing).
    pub fn signal_stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }

    /// Tells the task to stop and waits for it, at most `within`.
    pub async fn stop(mut self, within: Duration) -> Stopped {
        self.signal_stop();
        tokio::time::timeout(within, self.task).await
    }

    /// Tells the task to stop and asserts that it returns `Ok` within
    /// `within`; `what` names it in the panic.
    pub async fn shutdown(self, within: Duration, what: &str) {
        self.stop(within)
            .await
            .unwrap_or_else(|_| panic!("{what} did not stop"))
            .unwrap()
            .unwrap();
    }
}

/// Serves `app` on 127.0.0.1:0 for the rest of the test (the task is never
/// stopped); returns `http://127.0.0.1:<port>`.
pub async fn serve(app: axum::Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}
