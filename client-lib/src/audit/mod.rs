//! The independent auditor (`pledge audit`, SPEC §15, R-AUDIT-1…R-AUDIT-14):
//! rebuilds the log from its C2SP tlog-tiles read API and checks the
//! checkpoint, its witnesses, consistency with the last checkpoint it
//! verified, every tile, every entry, every ledger rule and every published
//! tally, reporting each failure with its kind and entry index.
//!
//! # Layout
//!
//! - [`report`]: the report (`--json` serialises it) and failure kinds.
//! - `fetch`: bounded HTTP reads with retries.
//! - `state`: the `--state DIR` files (pinned key, last checkpoint, bundle cache).
//! - `replay`: leaf hashes, strict decoding, parallel signature checks and the
//!   sequential replay through the protocol's `LedgerState`.
//!
//! # Trust
//!
//! The auditor trusts only the log key (pinned with `--log-key`, or by the
//! state directory, or fetched once from the server: trust on first use, and
//! said so) and, when given, the witness keys. Everything else the server
//! serves is checked against a checkpoint signed by that key.

mod fetch;
mod replay;
pub mod report;
mod state;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt as _;
use pledge_protocol::checkpoint::{CheckpointError, SignedCheckpoint, verify_checkpoint};
use pledge_protocol::cosignature::{WitnessVerifier, verify_cosignatures};
use pledge_protocol::funding::CampaignStatement;
use pledge_protocol::hash::{CampaignId, Hash};
use pledge_protocol::ledger::LedgerState;
use pledge_protocol::merkle::{
    MemoryHashes, consistency_proof, consistency_proof_nodes, tree_root, tree_root_nodes,
    verify_consistency,
};
use pledge_protocol::note::{
    KeyError, MAX_NOTE_BYTES, NoteError, NoteVerifier, SignedNote, Verifier,
};
use pledge_protocol::sealed_tally::SealedTallyStatement;
use pledge_protocol::tile::{
    BundleId, FULL_WIDTH, HASH_LEN, TileHashes, TileId, new_tiles, tile_data, tiles_for_nodes,
    tiles_for_size,
};
use tokio::sync::mpsc;

use self::fetch::{Fetcher, Got, MAX_JSON_BYTES};
use self::replay::{BundleItem, ReplayInput, ReplayOutcome};
pub use self::report::{
    AuditReport, CampaignSummary, CheckpointSummary, Counts, Failure, FailureKind, KeySource,
    SealedSummary,
};
use self::state::{FORMAT, StateDir, StateFile, hash_b64};

/// Largest entry bundle: 256 entries of at most 65,535 bytes, each with a
/// 2-byte length.
const MAX_BUNDLE_BYTES: usize = 256 * (2 + 65_535);
/// Tiles and bundles fetched at once.
const FETCH_CONCURRENCY: usize = 16;

/// What to audit and how.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// Base URL of the ledger.
    pub server: String,
    /// The state directory, if any.
    pub state_dir: Option<PathBuf>,
    /// Verification threads (0: one per core).
    pub threads: usize,
    /// Witness keys.
    pub witnesses: Vec<WitnessVerifier>,
    /// Cosignatures required, at most `witnesses.len()` (default: all
    /// witnesses).
    pub quorum: Option<usize>,
    /// The pinned log key.
    pub log_key: Option<NoteVerifier>,
}

impl AuditOptions {
    /// Options for `server` with no state, no witnesses, all cores, and the
    /// log key trusted on first use.
    pub fn new(server: impl Into<String>) -> Self {
        Self {
            server: server.into(),
            state_dir: None,
            threads: 0,
            witnesses: Vec::new(),
            quorum: None,
            log_key: None,
        }
    }
}

/// Why the audit could not be carried out (`pledge audit` exits with 2).
/// Anything the server got wrong is a [`Failure`] in the report instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The server's URL is not an `http://` or `https://` URL.
    #[error("--server must be an http:// or https:// URL, not {0:?}")]
    BadServerUrl(String),
    /// The HTTP client could not be built.
    #[error("cannot build an HTTP client: {source}")]
    HttpClient {
        /// The HTTP library's error.
        #[source]
        source: reqwest::Error,
    },
    /// More cosignatures are required than witness keys were given.
    #[error("--quorum {quorum} needs at least {quorum} --witness keys, {witnesses} given")]
    QuorumTooLarge {
        /// [`AuditOptions::quorum`].
        quorum: usize,
        /// How many witness keys were given.
        witnesses: usize,
    },
    /// The state directory pins another log key than [`AuditOptions::log_key`].
    #[error(
        "the state directory pins log key {pinned} but --log-key is {given}: use another --state for another log"
    )]
    LogKeyConflict {
        /// The key pinned in the state directory.
        pinned: String,
        /// The key given.
        given: String,
    },
    /// No log key was given or pinned, and the server did not serve its own.
    #[error(
        "the server did not serve /v1/log/key ({}); pass --log-key",
        match status { Some(s) => format!("Status({s})"), None => "TooLarge".to_owned() }
    )]
    ServedKeyMissing {
        /// The HTTP status of the answer, or `None` for a body over 4 KiB.
        status: Option<u16>,
    },
    /// The server's own log key (trust on first use) is not UTF-8.
    #[error("the server's /v1/log/key is not UTF-8; pass --log-key")]
    ServedKeyNotUtf8 {
        /// The decoding error.
        #[source]
        source: std::string::FromUtf8Error,
    },
    /// The server's own log key (trust on first use) is not a verifier key.
    #[error("the server's /v1/log/key is not a verifier key ({source}); pass --log-key")]
    ServedKeyMalformed {
        /// Why the key does not parse.
        #[source]
        source: KeyError,
    },
    /// The server could not be reached, or kept failing (5xx, 429).
    #[error("cannot read {url}: {source}")]
    Network {
        /// The URL.
        url: String,
        /// What happened.
        #[source]
        source: NetworkError,
    },
    /// The state directory cannot be read or written, or is corrupt.
    #[error("state directory {}: {source}", path.display())]
    State {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: StateError,
    },
    /// The verification threads could not be started.
    #[error("internal error: thread pool: {source}")]
    ThreadPool {
        /// Rayon's error.
        #[source]
        source: rayon::ThreadPoolBuildError,
    },
    /// A bug in the auditor.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Why the server could not be read ([`AuditError::Network`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetworkError {
    /// The request failed (connection, timeout, body).
    #[error(transparent)]
    Request(#[from] reqwest::Error),
    /// Every attempt got a 429 or 5xx answer.
    #[error("the server kept answering 429 or 5xx")]
    Unavailable,
}

