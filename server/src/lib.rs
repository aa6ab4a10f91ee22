//! `pledged`: the issuer and ledger service of the conditional pledge ledger.
//! The protocol it serves is in `pledge-protocol`; the HTTP API is specified in
//! SPEC.md §12.
//!
//! # Layout
//!
//! - [`config`]: command line, TOML file, `PLEDGED_*` environment variables.
//! - [`keys`]: the log key, the admin token and the issuer's HMAC key (files, 0600).
//! - [`store`]: the storage trait and its redb and sled backends.
//! - [`ledger`]: the log view, the rules checks, the sequencer (no axum types).
//! - [`issuer`]: campaign issuer keys, attesters, blind signing.
//! - [`http`]: routes and handlers (decode → ledger/issuer → encode);
//!   `http/error.rs` alone chooses status codes.
//! - [`feed`]: the Atom feeds of the campaigns (builder and coarse history).
//! - [`metrics`]: aggregate counters for `GET /metrics`.
//! - [`serve`]: the accept loop: connection caps, header-read and idle
//!   timeouts, the shutdown deadline.
//! - [`witness`]: pushes checkpoints to witnesses, attaches their cosignatures.
//! - [`web_bundle`]: the browser client (WebAssembly) built by `build.rs`.
//! - [`activitypub`]: the instance's ActivityPub actor: campaigns announced
//!   as Events to following instances and groups (off by default).
//!
//! [`AppState::start`] opens everything and starts the background tasks,
//! [`app`] builds the router, [`run`] serves it until shutdown.

pub mod activitypub;
pub mod campaigns;
pub mod cluster;
pub mod config;
pub mod feed;
pub mod http;
pub mod issuer;
pub mod keys;
pub mod ledger;
pub mod log_time;
pub mod malloc;
pub mod metrics;
pub mod serve;
pub mod store;
pub mod web_bundle;
pub mod witness;

use std::future::Future;
use std::sync::{Arc, Mutex};

use axum::Router;
use pledge_protocol::hash::CampaignId;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::issuer::{AttesterPolicy, Issuer};
use crate::keys::AdminToken;
use crate::ledger::sequencer::{SequencerConfig, SequencerHandle};
use crate::ledger::{Ledger, Phase, Proposal, SubmitError, unix_now};
use crate::metrics::Metrics;

