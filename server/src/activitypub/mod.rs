//! ActivityPub announcements of campaigns (SPEC §12 "ActivityPub",
//! R-API-40 … R-API-47, R-PRIV-4, R-PRIV-5): the server is one actor per
//! instance (`campaigns@<host>`, an `Application`) that publishes each
//! campaign as an `Event` (Mobilizon's `joinMode: "external"`, the campaign
//! page as participation URL) and announces the same events as the Atom
//! feeds (opened, steps of `A`, goal, closed) as `Create`/`Update`
//! activities to its followers.
//!
//! Followers are instances and groups only (an actor of type `Group`,
//! `Organization`, `Service` or `Application`); a `Person` is refused and
//! nothing of it is kept. Only the followers' inbox URLs are stored.
//!
//! An own implementation, not the `activitypub_federation` crate: that crate
//! brings its own web-framework integration, `rsa` 0.9 and `sha2` 0.10 next
//! to this workspace's release candidates, and a data model built on storing
//! every remote actor (people included) in the application's database; the
//! part needed here (draft-cavage signatures, one actor, follows from
//! organisations, signed delivery) is a few hundred lines over OpenSSL and
//! `reqwest`, which `pledged` already links.
//!
//! # Layout
//!
//! - [`signature`]: HTTP signatures and digests (draft-cavage-12 profile).
//! - [`documents`]: WebFinger, actor, collections, Events, activities.
//! - [`inbox`]: verifying a signed inbox request and acting on it.
//! - this file: [`Federation`] (key, followers, delivery queue, their file
//!   in the data folder) and the delivery task fed by the ledger's events.

pub mod documents;
pub mod inbox;
pub mod signature;

use std::collections::{BTreeSet, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use self::documents::{Announcement, Base};
use self::signature::ActorKey;
use crate::ledger::{Ledger, LogEvent};

/// File name of the actor's private key (PKCS#8 PEM, 0600).
pub const KEY_FILE: &str = "activitypub.key";

/// File name of the followers and the delivery queue (JSON, 0600).
pub const STATE_FILE: &str = "activitypub.json";

/// Attempts per delivery before it is given up (SPEC R-API-47).
pub const MAX_ATTEMPTS: u32 = 10;

/// The longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// Timeout of one outgoing request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Deliveries in flight at once.
const PARALLEL: usize = 8;

/// The operator's ActivityPub settings (SPEC R-API-40).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The instance's public origin.
    pub base: Base,
    /// Whether remote URLs may name loopback or private addresses (tests,
    /// or a federation on a private network). Off: refused (R-API-45).
    pub allow_private: bool,
    /// The first retry's delay; doubled each time up to [`MAX_BACKOFF`].
    pub retry_base: Duration,
}

impl Settings {
    /// Settings for `base` with the defaults (private addresses refused,
    /// first retry after 30 s).
    pub fn new(base: Base) -> Self {
        Self {
            base,
            allow_private: false,
            retry_base: Duration::from_secs(30),
        }
    }
}

/// Why ActivityPub could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A file in the data folder.
    #[error("{}: {reason}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// One delivery waiting: an announcement for one follower's inbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Pending {
    activity: String,
    inbox: String,
    attempts: u32,
}

/// What `activitypub.json` holds (SPEC R-PRIV-4): the followers' inbox
/// URLs, the ids of the activities already handed to delivery, and the
/// deliveries not yet done. Nothing about a person, no time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    version: u32,
    followers: BTreeSet<String>,
    announced: BTreeSet<String>,
    queue: Vec<Pending>,
}

/// ActivityPub counters for `/metrics` (aggregates only).
#[derive(Debug, Default)]
pub struct ApMetrics {
    delivered: AtomicU64,
    failures: AtomicU64,
    dropped: AtomicU64,
    inbox_refused: AtomicU64,
    follows: AtomicU64,
    unfollows: AtomicU64,
}

/// The actor: its key, its followers and its delivery queue.
pub struct Federation {
    base: Base,
    key: ActorKey,
    log_origin: String,
    path: PathBuf,
    allow_private: bool,
    retry_base: Duration,
    state: Mutex<StateFile>,
    /// When a pending delivery may be tried again (memory only: after a
    /// restart every pending delivery is due).
    next_try: Mutex<HashMap<(String, String), Instant>>,
    http: reqwest::Client,
    wake: Notify,
    metrics: ApMetrics,
    /// The state file did not exist at start: the first scan marks the
    /// log's history as announced without queuing it.
    fresh: bool,
}