/// What is wrong with the state directory ([`AuditError::State`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// Reading, writing or syncing failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// `state.json` is not JSON of the expected shape.
    #[error("not an audit state file: {0}")]
    Parse(#[source] serde_json::Error),
    /// `state.json` could not be encoded.
    #[error(transparent)]
    Encode(serde_json::Error),
    /// `state.json` has another format tag.
    #[error("unknown format {0:?}")]
    UnknownFormat(String),
    /// A hash in `state.json` is not base64 of 32 bytes.
    #[error("{0} is not base64 of 32 bytes")]
    BadHash(&'static str),
    /// The pinned log key does not parse.
    #[error("pinned log key: {0}")]
    PinnedKey(#[source] KeyError),
    /// The cached entry bundles do not hash to the root recorded with them.
    #[error(
        "the cached entry bundles do not hash to the root recorded with them: the cache was \
         altered; use a fresh --state directory"
    )]
    CacheAltered,
}

/// A fetched tally statement, before or after its checks.
struct Statement {
    campaign: CampaignId,
    /// A plain (R-TALLY-7) or funding (R-FUND-7) statement.
    parsed: CampaignStatement,
}

/// A sealed campaign's statement (R-SEAL-80), its signature checked.
struct SealedStatement {
    campaign: CampaignId,
    parsed: SealedTallyStatement,
}

/// SPEC R-SEAL-80: a sealed statement's entry count against the log's at
/// its size (`None`: the campaign is not a sealed campaign of the log
/// there).
fn check_sealed_statement(s: &SealedStatement, logged: Option<u64>, rep: &mut AuditReport) {
    let at = s.parsed.checkpoint_size();
    if logged != Some(s.parsed.entries()) {
        rep.failures.push(
            Failure::new(
                FailureKind::TallyMismatch,
                match logged {
                    Some(n) => format!(
                        "sealed tally statement at size {at} says {} sealed entries; the log has {n}",
                        s.parsed.entries()
                    ),
                    None => format!(
                        "sealed tally statement at size {at} for a campaign that is not a sealed campaign of the log at that size"
                    ),
                },
            )
            .campaign(&s.campaign),
        );
    }
}

/// Audits the ledger at `opts.server`. SPEC R-AUDIT-1…R-AUDIT-13.
///
/// # Errors
/// [`AuditError`] when the audit cannot be carried out (bad options, the
/// server unreachable, the state directory unusable). Everything the server
/// serves wrongly is reported as a [`Failure`] in an `Ok` report instead.
pub async fn audit(opts: &AuditOptions) -> Result<AuditReport, AuditError> {
    Ok(audit_with_ledger(opts).await?.0)
}

