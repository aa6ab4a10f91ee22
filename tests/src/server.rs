//! `pledged` in process: `AppState::start` and `run` on 127.0.0.1:0, on a
//! temporary data folder (or a given one, for restarts), with the harness
//! defaults of [`config`] changed by a closure; stopped on request or when
//! dropped. A start waits for a store lock that a server stopped a moment ago
//! in this process still holds ([`start_state`]). [`Server`] also makes the raw
//! HTTP calls the suites share (GET, JSON POST, an open-attester token).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use pledge_protocol::entry::Entry;
use pledge_protocol::hash::CampaignId;
use pledge_protocol::pledge::PledgeSigningKey;
use pledge_protocol::token::{BlindingState, IssuerPublicKey, Token, blind, finalize};
use pledge_server::config::Config;
use pledge_server::{AppState, run};
use serde_json::{Value, json};

use crate::serving::{Serving, Stopped};

/// How long [`start_state`] waits for a held store lock.
pub const LOCK_WAIT: Duration = Duration::from_secs(10);

/// How long [`Server::shutdown`] waits for the server to stop.
pub const SHUTDOWN_WAIT: Duration = Duration::from_secs(20);

/// How long [`Server::stop`] waits for the server to stop.
pub const STOP_WAIT: Duration = Duration::from_secs(10);

/// The harness defaults on `dir`: the demo campaign, entries published one at
/// a time (the publication policy, R-PUB-1, has its own tests), 20 ms
/// batches, no rate limit on the open attester.
pub fn config(dir: &Path) -> Config {
    let mut c = Config::new(dir);
    c.publication = pledge_server::ledger::Publication::IMMEDIATE;
    c.batch_interval = Duration::from_millis(20);
    c.demo = true;
    // One demo campaign: the suites count campaigns and tokens (the
    // funding twin has tests of its own).
    c.demo_funding = false;
    c.open_rate_per_minute = 0;
    c
}

/// Starts the service's state; while the store is locked (by a server of this
/// process that was stopped a moment ago: its lock goes when the last
/// connection task drops its handle on the state) retries for up to
/// [`LOCK_WAIT`].
/// Any other start error, or a lock held longer, fails the test.
pub async fn start_state(config: &Config) -> AppState {
    let t0 = Instant::now();
    loop {
        match AppState::start(config).await {
            Ok(s) => return s,
            Err(e) if t0.elapsed() < LOCK_WAIT && e.is_store_locked() => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("start: {e:?}"),
        }
    }
}

/// Sends `req`: the status and the body (a transport error fails the test).
pub async fn send(req: reqwest::RequestBuilder) -> (u16, Vec<u8>) {
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
}

