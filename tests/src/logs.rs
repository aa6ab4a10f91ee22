//! The tracing output of the servers a test binary runs in process, kept in
//! memory so that a test can scan it (privacy scans: no address, no code,
//! no identifier in any log line).

use std::sync::{Arc, Mutex, OnceLock};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn captured() -> &'static Captured {
    static CAP: OnceLock<Captured> = OnceLock::new();
    CAP.get_or_init(|| {
        let cap = Captured::default();
        let writer = cap.clone();
        // `trace` for `pledged` and `debug` for the server-side libraries
        // (more than an operator's default `info`). The test's own HTTP and
        // TLS client crates are left out: their lines are the client's, not
        // the server's.
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "debug,pledge_server=trace,reqwest=off,hyper_util::client=off,rustls=off",
            ))
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        cap
    })
}

/// Starts capturing this process's log lines (the first call installs the
/// global subscriber; later calls do nothing). Call it before starting a
/// server in process.
pub fn capture() {
    let _ = captured();
}

/// Every log line captured so far.
pub fn text() -> String {
    String::from_utf8_lossy(
        &captured()
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    )
    .into_owned()
}