/// The protocol version this server speaks.
pub const PROTOCOL_VERSION: u8 = pledge_protocol::PROTOCOL_VERSION;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// Key files.
    #[error(transparent)]
    Keys(#[from] keys::KeyFileError),
    /// The store.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// The log does not replay.
    #[error(transparent)]
    Ledger(#[from] ledger::StartupError),
    /// The e-mail attester's settings are wrong.
    #[error("e-mail attester: {0}")]
    Email(String),
    /// The demo campaign could not be opened.
    #[error("cannot open the demo campaign: {0}")]
    Demo(String),
    /// The cluster's forwarding could not be set up.
    #[error("cluster: {0}")]
    Cluster(String),
    /// The ActivityPub actor's files.
    #[error("activitypub: {0}")]
    ActivityPub(#[from] activitypub::StartError),
}

impl StartError {
    /// Another process (or a server of this process still stopping) holds
    /// the store's lock: worth waiting for, unlike every other start error.
    pub fn is_store_locked(&self) -> bool {
        matches!(self, Self::Store(store::StoreError::Locked { .. }))
    }
}

/// Everything the handlers share. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<Shared>,
}

/// The shared parts of [`AppState`].
#[derive(Debug)]
pub struct Shared {
    ledger: Arc<Ledger>,
    issuer: Arc<Issuer>,
    sequencer: SequencerHandle,
    cluster: Arc<cluster::Cluster>,
    /// `advertise_url` of the configuration (SPEC R-STORE-11).
    advertise_url: Option<String>,
    admin: AdminToken,
    metrics: Arc<Metrics>,
    shutdown_tx: watch::Sender<bool>,
    shutdown: watch::Receiver<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    demo_campaign: Option<CampaignId>,
    demo_funding_campaign: Option<CampaignId>,
    conn_limits: serve::ConnLimits,
    event_streams: Arc<tokio::sync::Semaphore>,
    max_event_streams: usize,
    metrics_listen: Option<std::net::SocketAddr>,
    publication_default: ledger::Publication,
    publish_max_hold: std::time::Duration,
    created_files: Vec<std::path::PathBuf>,
    /// The witness policy clients pin (SPEC R-API-22): verifier keys and quorum.
    witness_policy: (Vec<String>, usize),
    /// The ActivityPub actor, when turned on (SPEC R-API-40).
    federation: Option<Arc<activitypub::Federation>>,
}

impl AppState {
    /// Opens the store and the keys in the data folder (creating them on first
    /// start), replays the log, starts the sequencer and the campaign-closing
    /// task, and opens the demo campaign if asked and none exists.
    ///
    /// # Errors
    /// [`StartError`] saying what is wrong.
    pub async fn start(config: &Config) -> Result<Self, StartError> {
        let keys = keys::load_or_create(&config.data_dir, &config.origin)?;
        let mut created_files = keys.created.clone();
        let store = store::open_store_at(
            config.backend,
            &config.data_dir,
            config.database_url.as_ref().map(|u| u.0.as_str()),
        )?;
        // The store's files were created with the umask: make them private.
        for path in keys::make_private(&config.data_dir)? {
            tracing::info!("made {} private (0600/0700)", path.display());
        }
        // SPEC R-STORE-10: on PostgreSQL, several front ends may share the
        // database; the holder of its advisory lock sequences.
        let cluster = Arc::new(match (&config.backend, &config.database_url) {
            (store::Backend::Postgres, Some(url)) => {
                let election = store::Election::start(&url.0)?;
                cluster::Cluster::elected(election, store.clone()).map_err(StartError::Cluster)?
            }
            _ => cluster::Cluster::single(),
        });
        let (ledger, core) = Ledger::open(store.clone(), keys.log)?;
        let ledger = Arc::new(ledger);
        let issuer = Arc::new(
            Issuer::load(
                store,
                &ledger.published(),
                keys.hmac.clone(),
                config.open_rate_per_minute,
            )?
            .with_email(keys.hmac, config.email.clone())
            .map_err(StartError::Email)?,
        );
        let metrics = Arc::new(Metrics::default());
        let (shutdown_tx, shutdown) = watch::channel(false);
        let (sequencer, seq_task) = ledger::sequencer::spawn(
            ledger.clone(),
            core,
            SequencerConfig {
                interval: config.batch_interval,
                max_batch: config.batch_size,
                capacity: config.queue_capacity,
                max_hold: config.publish_max_hold,
            },
            metrics.clone(),
            shutdown.clone(),
            cluster.leader(),
        );
        let close_task = tokio::spawn(close_campaigns(
            ledger.clone(),
            issuer.clone(),
            sequencer.clone(),
            cluster.clone(),
            config.close_check_interval,
            shutdown.clone(),
        ));
        let sync_task = tokio::spawn(sync_issuer(
            ledger.clone(),
            issuer.clone(),
            cluster.clone(),
            shutdown.clone(),
        ));
        let mut tasks = vec![seq_task, close_task, sync_task];
        tasks.extend(witness::spawn(
            ledger.clone(),
            config.witnesses.clone(),
            &metrics,
            shutdown.clone(),
        ));
        // SPEC R-API-40: the ActivityPub actor and its delivery task, fed
        // by the ledger's events (it only reads the published view).
        let federation = match &config.activitypub {
            Some(settings) => {
                let (fed, created) = activitypub::Federation::open(
                    settings,
                    &config.data_dir,
                    ledger.verifier().name().as_str(),
                )?;
                if created {
                    created_files.push(config.data_dir.join(activitypub::KEY_FILE));
                }
                let fed = Arc::new(fed);
                tasks.push(activitypub::spawn(
                    fed.clone(),
                    ledger.clone(),
                    shutdown.clone(),
                ));
                Some(fed)
            }
            None => None,
        };
        let mut demo_campaign = None;
        let mut demo_funding_campaign = None;
        if config.demo && !cluster.is_leader() {
            // Another front end sequences: it opens the demo campaigns.
            tracing::info!(
                "demo: another front end sequences the log; it opens the demo campaigns"
            );
        } else if config.demo && ledger.published().campaigns().next().is_none() {
            let params = issuer::demo_params(unix_now());
            let demo = campaigns::NewCampaign {
                params,
                attester: AttesterPolicy::Open,
                publication: ledger::Publication::IMMEDIATE,
                funding: None,
                sealed: None,
            };
            let (id, _) = campaigns::create(&issuer, &ledger, &sequencer, demo, unix_now())
                .await
                .map_err(|e| StartError::Demo(e.to_string()))?;
            demo_campaign = Some(id);
            if config.demo_funding {
                // Its conditional-funding twin (`pledge demo --funding`),
                // opened second so that the plain one stays first in the list.
                let funding = campaigns::NewCampaign {
                    params: issuer::demo_funding_params(unix_now()),
                    attester: AttesterPolicy::Open,
                    publication: ledger::Publication::IMMEDIATE,
                    funding: Some(
                        issuer::demo_funding().map_err(|e| StartError::Demo(e.to_string()))?,
                    ),
                    sealed: None,
                };
                let (id, _) = campaigns::create(&issuer, &ledger, &sequencer, funding, unix_now())
                    .await
                    .map_err(|e| StartError::Demo(e.to_string()))?;
                demo_funding_campaign = Some(id);
            }
        } else if config.demo {
            // Only a campaign anyone can get tokens for is announced as the
            // demo (an invite-only one was, when it came first): the oldest
            // open one without funding, and the oldest with.
            let now = unix_now();
            let oldest = |funding: bool| {
                ledger
                    .published()
                    .campaigns()
                    .filter(|(id, c)| {
                        c.phase(now) == Phase::Open
                            && c.definition.funding().is_some() == funding
                            && issuer.policy(id) == Some(AttesterPolicy::Open)
                    })
                    .map(|(id, c)| (c.opened_at, *id))
                    .min()
                    .map(|(_, id)| id)
            };
            demo_campaign = oldest(false);
            demo_funding_campaign = oldest(true);
        }
        Ok(Self {
            inner: Arc::new(Shared {
                ledger,
                issuer,
                sequencer,
                cluster,
                advertise_url: config.advertise_url.clone(),
                admin: keys.admin,
                metrics,
                shutdown_tx,
                shutdown,
                tasks: Mutex::new(tasks),
                demo_campaign,
                demo_funding_campaign,
                conn_limits: config.conn_limits.clone(),
                event_streams: Arc::new(tokio::sync::Semaphore::new(config.max_event_streams)),
                max_event_streams: config.max_event_streams,
                metrics_listen: config.metrics_listen,
                publication_default: config.publication,
                publish_max_hold: config.publish_max_hold,
                created_files,
                witness_policy: (
                    config.witnesses.iter().map(|w| w.key.to_text()).collect(),
                    config
                        .witness_quorum
                        .unwrap_or(usize::from(!config.witnesses.is_empty())),
                ),
                federation,
            }),
        })
    }

    /// The ledger.
    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.inner.ledger
    }

    /// The issuer.
    pub fn issuer(&self) -> &Arc<Issuer> {
        &self.inner.issuer
    }

    /// The admin token (to print on first start, and for tests).
    pub fn admin_token(&self) -> &str {
        self.inner.admin.expose()
    }

    /// The demo campaign, when `--demo` was given.
    pub fn demo_campaign(&self) -> Option<CampaignId> {
        self.inner.demo_campaign
    }

    /// The conditional-funding demo campaign, when `--demo` opened one (or
    /// an open one of the open attester exists).
    pub fn demo_funding_campaign(&self) -> Option<CampaignId> {
        self.inner.demo_funding_campaign
    }

    /// The ActivityPub actor, when turned on.
    pub fn federation(&self) -> Option<&Arc<activitypub::Federation>> {
        self.inner.federation.as_ref()
    }

    /// Key files created by this start (first start).
    pub fn created_files(&self) -> &[std::path::PathBuf] {
        &self.inner.created_files
    }

    /// Stops the background tasks: the sequencer refuses new submissions,
    /// integrates what is queued and exits; event streams end. Idempotent.
    pub async fn stop(&self) {
        let _ = self.inner.shutdown_tx.send(true);
        let tasks: Vec<JoinHandle<()>> = match self.inner.tasks.lock() {
            Ok(mut t) => t.drain(..).collect(),
            Err(e) => e.into_inner().drain(..).collect(),
        };
        for t in tasks {
            let _ = t.await;
        }
        // The last batch is in: let another front end sequence.
        self.inner.cluster.resign();
    }

    /// This front end's place in a cluster (SPEC R-STORE-10).
    pub fn cluster(&self) -> &Arc<cluster::Cluster> {
        &self.inner.cluster
    }
}

