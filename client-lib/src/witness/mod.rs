//! A C2SP tlog-witness (`pledge witness serve`): cosigns a log's checkpoints
//! after checking that each one extends the last one it cosigned, and
//! remembers that last one durably, so it never cosigns two inconsistent
//! checkpoints, across concurrent requests and restarts.
//! SPEC R-WIT-1…R-WIT-8, R-WITSRV-1…R-WITSRV-9.
//!
//! # Layout
//!
//! - this file: [`Witness`] (configuration, per-log state, the
//!   `add-checkpoint` decision) and its errors;
//! - `state`: the state folder (one file per log, atomic durable writes, lock);
//! - `http`: the HTTP interface ([`serve`]);
//! - `setup`: starting a server ([`start`]: key file, state folder, socket),
//!   what `pledge witness serve` runs.

mod http;
mod setup;
mod state;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pledge_protocol::cosignature::{
    AddCheckpointRequest, CosignatureError, WitnessCheckError, WitnessSigner, WitnessVerifier,
    WitnessedTree, check_add_checkpoint, format_cosignature_lines,
};
use pledge_protocol::note::{KeyName, NoteVerifier};
use tokio::sync::Mutex;

pub use http::{MAX_IN_FLIGHT, READ_TIMEOUT, router, serve};
pub use setup::{
    BoundWitness, KeyFileError, LogArgError, ServeOptions, StartError, default_state_dir,
    generate_key_file, key_file_open_to_others, parse_log_arg, read_key_file, start,
};

use state::StateDir;

/// Why a witness could not be opened, or could not store its state.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WitnessError {
    /// No log is configured: the witness would refuse everything.
    #[error("no log configured: give at least one --log ORIGIN=VKEY")]
    NoLogs,
    /// The same log key is configured twice.
    #[error("log key {0} is configured twice")]
    DuplicateLogKey(String),
    /// A file operation on the state folder failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// Another process (or another `Witness` in this one) holds the state
    /// folder. SPEC R-WITSRV-5.
    #[error(
        "state folder {} is in use by another witness process",
        path.display()
    )]
    StateLocked {
        /// The folder.
        path: PathBuf,
    },
    /// A state file exists but is not a checkpoint of its log: the witness
    /// refuses to start rather than forget what it cosigned. SPEC R-WITSRV-4.
    #[error(
        "state file {} is unreadable ({reason}); restore it from a backup, never delete it (that would let this witness cosign a fork)",
        path.display()
    )]
    CorruptState {
        /// The state file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The evidence folder holds its maximum number of files.
    #[error("evidence folder {} is full", path.display())]
    EvidenceFull {
        /// The folder.
        path: PathBuf,
    },
}

