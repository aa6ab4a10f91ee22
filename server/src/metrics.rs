//! Process counters for `GET /metrics`, in the Prometheus text format. Only
//! aggregate counts: no per-user, per-address or per-campaign labels (DESIGN P1).
//!
//! Counters of the issuer (tokens issued, refused, rate-limited) are
//! published only when a batch is integrated, like the log itself (SPEC §12):
//! a reader polling `/metrics` must not see one token request the moment it
//! happens. `/metrics` itself is for the operator only (admin token or a
//! separate listener).

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::ledger::{Accepted, SubmitError};

/// Aggregate counters.
#[derive(Debug, Default)]
pub struct Metrics {
    batches: AtomicU64,
    batch_micros: AtomicU64,
    entries_accepted: AtomicU64,
    entries_refused: AtomicU64,
    storage_failures: AtomicU64,
    queue_full: AtomicU64,
    tokens_issued: AtomicU64,
    token_requests_refused: AtomicU64,
    rate_limited: AtomicU64,
    // Counted as they happen; added to the published counters above at the
    // next batch.
    pending_tokens: AtomicU64,
    pending_refused: AtomicU64,
    pending_rate_limited: AtomicU64,
    /// One per configured witness (labelled by its name: operator
    /// configuration, not anyone's data).
    witnesses: std::sync::Mutex<Vec<Arc<WitnessHealth>>>,
}

/// What the operator needs to know of one witness: reachable or not, since
/// how many failed attempts, and the size it last cosigned.
#[derive(Debug)]
pub struct WitnessHealth {
    name: String,
    up: AtomicBool,
    failures: AtomicU64,
    /// Failed attempts since the last success.
    outage: AtomicU64,
    cosigned_size: AtomicU64,
}

impl WitnessHealth {
    /// The witness's name (its verifier key's name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Records a cosignature of `size`. Returns whether the witness was
    /// failing before (a recovery, to be logged once).
    pub fn cosigned(&self, size: u64) -> bool {
        self.cosigned_size.store(size, Ordering::Relaxed);
        self.outage.store(0, Ordering::Relaxed);
        !self.up.swap(true, Ordering::Relaxed)
    }

    /// Failed attempts since the last success.
    pub fn failures_in_outage(&self) -> u64 {
        self.outage.load(Ordering::Relaxed)
    }

    /// Records a failed attempt. Returns whether the witness was up before
    /// (the start of an outage, to be logged once).
    pub fn failed(&self) -> bool {
        self.failures.fetch_add(1, Ordering::Relaxed);
        self.outage.fetch_add(1, Ordering::Relaxed);
        self.up.swap(false, Ordering::Relaxed)
    }

    /// Whether its last attempt succeeded.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }
}

