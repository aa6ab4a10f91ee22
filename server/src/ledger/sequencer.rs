//! The sequencer: one task that owns the ledger's [`Core`] (rules state and
//! Merkle tree, no lock), collects verified submissions from a bounded queue,
//! checks each against the stateful rules as it takes it, and every interval
//! (or as soon as a batch is full) shuffles them with a CSPRNG (DESIGN P4)
//! and integrates them in one durable commit ([`Ledger::integrate`], on a
//! blocking thread, the core moved there and back). Each submitter gets its
//! receipt only after the commit returned (DESIGN I3). A full queue refuses
//! at once ([`SubmitError::QueueFull`]) instead of queueing without bound
//! (DESIGN §7). If an integration fails or panics, the core is rebuilt from
//! the store before the next batch; readers only ever see the published,
//! durable view.
//!
//! Publication policy (SPEC R-PUB-1): the pledges, amendments and withdrawals
//! of a campaign whose [`Publication`] holds are kept back, unanswered, until
//! at least `min_pledges` of them wait, then released together after a random
//! delay of up to `max_delay_ms`, so no published batch shows one person's
//! entry alone. A held entry that waited [`SequencerConfig::max_hold`] without
//! its group completing is dropped and answered [`SubmitError::HeldBack`]
//! (nothing recorded; the client sends it again later). Held entries are
//! released regardless of the minimum once the campaign's deadline is near
//! ([`DEADLINE_MARGIN`]), and before its CampaignClosed entry.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use std::collections::HashMap;

use pledge_protocol::entry::Entry;
use pledge_protocol::hash::CampaignId;
use rand::RngExt as _;

use super::{Accepted, Core, Ledger, MetaUpdates, Proposal, SubmitError, unix_now};
use crate::metrics::Metrics;

/// Batching parameters.
#[derive(Debug, Clone, Copy)]
pub struct SequencerConfig {
    /// Longest time a submission waits for its batch.
    pub interval: Duration,
    /// Most entries per batch; a full batch is integrated at once.
    pub max_batch: usize,
    /// Submissions the queue holds before refusing (and, separately, held
    /// entries of campaigns with a publication policy).
    pub capacity: usize,
    /// Longest time an entry is held for its publication group.
    pub max_hold: Duration,
}

/// Held entries of a campaign are released whatever their number once its
/// deadline is this close (seconds), so that none is refused as late.
pub const DEADLINE_MARGIN: u64 = 5;

struct Submission {
    proposal: Proposal,
    meta: MetaUpdates,
    reply: oneshot::Sender<Result<Accepted, SubmitError>>,
}

/// Cheap handle for submitting to the sequencer.
#[derive(Clone, Debug)]
pub struct SequencerHandle {
    tx: mpsc::Sender<Submission>,
    /// Wakes the sequencer when a full batch is waiting.
    full: Arc<Notify>,
    max_batch: usize,
}

impl std::fmt::Debug for Submission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Submission").finish_non_exhaustive()
    }
}

impl SequencerHandle {
    /// Queues `proposal` and waits until its batch is durably committed.
    ///
    /// # Errors
    /// [`SubmitError::QueueFull`] at once if the queue is full;
    /// [`SubmitError::ShuttingDown`]; or the integration's error.
    pub async fn submit(
        &self,
        proposal: Proposal,
        meta: MetaUpdates,
    ) -> Result<Accepted, SubmitError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .try_send(Submission {
                proposal,
                meta,
                reply,
            })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => SubmitError::QueueFull,
                mpsc::error::TrySendError::Closed(_) => SubmitError::ShuttingDown,
            })?;
        if self.queued() >= self.max_batch {
            self.full.notify_one();
        }
        rx.await.map_err(|_| SubmitError::ShuttingDown)?
    }

    /// Wakes the sequencer task now: a front end that follows reads the log
    /// at once instead of at its next poll (SPEC R-STORE-10).
    pub fn wake(&self) {
        self.full.notify_one();
    }

    /// Submissions waiting in the queue.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity().saturating_sub(self.tx.capacity())
    }
}