impl std::fmt::Debug for Federation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Federation")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// Writes `bytes` to `path` atomically and durably: a temporary file
/// (0600), fsync, rename, fsync of the folder.
fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The actor key in `dir`, created (0600, never overwritten) at first use.
fn load_or_create_key(dir: &Path) -> Result<(ActorKey, bool), StartError> {
    let path = dir.join(KEY_FILE);
    let err = |reason: String| StartError::File {
        path: path.clone(),
        reason,
    };
    match std::fs::read(&path) {
        Ok(pem) => {
            let pem = zeroize::Zeroizing::new(pem);
            Ok((ActorKey::from_pem(&pem).map_err(err)?, false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = ActorKey::generate().map_err(err)?;
            let pem = key.to_pkcs8_pem().map_err(err)?;
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            let mut f = opts.open(&path).map_err(|e| err(e.to_string()))?;
            f.write_all(&pem).map_err(|e| err(e.to_string()))?;
            f.sync_all().map_err(|e| err(e.to_string()))?;
            Ok((key, true))
        }
        Err(e) => Err(err(e.to_string())),
    }
}

impl Federation {
    /// Opens the actor in `data_dir`: loads or creates its key, loads its
    /// followers and queue. Returns it and whether the key was created.
    ///
    /// # Errors
    /// [`StartError`] naming the file.
    pub fn open(
        settings: &Settings,
        data_dir: &Path,
        log_origin: &str,
    ) -> Result<(Self, bool), StartError> {
        let (key, created) = load_or_create_key(data_dir)?;
        let path = data_dir.join(STATE_FILE);
        let state = match std::fs::read(&path) {
            Ok(bytes) => {
                let s: StateFile =
                    serde_json::from_slice(&bytes).map_err(|e| StartError::File {
                        path: path.clone(),
                        reason: format!("does not decode ({e})"),
                    })?;
                if s.version != 1 {
                    return Err(StartError::File {
                        path,
                        reason: format!("unknown version {}", s.version),
                    });
                }
                Some(s)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(StartError::File {
                    path,
                    reason: e.to_string(),
                });
            }
        };
        let mut http = reqwest::Client::builder();
        if !settings.allow_private {
            // SPEC R-API-45: names resolving to local addresses too.
            http = http.dns_resolver(Arc::new(inbox::PublicResolver));
        }
        let http = http
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("pledged/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| StartError::File {
                path: path.clone(),
                reason: format!("no HTTP client ({e})"),
            })?;
        let fresh = state.is_none();
        let fed = Self {
            base: settings.base.clone(),
            key,
            log_origin: log_origin.to_owned(),
            path,
            allow_private: settings.allow_private,
            retry_base: settings.retry_base,
            state: Mutex::new(state.unwrap_or(StateFile {
                version: 1,
                ..StateFile::default()
            })),
            next_try: Mutex::new(HashMap::new()),
            http,
            wake: Notify::new(),
            metrics: ApMetrics::default(),
            fresh,
        };
        if fresh {
            // Written now, so that a start that cannot write its state
            // fails here rather than at the first follow.
            let s = fed.lock().clone();
            fed.save(&s).map_err(|e| StartError::File {
                path: fed.path.clone(),
                reason: e.to_string(),
            })?;
        }
        // A fresh state has announced nothing: what the log already holds
        // is marked as announced at the first scan, so that turning
        // ActivityPub on sends no history (the outbox has it).
        Ok((fed, created))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StateFile> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn save(&self, s: &StateFile) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(s).map_err(std::io::Error::other)?;
        write_durably(&self.path, &bytes)
    }

    /// Applies `change` to the state and writes it durably; on a write
    /// failure the change is undone and the error returned.
    fn update<T>(&self, change: impl FnOnce(&mut StateFile) -> T) -> std::io::Result<T> {
        let mut s = self.lock();
        let before = s.clone();
        let out = change(&mut s);
        if *s != before
            && let Err(e) = self.save(&s)
        {
            *s = before;
            tracing::error!("cannot write the ActivityPub state file: {e}");
            return Err(e);
        }
        Ok(out)
    }

    /// The public origin and ids.
    pub fn base(&self) -> &Base {
        &self.base
    }

    /// The actor's key.
    pub fn key(&self) -> &ActorKey {
        &self.key
    }

    /// The log's origin (the actor's name says it).
    pub fn log_origin(&self) -> &str {
        &self.log_origin
    }

    /// Whether private and loopback addresses may be fetched and delivered
    /// to.
    pub fn allow_private(&self) -> bool {
        self.allow_private
    }

    /// The HTTP client (no redirects, 10 s timeout).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The counters.
    pub fn metrics(&self) -> &ApMetrics {
        &self.metrics
    }

    /// The number of followers (all the followers collection shows).
    pub fn followers(&self) -> usize {
        self.lock().followers.len()
    }

    /// Whether `inbox` is a follower's inbox (tests).
    pub fn has_follower(&self, inbox: &str) -> bool {
        self.lock().followers.contains(inbox)
    }

    /// Deliveries waiting.
    pub fn queued(&self) -> usize {
        self.lock().queue.len()
    }

    /// Adds a follower's inbox (SPEC R-API-45). Returns whether it is new.
    ///
    /// # Errors
    /// The state file could not be written (nothing changed).
    pub fn add_follower(&self, inbox: &str) -> std::io::Result<bool> {
        let added = self.update(|s| s.followers.insert(inbox.to_owned()))?;
        if added {
            self.metrics.follows.fetch_add(1, Ordering::Relaxed);
        }
        Ok(added)
    }

    /// Removes a follower's inbox and its pending deliveries (SPEC
    /// R-API-46). Returns whether it was a follower.
    ///
    /// # Errors
    /// The state file could not be written (nothing changed).
    pub fn remove_follower(&self, inbox: &str) -> std::io::Result<bool> {
        let removed = self.update(|s| {
            s.queue.retain(|p| p.inbox != inbox);
            s.followers.remove(inbox)
        })?;
        if removed {
            self.metrics.unfollows.fetch_add(1, Ordering::Relaxed);
        }
        Ok(removed)
    }

    /// Counts a refused inbox request.
    pub fn record_refused(&self) {
        self.metrics.inbox_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Every activity of every campaign of the published log, oldest first
    /// per campaign (SPEC R-API-42).
    pub fn announcements(&self, ledger: &Ledger) -> Vec<Announcement> {
        let view = ledger.published();
        let mut out = Vec::new();
        for (id, c) in view.campaigns() {
            let Some(history) = ledger.feed_history(id) else {
                continue;
            };
            let fc = crate::feed::campaign_view(*id, c, &history);
            out.extend(documents::campaign_activities(&self.base, &fc));
        }
        out
    }

    /// The ids of [`Federation::announcements`], cheaply.
    fn announcement_ids(&self, ledger: &Ledger) -> Vec<String> {
        let view = ledger.published();
        let mut out = Vec::new();
        for (id, c) in view.campaigns() {
            let Some(history) = ledger.feed_history(id) else {
                continue;
            };
            let fc = crate::feed::campaign_view(*id, c, &history);
            out.extend(documents::campaign_activity_ids(&self.base, &fc));
        }
        out
    }

    /// One campaign's feed view, for its Event.
    pub fn campaign_event(
        &self,
        ledger: &Ledger,
        id: &pledge_protocol::hash::CampaignId,
    ) -> Option<serde_json::Value> {
        let view = ledger.published();
        let c = view.campaign(id)?;
        let history = ledger.feed_history(id)?;
        Some(documents::current_event(
            &self.base,
            &crate::feed::campaign_view(*id, c, &history),
        ))
    }

    /// Queues every activity not announced yet for every follower (SPEC
    /// R-API-47). The first scan of a fresh state marks the log's history
    /// as announced without queuing it.
    fn scan(&self, ledger: &Ledger, first: bool) {
        let ids = self.announcement_ids(ledger);
        let r = self.update(|s| {
            let history_only = first && self.fresh;
            let mut queued = 0usize;
            for id in ids {
                if s.announced.contains(&id) {
                    continue;
                }
                if !history_only {
                    for inbox in &s.followers {
                        s.queue.push(Pending {
                            activity: id.clone(),
                            inbox: inbox.clone(),
                            attempts: 0,
                        });
                        queued += 1;
                    }
                }
                s.announced.insert(id);
            }
            queued
        });
        if matches!(r, Ok(n) if n > 0) {
            self.wake.notify_one();
        }
    }

    /// The pending deliveries due now, at most `max`.
    fn due(&self, now: Instant, max: usize) -> Vec<Pending> {
        let next = self
            .next_try
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.lock()
            .queue
            .iter()
            .filter(|p| {
                next.get(&(p.activity.clone(), p.inbox.clone()))
                    .is_none_or(|t| *t <= now)
            })
            .take(max)
            .cloned()
            .collect()
    }

    /// When the next pending delivery is due (`None`: nothing pending).
    fn next_due(&self) -> Option<Instant> {
        let next = self
            .next_try
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        self.lock()
            .queue
            .iter()
            .map(|p| {
                next.get(&(p.activity.clone(), p.inbox.clone()))
                    .copied()
                    .unwrap_or(now)
            })
            .min()
    }

    /// Signs and POSTs `body` to `inbox` (SPEC R-API-44, R-API-47).
    ///
    /// # Errors
    /// A text for the log: the HTTP status or the kind of transport error,
    /// never the URL or the body.
    pub async fn post_signed(&self, inbox: &str, body: &[u8]) -> Result<(), String> {
        let url = reqwest::Url::parse(inbox).map_err(|_| "an unparsable inbox URL".to_owned())?;
        inbox::check_remote_url(&url, self.allow_private).map_err(|e| e.to_string())?;
        let host = authority(&url);
        let date = httpdate::fmt_http_date(SystemTime::now());
        let digest = signature::digest(body);
        let path = path_and_query(&url);
        let sig = self.key.signature_header(
            &self.base.key_id(),
            "POST",
            &path,
            &["(request-target)", "host", "date", "digest"],
            &[("host", &host), ("date", &date), ("digest", &digest)],
        )?;
        let r = self
            .http
            .post(url)
            .header("host", host)
            .header("date", date)
            .header("digest", digest)
            .header("signature", sig)
            .header("content-type", documents::ACTIVITY_JSON)
            .header("accept", documents::ACTIVITY_JSON)
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| transport_error(&e))?;
        if r.status().is_success() {
            Ok(())
        } else {
            Err(format!("HTTP {}", r.status().as_u16()))
        }
    }

    /// One round of deliveries: every due one, [`PARALLEL`] at a time.
    async fn deliver_due(self: &Arc<Self>, ledger: &Ledger) {
        let due = self.due(Instant::now(), 64);
        if due.is_empty() {
            return;
        }
        let bodies: HashMap<String, Vec<u8>> = self
            .announcements(ledger)
            .into_iter()
            .filter(|a| due.iter().any(|p| p.activity == a.id))
            .filter_map(|a| Some((a.id, serde_json::to_vec(&a.activity).ok()?)))
            .collect();
        let mut set = tokio::task::JoinSet::new();
        let mut results = Vec::new();
        for p in due {
            while set.len() >= PARALLEL {
                if let Some(Ok(r)) = set.join_next().await {
                    results.push(r);
                }
            }
            let fed = self.clone();
            let body = bodies.get(&p.activity).cloned();
            set.spawn(async move {
                let r = match body {
                    // The activity is no longer in the log's view (cannot
                    // happen: the log only grows): nothing to send.
                    None => Ok(()),
                    Some(b) => fed.post_signed(&p.inbox, &b).await,
                };
                (p, r)
            });
        }
        while let Some(r) = set.join_next().await {
            if let Ok(r) = r {
                results.push(r);
            }
        }
        self.settle(results);
    }

    /// Records the outcomes of a round: done ones leave the queue, failed
    /// ones wait their backoff, the last failure gives up (logged, counted,
    /// without the inbox or the content).
    fn settle(&self, results: Vec<(Pending, Result<(), String>)>) {
        let now = Instant::now();
        let mut next = self
            .next_try
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = self.update(|s| {
            for (p, r) in results {
                let key = (p.activity.clone(), p.inbox.clone());
                let pos = s
                    .queue
                    .iter()
                    .position(|q| q.activity == p.activity && q.inbox == p.inbox);
                match r {
                    Ok(()) => {
                        self.metrics.delivered.fetch_add(1, Ordering::Relaxed);
                        if let Some(i) = pos {
                            s.queue.remove(i);
                        }
                        next.remove(&key);
                    }
                    Err(why) => {
                        self.metrics.failures.fetch_add(1, Ordering::Relaxed);
                        let attempts = p.attempts + 1;
                        if attempts >= MAX_ATTEMPTS {
                            self.metrics.dropped.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(
                                "an ActivityPub delivery failed {attempts} times and is given up: {why}"
                            );
                            if let Some(i) = pos {
                                s.queue.remove(i);
                            }
                            next.remove(&key);
                        } else {
                            let wait = backoff(self.retry_base, attempts);
                            tracing::info!(
                                "an ActivityPub delivery failed (attempt {attempts} of \
                                 {MAX_ATTEMPTS}), retry in {} s: {why}",
                                wait.as_secs()
                            );
                            if let Some(i) = pos
                                && let Some(q) = s.queue.get_mut(i)
                            {
                                q.attempts = attempts;
                            }
                            next.insert(key, now + wait);
                        }
                    }
                }
            }
        });
    }

    /// The Prometheus lines of the ActivityPub counters (SPEC R-API-47).
    pub fn render_metrics(&self) -> String {
        let m = &self.metrics;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::new();
        for (name, kind, help, value) in [
            (
                "pledged_activitypub_followers",
                "gauge",
                "Instances and groups following the ActivityPub actor.",
                self.followers() as u64,
            ),
            (
                "pledged_activitypub_queue",
                "gauge",
                "ActivityPub deliveries waiting (first attempt or retry).",
                self.queued() as u64,
            ),
            (
                "pledged_activitypub_deliveries_total",
                "counter",
                "Activities delivered to a follower's inbox.",
                get(&m.delivered),
            ),
            (
                "pledged_activitypub_delivery_failures_total",
                "counter",
                "Delivery attempts that failed (retried with backoff).",
                get(&m.failures),
            ),
            (
                "pledged_activitypub_deliveries_dropped_total",
                "counter",
                "Deliveries given up after the last attempt.",
                get(&m.dropped),
            ),
            (
                "pledged_activitypub_inbox_refused_total",
                "counter",
                "Inbox requests refused (signature, date, digest, actor type, activity).",
                get(&m.inbox_refused),
            ),
            (
                "pledged_activitypub_follows_total",
                "counter",
                "Follows accepted.",
                get(&m.follows),
            ),
            (
                "pledged_activitypub_unfollows_total",
                "counter",
                "Follows undone.",
                get(&m.unfollows),
            ),
        ] {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            ));
        }
        out
    }
}