/// Why an `add-checkpoint` request got no cosignature. The HTTP layer maps
/// each variant to the status tlog-witness prescribes. SPEC R-WIT-3…R-WIT-6,
/// R-WITSRV-6.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AddCheckpointError {
    /// The checkpoint's origin is not a configured log (404).
    #[error("unknown log origin {0}")]
    UnknownOrigin(KeyName),
    /// The check of tlog-witness refused the request (403, 400, 409, 422).
    #[error(transparent)]
    Refused(#[from] WitnessCheckError),
    /// The witness's clock is unusable for a cosignature timestamp (500).
    #[error("the witness clock is unusable: {0}")]
    Clock(#[source] std::time::SystemTimeError),
    /// The cosignature could not be made (500).
    #[error(transparent)]
    Cosign(#[from] CosignatureError),
    /// The new state could not be stored durably; nothing was cosigned, and
    /// the log is refused until the witness restarts and re-reads its state
    /// (500). SPEC R-WITSRV-7.
    #[error("could not store the witness state: {0}")]
    Persist(WitnessError),
    /// An earlier store of this log's state failed; the witness must be
    /// restarted (503). SPEC R-WITSRV-7.
    #[error("this log is suspended after a storage failure; restart the witness")]
    Suspended,
}

/// One configured log: its keys and the latest checkpoint cosigned.
#[derive(Debug)]
struct LogSlot {
    keys: Vec<NoteVerifier>,
    state: Arc<Mutex<LogState>>,
}

#[derive(Debug)]
struct LogState {
    latest: Option<WitnessedTree>,
    /// Set when a store failed: memory and disk may disagree. SPEC R-WITSRV-7.
    suspended: bool,
}

/// A witness: its cosigning key, the logs it witnesses and their state.
/// Cheap to share behind an `Arc`; requests for one log are serialised by a
/// per-log mutex held from the consistency check until the new state is
/// durable. SPEC R-WIT-7, R-WITSRV-2.
#[derive(Debug)]
pub struct Witness {
    signer: WitnessSigner,
    logs: BTreeMap<KeyName, LogSlot>,
    state: Arc<StateDir>,
}

impl Witness {
    /// Opens a witness: locks `state_dir` (created if missing, mode 0700) and
    /// reads the latest cosigned checkpoint of each log. `logs` are the log
    /// verifier keys; a log is identified by its origin, which is its key
    /// name (SPEC R-CKPT-6), and may have several keys (a signature by any
    /// one of them is enough).
    ///
    /// # Errors
    /// [`WitnessError::NoLogs`], [`WitnessError::DuplicateLogKey`],
    /// [`WitnessError::StateLocked`], [`WitnessError::CorruptState`] or
    /// [`WitnessError::Io`].
    pub fn open(
        signer: WitnessSigner,
        logs: impl IntoIterator<Item = NoteVerifier>,
        state_dir: &Path,
    ) -> Result<Self, WitnessError> {
        let mut keys: BTreeMap<KeyName, Vec<NoteVerifier>> = BTreeMap::new();
        for key in logs {
            let entry = keys.entry(key.name().clone()).or_default();
            if entry.contains(&key) {
                return Err(WitnessError::DuplicateLogKey(key.to_text()));
            }
            entry.push(key);
        }
        if keys.is_empty() {
            return Err(WitnessError::NoLogs);
        }
        let state = StateDir::open(state_dir)?;
        let mut slots = BTreeMap::new();
        for (origin, keys) in keys {
            let latest = state.load(&origin)?;
            slots.insert(
                origin,
                LogSlot {
                    keys,
                    state: Arc::new(Mutex::new(LogState {
                        latest,
                        suspended: false,
                    })),
                },
            );
        }
        Ok(Self {
            signer,
            logs: slots,
            state: Arc::new(state),
        })
    }

    /// The witness's public key.
    pub fn verifier(&self) -> WitnessVerifier {
        self.signer.verifier()
    }

    /// The origins of the configured logs.
    pub fn origins(&self) -> impl Iterator<Item = &KeyName> {
        self.logs.keys()
    }

    /// The state folder.
    pub fn state_dir(&self) -> &Path {
        self.state.path()
    }

    /// True if `this` is the only handle to the witness and no store is in
    /// flight (dropping it releases the state folder).
    fn is_sole_owner(&self, this: &Arc<Self>) -> bool {
        Arc::strong_count(this) == 1 && Arc::strong_count(&self.state) == 1
    }

    /// The latest checkpoint cosigned for `origin` (`None` if never, or if the
    /// origin is not configured).
    pub async fn latest(&self, origin: &KeyName) -> Option<WitnessedTree> {
        self.logs.get(origin)?.state.lock().await.latest
    }

    /// Handles one `add-checkpoint` request (already parsed), cosigning at
    /// `timestamp` (POSIX seconds). On success returns the 200 body: one
    /// cosignature line. The new state is durable before this returns.
    /// SPEC R-WIT-4…R-WIT-7, R-WITSRV-2, R-WITSRV-3.
    ///
    /// `raw` is the request body as received, kept as evidence when a
    /// checkpoint signed by the log is refused as a fork or with a bad proof
    /// (R-WITSRV-8).
    ///
    /// # Errors
    /// [`AddCheckpointError`].
    pub async fn add_checkpoint(
        &self,
        req: &AddCheckpointRequest,
        raw: &[u8],
        timestamp: u64,
    ) -> Result<String, AddCheckpointError> {
        let origin = req.checkpoint().origin();
        // SPEC R-WIT-4: unknown origin.
        let slot = self
            .logs
            .get(origin)
            .ok_or_else(|| AddCheckpointError::UnknownOrigin(origin.clone()))?;
        // SPEC R-WIT-7, R-WITSRV-2: the check, the store and the answer are
        // under one lock per log.
        let mut st = Arc::clone(&slot.state).lock_owned().await;
        if st.suspended {
            return Err(AddCheckpointError::Suspended);
        }
        let signed = check_with_any_key(req, &slot.keys, st.latest).inspect_err(|e| {
            if matches!(
                e,
                WitnessCheckError::RootMismatch { .. } | WitnessCheckError::BadProof { .. }
            ) {
                tracing::warn!(%origin, error = %e, "log-signed checkpoint refused; keeping it as evidence");
                // Best effort, off the async threads; `serve` waits for it
                // before releasing the state folder.
                let (state, origin, raw) = (Arc::clone(&self.state), origin.clone(), raw.to_vec());
                tokio::task::spawn_blocking(move || {
                    if let Err(err) = state.keep_evidence(&origin, &raw) {
                        tracing::warn!(%origin, error = %err, "could not keep evidence");
                    }
                });
            }
        })?;
        let new = WitnessedTree {
            size: signed.checkpoint().size(),
            root: *signed.checkpoint().root(),
        };
        let body = signed.note().body();
        // Sign first (it can only fail on the timestamp) so that a stored
        // state is always followed by an answer; the signature is released
        // only after the store. SPEC R-COSIG-3.
        let cosig = self.signer.cosign_body(body, timestamp)?;
        if st.latest != Some(new) {
            // The store and the state update run on a blocking thread that
            // owns the lock guard: if this future is dropped (client gone),
            // they still finish together, so memory never disagrees with disk
            // and no two stores of one log overlap. SPEC R-WITSRV-2.
            let state = Arc::clone(&self.state);
            let origin_owned = origin.clone();
            let text = signed.note().note().to_text();
            let stored = tokio::task::spawn_blocking(move || {
                let r = state.store(&origin_owned, &text);
                match &r {
                    Ok(()) => st.latest = Some(new),
                    // SPEC R-WITSRV-7: the file may hold the old or the new
                    // checkpoint; refuse this log until a restart re-reads it.
                    Err(_) => st.suspended = true,
                }
                r
            })
            .await;
            let stored = stored.map_err(|join| WitnessError::Io {
                path: self.state.state_path(origin),
                source: std::io::Error::other(join.to_string()),
            });
            if let Err(e) = stored.and_then(|r| r) {
                tracing::error!(%origin, error = %e, "witness state not stored; log suspended");
                return Err(AddCheckpointError::Persist(e));
            }
        } else {
            drop(st);
        }
        tracing::info!(%origin, size = new.size, "cosigned");
        Ok(format_cosignature_lines(&[cosig]))
    }
}

/// Runs the tlog-witness check with each configured key of the log: the
/// first key whose signature verifies decides; if none does, 403.
fn check_with_any_key(
    req: &AddCheckpointRequest,
    keys: &[NoteVerifier],
    latest: Option<WitnessedTree>,
) -> Result<pledge_protocol::checkpoint::SignedCheckpoint, WitnessCheckError> {
    let mut last =
        WitnessCheckError::NotSignedByLog(pledge_protocol::note::NoteError::NoVerifiedSignature);
    for key in keys {
        match check_add_checkpoint(req, key, latest) {
            Err(e @ WitnessCheckError::NotSignedByLog(_)) => last = e,
            other => return other,
        }
    }
    Err(last)
}

/// The current time in POSIX seconds, for cosignature timestamps.
///
/// # Errors
/// [`AddCheckpointError::Clock`] if the clock is before 1970.
pub fn now_seconds() -> Result<u64, AddCheckpointError> {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(AddCheckpointError::Clock)
}