/// Sends `req`: the status and the JSON answer (`Null` if it is not JSON).
pub async fn send_json(req: reqwest::RequestBuilder) -> (u16, Value) {
    let (s, b) = send(req).await;
    (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

/// A running in-process `pledged`.
#[derive(Debug)]
pub struct Server {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The operator's admin token.
    pub admin: String,
    /// The data folder.
    pub dir: PathBuf,
    /// A client for the calls below (and the suites' own).
    pub http: reqwest::Client,
    serving: Serving,
    /// The temporary data folder of [`Server::start`], removed on drop.
    _temp: Option<tempfile::TempDir>,
}

impl Server {
    /// On a fresh temporary data folder (removed with the server), with the
    /// defaults of [`config`] changed by `tweak`.
    pub async fn start(tweak: impl FnOnce(&mut Config)) -> Self {
        let temp = tempfile::tempdir().unwrap();
        let mut srv = Self::start_in(temp.path(), tweak).await;
        srv._temp = Some(temp);
        srv
    }

    /// On `dir` (kept: a restart starts on the same folder), with the
    /// defaults of [`config`] changed by `tweak`.
    pub async fn start_in(dir: &Path, tweak: impl FnOnce(&mut Config)) -> Self {
        let mut c = config(dir);
        tweak(&mut c);
        Self::start_with(&c).await
    }

    /// With exactly `config`, on its data folder.
    pub async fn start_with(config: &Config) -> Self {
        let state = start_state(config).await;
        let admin = state.admin_token().to_owned();
        let serving = Serving::spawn(|listener, stop| run(listener, state, stop)).await;
        Self {
            base: serving.base(),
            addr: serving.addr,
            admin,
            dir: config.data_dir.clone(),
            http: reqwest::Client::new(),
            serving,
            _temp: None,
        }
    }

    /// Stops the server and asserts that it stopped cleanly within
    /// [`SHUTDOWN_WAIT`].
    pub async fn shutdown(self) {
        self.shutdown_within(SHUTDOWN_WAIT).await;
    }

    /// Stops the server and asserts that it stopped cleanly within `within`.
    pub async fn shutdown_within(self, within: Duration) {
        self.serving.shutdown(within, "server").await;
    }

    /// Stops the server and waits up to [`STOP_WAIT`] for it, whatever the
    /// outcome: for tests of something else than the shutdown (an event
    /// stream still open may hold it).
    pub async fn stop(self) -> Stopped {
        self.serving.stop(STOP_WAIT).await
    }

    /// Tells the server to stop and returns at once; [`Server::shutdown_within`]
    /// then waits for it.
    pub fn signal_stop(&mut self) {
        self.serving.signal_stop();
    }

    /// `GET path`: the status and the body.
    pub async fn get(&self, path: &str) -> (u16, Vec<u8>) {
        send(self.http.get(format!("{}{path}", self.base))).await
    }

    /// `POST path` with a JSON `body`, as the operator if `admin`: the status
    /// and the JSON answer (`Null` if it is not JSON).
    pub async fn post_raw(&self, path: &str, body: Vec<u8>, admin: bool) -> (u16, Value) {
        let mut r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body);
        if admin {
            r = r.bearer_auth(&self.admin);
        }
        send_json(r).await
    }

    /// `POST path` with `body`: the status and the JSON answer.
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.post_raw(path, body.to_string().into_bytes(), false)
            .await
    }

    /// `POST path` with `body` and the admin token.
    pub async fn post_admin(&self, path: &str, body: &Value) -> (u16, Value) {
        self.post_raw(path, body.to_string().into_bytes(), true)
            .await
    }

    /// Submits `e` (`{"entry": base64}`) to `path`.
    pub async fn submit(&self, path: &str, e: &Entry) -> (u16, Value) {
        self.post(path, &json!({"entry": B64.encode(e.encode().unwrap())}))
            .await
    }

    /// A token for campaign `c` (issuer key `pk`) from the open attester,
    /// with a fresh pledge key; asserts that it was issued.
    pub async fn token(&self, c: &CampaignId, pk: &IssuerPublicKey) -> (Token, PledgeSigningKey) {
        let req = TokenRequest::new(c, pk, json!({"kind": "open"}));
        let (s, v) = self.post("/v1/tokens", &req.body).await;
        req.finish(s, &v)
    }
}

/// One blinded token request (`POST /v1/tokens`) for a fresh pledge key.
#[derive(Debug)]
pub struct TokenRequest {
    /// The request body.
    pub body: Value,
    campaign: CampaignId,
    issuer: IssuerPublicKey,
    key: PledgeSigningKey,
    state: BlindingState,
}

impl TokenRequest {
    /// For campaign `c` (issuer key `pk`) with `attestation`.
    pub fn new(c: &CampaignId, pk: &IssuerPublicKey, attestation: Value) -> Self {
        let key = PledgeSigningKey::generate().unwrap();
        let (blinded, state) = blind(pk, c, &key.public_key()).unwrap();
        Self {
            body: json!({"attestation": attestation,
                         "requests": [{"campaign_id": c.to_hex(),
                                       "blinded_msg": B64.encode(blinded.as_bytes())}]}),
            campaign: *c,
            issuer: pk.clone(),
            key,
            state,
        }
    }

    /// The token from the server's answer (`status`, JSON `answer`), which
    /// must be a 200; and its pledge key.
    pub fn finish(self, status: u16, answer: &Value) -> (Token, PledgeSigningKey) {
        assert_eq!(status, 200, "{answer}");
        let sig = B64
            .decode(answer["blind_signatures"][0]["blind_sig"].as_str().unwrap())
            .unwrap();
        let c = &self.campaign;
        let token = finalize(&self.issuer, &self.state, &sig, c, &self.key.public_key()).unwrap();
        (token, self.key)
    }
}
