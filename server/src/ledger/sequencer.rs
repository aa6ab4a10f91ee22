//! The sequencer: one task that collects checked submissions from a bounded
//! queue, and every interval (or as soon as a batch is full) shuffles them with
//! a CSPRNG (DESIGN P4) and integrates them in one durable commit
//! ([`Ledger::integrate`]). Each submitter gets its receipt only after the
//! commit returned (DESIGN I3). A full queue refuses at once
//! ([`SubmitError::QueueFull`]) instead of queueing without bound (DESIGN §7).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::{Accepted, Ledger, MetaUpdates, Proposal, SubmitError, unix_now};
use crate::metrics::Metrics;

/// Batching parameters.
#[derive(Debug, Clone, Copy)]
pub struct SequencerConfig {
    /// Longest time a submission waits for its batch.
    pub interval: Duration,
    /// Most entries per batch; a full batch is integrated at once.
    pub max_batch: usize,
    /// Submissions the queue holds before refusing.
    pub capacity: usize,
}

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
    config: SequencerConfig,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
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
        loop {
            tokio::select! {
                biased;
                _ = wait_for_shutdown(&mut shutdown) => break,
                _ = full.notified() => {}
                _ = tick.tick() => {}
            }
            // Integrate whole batches while they are waiting, then wait again.
            loop {
                let batch = take_batch(&mut rx, max_batch);
                if batch.is_empty() {
                    break;
                }
                let was_full = batch.len() == max_batch;
                flush(&ledger, &metrics, batch).await;
                if !was_full {
                    break;
                }
            }
        }
        // Graceful stop: refuse new submissions, integrate what was queued.
        rx.close();
        loop {
            let batch = take_batch(&mut rx, max_batch);
            if batch.is_empty() {
                break;
            }
            flush(&ledger, &metrics, batch).await;
        }
    });
    (handle, task)
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

async fn flush(ledger: &Arc<Ledger>, metrics: &Arc<Metrics>, mut batch: Vec<Submission>) {
    // DESIGN P4: arrival order must not leak into log order.
    batch.shuffle(&mut rand::rng());
    let mut replies = Vec::with_capacity(batch.len());
    let mut proposals = Vec::with_capacity(batch.len());
    for s in batch {
        replies.push(s.reply);
        proposals.push((s.proposal, s.meta));
    }
    let ledger = ledger.clone();
    let started = Instant::now();
    let results = tokio::task::spawn_blocking(move || ledger.integrate(proposals, unix_now()))
        .await
        .unwrap_or_else(|_| replies.iter().map(|_| Err(SubmitError::Storage)).collect());
    metrics.record_batch(started.elapsed(), &results);
    for (reply, result) in replies.into_iter().zip(results) {
        // The submitter may have gone away; its entry is in the log anyway.
        let _ = reply.send(result);
    }
}