/// [`audit`], also giving the rules' state of the replayed log when the
/// whole tree was rebuilt (`None` if the audit stopped early or found a
/// gap): what a trustee acts on (SPEC R-SEAL-38), only if the report passed.
///
/// # Errors
/// As [`audit`].
pub async fn audit_with_ledger(
    opts: &AuditOptions,
) -> Result<(AuditReport, Option<LedgerState>), AuditError> {
    let started = Instant::now();
    if let Some(quorum) = opts.quorum
        && quorum > opts.witnesses.len()
    {
        return Err(AuditError::QuorumTooLarge {
            quorum,
            witnesses: opts.witnesses.len(),
        });
    }
    let fetcher = Fetcher::new(&opts.server)?;
    let state_dir = opts.state_dir.as_deref().map(StateDir::open).transpose()?;
    let saved = match &state_dir {
        Some(d) => d.load()?,
        None => None,
    };

    // SPEC R-AUDIT-1: the log key.
    let (log, source) = log_key(opts, saved.as_ref(), &fetcher).await?;
    let mut rep = AuditReport {
        server: fetcher.base().to_owned(),
        origin: None,
        log_key: log.to_text(),
        log_key_source: source,
        checkpoint: None,
        previous: None,
        cosigned_by: Vec::new(),
        counts: Counts::default(),
        campaigns: Vec::new(),
        failures: Vec::new(),
        notes: Vec::new(),
        state_updated: false,
        elapsed_ms: 0,
        entries_per_second: 0.0,
        passed: false,
    };
    if source == KeySource::TrustOnFirstUse {
        rep.notes.push(
            "the log key was fetched from the server itself (trust on first use): \
             compare it with one published elsewhere, then pin it with --log-key or --state"
                .into(),
        );
    }
    let previous = match &saved {
        Some(s) => {
            let root = s.root_hash().map_err(|source| AuditError::State {
                path: state_file(opts),
                source,
            })?;
            rep.previous = Some(CheckpointSummary {
                size: s.size,
                root: s.root.clone(),
            });
            Some((s.size, root))
        }
        None => None,
    };

    // SPEC R-AUDIT-1: the key the server publishes must be the one trusted.
    if source != KeySource::TrustOnFirstUse {
        check_served_key(&fetcher, &log, &mut rep).await?;
    }

    // SPEC "Order of the checks": a reference checkpoint, then the campaign
    // list and tally statements, then the checkpoint audited. Every honest
    // statement is then bound to a size the audited checkpoint covers, and
    // is not older than any change the reference checkpoint already holds.
    let Some((first, _)) = fetch_checkpoint(&fetcher, &log, &mut rep).await? else {
        return Ok((finish(rep, started), None));
    };
    let reference = (first.checkpoint().size(), *first.checkpoint().root());
    let (listed, fetched_statements) = fetch_statements(&fetcher, &mut rep).await?;

    // SPEC R-AUDIT-2: the checkpoint, its signature, its witnesses.
    let Some((signed, note_text)) = fetch_checkpoint(&fetcher, &log, &mut rep).await? else {
        return Ok((finish(rep, started), None));
    };
    let size = signed.checkpoint().size();
    let root = *signed.checkpoint().root();
    if size < reference.0 || (size == reference.0 && root != reference.1) {
        rep.failures.push(Failure::new(
            if size < reference.0 {
                FailureKind::TreeShrank
            } else {
                FailureKind::CheckpointFork
            },
            format!(
                "the checkpoint read first has size {} root {}, the one read a moment later size {size} root {}",
                reference.0,
                hash_b64(&reference.1),
                hash_b64(&root)
            ),
        ));
        return Ok((finish(rep, started), None));
    }
    let origin = signed.checkpoint().origin().as_str().to_owned();
    rep.origin = Some(origin.clone());
    rep.checkpoint = Some(CheckpointSummary {
        size,
        root: hash_b64(&root),
    });
    rep.counts.entries = size;
    let mut pin_ok = check_witnesses(opts, &signed, &mut rep);

    // SPEC R-AUDIT-3: never smaller, never another root at the same size.
    if let Some((old_size, old_root)) = previous {
        if size < old_size {
            rep.failures.push(Failure::new(
                FailureKind::TreeShrank,
                format!(
                    "checkpoint size {size} is smaller than size {old_size} verified earlier: \
                     the log is not append-only"
                ),
            ));
            return Ok((finish(rep, started), None));
        }
        if size == old_size && root != old_root {
            rep.failures.push(Failure::new(
                FailureKind::CheckpointFork,
                format!(
                    "two checkpoints of size {size} with different roots: {} verified earlier, {} now \
                     (both signed by the log key: proof of a fork)",
                    hash_b64(&old_root),
                    hash_b64(&root)
                ),
            ));
            return Ok((finish(rep, started), None));
        }
    }

    let listed_ids: Vec<CampaignId> = listed.iter().map(|c| c.id).collect();
    let (statements, sealed_statements) =
        check_statements(fetched_statements, &log, &origin, size, &mut rep);
    let mut wants: BTreeMap<u64, Vec<CampaignId>> = BTreeMap::new();
    for s in &statements {
        wants
            .entry(s.parsed.checkpoint_size())
            .or_default()
            .push(s.campaign);
    }
    for s in &sealed_statements {
        wants
            .entry(s.parsed.checkpoint_size())
            .or_default()
            .push(s.campaign);
    }

    // SPEC R-AUDIT-4…9: bundles → tree, decoding, signatures, rules.
    let threads = opts.threads;
    let pool = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("pledge-audit-{i}"))
            .build()
            .map_err(|source| AuditError::ThreadPool { source })?,
    );
    let cache_bundles = saved.as_ref().map_or(0, |s| s.cached_bundles);
    let input = ReplayInput {
        skip_verified_below: saved.as_ref().map_or(0, |s| {
            s.verified_entries
                .min(s.size)
                .min(s.cached_bundles.saturating_mul(u64::from(FULL_WIDTH)))
        }),
        cache: state_dir.clone(),
        cache_check: match &saved {
            Some(s) if s.cached_bundles > 0 => Some((
                s.cached_bundles,
                s.cache_root_hash().map_err(|source| AuditError::State {
                    path: state_file(opts),
                    source,
                })?,
            )),
            _ => None,
        },
        cached_bundles: cache_bundles,
        wants,
        reference: reference.0,
    };
    let (tx, rx) = mpsc::channel::<BundleItem>(64);
    let replay_pool = pool.clone();
    let replay = tokio::task::spawn_blocking(move || replay::run(rx, input, &replay_pool));
    let produced = produce_bundles(&fetcher, state_dir.as_ref(), cache_bundles, size, tx).await;
    let outcome = replay
        .await
        .map_err(|e| AuditError::Internal(format!("replay task: {e}")))??;
    produced?;

    let ReplayOutcome {
        ledger,
        tree,
        failures,
        counts,
        snapshots,
        sealed_entries,
        gap,
        verified_prefix,
        cached_prefix,
        opened,
        last_change,
        last_change_at_reference,
        last_update,
    } = outcome;
    rep.failures.extend(failures);
    rep.counts = Counts {
        entries: size,
        tiles_checked: rep.counts.tiles_checked,
        tally_statements: rep.counts.tally_statements,
        ..counts
    };

    // SPEC R-AUDIT-4, R-AUDIT-3: root, tiles, consistency. Tiles are fetched
    // only once every bundle was read: a log that signs a size it cannot
    // serve costs the bundles up to the first missing one, and no tile.
    if gap {
        pin_ok = false;
        rep.notes.push(format!(
            "the tree could be rebuilt only up to entry {}: root, tiles and consistency were not checked",
            tree.size()
        ));
    } else {
        let served = fetch_tiles(&fetcher, previous.map(|p| p.0), size, &mut rep).await?;
        pin_ok &= check_tree(&tree, &served, root, size, previous, &mut rep);
        // The reference checkpoint is a tree of the same log.
        if tree_root(reference.0, &tree).is_ok_and(|r| r != reference.1)
            && !rep.has(FailureKind::Inconsistent)
        {
            rep.failures.push(Failure::new(
                FailureKind::Inconsistent,
                format!(
                    "the checkpoint of size {} read first is not a prefix of the audited tree",
                    reference.0
                ),
            ));
            pin_ok = false;
        }
    }

    // SPEC R-AUDIT-10: tallies recomputed at each statement's size.
    for s in &statements {
        let at = s.parsed.checkpoint_size();
        if at > tree.size() {
            rep.notes.push(format!(
                "tally statement of campaign {} at size {at} not checked: the log was rebuilt only to {}",
                s.campaign.to_hex(),
                tree.size()
            ));
            continue;
        }
        rep.counts.tally_statements += 1;
        // SPEC R-AUDIT-10, R-TALLY-12: not older than the campaign's last
        // change in the reference checkpoint.
        if let Some(changed) = last_change_at_reference
            .as_ref()
            .and_then(|m| m.get(&s.campaign))
            && at < *changed
        {
            rep.failures.push(
                Failure::new(
                    FailureKind::TallyStale,
                    format!(
                        "tally statement bound to size {at}, but the campaign's tally last changed at size \
                         {changed}, before the checkpoint of size {} read before the statement",
                        reference.0
                    ),
                )
                .campaign(&s.campaign),
            );
        }
        match snapshots.get(&(at, s.campaign)) {
            Some(Some(snap)) if s.parsed.states(snap) => {}
            Some(Some(snap)) => rep.failures.push(
                Failure::new(
                    FailureKind::TallyMismatch,
                    format!(
                        "tally statement at size {at} says live {} active {} ({} thresholds); \
                         the log gives live {} active {} ({} thresholds)",
                        s.parsed.live(),
                        s.parsed.active(),
                        s.parsed.buckets(),
                        snap.live(),
                        snap.active(),
                        snap.buckets()
                    ),
                )
                .campaign(&s.campaign),
            ),
            _ => rep.failures.push(
                Failure::new(
                    FailureKind::TallyMismatch,
                    format!(
                        "tally statement at size {at} for a campaign not in the log at that size"
                    ),
                )
                .campaign(&s.campaign),
            ),
        }
    }
    // SPEC R-SEAL-80: sealed statements' entry counts at their sizes.
    for s in &sealed_statements {
        let at = s.parsed.checkpoint_size();
        if at > tree.size() {
            rep.notes.push(format!(
                "sealed tally statement of campaign {} at size {at} not checked: the log was rebuilt only to {}",
                s.campaign.to_hex(),
                tree.size()
            ));
            continue;
        }
        rep.counts.tally_statements += 1;
        check_sealed_statement(
            s,
            sealed_entries.get(&(at, s.campaign)).copied().flatten(),
            &mut rep,
        );
    }
    for c in &listed {
        let id = &c.id;
        match ledger.campaign(id) {
            None if !gap => {
                rep.failures.push(
                    Failure::new(
                        FailureKind::CampaignNotInLog,
                        format!("the server lists a campaign with no CampaignOpened entry in the tree of size {size}"),
                    )
                    .campaign(id),
                );
            }
            // SPEC R-AUDIT-14: the key shown is the key logged.
            Some(logged) => {
                if let Some(shown) = &c.issuer_key
                    && shown.as_slice() != &logged.issuer_key.as_spki()[..]
                {
                    rep.failures.push(
                        Failure::new(
                            FailureKind::IssuerKeyMismatch,
                            "/v1/campaigns shows an issuer_key other than the one its CampaignOpened entry logged",
                        )
                        .campaign(id),
                    );
                }
                // SPEC R-AUDIT-16: the deadline and texts shown are the
                // log's, unless an update came after the reference
                // checkpoint (the list may predate it).
                let settled = last_update.get(id).is_none_or(|&i| i < reference.0);
                if !gap && settled {
                    let texts: Vec<(String, String, String)> = logged
                        .updates
                        .texts()
                        .values()
                        .map(|t| {
                            (
                                t.lang().to_owned(),
                                t.title().to_owned(),
                                t.text().to_owned(),
                            )
                        })
                        .collect();
                    if c.deadline.is_some_and(|d| d != logged.deadline()) || c.texts != texts {
                        rep.failures.push(
                            Failure::new(
                                FailureKind::CampaignViewMismatch,
                                format!(
                                    "/v1/campaigns shows deadline {:?} and {} text(s); the log's \
                                     updates give deadline {} and {} text(s)",
                                    c.deadline,
                                    c.texts.len(),
                                    logged.deadline(),
                                    texts.len()
                                ),
                            )
                            .campaign(id),
                        );
                    }
                }
            }
            None => {}
        }
    }

    // SPEC R-AUDIT-14: every campaign of the log is listed (those opened
    // before the reference checkpoint), and every one gets its statement
    // checked, listed or not.
    let mut hidden: Vec<(u64, CampaignId)> = opened
        .iter()
        .filter(|(id, _)| !listed_ids.contains(id))
        .map(|(id, at)| (*at, *id))
        .collect();
    hidden.sort_unstable();
    let mut late = Vec::new();
    for (at, id) in hidden {
        if at < reference.0 {
            rep.failures.push(
                Failure::at(
                    FailureKind::CampaignNotListed,
                    at,
                    format!(
                        "campaign opened at entry {at} is missing from /v1/campaigns, read after the checkpoint of size {}",
                        reference.0
                    ),
                )
                .campaign(&id),
            );
        }
        let path = format!("/v1/campaigns/{}/tally", id.to_hex());
        late.push((id, fetcher.get(&path, MAX_NOTE_BYTES).await?));
    }
    let mut late_ok = Vec::new();
    for (id, got) in late {
        if let Got::Status(s) = got {
            rep.failures.push(
                Failure::new(
                    FailureKind::TallyMissing,
                    format!("the log holds this campaign but the server serves no tally statement for it (HTTP {s})"),
                )
                .campaign(&id),
            );
        } else {
            late_ok.push((id, got));
        }
    }
    let (late_statements, late_sealed) =
        check_statements(late_ok, &log, &origin, u64::MAX, &mut rep);
    for s in &late_sealed {
        if s.parsed.checkpoint_size() > tree.size() {
            continue;
        }
        rep.counts.tally_statements += 1;
        let now = ledger
            .campaign(&s.campaign)
            .and_then(|c| c.sealed.as_ref())
            .map(|x| x.entries);
        check_sealed_statement(s, now, &mut rep);
    }
    for s in late_statements {
        let at = s.parsed.checkpoint_size();
        if at > tree.size() {
            rep.notes.push(format!(
                "tally statement of unlisted campaign {} at size {at} not checked: the audited tree has {} entries",
                s.campaign.to_hex(),
                tree.size()
            ));
            continue;
        }
        rep.counts.tally_statements += 1;
        // Read after the audited checkpoint: it must cover every change in it.
        let changed = last_change.get(&s.campaign).copied().unwrap_or(0);
        let now = ledger.campaign(&s.campaign).and_then(|c| c.snapshot().ok());
        if at < changed {
            rep.failures.push(
                Failure::new(
                    FailureKind::TallyStale,
                    format!(
                        "tally statement bound to size {at}, but the campaign's tally last changed at size {changed}"
                    ),
                )
                .campaign(&s.campaign),
            );
        } else if !now.as_ref().is_some_and(|n| s.parsed.states(n)) {
            rep.failures.push(
                Failure::new(
                    FailureKind::TallyMismatch,
                    format!(
                        "tally statement at size {at} says live {} active {}; the log gives another tally",
                        s.parsed.live(),
                        s.parsed.active()
                    ),
                )
                .campaign(&s.campaign),
            );
        }
    }

    let mut campaigns: Vec<CampaignSummary> = ledger
        .campaigns()
        .map(|(id, c)| {
            // A sealed campaign's histogram is encrypted: its figures are
            // those of its latest reveal (R-SEAL-37).
            let (snap, sealed) = match &c.sealed {
                Some(s) => {
                    let latest = s.snapshots.iter().rev().find(|x| x.revealed.is_some());
                    (
                        latest
                            .and_then(|x| x.revealed_tally(&c.definition))
                            .and_then(|t| t.snapshot().ok())
                            .map(|t| (t.live(), t.active())),
                        Some(SealedSummary {
                            entries: s.entries,
                            key_logged: s.joint_key.is_some(),
                            snapshots: s.snapshots.len(),
                            revealed: s.snapshots.iter().filter(|x| x.revealed.is_some()).count(),
                            latest_reveal: latest.map(|x| x.index),
                        }),
                    )
                }
                None => (c.snapshot().ok().map(|t| (t.live(), t.active())), None),
            };
            CampaignSummary {
                sealed,
                id: id.to_hex(),
                title: c.definition.title().to_owned(),
                pledges: c.pledges,
                live: snap.map_or(0, |s| s.0),
                active: snap.map_or(0, |s| s.1),
                goal: c.definition.goal(),
                closed: c.closed.is_some(),
                tokens_issued: c.closed.as_ref().map(|cl| cl.tokens_issued),
                statement_size: statements
                    .iter()
                    .find(|s| s.campaign == *id)
                    .map(|s| s.parsed.checkpoint_size()),
            }
        })
        .collect();
    campaigns.sort_by(|a, b| a.id.cmp(&b.id));
    rep.campaigns = campaigns;

    // SPEC R-AUDIT-13: pin the checkpoint only if it is proven.
    if let Some(dir) = &state_dir {
        if pin_ok {
            let cached_leaves = cached_prefix.saturating_mul(u64::from(FULL_WIDTH));
            let cache_root = tree_root(cached_leaves, &tree)
                .map_err(|e| AuditError::Internal(format!("cache root: {e}")))?;
            dir.save(&StateFile {
                format: FORMAT.into(),
                server: fetcher.base().to_owned(),
                log_key: log.to_text(),
                checkpoint: note_text,
                size,
                root: hash_b64(&root),
                verified_entries: verified_prefix,
                cached_bundles: cached_prefix,
                cache_root: hash_b64(&cache_root),
            })?;
            rep.state_updated = true;
        } else {
            rep.notes.push(match &previous {
                Some((s, _)) => {
                    format!("state not updated: it still pins the checkpoint of size {s}")
                }
                None => "state not updated: no checkpoint was proven".into(),
            });
        }
    }
    Ok((finish(rep, started), (!gap).then_some(ledger)))
}