/// Starts the sequencer task. Submissions wait in a queue of
/// `config.capacity` (the only place they wait, so the bound is exact); every
/// interval, or as soon as a full batch is queued, up to `max_batch` of them
/// are integrated. It stops when `shutdown` turns `true`: it refuses new
/// submissions, integrates everything already queued, and exits.
pub fn spawn(
    ledger: Arc<Ledger>,
    core: Core,
    config: SequencerConfig,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
    mut leader: watch::Receiver<bool>,
) -> (SequencerHandle, JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Submission>(config.capacity.max(1));
    let max_batch = config.max_batch.max(1);
    let full = Arc::new(Notify::new());
    let handle = SequencerHandle {
        tx,
        full: full.clone(),
        max_batch,
    };
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(config.interval.max(Duration::from_millis(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut follow = tokio::time::interval(FOLLOW_INTERVAL);
        follow.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut held = Held::default();
        let mut core = Some(core);
        // The role this task last acted in (SPEC R-STORE-10).
        let mut leading = *leader.borrow_and_update();
        let mut last_recovery = Instant::now();
        // False once the role can no longer change (its sender is gone).
        let mut elections = true;
        loop {
            tokio::select! {
                biased;
                _ = wait_for_shutdown(&mut shutdown) => break,
                r = leader.changed(), if elections => elections = r.is_ok(),
                _ = full.notified() => {}
                _ = tick.tick() => {}
                _ = follow.tick(), if !leading => {}
            }
            let now_leading = *leader.borrow_and_update();
            if !now_leading {
                // A follower: answer what reached the queue (the HTTP layer
                // forwards writes to the leader; these raced a change of
                // role) and follow the log the leader writes.
                if leading {
                    held.refuse_all(SubmitError::NotLeader);
                }
                leading = false;
                for s in take_batch(&mut rx, usize::MAX) {
                    let _ = s.reply.send(Err(SubmitError::NotLeader));
                }
                if core.is_none() && last_recovery.elapsed() < RECOVERY_INTERVAL {
                    continue;
                }
                last_recovery = Instant::now();
                core = follow_log(&ledger, core).await;
                continue;
            }
            if !leading || core.is_none() {
                // Just elected, or recovering from a store outage: read
                // what is durable (another front end may have written it)
                // before sequencing anything. At most once a second.
                if core.is_none() && last_recovery.elapsed() < RECOVERY_INTERVAL {
                    for s in take_batch(&mut rx, usize::MAX) {
                        let _ = s.reply.send(Err(SubmitError::Storage));
                    }
                    continue;
                }
                last_recovery = Instant::now();
                core = follow_log(&ledger, core).await;
                leading = core.is_some();
                if !leading {
                    continue;
                }
            }
            // Integrate whole batches while they are waiting, then wait again.
            loop {
                let taken = take_batch(&mut rx, max_batch);
                let was_full = taken.len() == max_batch;
                let taken = precheck(core.as_ref(), taken);
                let ready = held.route(&ledger, taken, &config, Instant::now());
                let mut ready = ready.into_iter().peekable();
                while ready.peek().is_some() {
                    let batch: Vec<Submission> = ready.by_ref().take(max_batch).collect();
                    core = flush(&ledger, &metrics, core, batch).await;
                }
                if !was_full {
                    break;
                }
            }
        }
        // Graceful stop: refuse new submissions, integrate what was queued;
        // held entries are not published alone: answered, not recorded.
        rx.close();
        held.refuse_all(SubmitError::ShuttingDown);
        loop {
            let batch = take_batch(&mut rx, max_batch);
            if batch.is_empty() {
                break;
            }
            let (batch, refused): (Vec<_>, Vec<_>) = batch
                .into_iter()
                .partition(|s| held_campaign(s).is_none_or(|c| !ledger.publication(&c).holds()));
            for s in refused {
                let _ = s.reply.send(Err(SubmitError::ShuttingDown));
            }
            if !leading {
                for s in batch {
                    let _ = s.reply.send(Err(SubmitError::NotLeader));
                }
                continue;
            }
            let batch = precheck(core.as_ref(), batch);
            core = flush(&ledger, &metrics, core, batch).await;
        }
    });
    (handle, task)
}

/// How often a follower reads the log the leader writes.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(200);

/// How often a sequencer whose store could not be read back tries again.
const RECOVERY_INTERVAL: Duration = Duration::from_secs(1);

/// [`Ledger::catch_up`] (or [`Ledger::reload`] without a core) on a
/// blocking thread.
async fn follow_log(ledger: &Arc<Ledger>, core: Option<Core>) -> Option<Core> {
    let l = ledger.clone();
    tokio::task::spawn_blocking(move || match core {
        Some(core) => l.catch_up(core),
        None => l.reload(),
    })
    .await
    .ok()
    .flatten()
}

/// Answers at once the submissions that break a stateful rule (SPEC §8) or
/// come after their campaign's deadline, so none is held for a publication
/// group it cannot join; returns the others. Without a core (the store could
/// not be read back) every submission is refused.
fn precheck(core: Option<&Core>, taken: Vec<Submission>) -> Vec<Submission> {
    let now = unix_now();
    let mut kept = Vec::with_capacity(taken.len());
    for s in taken {
        let verdict = match (core, &s.proposal) {
            (None, _) => Err(SubmitError::Storage),
            (Some(core), Proposal::Entry(e)) => core.check(e.entry(), now),
            (
                Some(_),
                Proposal::Close { .. } | Proposal::Snapshot { .. } | Proposal::Reveal { .. },
            ) => Ok(()),
        };
        match verdict {
            Ok(()) => kept.push(s),
            Err(e) => {
                let _ = s.reply.send(Err(e));
            }
        }
    }
    kept
}

/// The campaign of a pledge, amendment or withdrawal (the entries a
/// publication policy holds); `None` for other proposals.
fn held_campaign(s: &Submission) -> Option<CampaignId> {
    match &s.proposal {
        Proposal::Entry(e) => match e.entry() {
            e @ (Entry::Pledge(_)
            | Entry::PledgeAmended(_)
            | Entry::PledgeWithdrawn(_)
            | Entry::SealedPledge(_)
            | Entry::SealedAmended(_)) => Some(e.campaign()),
            _ => None,
        },
        Proposal::Close { .. } | Proposal::Snapshot { .. } | Proposal::Reveal { .. } => None,
    }
}

/// Entries held for their publication group, per campaign.
#[derive(Default)]
struct Held {
    groups: HashMap<CampaignId, Group>,
    /// Close proposals deferred by one round behind the release of their
    /// campaign's held entries.
    deferred: Vec<Submission>,
}

struct Group {
    waiting: Vec<(Instant, Submission)>,
    /// When a complete group is released (set once it is complete).
    release_at: Option<Instant>,
}

impl Held {
    fn total(&self) -> usize {
        self.groups.values().map(|g| g.waiting.len()).sum()
    }

    /// Sorts newly taken submissions into held groups and those ready now;
    /// releases complete groups whose delay has passed, groups near their
    /// deadline, and refuses entries held too long.
    fn route(
        &mut self,
        ledger: &Ledger,
        taken: Vec<Submission>,
        config: &SequencerConfig,
        now: Instant,
    ) -> Vec<Submission> {
        let mut ready = std::mem::take(&mut self.deferred);
        for s in taken {
            if let Proposal::Close { campaign, .. } = &s.proposal
                && let Some(g) = self.groups.remove(campaign)
            {
                // The held entries go first; the close follows next round.
                ready.extend(g.waiting.into_iter().map(|(_, s)| s));
                self.deferred.push(s);
                continue;
            }
            let Some(c) = held_campaign(&s) else {
                ready.push(s);
                continue;
            };
            if !ledger.publication(&c).holds() {
                ready.push(s);
                continue;
            }
            if self.total() >= config.capacity.max(1) {
                let _ = s.reply.send(Err(SubmitError::QueueFull));
                continue;
            }
            self.groups
                .entry(c)
                .or_insert_with(|| Group {
                    waiting: Vec::new(),
                    release_at: None,
                })
                .waiting
                .push((now, s));
        }
        let wall = unix_now();
        let view = ledger.published();
        let mut release = Vec::new();
        for (c, g) in &mut self.groups {
            // A submitter that went away gets nothing recorded.
            g.waiting.retain(|(_, s)| !s.reply.is_closed());
            let p = ledger.publication(c);
            let near_deadline = view.campaign(c).is_none_or(|camp| {
                // SPEC R-CAMP-8: the effective deadline.
                wall.saturating_add(DEADLINE_MARGIN) >= camp.deadline()
            });
            let complete = g.waiting.len() >= usize::try_from(p.min_pledges).unwrap_or(usize::MAX);
            if complete && g.release_at.is_none() {
                let delay = rand::rng().random_range(0..=p.max_delay_ms);
                g.release_at = Some(now + Duration::from_millis(delay));
            }
            if near_deadline || g.release_at.is_some_and(|t| now >= t) {
                release.push(*c);
                continue;
            }
            if !complete {
                g.release_at = None;
                // Held too long without a group: refused, nothing recorded.
                let (old, young): (Vec<_>, Vec<_>) = std::mem::take(&mut g.waiting)
                    .into_iter()
                    .partition(|(since, _)| now.duration_since(*since) >= config.max_hold);
                g.waiting = young;
                for (_, s) in old {
                    let _ = s
                        .reply
                        .send(Err(SubmitError::HeldBack { min: p.min_pledges }));
                }
            }
        }
        drop(view);
        for c in release {
            if let Some(g) = self.groups.remove(&c) {
                ready.extend(g.waiting.into_iter().map(|(_, s)| s));
            }
        }
        self.groups.retain(|_, g| !g.waiting.is_empty());
        ready
    }

    fn refuse_all(&mut self, e: SubmitError) {
        for (_, g) in self.groups.drain() {
            for (_, s) in g.waiting {
                let _ = s.reply.send(Err(e.clone()));
            }
        }
        for s in self.deferred.drain(..) {
            let _ = s.reply.send(Err(e.clone()));
        }
    }
}

/// Up to `max` submissions that are already in the queue.
fn take_batch(rx: &mut mpsc::Receiver<Submission>, max: usize) -> Vec<Submission> {
    let mut batch = Vec::new();
    while batch.len() < max {
        match rx.try_recv() {
            Ok(s) => batch.push(s),
            Err(_) => break,
        }
    }
    batch
}

async fn wait_for_shutdown(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|stop| *stop).await.is_err() {
        // The sender is gone: nobody can ask us to stop any more.
        std::future::pending::<()>().await;
    }
}