/// Keeps the issuer's keys in line with the log on every new checkpoint:
/// on a front end that does not sequence, campaigns appear and close
/// without it (SPEC R-STORE-10).
async fn sync_issuer(
    ledger: Arc<Ledger>,
    issuer: Arc<Issuer>,
    cluster: Arc<cluster::Cluster>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut events = ledger.subscribe();
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => return,
            e = events.recv() => match e {
                Ok(ledger::LogEvent::Checkpoint { .. })
                | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Ok(_) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
        }
        // The sequencing front end opened and closed them itself: nothing
        // to load, and no store read on its batch path.
        if cluster.is_leader() {
            continue;
        }
        let (l, is) = (ledger.clone(), issuer.clone());
        let synced = tokio::task::spawn_blocking(move || is.sync(&l.published())).await;
        if let Ok(Err(e)) = synced {
            tracing::warn!("cannot load a new campaign's issuer key: {e}");
        }
    }
}

/// Closes campaigns whose deadline has passed: stops issuance, logs the
/// CampaignClosed entry with the tokens issued and the final tally (a
/// sealed campaign's: its aggregate, R-SEAL-35), then deletes the
/// campaign's keyed hashes and issuer key (DESIGN P2). Also logs sealed
/// campaigns' early snapshots and revealed tallies (SPEC R-SEAL-89).
async fn close_campaigns(
    ledger: Arc<Ledger>,
    issuer: Arc<Issuer>,
    sequencer: SequencerHandle,
    cluster: Arc<cluster::Cluster>,
    every: std::time::Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(every) => {}
        }
        // The sequencing front end closes campaigns (SPEC R-STORE-10).
        if !cluster.is_leader() {
            continue;
        }
        let now = unix_now();
        let view = ledger.published();
        let mut due = Vec::new();
        let mut sealed_work = Vec::new();
        for (id, c) in view.campaigns() {
            // SPEC R-SEAL-89: a sealed campaign's early snapshots (one per
            // scheduled reveal time passed, while open, key logged) and the
            // reveal of every snapshot that k trustees shared.
            if let (Some(block), Some(work)) = (c.definition.sealed_block(), &c.reveal_work) {
                let passed = block.early_reveals().iter().filter(|&&t| t <= now).count();
                if c.closed_at.is_none()
                    && c.joint_key.is_some()
                    && c.phase(now) == Phase::Open
                    && work.early_snapshots < passed
                {
                    sealed_work.push(Proposal::Snapshot { campaign: *id });
                }
                for &snapshot in &work.revealable {
                    sealed_work.push(Proposal::Reveal {
                        campaign: *id,
                        snapshot,
                    });
                }
            }
            if c.phase(now) == Phase::Closing {
                due.push(*id);
            }
        }
        drop(view);
        for proposal in sealed_work {
            match sequencer.submit(proposal, Vec::new()).await {
                Ok(_) => {}
                Err(SubmitError::ShuttingDown) => return,
                Err(e) => {
                    tracing::warn!("a sealed campaign's snapshot or reveal failed, will retry: {e}")
                }
            }
        }
        for id in due {
            match close_one(&issuer, &sequencer, id).await {
                Ok(_) | Err(CloseError::AlreadyClosed) => {}
                Err(CloseError::Submit(SubmitError::ShuttingDown)) => return,
                Err(CloseError::Submit(e)) => {
                    tracing::warn!("closing a campaign failed, will retry: {e}");
                }
                Err(CloseError::Counter(e)) => {
                    tracing::error!("cannot read a campaign's token counter: {e}");
                }
            }
        }
    }
}

