//! Pushing checkpoints to witnesses (C2SP tlog-witness `add-checkpoint`,
//! SPEC R-WIT-1…R-WIT-8) and attaching their cosignatures to the served
//! checkpoint. One task per witness: a slow or failing witness never blocks
//! integration, and a witness that falls behind gets only the latest
//! checkpoint, with a consistency proof from the size it last cosigned.
//!
//! Cosignatures are kept in memory on the current checkpoint only; the next
//! batch publishes a new checkpoint, which the witnesses cosign in turn.

use std::sync::Arc;
use std::time::Duration;

use pledge_protocol::cosignature::{
    AddCheckpointRequest, WitnessVerifier, parse_cosignature_lines, parse_size_body,
};
use pledge_protocol::merkle;
use pledge_protocol::note::{NoteSignature, SignedNote};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::ledger::{Ledger, StoreHashes};
use crate::metrics::{Metrics, WitnessHealth};

/// While a witness stays unreachable, its outage is logged again every this
/// many failed attempts (about every half hour at the longest back-off).
const REMIND_EVERY: u64 = 30;

/// Longest wait for one witness answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest pause between retries to a failing witness.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// A witness the log pushes to.
#[derive(Debug, Clone)]
pub struct Witness {
    /// Base URL (`http://host:port/prefix`); requests go to `<url>/add-checkpoint`.
    pub url: String,
    /// The witness's cosignature verifier key.
    pub key: WitnessVerifier,
}

enum Outcome {
    Cosigned(NoteSignature),
    /// 409: the witness's latest size.
    Behind(u64),
}

/// Starts one push task per witness; they stop when `shutdown` turns true.
/// Each witness's health (up, failures, last cosigned size) is exported in
/// `/metrics`; an outage is logged when it starts (with its cause), again
/// every [`REMIND_EVERY`] failed attempts, and its end once.
pub fn spawn(
    ledger: Arc<Ledger>,
    witnesses: Vec<Witness>,
    metrics: &Metrics,
    shutdown: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    witnesses
        .into_iter()
        .map(|w| {
            let health = metrics.witness(w.key.name().as_str());
            tokio::spawn(push_loop(ledger.clone(), w, health, shutdown.clone()))
        })
        .collect()
}

/// Logs a failed attempt: the start of an outage and reminders at warn
/// level, the attempts in between at debug.
fn log_failure(health: &WitnessHealth, url: &str, cause: &str) {
    let started = health.failed();
    let n = health.failures_in_outage();
    if started {
        tracing::warn!(
            "witness {} at {url} is unreachable: {cause}; checkpoints are served without its \
             cosignature until it answers (retrying, at most every {} s)",
            health.name(),
            MAX_BACKOFF.as_secs()
        );
    } else if n.is_multiple_of(REMIND_EVERY) {
        tracing::warn!(
            "witness {} still unreachable after {n} attempts: {cause}",
            health.name()
        );
    } else {
        tracing::debug!("witness {}: {cause}", health.name());
    }
}

/// An error and its sources on one line ("error sending request …:
/// connection refused"), each text once.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