/// The state file's path, for error messages.
fn state_file(opts: &AuditOptions) -> PathBuf {
    opts.state_dir
        .as_deref()
        .map_or_else(|| PathBuf::from("state.json"), |d| d.join("state.json"))
}

fn finish(mut rep: AuditReport, started: Instant) -> AuditReport {
    let elapsed = started.elapsed();
    rep.elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        // Entry counts fit f64's 53-bit mantissa well beyond any real log.
        #[allow(clippy::cast_precision_loss)]
        let n = rep.counts.replayed as f64;
        rep.entries_per_second = n / secs;
    }
    rep.passed = rep.failures.is_empty();
    rep
}

/// SPEC R-AUDIT-1: `--log-key`, else the state's pinned key, else the
/// server's own (trust on first use).
async fn log_key(
    opts: &AuditOptions,
    saved: Option<&StateFile>,
    fetcher: &Fetcher,
) -> Result<(NoteVerifier, KeySource), AuditError> {
    let pinned = saved
        .map(|s| {
            NoteVerifier::from_text(&s.log_key).map_err(|e| AuditError::State {
                path: state_file(opts),
                source: StateError::PinnedKey(e),
            })
        })
        .transpose()?;
    match (&opts.log_key, pinned) {
        (Some(arg), Some(pin)) if arg.to_text() != pin.to_text() => {
            Err(AuditError::LogKeyConflict {
                pinned: pin.to_text(),
                given: arg.to_text(),
            })
        }
        (Some(arg), _) => Ok((arg.clone(), KeySource::Argument)),
        (None, Some(pin)) => Ok((pin, KeySource::State)),
        (None, None) => {
            let text = match fetcher.get("/v1/log/key", 4096).await? {
                Got::Body(b) => String::from_utf8(b)
                    .map_err(|source| AuditError::ServedKeyNotUtf8 { source })?,
                Got::Status(status) => {
                    return Err(AuditError::ServedKeyMissing {
                        status: Some(status),
                    });
                }
                Got::TooLarge => return Err(AuditError::ServedKeyMissing { status: None }),
            };
            // SPEC R-API-17: the key text and exactly one final newline.
            let key = NoteVerifier::from_text(text.strip_suffix('\n').unwrap_or(&text))
                .map_err(|source| AuditError::ServedKeyMalformed { source })?;
            Ok((key, KeySource::TrustOnFirstUse))
        }
    }
}