/// Why [`close_one`] did not log a CampaignClosed entry.
#[derive(Debug, thiserror::Error)]
pub enum CloseError {
    /// The campaign was already closed (its issuer state is deleted now if
    /// an earlier attempt left it).
    #[error("the campaign is already closed")]
    AlreadyClosed,
    /// The durable token counter could not be read; nothing was logged.
    #[error("cannot read the campaign's token counter: {0}")]
    Counter(String),
    /// The sequencer refused or could not log the entry.
    #[error(transparent)]
    Submit(SubmitError),
}

/// Closes one campaign now: stops issuance for it, logs its CampaignClosed
/// entry with the tokens issued and the final tally, then deletes its keyed
/// hashes and issuer key (DESIGN P2). At the deadline for every campaign
/// ([`close_campaigns`]), or earlier when the organiser asks (SPEC
/// R-API-32). Returns the entry's index.
///
/// # Errors
/// [`CloseError`].
pub async fn close_one(
    issuer: &Arc<Issuer>,
    sequencer: &SequencerHandle,
    id: CampaignId,
) -> Result<u64, CloseError> {
    let is = issuer.clone();
    let tokens_issued = tokio::task::spawn_blocking(move || {
        is.begin_close(&id)?;
        is.tokens_issued(&id)
    })
    .await
    .map_err(|_| CloseError::Counter("reading it panicked".into()))?
    .map_err(|e| CloseError::Counter(e.to_string()))?;
    let r = sequencer
        .submit(
            Proposal::Close {
                campaign: id,
                tokens_issued,
            },
            Vec::new(),
        )
        .await;
    match r {
        Ok(_) | Err(SubmitError::Rule(pledge_protocol::ledger::RuleError::CampaignClosed)) => {
            if let Err(e) = issuer.finish_close(&id) {
                tracing::error!("cannot delete a closed campaign's issuer state: {e}");
            }
            r.map(|a| a.index).map_err(|_| CloseError::AlreadyClosed)
        }
        Err(e) => Err(CloseError::Submit(e)),
    }
}

