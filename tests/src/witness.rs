//! A witness (`pledge witness serve`'s library, `pledge_client::witness`) in
//! process on 127.0.0.1:0; [`WitnessServer::of_log_in`] makes one that
//! cosigns the log of a `pledged` data folder, for a server to push to.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use pledge_client::witness::{Witness, serve};
use pledge_protocol::cosignature::{WitnessSigner, WitnessVerifier};
use pledge_protocol::note::{KeyName, NoteVerifier};

use crate::serving::{Serving, Stopped};

/// How long [`WitnessServer::shutdown`] and [`WitnessServer::stop`] wait.
pub const WAIT: Duration = Duration::from_secs(10);

/// A running witness.
#[derive(Debug)]
pub struct WitnessServer {
    /// `http://127.0.0.1:<port>`; requests go to `<base>/add-checkpoint`.
    pub base: String,
    /// The address it listens on.
    pub addr: SocketAddr,
    /// A client for the test's requests.
    pub http: reqwest::Client,
    serving: Serving,
    /// The state folder of [`WitnessServer::of_log_in`], removed on drop.
    _state: Option<tempfile::TempDir>,
}

/// A witness of the log of a data folder, from [`WitnessServer::of_log_in`].
#[derive(Debug)]
pub struct LogWitness {
    /// The running witness.
    pub server: WitnessServer,
    /// Its cosignature key.
    pub key: WitnessVerifier,
    /// The log's key, as the witness knows it.
    pub log: NoteVerifier,
}

impl LogWitness {
    /// The witness as `pledged` is configured with (`Config::witnesses`).
    pub fn config(&self) -> pledge_server::witness::Witness {
        pledge_server::witness::Witness {
            url: self.server.base.clone(),
            key: self.key.clone(),
        }
    }
}

impl WitnessServer {
    /// Serves `witness`.
    pub async fn start(witness: Witness) -> Self {
        let serving = Serving::spawn(|listener, stop| serve(listener, witness, stop)).await;
        Self {
            base: serving.base(),
            addr: serving.addr,
            http: reqwest::Client::new(),
            serving,
            _state: None,
        }
    }

    /// A witness named `name`, with a fresh key and a temporary state folder,
    /// that cosigns the log of the `pledged` data folder `data` (origin
    /// `localhost/pledge`). The log key is created at a server's first start:
    /// it is created here if missing, so that the witness knows it first.
    pub async fn of_log_in(data: &Path, name: &str) -> LogWitness {
        let keys = pledge_server::keys::load_or_create(data, "localhost/pledge").unwrap();
        let log_key = keys.log.verifier();
        drop(keys);
        let signer = WitnessSigner::generate(KeyName::new(name).unwrap()).unwrap();
        let key = signer.verifier();
        let state = tempfile::tempdir().unwrap();
        let witness = Witness::open(signer, [log_key.clone()], state.path()).unwrap();
        let mut server = Self::start(witness).await;
        server._state = Some(state);
        LogWitness {
            server,
            key,
            log: log_key,
        }
    }

    /// `<base>/add-checkpoint`.
    pub fn add_checkpoint_url(&self) -> String {
        format!("{}/add-checkpoint", self.base)
    }

    /// Stops the witness and asserts that it stopped cleanly within [`WAIT`].
    pub async fn shutdown(self) {
        self.serving.shutdown(WAIT, "witness").await;
    }

    /// Stops the witness and waits up to [`WAIT`], whatever the outcome.
    pub async fn stop(self) -> Stopped {
        self.serving.stop(WAIT).await
    }
}