/// Lists campaigns and fetches their tally statements (raw).
async fn fetch_statements(
    fetcher: &Fetcher,
    rep: &mut AuditReport,
) -> Result<(Vec<Listed>, Vec<(CampaignId, Got)>), AuditError> {
    let listed = match fetcher.get("/v1/campaigns", MAX_JSON_BYTES).await? {
        Got::Body(b) => match parse_campaign_list(&b) {
            Ok(ids) => ids,
            Err(e) => {
                rep.notes.push(format!(
                    "the campaign list is malformed ({e}): no tally statement checked"
                ));
                Vec::new()
            }
        },
        other => {
            rep.notes.push(format!(
                "the campaign list was not served ({other:?}): no tally statement checked"
            ));
            Vec::new()
        }
    };
    let fetched: Vec<(CampaignId, Result<Got, AuditError>)> =
        futures_util::stream::iter(listed.iter().map(|c| c.id))
            .map(|id| async move {
                let path = format!("/v1/campaigns/{}/tally", id.to_hex());
                (id, fetcher.get(&path, MAX_NOTE_BYTES).await)
            })
            .buffered(FETCH_CONCURRENCY)
            .collect()
            .await;
    let mut out = Vec::with_capacity(fetched.len());
    for (id, got) in fetched {
        out.push((id, got?));
    }
    Ok((listed, out))
}