/// The router of the whole service.
pub fn app(state: AppState) -> Router {
    http::router(state)
}

/// Serves `state` on `listener` until `shutdown` completes, then stops
/// accepting, lets in-flight requests finish (for at most the configured
/// shutdown grace, then cuts the connections left), integrates the batch in
/// flight and stops the background tasks. Connection limits: [`serve`].
///
/// # Errors
/// The listener's I/O error.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = app(state.clone());
    let limits = state.inner.conn_limits.clone();
    // SPEC R-STORE-11: where the other front ends hand writes over.
    let advertised = match &state.inner.advertise_url {
        Some(u) => u.clone(),
        None => format!("http://{}", listener.local_addr()?),
    };
    state.inner.cluster.advertise(advertised);
    // One shutdown signal for every listener.
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let metrics_task = match state.inner.metrics_listen {
        Some(addr) => {
            let l = TcpListener::bind(addr).await.map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("cannot listen for metrics on {addr}: {e}"),
                )
            })?;
            Some(tokio::spawn(serve::serve(
                l,
                http::metrics_router(state.clone()),
                limits.clone(),
                stopped(stop_rx.clone()),
                || {},
            )))
        }
        None => None,
    };
    let stopper = state.clone();
    let served = serve::serve(
        listener,
        app,
        limits,
        async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        },
        // End event streams so the graceful shutdown does not wait on them.
        move || {
            let _ = stopper.inner.shutdown_tx.send(true);
        },
    )
    .await;
    if let Some(t) = metrics_task {
        let _ = t.await;
    }
    state.stop().await;
    served
}