/// Integrates `batch` into `core` on a blocking thread and answers each
/// submitter; returns the core for the next batch (rebuilt from the store if
/// the integration panicked, `None` if that failed too).
async fn flush(
    ledger: &Arc<Ledger>,
    metrics: &Arc<Metrics>,
    core: Option<Core>,
    mut batch: Vec<Submission>,
) -> Option<Core> {
    if batch.is_empty() {
        return core;
    }
    // DESIGN P4: arrival order must not leak into log order.
    batch.shuffle(&mut rand::rng());
    let mut replies = Vec::with_capacity(batch.len());
    let mut proposals = Vec::with_capacity(batch.len());
    for s in batch {
        replies.push(s.reply);
        proposals.push((s.proposal, s.meta));
    }
    let storage_errors = |n: usize| (0..n).map(|_| Err(SubmitError::Storage)).collect();
    let Some(core) = core else {
        for reply in replies {
            let _ = reply.send(Err(SubmitError::Storage));
        }
        return None;
    };
    let l = ledger.clone();
    let started = Instant::now();
    let (core, results): (Option<Core>, Vec<_>) =
        match tokio::task::spawn_blocking(move || l.integrate(core, proposals, unix_now())).await {
            Ok(r) => r,
            Err(e) => {
                // The core went down with the panic: nothing of the batch was
                // acknowledged or published; rebuild from the durable store.
                tracing::error!("integrating a batch panicked ({e}); reloading the log");
                let l = ledger.clone();
                let core = tokio::task::spawn_blocking(move || l.reload())
                    .await
                    .ok()
                    .flatten();
                (core, storage_errors(replies.len()))
            }
        };
    metrics.record_batch(started.elapsed(), &results);
    for (reply, result) in replies.into_iter().zip(results) {
        // The submitter may have gone away; its entry is in the log anyway.
        let _ = reply.send(result);
    }
    core
}