/// A campaign as `/v1/campaigns` lists it.
struct Listed {
    id: CampaignId,
    /// The `issuer_key` shown, decoded (absent or not base64: not compared).
    issuer_key: Option<Vec<u8>>,
    /// The effective `deadline` shown (absent: not compared).
    deadline: Option<u64>,
    /// The `texts` shown as (lang, title, text), in the order served
    /// (absent: none).
    texts: Vec<(String, String, String)>,
}

fn parse_campaign_list(body: &[u8]) -> Result<Vec<Listed>, String> {
    use base64::Engine as _;
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let list = v
        .get("campaigns")
        .and_then(serde_json::Value::as_array)
        .ok_or("no `campaigns` array")?;
    list.iter()
        .map(|c| {
            let id = c
                .get("campaign_id")
                .and_then(serde_json::Value::as_str)
                .and_then(|s| CampaignId::from_hex(s).ok())
                .ok_or_else(|| "a campaign without a valid `campaign_id`".to_owned())?;
            let issuer_key = c
                .get("issuer_key")
                .and_then(serde_json::Value::as_str)
                .map(|k| {
                    base64::engine::general_purpose::STANDARD
                        .decode(k)
                        .unwrap_or_else(|_| k.as_bytes().to_vec())
                });
            let deadline = c.get("deadline").and_then(serde_json::Value::as_u64);
            let texts = c
                .get("texts")
                .and_then(serde_json::Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|t| {
                            let f = |k: &str| {
                                t.get(k)
                                    .and_then(serde_json::Value::as_str)
                                    .unwrap_or_default()
                                    .to_owned()
                            };
                            (f("lang"), f("title"), f("text"))
                        })
                        .collect()
                })
                .unwrap_or_default();
            Ok(Listed {
                id,
                issuer_key,
                deadline,
                texts,
            })
        })
        .collect()
}

/// SPEC R-AUDIT-1, R-API-17: with a key given or pinned, `/v1/log/key` must
/// serve the same key (its text and one newline). A key not served is a note.
async fn check_served_key(
    fetcher: &Fetcher,
    log: &NoteVerifier,
    rep: &mut AuditReport,
) -> Result<(), AuditError> {
    match fetcher.get("/v1/log/key", 4096).await? {
        Got::Body(b) => {
            let text = String::from_utf8_lossy(&b);
            let served = text.strip_suffix('\n').unwrap_or(&text);
            if served != log.to_text() {
                rep.failures.push(Failure::new(
                    FailureKind::LogKeyMismatch,
                    format!(
                        "the server publishes log key {:?} at /v1/log/key, not the trusted key {}: \
                         clients that trust it on first use are shown another log",
                        served.chars().take(200).collect::<String>(),
                        log.to_text()
                    ),
                ));
            }
        }
        other => rep.notes.push(format!(
            "the server does not serve its log key at /v1/log/key ({other:?})"
        )),
    }
    Ok(())
}

/// SPEC R-AUDIT-10: signature by the log key, strict parse, same log, same
/// campaign, a size the audited checkpoint covers.
fn check_statements(
    fetched: Vec<(CampaignId, Got)>,
    log: &NoteVerifier,
    origin: &str,
    size: u64,
    rep: &mut AuditReport,
) -> (Vec<Statement>, Vec<SealedStatement>) {
    let mut out = Vec::new();
    let mut sealed = Vec::new();
    for (id, got) in fetched {
        let fail = |kind, detail: String| Failure::new(kind, detail).campaign(&id);
        let body = match got {
            Got::Body(b) => b,
            Got::TooLarge => {
                rep.failures.push(fail(
                    FailureKind::TallyMalformed,
                    format!("tally statement larger than {MAX_NOTE_BYTES} bytes"),
                ));
                continue;
            }
            Got::Status(s) => {
                rep.failures.push(fail(
                    FailureKind::CampaignNotInLog,
                    format!(
                        "the server lists this campaign but serves no tally statement (HTTP {s})"
                    ),
                ));
                continue;
            }
        };
        let note = match SignedNote::parse(&body) {
            Ok(n) => n,
            Err(e) => {
                rep.failures.push(fail(
                    FailureKind::TallyMalformed,
                    format!("tally statement is not a signed note: {e}"),
                ));
                continue;
            }
        };
        let verifiers: [&dyn Verifier; 1] = [log];
        let verified = match note.verify(&verifiers) {
            Ok(v) => v,
            Err(e) => {
                rep.failures.push(fail(
                    FailureKind::TallySignature,
                    format!("tally statement not signed by the log key: {e}"),
                ));
                continue;
            }
        };
        // SPEC R-SEAL-80: a sealed campaign's statement.
        if let Ok(p) = SealedTallyStatement::parse_note_body(verified.body()) {
            let problem = if p.origin() != origin {
                Some(format!(
                    "sealed tally statement names log {:?}, not {origin:?}",
                    p.origin()
                ))
            } else if p.campaign() != &id {
                Some(format!(
                    "asked for this campaign's tally, got campaign {}'s",
                    p.campaign().to_hex()
                ))
            } else if p.checkpoint_size() > size {
                Some(format!(
                    "sealed tally statement bound to size {} but the checkpoint published after it has size {size}",
                    p.checkpoint_size()
                ))
            } else {
                None
            };
            match problem {
                Some(p) => rep.failures.push(fail(FailureKind::TallyMalformed, p)),
                None => sealed.push(SealedStatement {
                    campaign: id,
                    parsed: p,
                }),
            }
            continue;
        }
        let parsed = match CampaignStatement::parse_note_body(verified.body()) {
            Ok(p) => p,
            Err(e) => {
                rep.failures.push(fail(
                    FailureKind::TallyMalformed,
                    format!("tally statement body: {e}"),
                ));
                continue;
            }
        };
        let problem = if parsed.origin() != origin {
            Some(format!(
                "tally statement names log {:?}, not {origin:?}",
                parsed.origin()
            ))
        } else if parsed.campaign() != &id {
            Some(format!(
                "asked for this campaign's tally, got campaign {}'s",
                parsed.campaign().to_hex()
            ))
        } else if parsed.checkpoint_size() > size {
            Some(format!(
                "tally statement bound to size {} but the checkpoint published after it has size {size}",
                parsed.checkpoint_size()
            ))
        } else {
            None
        };
        if let Some(p) = problem {
            rep.failures.push(fail(FailureKind::TallyMalformed, p));
            continue;
        }
        out.push(Statement {
            campaign: id,
            parsed,
        });
    }
    (out, sealed)
}