async fn push_loop(
    ledger: Arc<Ledger>,
    w: Witness,
    health: Arc<WitnessHealth>,
    mut shutdown: watch::Receiver<bool>,
) {
    let Ok(client) = reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build() else {
        tracing::error!(
            "cannot build the HTTP client for witness {}",
            w.key.name().as_str()
        );
        return;
    };
    let mut events = ledger.subscribe();
    // The size the witness last cosigned, as far as we know (0 at first: a
    // 409 answer corrects it).
    let mut known: u64 = 0;
    let mut cosigned: Option<u64> = None;
    let mut backoff = Duration::from_secs(1);
    loop {
        let (size, note) = {
            let v = ledger.published();
            (v.size(), v.checkpoint())
        };
        let mut wait = None;
        if cosigned != Some(size) {
            match push(&client, &ledger, &w, known, size, &note).await {
                Ok(Outcome::Cosigned(sig)) => {
                    // Served first, then reported: whoever sees the witness
                    // up in /metrics finds its cosignature on the checkpoint.
                    ledger.attach_cosignature(size, sig);
                    let outage = health.failures_in_outage();
                    if health.cosigned(size) {
                        tracing::info!(
                            "witness {} cosigns again (checkpoint {size}) after {outage} failed \
                             attempts",
                            health.name()
                        );
                    }
                    known = size;
                    cosigned = Some(size);
                    backoff = Duration::from_secs(1);
                }
                Ok(Outcome::Behind(theirs)) if theirs <= size && theirs != known => {
                    // SPEC R-WIT-5: retry at once from the witness's size.
                    known = theirs;
                    continue;
                }
                Ok(Outcome::Behind(theirs)) => {
                    log_failure(
                        &health,
                        &w.url,
                        &format!("it reports size {theirs}, which this log cannot extend"),
                    );
                    wait = Some(backoff);
                }
                Err(e) => {
                    log_failure(&health, &w.url, &e);
                    wait = Some(backoff);
                }
            }
        }
        if let Some(pause) = wait {
            backoff = (backoff * 2).min(MAX_BACKOFF);
            tokio::select! {
                _ = shutdown.wait_for(|s| *s) => return,
                _ = tokio::time::sleep(pause) => {}
            }
            continue;
        }
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => return,
            r = events.recv() => {
                if matches!(r, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                    return;
                }
            }
        }
    }
}

/// One `add-checkpoint` request.
async fn push(
    client: &reqwest::Client,
    ledger: &Arc<Ledger>,
    w: &Witness,
    old: u64,
    size: u64,
    note: &str,
) -> Result<Outcome, String> {
    if old > size {
        return Err(format!(
            "witness is at size {old}, beyond this log's {size}"
        ));
    }
    let l = ledger.clone();
    let proof = tokio::task::spawn_blocking(move || {
        merkle::consistency_proof(old, size, &StoreHashes(l.store().as_ref()))
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())??;
    let note = SignedNote::parse(note.as_bytes()).map_err(|e| e.to_string())?;
    let body = note.body().to_owned();
    let req = AddCheckpointRequest::new(old, proof, note).map_err(|e| e.to_string())?;
    let resp = client
        .post(format!("{}/add-checkpoint", w.url.trim_end_matches('/')))
        .body(req.to_text())
        .send()
        .await
        .map_err(|e| format!("request failed: {}", chain(&e)))?;
    let status = resp.status().as_u16();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| format!("reading the answer failed: {}", chain(&e)))?;
    match status {
        200 => {
            let sigs = parse_cosignature_lines(&bytes).map_err(|e| e.to_string())?;
            // SPEC R-WIT-8: keep only a cosignature that verifies under the
            // configured key.
            sigs.into_iter()
                .find(|s| {
                    s.name() == w.key.name()
                        && s.key_id() == w.key.key_id()
                        && w.key
                            .verify_cosignature(body.as_bytes(), s.signature())
                            .is_some()
                })
                .map(Outcome::Cosigned)
                .ok_or_else(|| "answer holds no valid cosignature by its key".to_owned())
        }
        409 => parse_size_body(&bytes)
            .map(Outcome::Behind)
            .map_err(|e| e.to_string()),
        other => Err(format!("answered {other}")),
    }
}

/// Parses `PLEDGED_WITNESSES`-style lists: `URL|VERIFIER KEY` pairs separated
/// by `;`.
///
/// # Errors
/// A message naming the entry at fault.
pub fn parse_list(s: &str) -> Result<Vec<Witness>, String> {
    s.split(';')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|e| {
            let (url, key) = e
                .split_once('|')
                .ok_or_else(|| format!("witness entry {e:?} is not URL|KEY"))?;
            parse_one(url.trim(), key.trim())
        })
        .collect()
}

/// Validates one witness: an `http://` URL and a cosignature verifier key.
///
/// # Errors
/// A message naming what is wrong.
pub fn parse_one(url: &str, key: &str) -> Result<Witness, String> {
    if !url.starts_with("http://") {
        return Err(format!(
            "witness URL {url:?}: only http:// is supported (this build has no TLS client; \
             use a local TLS proxy)"
        ));
    }
    let key = WitnessVerifier::from_text(key).map_err(|e| format!("witness key for {url}: {e}"))?;
    Ok(Witness {
        url: url.to_owned(),
        key,
    })
}