/// `base · 2^(attempt−1)`, at most [`MAX_BACKOFF`].
fn backoff(base: Duration, attempt: u32) -> Duration {
    base.saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(MAX_BACKOFF)
}

/// `host[:port]` of `url`, as its `Host` header says it.
pub fn authority(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    }
}

/// The path and query of `url` (the `(request-target)`'s).
pub fn path_and_query(url: &reqwest::Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    }
}

/// A transport error's kind, without the URL reqwest puts in its text.
fn transport_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "cannot connect".into()
    } else if e.is_body() || e.is_decode() {
        "the answer could not be read".into()
    } else {
        "the request failed".into()
    }
}

/// Starts the delivery task (SPEC R-API-47): fed by the ledger's events
/// (every new checkpoint), it queues new announcements for every follower
/// and delivers them, never blocking the sequencer (it only reads the
/// published view).
pub fn spawn(
    fed: Arc<Federation>,
    ledger: Arc<Ledger>,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut events = ledger.subscribe();
        fed.scan(&ledger, true);
        loop {
            tokio::select! {
                _ = shutdown.wait_for(|s| *s) => return,
                () = fed.deliver_due(&ledger) => {}
            }
            let next = fed
                .next_due()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                _ = shutdown.wait_for(|s| *s) => return,
                r = events.recv() => match r {
                    Ok(LogEvent::Checkpoint { .. })
                    | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        fed.scan(&ledger, false);
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
                () = fed.wake.notified() => {}
                () = tokio::time::sleep_until(next.into()) => {}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        let b = Duration::from_secs(30);
        assert_eq!(backoff(b, 1), Duration::from_secs(30));
        assert_eq!(backoff(b, 2), Duration::from_secs(60));
        assert_eq!(backoff(b, 5), Duration::from_secs(480));
        assert_eq!(backoff(b, 9), MAX_BACKOFF);
        assert_eq!(backoff(b, 40), MAX_BACKOFF);
    }

    /// SPEC R-PRIV-4: the key is created once with mode 0600 and reused;
    /// the state file holds inbox URLs and activity ids, nothing else.
    #[test]
    fn key_and_state_files() {
        let dir = tempfile::tempdir().unwrap();
        let s = Settings::new(Base::parse("https://p.example").unwrap());
        let (fed, created) = Federation::open(&s, dir.path(), "o").unwrap();
        assert!(created);
        let pem = fed.key().public_pem().to_owned();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(fed.add_follower("https://g.example/inbox").unwrap());
        assert!(!fed.add_follower("https://g.example/inbox").unwrap());
        drop(fed);
        let (fed, created) = Federation::open(&s, dir.path(), "o").unwrap();
        assert!(!created);
        assert_eq!(fed.key().public_pem(), pem);
        assert_eq!(fed.followers(), 1);
        let text = std::fs::read_to_string(dir.path().join(STATE_FILE)).unwrap();
        assert_eq!(
            text,
            r#"{"version":1,"followers":["https://g.example/inbox"],"announced":[],"queue":[]}"#
        );
        assert!(fed.remove_follower("https://g.example/inbox").unwrap());
        assert_eq!(fed.followers(), 0);
        std::fs::write(
            dir.path().join(STATE_FILE),
            b"{\"version\":1,\"people\":[]}",
        )
        .unwrap();
        assert!(Federation::open(&s, dir.path(), "o").is_err());
    }
}