/// SPEC R-AUDIT-2: fetches and verifies the checkpoint. `None` after a
/// failure that leaves nothing else to check.
async fn fetch_checkpoint(
    fetcher: &Fetcher,
    log: &NoteVerifier,
    rep: &mut AuditReport,
) -> Result<Option<(SignedCheckpoint, String)>, AuditError> {
    let body = match fetcher.get("/log/checkpoint", MAX_NOTE_BYTES).await? {
        Got::Body(b) => b,
        Got::TooLarge => {
            rep.failures.push(Failure::new(
                FailureKind::CheckpointMalformed,
                format!("checkpoint larger than {MAX_NOTE_BYTES} bytes"),
            ));
            return Ok(None);
        }
        Got::Status(s) => {
            rep.failures.push(Failure::new(
                FailureKind::Unavailable,
                format!("no checkpoint served at /log/checkpoint (HTTP {s})"),
            ));
            return Ok(None);
        }
    };
    let note = match SignedNote::parse(&body) {
        Ok(n) => n,
        Err(e) => {
            rep.failures.push(Failure::new(
                FailureKind::CheckpointMalformed,
                format!("checkpoint is not a signed note: {e}"),
            ));
            return Ok(None);
        }
    };
    match verify_checkpoint(note, log) {
        Ok(signed) => {
            // The note parsed, so it is UTF-8.
            let text = String::from_utf8_lossy(&body).into_owned();
            Ok(Some((signed, text)))
        }
        Err(e) => {
            let kind = match &e {
                CheckpointError::Note(
                    NoteError::NoVerifiedSignature | NoteError::InvalidSignature { .. },
                )
                | CheckpointError::OriginMismatch { .. } => FailureKind::CheckpointSignature,
                _ => FailureKind::CheckpointMalformed,
            };
            rep.failures.push(Failure::new(
                kind,
                format!("checkpoint refused under log key {}: {e}", log.to_text()),
            ));
            Ok(None)
        }
    }
}

/// SPEC R-AUDIT-2: the witness quorum. Returns whether it holds.
fn check_witnesses(opts: &AuditOptions, signed: &SignedCheckpoint, rep: &mut AuditReport) -> bool {
    if opts.witnesses.is_empty() {
        return true;
    }
    let quorum = opts.quorum.unwrap_or(opts.witnesses.len());
    match verify_cosignatures(signed.note().note(), &opts.witnesses, quorum) {
        Ok(found) => {
            rep.cosigned_by = found
                .iter()
                .map(|c| c.witness.as_str().to_owned())
                .collect();
            true
        }
        Err(e) => {
            rep.failures.push(Failure::new(
                FailureKind::WitnessQuorum,
                format!("witness policy {quorum} of {}: {e}", opts.witnesses.len()),
            ));
            false
        }
    }
}

/// SPEC R-AUDIT-4: the hash tiles to fetch and compare: every tile new since
/// the previous checkpoint (all of them on a first run), then those holding
/// the nodes of the root and of the consistency proof. Lazy, so that a signed
/// but absurd size costs only the requests made before the first tile the
/// server cannot serve.
fn tiles_to_check(previous: Option<u64>, size: u64) -> impl Iterator<Item = TileId> {
    let mut extra: BTreeSet<TileId> = tiles_for_nodes(&tree_root_nodes(size), size)
        .into_iter()
        .collect();
    let main = match previous {
        Some(old) if old <= size => {
            if let Ok(nodes) = consistency_proof_nodes(old, size) {
                extra.extend(tiles_for_nodes(&nodes, size));
            }
            new_tiles(old, size).unwrap_or_else(|_| tiles_for_size(0))
        }
        _ => tiles_for_size(size),
    };
    let skip = extra.clone();
    main.filter(move |t| !skip.contains(t)).chain(extra)
}

async fn fetch_tiles(
    fetcher: &Fetcher,
    previous: Option<u64>,
    size: u64,
    rep: &mut AuditReport,
) -> Result<BTreeMap<TileId, Vec<u8>>, AuditError> {
    let limit = usize::from(FULL_WIDTH) * HASH_LEN;
    let mut fetched = futures_util::stream::iter(tiles_to_check(previous, size))
        .map(|t| async move { (t, fetcher.get(&format!("/log/{}", t.path()), limit).await) })
        .buffered(FETCH_CONCURRENCY);
    let mut out = BTreeMap::new();
    while let Some((t, got)) = fetched.next().await {
        match got? {
            Got::Body(b) if b.len() == usize::from(t.width()) * HASH_LEN => {
                out.insert(t, b);
            }
            Got::Body(b) => rep.failures.push(Failure::new(
                FailureKind::TileMalformed,
                format!(
                    "tile {} is {} bytes, not {}",
                    t.path(),
                    b.len(),
                    usize::from(t.width()) * HASH_LEN
                ),
            )),
            Got::TooLarge => rep.failures.push(Failure::new(
                FailureKind::TileMalformed,
                format!("tile {} is larger than a full tile", t.path()),
            )),
            Got::Status(s) => {
                rep.failures.push(Failure::new(
                    FailureKind::Unavailable,
                    format!(
                        "tile {} is in the published tree but was not served (HTTP {s}); \
                         later tiles were not fetched",
                        t.path()
                    ),
                ));
                break;
            }
        }
    }
    rep.counts.tiles_checked = u64::try_from(out.len()).unwrap_or(u64::MAX);
    Ok(out)
}

