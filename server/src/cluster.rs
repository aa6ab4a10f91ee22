//! Several front ends on one PostgreSQL database (SPEC R-STORE-10, R-STORE-11).
//!
//! Every front end serves reads from its own published view, verifies
//! submissions and issues tokens; exactly one, the holder of the database's
//! advisory lock ([`Election`]), sequences the log. The others follow the
//! log it writes (`Ledger::catch_up`, driven by the sequencer task) and hand
//! writes that need the sequencer over to it: a pledge, amendment or
//! withdrawal after their own checks, a campaign's creation, update or
//! close as it came, and the e-mail attester's code and token requests
//! (its pending codes and limits live in the sequencer's memory). Nothing
//! else of the client goes along: no address, no header but the content
//! type and the admin token.
//!
//! With an embedded store ([`Cluster::single`]) the front end is alone and
//! always sequences.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;

use crate::store::{Election, LEADER_META, MetaStore};

/// Header marking a request one front end handed to another: a front end
/// that does not sequence either answers it 503 instead of handing it on.
pub const FORWARDED_HEADER: &str = "pledge-forwarded";

/// Longest wait for the leader's answer: a pledge may be held for its
/// publication group (R-PUB-1), so this is the entry routes' own timeout.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(120);

/// The role of this front end and the way to the one that sequences.
pub struct Cluster {
    leader: watch::Receiver<bool>,
    /// Keeps the role of a lone front end alive (its receiver never errs).
    _single: Option<watch::Sender<bool>>,
    election: Option<Election>,
    store: Option<Arc<dyn MetaStore>>,
    client: reqwest::Client,
    /// The leader's URL as last read from the store.
    leader_url: RwLock<Option<String>>,
    /// This front end's own URL, once it listens.
    own_url: RwLock<Option<String>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("leader", &*self.leader.borrow())
            .finish_non_exhaustive()
    }
}

/// Why a write could not be handed to the leader.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// No leader is known, or it is this front end that no longer leads,
    /// or it does not answer.
    #[error("the front end that sequences the log cannot be reached")]
    Unreachable,
}

impl Cluster {
    /// A lone front end (embedded store): always the sequencer.
    pub fn single() -> Self {
        let (tx, rx) = watch::channel(true);
        Self {
            leader: rx,
            _single: Some(tx),
            election: None,
            store: None,
            client: reqwest::Client::new(),
            leader_url: RwLock::new(None),
            own_url: RwLock::new(None),
        }
    }

    /// A front end of a cluster on `store` (PostgreSQL), campaigning through
    /// `election`.
    ///
    /// # Errors
    /// The HTTP client cannot be built.
    pub fn elected(election: Election, store: Arc<dyn MetaStore>) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(FORWARD_TIMEOUT)
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| format!("cannot build the forwarding client: {e}"))?;
        Ok(Self {
            leader: election.leader(),
            _single: None,
            election: Some(election),
            store: Some(store),
            client,
            leader_url: RwLock::new(None),
            own_url: RwLock::new(None),
        })
    }

    /// True while this front end sequences the log.
    pub fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }

    /// The role, to watch for changes.
    pub fn leader(&self) -> watch::Receiver<bool> {
        self.leader.clone()
    }

    /// Sets the URL other front ends reach this one at (once it listens).
    pub fn advertise(&self, url: String) {
        *self
            .own_url
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(url.clone());
        if let Some(e) = &self.election {
            e.advertise(url);
        }
    }

    /// Gives the sequencer's role up (graceful stop).
    pub fn resign(&self) {
        if let Some(e) = &self.election {
            e.resign();
        }
    }

    /// The leader's URL: the cached one, or read from the store.
    async fn leader_url(&self, fresh: bool) -> Option<String> {
        if !fresh
            && let Some(u) = self
                .leader_url
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone()
        {
            return Some(u);
        }
        let store = self.store.clone()?;
        let url = tokio::task::spawn_blocking(move || store.meta(LEADER_META))
            .await
            .ok()?
            .ok()??;
        let url = String::from_utf8(url).ok()?;
        let own = self
            .own_url
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if own.as_deref() == Some(url.as_str()) {
            // Stale: this front end led and no longer does.
            return None;
        }
        *self
            .leader_url
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(url.clone());
        Some(url)
    }

    /// Hands a write to the leader and returns its answer as it is (status,
    /// content type, cache and retry headers, body). Only the content type
    /// and the admin token go along (R-STORE-10). Tries the cached leader,
    /// then the one the store names, once each.
    ///
    /// # Errors
    /// [`ForwardError::Unreachable`].
    pub async fn forward(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &HeaderMap,
        body: axum::body::Bytes,
    ) -> Result<Response, ForwardError> {
        for fresh in [false, true] {
            let Some(base) = self.leader_url(fresh).await else {
                continue;
            };
            let mut req = self
                .client
                .request(method.clone(), format!("{base}{path_and_query}"))
                .header(FORWARDED_HEADER, "1")
                .body(body.clone());
            for name in [header::CONTENT_TYPE, header::AUTHORIZATION] {
                if let Some(v) = headers.get(&name) {
                    req = req.header(name, v.clone());
                }
            }
            let Ok(resp) = req.send().await else {
                continue;
            };
            let status = StatusCode::from_u16(resp.status().as_u16())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            // The cached front end is alive but no longer sequences (it
            // refuses a handed-over request): ask the store who does, rather
            // than sending every retry to it again.
            if !fresh && status == StatusCode::SERVICE_UNAVAILABLE {
                continue;
            }
            let mut out = HeaderMap::new();
            for name in [
                header::CONTENT_TYPE,
                header::CACHE_CONTROL,
                header::RETRY_AFTER,
            ] {
                if let Some(v) = resp.headers().get(&name)
                    && let Ok(v) = HeaderValue::from_bytes(v.as_bytes())
                {
                    out.insert(name, v);
                }
            }
            let Ok(bytes) = resp.bytes().await else {
                continue;
            };
            return Ok((status, out, Body::from(bytes)).into_response());
        }
        Err(ForwardError::Unreachable)
    }
}