impl Metrics {
    /// Records one integrated batch.
    pub fn record_batch(&self, took: Duration, results: &[Result<Accepted, SubmitError>]) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        for (pending, public) in [
            (&self.pending_tokens, &self.tokens_issued),
            (&self.pending_refused, &self.token_requests_refused),
            (&self.pending_rate_limited, &self.rate_limited),
        ] {
            public.fetch_add(pending.swap(0, Ordering::Relaxed), Ordering::Relaxed);
        }
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.batch_micros.fetch_add(micros, Ordering::Relaxed);
        for r in results {
            match r {
                Ok(_) => self.entries_accepted.fetch_add(1, Ordering::Relaxed),
                Err(SubmitError::Storage) => self.storage_failures.fetch_add(1, Ordering::Relaxed),
                Err(_) => self.entries_refused.fetch_add(1, Ordering::Relaxed),
            };
        }
    }

    /// A submission refused because the queue was full.
    pub fn record_queue_full(&self) {
        self.queue_full.fetch_add(1, Ordering::Relaxed);
    }

    /// Registers a witness; it counts as up until an attempt fails.
    pub fn witness(&self, name: &str) -> Arc<WitnessHealth> {
        let h = Arc::new(WitnessHealth {
            name: name.to_owned(),
            up: AtomicBool::new(true),
            failures: AtomicU64::new(0),
            outage: AtomicU64::new(0),
            cosigned_size: AtomicU64::new(0),
        });
        self.witnesses
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(h.clone());
        h
    }

    /// Blind signatures released.
    pub fn record_tokens(&self, n: u64) {
        self.pending_tokens.fetch_add(n, Ordering::Relaxed);
    }

    /// A token request refused.
    pub fn record_token_refused(&self) {
        self.pending_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// A request refused by the open attester's rate limit.
    pub fn record_rate_limited(&self) {
        self.pending_rate_limited.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition, with the gauges passed in.
    pub fn render(
        &self,
        log_size: u64,
        campaigns_open: u64,
        queued: usize,
        tally_failures: u64,
    ) -> String {
        let mut out = String::new();
        let mut put = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed).to_string();
        put(
            "pledged_log_size",
            "gauge",
            "Entries in the published log.",
            log_size.to_string(),
        );
        put(
            "pledged_campaigns_open",
            "gauge",
            "Campaigns open for pledges.",
            campaigns_open.to_string(),
        );
        put(
            "pledged_queue_depth",
            "gauge",
            "Submissions waiting for a batch.",
            queued.to_string(),
        );
        put(
            "pledged_tally_statement_failures_total",
            "counter",
            "Tally statements that could not be signed (the tally is then served as 503).",
            tally_failures.to_string(),
        );
        put(
            "pledged_batches_total",
            "counter",
            "Batches integrated.",
            get(&self.batches),
        );
        let secs = self.batch_micros.load(Ordering::Relaxed) as f64 / 1e6;
        put(
            "pledged_batch_seconds_total",
            "counter",
            "Time spent integrating batches (apply, sign, durable commit, receipts).",
            format!("{secs:.6}"),
        );
        put(
            "pledged_entries_accepted_total",
            "counter",
            "Entries appended to the log.",
            get(&self.entries_accepted),
        );
        put(
            "pledged_entries_refused_total",
            "counter",
            "Submissions refused by the ledger rules at integration.",
            get(&self.entries_refused),
        );
        put(
            "pledged_storage_failures_total",
            "counter",
            "Submissions answered 503 because the durable commit failed.",
            get(&self.storage_failures),
        );
        put(
            "pledged_queue_full_total",
            "counter",
            "Submissions refused because the queue was full.",
            get(&self.queue_full),
        );
        put(
            "pledged_tokens_issued_total",
            "counter",
            "Blind signatures released since start (updated at each batch).",
            get(&self.tokens_issued),
        );
        put(
            "pledged_token_requests_refused_total",
            "counter",
            "Token requests refused (updated at each batch).",
            get(&self.token_requests_refused),
        );
        put(
            "pledged_rate_limited_total",
            "counter",
            "Requests refused by the open attester's rate limit (updated at each batch).",
            get(&self.rate_limited),
        );
        let witnesses = self
            .witnesses
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if !witnesses.is_empty() {
            let labelled = |out: &mut String,
                            name: &str,
                            kind: &str,
                            help: &str,
                            f: &dyn Fn(&WitnessHealth) -> String| {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
                for w in &witnesses {
                    let _ = writeln!(out, "{name}{{witness=\"{}\"}} {}", label(&w.name), f(w));
                }
            };
            labelled(
                &mut out,
                "pledged_witness_up",
                "gauge",
                "1 if the last add-checkpoint to this witness succeeded, 0 while it fails.",
                &|w| u8::from(w.is_up()).to_string(),
            );
            labelled(
                &mut out,
                "pledged_witness_failures_total",
                "counter",
                "Failed add-checkpoint attempts to this witness since start.",
                &|w| w.failures.load(Ordering::Relaxed).to_string(),
            );
            labelled(
                &mut out,
                "pledged_witness_cosigned_size",
                "gauge",
                "Size of the latest checkpoint this witness cosigned (0: none since start).",
                &|w| w.cosigned_size.load(Ordering::Relaxed).to_string(),
            );
        }
        out
    }
}

/// A Prometheus label value: backslash, quote and newline escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