/// Reads bundles in log order (from the cache when it has them) and feeds the
/// replay. Stops at the first bundle that cannot be had.
async fn produce_bundles(
    fetcher: &Fetcher,
    cache: Option<&StateDir>,
    cached: u64,
    size: u64,
    tx: mpsc::Sender<BundleItem>,
) -> Result<(), AuditError> {
    let count = size.div_ceil(u64::from(FULL_WIDTH));
    let mut items = futures_util::stream::iter(0..count)
        .map(|n| async move { bundle_item(fetcher, cache, cached, size, n).await })
        .buffered(FETCH_CONCURRENCY);
    while let Some(item) = items.next().await {
        let item = item?;
        let stop = matches!(item, BundleItem::Missing(_));
        if tx.send(item).await.is_err() || stop {
            break;
        }
    }
    Ok(())
}

async fn bundle_item(
    fetcher: &Fetcher,
    cache: Option<&StateDir>,
    cached: u64,
    size: u64,
    n: u64,
) -> Result<BundleItem, AuditError> {
    let start = n * u64::from(FULL_WIDTH);
    let width = u16::try_from((size - start).min(u64::from(FULL_WIDTH)))
        .map_err(|_| AuditError::Internal("bundle width".into()))?;
    let id =
        BundleId::new(n, width).map_err(|e| AuditError::Internal(format!("bundle id: {e}")))?;
    if n < cached
        && let Some(dir) = cache
        && let Some(bytes) = dir.read_bundle(n)?
    {
        return Ok(BundleItem::Data {
            id,
            bytes,
            cached: true,
        });
    }
    let path = format!("/log/{}", id.path());
    Ok(match fetcher.get(&path, MAX_BUNDLE_BYTES).await? {
        Got::Body(bytes) => BundleItem::Data {
            id,
            bytes,
            cached: false,
        },
        Got::TooLarge => BundleItem::Missing(Failure::at(
            FailureKind::BundleMalformed,
            start,
            format!(
                "entry bundle {} is larger than any bundle can be",
                id.path()
            ),
        )),
        Got::Status(s) => BundleItem::Missing(Failure::at(
            FailureKind::Unavailable,
            start,
            format!(
                "entry bundle {} is in the published tree but was not served (HTTP {s})",
                id.path()
            ),
        )),
    })
}

/// SPEC R-AUDIT-3, R-AUDIT-4: the rebuilt tree against the checkpoint, the
/// served tiles and the previous checkpoint. Returns whether the checkpoint is
/// proven (entries hash to its root, and it extends the previous one).
fn check_tree(
    tree: &MemoryHashes,
    served: &BTreeMap<TileId, Vec<u8>>,
    root: Hash,
    size: u64,
    previous: Option<(u64, Hash)>,
    rep: &mut AuditReport,
) -> bool {
    let entries_root = tree.root();
    let entries_ok = entries_root == root;
    let mut served_hashes = TileHashes::new();
    for (t, data) in served {
        // Lengths were checked; one version of each tile is fetched.
        let _ = served_hashes.insert(*t, data);
    }
    let served_root_ok = tree_root(size, &served_hashes).is_ok_and(|r| r == root);
    if !entries_ok {
        rep.failures.push(Failure::new(
            FailureKind::RootMismatch,
            format!(
                "the {size} entries served hash to root {}, the checkpoint says {}",
                hash_b64(&entries_root),
                hash_b64(&root)
            ),
        ));
    }
    // When the served tiles do match the signed root but the entries do not,
    // the entries were altered: name each one. Otherwise a differing tile is
    // itself wrong.
    let blame_entries = !entries_ok && served_root_ok;
    for (t, data) in served {
        let Ok(want) = tile_data(t, tree) else {
            continue;
        };
        if *data == want {
            continue;
        }
        let diffs: Vec<usize> = data
            .chunks_exact(HASH_LEN)
            .zip(want.chunks_exact(HASH_LEN))
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .map(|(i, _)| i)
            .collect();
        if blame_entries {
            if t.level() == 0 {
                for i in diffs {
                    let index = t.index() * u64::from(FULL_WIDTH) + i as u64;
                    rep.failures.push(Failure::at(
                        FailureKind::EntryMismatch,
                        index,
                        format!(
                            "the entry served in bundle {} does not hash to the leaf the signed tree holds",
                            t.bundle().map(|b| b.path()).unwrap_or_default()
                        ),
                    ));
                }
            }
        } else {
            let first = diffs.first().copied().unwrap_or(0);
            let mut f = Failure::new(
                FailureKind::TileMismatch,
                format!(
                    "tile {} differs from the tile recomputed from the entries at {} of its {} hashes (first: hash {first})",
                    t.path(),
                    diffs.len(),
                    t.width()
                ),
            );
            if t.level() == 0 {
                f.index = Some(t.index() * u64::from(FULL_WIDTH) + first as u64);
            }
            rep.failures.push(f);
        }
    }
    let Some((old_size, old_root)) = previous else {
        return entries_ok;
    };
    // SPEC R-AUDIT-3: the new tree extends the old one.
    let consistent = if entries_ok {
        Some(tree_root(old_size, tree).is_ok_and(|r| r == old_root))
    } else if served_root_ok {
        match consistency_proof(old_size, size, &served_hashes) {
            Ok(proof) => Some(verify_consistency(old_size, size, &old_root, &root, &proof).is_ok()),
            Err(_) => None,
        }
    } else {
        None
    };
    match consistent {
        Some(true) => entries_ok,
        Some(false) if rep.has(FailureKind::Inconsistent) => false,
        Some(false) => {
            rep.failures.push(Failure::new(
                FailureKind::Inconsistent,
                format!(
                    "the tree of size {size} does not extend the tree of size {old_size} verified earlier \
                     (root {}): history was rewritten",
                    hash_b64(&old_root)
                ),
            ));
            false
        }
        None => {
            rep.notes.push(
                "consistency with the previous checkpoint not checked: neither the entries nor the tiles \
                 give the checkpoint's root"
                    .into(),
            );
            false
        }
    }
}
