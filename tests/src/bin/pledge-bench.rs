//! `pledge-bench`: the load generator of BENCHMARKS.md. Runs the real `pledged`
//! over loopback HTTP and measures, in one run, issuance (tokens/s), durable
//! pledge submission (pledges/s, latency percentiles at a given concurrency),
//! the auditor (entries/s), the server's peak RSS and bytes on disk per pledge,
//! the latency of reads (checkpoint, campaign list) while pledges are being
//! written, plus the machine's limit: OpenSSL RSA-2048 private operations and
//! verifications per second, measured in this process. Every result is printed
//! both as an absolute figure and as a ratio to that limit, in a table and in
//! one machine-readable `RESULT key=value …` line per run.
//!
//! ```text
//! cargo run --release -p pledge-tests --bin pledge-bench -- \
//!     --pledges 100000 --concurrency 512 --repeat 3
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use clap::Parser;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::rsa::{Padding, Rsa};
use openssl::sign::{RsaPssSaltlen, Signer, Verifier};
use pledge_client::audit::{AuditOptions, audit};
use pledge_client::client::{Attestation, Client};
use pledge_protocol::entry::Entry;
use pledge_protocol::hash::CampaignId;
use pledge_protocol::pledge::{Pledge, PledgeSigningKey, Terms};
use pledge_protocol::sealed::{JointPublicKey, SealedTerms};
use pledge_protocol::sealed_pledge::SealedPledge;
use pledge_protocol::token::{self, BlindingState, IssuerPublicKey};

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "pledge-bench",
    about = "Load generator and benchmark of pledged"
)]
struct Args {
    /// The server binary. Default: `pledged-under-test` next to this executable.
    #[arg(long)]
    pledged: Option<PathBuf>,
    /// Pledges per run (each needs one token, minted first).
    #[arg(long, default_value_t = 10_000)]
    pledges: usize,
    /// Pledge submissions in flight at once.
    #[arg(long, default_value_t = 512)]
    concurrency: usize,
    /// Token requests in flight at once.
    #[arg(long, default_value_t = 8)]
    issue_concurrency: usize,
    /// Runs, each on a fresh data folder.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Storage backend of the server: redb, sled, or postgres (a fresh
    /// database of a throwaway cluster started from the machine's
    /// PostgreSQL binaries, as the tests do; its size counts as disk).
    #[arg(long, default_value = "redb")]
    backend: String,
    /// Server batch interval (PLEDGED_BATCH_INTERVAL_MS); default the server's.
    #[arg(long)]
    batch_interval_ms: Option<u64>,
    /// Server batch size (PLEDGED_BATCH_SIZE); default the server's.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Seconds per OpenSSL limit measurement (4 measurements per run).
    #[arg(long, default_value_t = 1.0)]
    limit_seconds: f64,
    /// Parent folder of the data folders (default: the system's temp folder).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Keep the data folders.
    #[arg(long)]
    keep: bool,
    /// Intermediate sizes (comma-separated pledge counts below --pledges) at
    /// which submission pauses for a full audit from scratch and a reading
    /// of the server's RSS and the disk usage: the growth curve of one run,
    /// printed as one `CURVE key=value …` line per point.
    #[arg(long, value_delimiter = ',')]
    curve: Vec<usize>,
    /// Readers polling `GET /checkpoint` and `GET /v1/campaigns` in a loop
    /// while pledges are submitted: the latency of reads under write load
    /// (`read_p50_ms`, `read_p99_ms`).
    #[arg(long, default_value_t = 4)]
    readers: usize,
    /// Front ends on one PostgreSQL database (`--backend postgres`; SPEC
    /// R-STORE-10): the first sequences, the others follow and hand pledges
    /// over; tokens and pledges are spread evenly over all of them. With
    /// postgres, the database's own batch-insert rate is measured in the
    /// same run (`pg_batch_rows_per_s`, `pg_ratio`).
    #[arg(long, default_value_t = 1)]
    front_ends: usize,
    /// A sealed campaign (SPEC §17) instead of the demo's live one: created
    /// with `--buckets` buckets and 3 trustees (k = 2) run in this process,
    /// its key generated through the log, pledges sealed client-side
    /// (untimed, every core; one in `--buckets + 1` a null pledge), then
    /// the same timed submission, the proof-verification limit measured on
    /// this run's own pledges, the audit, the close and the reveal, whose
    /// counts must equal the buckets pledged.
    #[arg(long)]
    sealed: bool,
    /// Buckets of the sealed campaign (`--sealed`).
    #[arg(long, default_value_t = 16)]
    buckets: usize,
}

/// The server's defaults (server/src/config.rs), for reporting.
const DEFAULT_BATCH_INTERVAL_MS: u64 = 500;
const DEFAULT_BATCH_SIZE: usize = 256;
/// Tokens blinded, issued and finalised per chunk (bounds the bench's memory).
const CHUNK: usize = 50_000;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.front_ends == 0 || (args.front_ends > 1 && args.backend != "postgres") {
        bail!("--front-ends must be 1, or more with --backend postgres");
    }
    if args.pledges == 0 || args.concurrency == 0 || args.issue_concurrency == 0 {
        bail!("--pledges, --concurrency and --issue-concurrency must be at least 1");
    }
    if args.sealed
        && (args.front_ends > 1
            || !args.curve.is_empty()
            || !(1..=pledge_protocol::sealed::MAX_BUCKETS).contains(&args.buckets))
    {
        bail!("--sealed takes 1 to 64 --buckets, one front end and no --curve");
    }
    if args.curve.windows(2).any(|w| w[0] >= w[1])
        || args.curve.first() == Some(&0)
        || args.curve.last().is_some_and(|&l| l >= args.pledges)
    {
        bail!("--curve must be increasing pledge counts between 1 and --pledges − 1");
    }
    let pledged = match &args.pledged {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .context("cannot locate this executable")?
            .with_file_name("pledged-under-test"),
    };
    if !pledged.is_file() {
        bail!(
            "server binary {} not found: build it with `cargo build --release -p pledge-tests` \
             or pass --pledged PATH",
            pledged.display()
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    println!(
        "pledge-bench: {} {}pledges, concurrency {}, {} run(s), server {}",
        args.pledges,
        if args.sealed {
            format!("sealed (B = {}) ", args.buckets)
        } else {
            String::new()
        },
        args.concurrency,
        args.repeat,
        pledged.display()
    );
    println!("machine: {}", machine());
    for run in 1..=args.repeat {
        let r = rt.block_on(one_run(&args, &pledged, run))?;
        print_run(&r);
    }
    Ok(())
}

/// Everything one run measured, as ordered `key=value` pairs.
type Results = Vec<(&'static str, String)>;

async fn one_run(args: &Args, pledged: &Path, run: usize) -> anyhow::Result<Results> {
    let mut r: Results = vec![("run", run.to_string()), ("load1_start", load1())];
    let cores = cores();

    // The physical limit, before the server starts.
    let limit = tokio::task::spawn_blocking({
        let secs = args.limit_seconds;
        move || rsa_limit(secs, cores)
    })
    .await??;

    let parent = args.work_dir.clone().unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    let dir = tempfile::Builder::new()
        .prefix("pledge-bench-")
        .tempdir_in(&parent)
        .context("cannot create a data folder")?;
    let data = dir.path().join("data");
    let mut server = Server::start(args, pledged, &data, None)?;
    let mut others = Vec::new();
    for k in 1..args.front_ends {
        // The operator's step: the same key files in every data folder.
        let other = dir.path().join(format!("data{k}"));
        std::fs::create_dir_all(&other)?;
        for f in ["log.key", "admin.token", "issuer.hmac"] {
            std::fs::copy(data.join(f), other.join(f))?;
        }
        let url = server.db.as_ref().map(|d| d.url().to_owned());
        others.push(Server::start(args, pledged, &other, url)?);
    }
    let mut clients = vec![Client::new(&server.base).map_err(|e| anyhow!("{e}"))?];
    for o in &others {
        clients.push(Client::new(&o.base).map_err(|e| anyhow!("{e}"))?);
    }
    r.push(("front_ends", args.front_ends.to_string()));
    let result = if args.sealed {
        drive_sealed(args, &clients[0], &server, &data, &mut r).await
    } else {
        drive(args, &clients, &server, &data, &mut r).await
    };
    // The database's own batch-insert rate, measured after the pledges
    // (same machine, same database server), as their limit.
    let result = match (&result, &server.db) {
        (Ok(()), Some(db)) => {
            let url = db.url().to_owned();
            let secs = args.limit_seconds * 4.0;
            // The store's own commits, on a database of their own.
            let store_db = pledge_tests::postgres::cluster().database();
            let store_url = store_db.url().to_owned();
            let measured = std::thread::spawn(move || {
                Ok::<_, anyhow::Error>((
                    pg_batch_limit(&url, secs)?,
                    pg_store_batch_rate(&store_url, secs)?,
                ))
            })
            .join();
            drop(store_db);
            match measured {
                Ok(Ok((rows, store_rows))) => {
                    r.push(("pg_batch_rows_per_s", f(rows)));
                    r.push(("pg_store_rows_per_s", f(store_rows)));
                    r.push(("pg_store_ratio", f(store_rows / rows)));
                    Ok(())
                }
                Ok(Err(e)) => Err(e),
                Err(_) => Err(anyhow!("the database limit measurement panicked")),
            }
        }
        _ => result,
    };
    for mut o in others {
        o.stop()?;
    }
    let stop = server.stop();
    if args.keep {
        let kept = dir.keep();
        println!("kept data folder {}", kept.display());
    }
    result?;
    stop?;

    let n = args.pledges as f64;
    let get = |k: &str| -> f64 {
        r.iter()
            .find(|(key, _)| *key == k)
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(f64::NAN)
    };
    let (tps, pps, aps) = (
        get("tokens_per_s"),
        get("pledges_per_s"),
        get("audit_entries_per_s"),
    );
    let disk = get("disk_bytes");
    // Sealed runs: ÷ the proof-verification limit measured in the same run.
    let proofs = get("proof_verify_per_s_all");
    let from_bytes = get("proof_decode_verify_per_s_all");
    r.extend([
        ("cores", cores.to_string()),
        ("rsa_priv_per_s_all", f(limit.priv_all)),
        ("rsa_priv_per_s_core", f(limit.priv_core)),
        ("rsa_verify_per_s_all", f(limit.verify_all)),
        ("rsa_verify_per_s_core", f(limit.verify_core)),
        ("tokens_ratio", ratio(tps, limit.priv_all)),
        ("pledges_ratio", ratio(pps, limit.verify_all)),
        ("audit_ratio", ratio(aps, limit.verify_all)),
        ("pg_ratio", ratio(pps, get("pg_batch_rows_per_s"))),
        ("disk_per_pledge", f(disk / n)),
        // What each pledge added: without the empty store's fixed size
        // (an empty PostgreSQL database is about 7.5 MiB of catalogs).
        (
            "disk_growth_per_pledge",
            f((disk - get("disk_empty_bytes")) / n),
        ),
        ("load1_end", load1()),
    ]);
    if args.sealed {
        r.extend([
            ("proof_ratio", ratio(pps, proofs)),
            ("audit_proof_ratio", ratio(aps, proofs)),
            ("decode_proof_ratio", ratio(pps, from_bytes)),
            ("audit_decode_proof_ratio", ratio(aps, from_bytes)),
        ]);
    }
    Ok(r)
}

/// Issuance, submission, audit, RSS and disk, against a running server.
async fn drive(
    args: &Args,
    clients: &[Client],
    server: &Server,
    data: &Path,
    r: &mut Results,
) -> anyhow::Result<()> {
    let client = &clients[0];
    let campaigns = client.campaigns().await.map_err(|e| anyhow!("{e}"))?;
    let demo = campaigns
        .iter()
        .find(|c| c.attester == Some(pledge_client::client::AttesterKind::Open))
        .ok_or_else(|| anyhow!("the server opened no demo campaign"))?;
    let campaign = demo.id().map_err(|e| anyhow!("{e}"))?;
    let pk = IssuerPublicKey::from_spki(&B64.decode(&demo.issuer_key)?)?;
    let (tmin, tmax) = (demo.threshold_min, demo.threshold_max);
    let disk_empty = server.disk_usage(data)?;

    // Tokens, chunk by chunk: blind (client side, untimed), issue (timed),
    // finalise and sign the pledge (client side, untimed).
    let mut entries: Vec<Vec<u8>> = Vec::with_capacity(args.pledges);
    let mut issue_time = Duration::ZERO;
    let mut left = args.pledges;
    while left > 0 {
        let n = left.min(CHUNK);
        left -= n;
        let blinded = parallel(n, {
            let pk = pk.clone();
            move || -> anyhow::Result<(PledgeSigningKey, BlindingState)> {
                let key = PledgeSigningKey::generate()?;
                let (_, state) = token::blind(&pk, &campaign, &key.public_key())?;
                Ok((key, state))
            }
        })?;
        let blinded = Arc::new(blinded);
        let started = Instant::now();
        let sigs = issue_all(clients, campaign, &blinded, args.issue_concurrency).await?;
        issue_time += started.elapsed();
        let blinded = Arc::try_unwrap(blinded).map_err(|_| anyhow!("blinding states shared"))?;
        let jobs: Vec<_> = blinded.into_iter().zip(sigs).collect();
        let built = parallel_map(jobs, {
            let pk = pk.clone();
            move |((key, state), sig)| -> anyhow::Result<Vec<u8>> {
                let tok = token::finalize(&pk, &state, &sig, &campaign, &key.public_key())?;
                let t = tmin + random_u32() % (tmax - tmin + 1);
                let p = Pledge::sign(campaign, tok, Terms::threshold(t)?, &key)?;
                Ok(Entry::Pledge(p).encode()?)
            }
        })?;
        entries.extend(built);
    }
    let issue_s = issue_time.as_secs_f64();
    r.extend([
        ("tokens", args.pledges.to_string()),
        ("issue_s", f(issue_s)),
        ("tokens_per_s", f(args.pledges as f64 / issue_s)),
    ]);

    // Durable pledges: each answer comes after its batch's durable commit.
    // With --curve, in segments, each followed by a full audit and readings.
    let (mut lat, mut errors, mut submit_s) = (Vec::new(), 0, 0.0);
    let mut read_lat = Vec::new();
    let mut busy = Busy::default();
    let mut entries = entries.into_iter();
    let mut done = 0;
    for &point in args.curve.iter().chain([&args.pledges]) {
        let segment: Vec<Vec<u8>> = entries.by_ref().take(point - done).collect();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..args.readers)
            .enumerate()
            .map(|(k, _)| {
                let c = clients[k % clients.len()].clone();
                tokio::spawn(read_loop(c, stop.clone()))
            })
            .collect();
        let before = Busy::read(server, data).await?;
        let (seg_lat, seg_errors, seg_s) = submit_all(clients, segment, args.concurrency).await;
        busy.add(&before, &Busy::read(server, data).await?);
        stop.store(true, Ordering::Relaxed);
        for t in readers {
            read_lat.extend(t.await??);
        }
        if point < args.pledges {
            let t0 = Instant::now();
            let report = audit(&AuditOptions::new(server.base.clone()))
                .await
                .map_err(|e| anyhow!("audit at {point}: {e}"))?;
            let audit_s = t0.elapsed().as_secs_f64();
            if !report.passed() {
                bail!("the audit at {point} pledges failed");
            }
            println!(
                "CURVE pledges={point} segment_pledges={} segment_pledges_per_s={} \
                 segment_p99_ms={} audit_entries={} audit_s={} audit_entries_per_s={} \
                 rss_kib={} rss_peak_kib={} disk_per_pledge={} load1={}",
                seg_lat.len(),
                f(seg_lat.len() as f64 / seg_s),
                f(percentile(&seg_lat, 0.99)),
                report.counts.entries,
                f(audit_s),
                f(report.counts.entries as f64 / audit_s),
                server.status_kib("VmRSS:")?,
                server.status_kib("VmHWM:")?,
                f(server.disk_usage(data)? as f64 / point as f64),
                load1(),
            );
        }
        lat.extend(seg_lat);
        errors += seg_errors;
        submit_s += seg_s;
        done = point;
    }
    lat.sort_by(f64::total_cmp);
    read_lat.sort_by(f64::total_cmp);
    let accepted = lat.len();
    let pct = |q: f64| percentile(&lat, q);
    r.extend([
        ("pledges", args.pledges.to_string()),
        ("concurrency", args.concurrency.to_string()),
        (
            "batch_interval_ms",
            args.batch_interval_ms
                .unwrap_or(DEFAULT_BATCH_INTERVAL_MS)
                .to_string(),
        ),
        (
            "batch_size",
            args.batch_size.unwrap_or(DEFAULT_BATCH_SIZE).to_string(),
        ),
        ("accepted", accepted.to_string()),
        ("errors", errors.to_string()),
        ("submit_s", f(submit_s)),
        ("pledges_per_s", f(accepted as f64 / submit_s)),
        ("p50_ms", f(pct(0.50))),
        ("p99_ms", f(pct(0.99))),
        ("max_ms", f(pct(1.0))),
        ("readers", args.readers.to_string()),
        ("reads", read_lat.len().to_string()),
        ("read_p50_ms", f(percentile(&read_lat, 0.50))),
        ("read_p99_ms", f(percentile(&read_lat, 0.99))),
    ]);
    busy.report(submit_s, accepted, r);
    if errors > 0 {
        bail!("{errors} pledges were refused; see the server's stderr");
    }

    // The auditor over the whole ledger, from scratch (no state folder).
    let started = Instant::now();
    let report = audit(&AuditOptions::new(server.base.clone()))
        .await
        .map_err(|e| anyhow!("audit: {e}"))?;
    let audit_s = started.elapsed().as_secs_f64();
    let audit_pledges = report
        .campaigns
        .iter()
        .find(|c| c.id == campaign.to_hex())
        .map_or(0, |c| c.pledges);
    r.extend([
        ("audit_verified", report.counts.pledges_verified.to_string()),
        ("audit_pledges", audit_pledges.to_string()),
        ("audit_tallies", report.counts.tally_statements.to_string()),
    ]);
    audit_figures(&report, audit_s, r)?;
    resource_figures(server, data, disk_empty, r)
}

/// The audit's figures common to every run; an error if it did not pass.
fn audit_figures(
    report: &pledge_client::audit::AuditReport,
    audit_s: f64,
    r: &mut Results,
) -> anyhow::Result<()> {
    r.extend([
        ("audit_entries", report.counts.entries.to_string()),
        ("audit_passed", report.passed().to_string()),
        ("audit_s", f(audit_s)),
        (
            "audit_entries_per_s",
            f(report.counts.entries as f64 / audit_s),
        ),
    ]);
    if !report.passed() {
        let first = report.failures.first().map(|x| format!("{x:?}"));
        bail!("the audit failed: {}", first.unwrap_or_default());
    }
    Ok(())
}

/// The server's peak and final RSS and the data's size on disk.
fn resource_figures(
    server: &Server,
    data: &Path,
    disk_empty: u64,
    r: &mut Results,
) -> anyhow::Result<()> {
    r.extend([
        ("rss_peak_kib", server.status_kib("VmHWM:")?.to_string()),
        ("rss_end_kib", server.status_kib("VmRSS:")?.to_string()),
        ("disk_bytes", server.disk_usage(data)?.to_string()),
        ("disk_empty_bytes", disk_empty.to_string()),
    ]);
    Ok(())
}

/// Trustees of the sealed campaign, and how many a reveal needs.
const TRUSTEES: usize = 3;
const TRUSTEES_K: u8 = 2;

/// A sealed campaign's run (`--sealed`): key generation through the log,
/// tokens (timed), sealing (untimed, every core), the proof-verification
/// limit on this run's pledges, durable sealed pledges (timed), the audit
/// (timed), then the close and the reveal, checked against the buckets
/// pledged.
async fn drive_sealed(
    args: &Args,
    client: &Client,
    server: &Server,
    data: &Path,
    r: &mut Results,
) -> anyhow::Result<()> {
    use pledge_tests::sealed;
    let b = args.buckets;
    let admin = std::fs::read_to_string(data.join("admin.token"))
        .context("reading the admin token")?
        .trim()
        .to_owned();
    let opts = AuditOptions::new(server.base.clone());
    let disk_empty = server.disk_usage(data)?;

    // The organiser's campaign and the trustees' key generation.
    let keys = sealed::trustee_keys(TRUSTEES, &mut sealed::system_rng());
    let buckets: Vec<u32> = (1..=b as u32).map(|i| i * i).collect();
    let deadline = pledge_tests::unix_now() + 86_400;
    let mut spec = sealed::campaign("bench", deadline, &buckets, TRUSTEES_K, &keys, Vec::new());
    // As the demo campaign of the live runs: every entry published with
    // the next batch (no holding for a group, SPEC R-PUB-1).
    spec.publication = Some(pledge_protocol::api::Publication::IMMEDIATE);
    let campaign = sealed::create(client, &admin, &spec).await;
    let t0 = Instant::now();
    let (joint, pk) = sealed::key_generation(&opts, client, &campaign, &keys).await;
    r.extend([
        ("sealed", "true".to_owned()),
        ("buckets", b.to_string()),
        ("trustees", TRUSTEES.to_string()),
        ("trustees_k", TRUSTEES_K.to_string()),
        ("dkg_s", f(t0.elapsed().as_secs_f64())),
    ]);

    // Tokens, chunk by chunk (timed issuance), then the pledges sealed on
    // every core (untimed). Bucket `b` stands for a null pledge.
    let mut entries: Vec<Vec<u8>> = Vec::with_capacity(args.pledges);
    let mut chosen = vec![0u64; b + 1];
    let mut sample: Vec<SealedPledge> = Vec::new();
    let (mut issue_time, mut seal_time) = (Duration::ZERO, Duration::ZERO);
    let mut left = args.pledges;
    while left > 0 {
        let n = left.min(CHUNK);
        left -= n;
        let blinded = parallel(n, {
            let pk = pk.clone();
            move || -> anyhow::Result<(PledgeSigningKey, BlindingState)> {
                let key = PledgeSigningKey::generate()?;
                let (_, state) = token::blind(&pk, &campaign, &key.public_key())?;
                Ok((key, state))
            }
        })?;
        let blinded = Arc::new(blinded);
        let started = Instant::now();
        let sigs = issue_all(
            std::slice::from_ref(client),
            campaign,
            &blinded,
            args.issue_concurrency,
        )
        .await?;
        issue_time += started.elapsed();
        let blinded = Arc::try_unwrap(blinded).map_err(|_| anyhow!("blinding states shared"))?;
        let jobs: Vec<_> = blinded.into_iter().zip(sigs).collect();
        let started = Instant::now();
        let built = parallel_map(jobs, {
            let (pk, joint) = (pk.clone(), joint.clone());
            move |((key, state), sig)| -> anyhow::Result<(usize, SealedPledge)> {
                let tok = token::finalize(&pk, &state, &sig, &campaign, &key.public_key())?;
                let choice = random_u32() as usize % (b + 1);
                let bucket = (choice < b).then_some(choice);
                let mut rng = sealed::system_rng();
                match sealed::pledge_entry(&campaign, tok, &key, &joint, b, bucket, &mut rng) {
                    Entry::SealedPledge(p) => Ok((choice, *p)),
                    _ => bail!("not a sealed pledge"),
                }
            }
        })?;
        seal_time += started.elapsed();
        for (choice, p) in built {
            if let Some(c) = chosen.get_mut(choice) {
                *c += 1;
            }
            let bytes = Entry::SealedPledge(Box::new(p.clone())).encode()?;
            entries.push(bytes);
            if sample.len() < 64 {
                sample.push(p);
            }
        }
    }
    let issue_s = issue_time.as_secs_f64();
    let entry_bytes = entries.iter().map(Vec::len).sum::<usize>() as f64 / entries.len() as f64;
    r.extend([
        ("tokens", args.pledges.to_string()),
        ("issue_s", f(issue_s)),
        ("tokens_per_s", f(args.pledges as f64 / issue_s)),
        ("seal_s", f(seal_time.as_secs_f64())),
        (
            "seal_per_s",
            f(args.pledges as f64 / seal_time.as_secs_f64()),
        ),
        ("entry_bytes", f(entry_bytes)),
        ("null_pledges", chosen[b].to_string()),
    ]);

    // The limit: SealedTerms::verify of this run's pledges, one core and
    // every core, while the server is idle; and, on every core, decoding
    // the terms from their bytes too (the point decompressions a server
    // pays before it can verify).
    let cores = cores();
    let limits = tokio::task::spawn_blocking({
        let secs = args.limit_seconds;
        move || proof_limit(&sample, &joint, secs, cores)
    })
    .await??;
    r.extend([
        ("proof_verify_per_s_core", f(limits.core)),
        ("proof_verify_per_s_all", f(limits.all)),
        ("proof_decode_verify_per_s_all", f(limits.from_bytes_all)),
    ]);

    // Durable sealed pledges.
    let (lat, errors, submit_s) =
        submit_all(std::slice::from_ref(client), entries, args.concurrency).await;
    let pct = |q: f64| percentile(&lat, q);
    r.extend([
        ("pledges", args.pledges.to_string()),
        ("concurrency", args.concurrency.to_string()),
        (
            "batch_interval_ms",
            args.batch_interval_ms
                .unwrap_or(DEFAULT_BATCH_INTERVAL_MS)
                .to_string(),
        ),
        (
            "batch_size",
            args.batch_size.unwrap_or(DEFAULT_BATCH_SIZE).to_string(),
        ),
        ("accepted", lat.len().to_string()),
        ("errors", errors.to_string()),
        ("submit_s", f(submit_s)),
        ("pledges_per_s", f(lat.len() as f64 / submit_s)),
        ("p50_ms", f(pct(0.50))),
        ("p99_ms", f(pct(0.99))),
        ("max_ms", f(pct(1.0))),
    ]);
    if errors > 0 {
        bail!("{errors} sealed pledges were refused; see the server's stderr");
    }

    // The auditor over the whole ledger, from scratch, every core.
    let started = Instant::now();
    let report = audit(&opts).await.map_err(|e| anyhow!("audit: {e}"))?;
    let audit_s = started.elapsed().as_secs_f64();
    let summary = report.campaigns.iter().find(|c| c.id == campaign.to_hex());
    let audit_sealed = summary
        .and_then(|c| c.sealed.as_ref())
        .map_or(0, |s| s.entries);
    r.push(("audit_sealed_entries", audit_sealed.to_string()));
    audit_figures(&report, audit_s, r)?;
    resource_figures(server, data, disk_empty, r)?;

    // The close, the first k trustees' shares, the server's reveal: the
    // counts must be the buckets pledged.
    let started = Instant::now();
    let closed = client
        .close_campaign(&admin, &campaign)
        .await
        .map_err(|e| anyhow!("closing: {e}"))?;
    let counts = sealed::share_and_reveal(
        &opts,
        client,
        &campaign,
        &keys[..usize::from(TRUSTEES_K)],
        closed,
        Duration::from_secs(600),
    )
    .await;
    let expected = &chosen[..b];
    if counts != expected {
        bail!("the reveal gave {counts:?}, the pledges were {expected:?}");
    }
    r.extend([
        ("reveal_s", f(started.elapsed().as_secs_f64())),
        ("revealed_live", counts.iter().sum::<u64>().to_string()),
        ("reveal_matches", "true".to_owned()),
    ]);
    Ok(())
}

/// `op` (which counts what it did) on `threads` threads at once: the total
/// per second of wall time.
fn per_second_on(
    threads: usize,
    op: &(dyn Fn() -> anyhow::Result<u64> + Sync),
) -> anyhow::Result<f64> {
    let t0 = Instant::now();
    let counts: Vec<anyhow::Result<u64>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads).map(|_| s.spawn(op)).collect();
        hs.into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(anyhow!("panicked"))))
            .collect()
    });
    let mut total = 0u64;
    for c in counts {
        total += c?;
    }
    Ok(total as f64 / t0.elapsed().as_secs_f64())
}

/// Proof verifications per second (see [`proof_limit`]).
struct ProofLimits {
    /// Decoded terms, one thread.
    core: f64,
    /// Decoded terms, every core.
    all: f64,
    /// Terms decoded from their bytes, then verified, every core.
    from_bytes_all: f64,
}

/// `SealedTerms::verify` of `sample`'s pledges in turn, on one thread and on
/// `threads` threads, then `SealedTerms::decode` and `verify` on `threads`
/// threads, `secs` seconds each.
fn proof_limit(
    sample: &[SealedPledge],
    joint: &JointPublicKey,
    secs: f64,
    threads: usize,
) -> anyhow::Result<ProofLimits> {
    if sample.is_empty() {
        bail!("no sealed pledge to measure");
    }
    let contexts: Vec<_> = sample.iter().map(SealedPledge::context).collect();
    let bytes: Vec<Vec<u8>> = sample.iter().map(|p| p.terms.encode()).collect();
    let dur = Duration::from_secs_f64(secs.max(0.01));
    let bad =
        |e: &dyn std::fmt::Display| anyhow!("a sealed pledge of this run does not verify: {e}");
    let run = |from_bytes: bool| -> anyhow::Result<u64> {
        let (mut n, t0) = (0u64, Instant::now());
        while t0.elapsed() < dur {
            let i = n as usize % sample.len();
            if from_bytes {
                SealedTerms::decode(&bytes[i])
                    .map_err(|e| bad(&e))?
                    .verify(&contexts[i], joint)
                    .map_err(|e| bad(&e))?;
            } else {
                sample[i]
                    .terms
                    .verify(&contexts[i], joint)
                    .map_err(|e| bad(&e))?;
            }
            n += 1;
        }
        Ok(n)
    };
    let t0 = Instant::now();
    let core = run(false)? as f64 / t0.elapsed().as_secs_f64();
    Ok(ProofLimits {
        core,
        all: per_second_on(threads, &|| run(false))?,
        from_bytes_all: per_second_on(threads, &|| run(true))?,
    })
}

/// One token request per blinded message, `concurrency` in flight.
async fn issue_all(
    clients: &[Client],
    campaign: CampaignId,
    blinded: &Arc<Vec<(PledgeSigningKey, BlindingState)>>,
    concurrency: usize,
) -> anyhow::Result<Vec<Vec<u8>>> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for k in 0..concurrency.min(blinded.len()) {
        let client = clients[k % clients.len()].clone();
        let (next, blinded) = (next.clone(), blinded.clone());
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((_, state)) = blinded.get(i) else {
                    break;
                };
                let req = [(campaign, state.blinded_message())];
                let mut sigs = client
                    .tokens(&Attestation::Open, &req)
                    .await
                    .map_err(|e| anyhow!("token request {i}: {e}"))?;
                let sig = sigs.pop().ok_or_else(|| anyhow!("no blind signature"))?;
                got.push((i, sig));
            }
            anyhow::Ok(got)
        }));
    }
    let mut all = vec![Vec::new(); blinded.len()];
    for t in tasks {
        for (i, sig) in t.await?? {
            if let Some(slot) = all.get_mut(i) {
                *slot = sig;
            }
        }
    }
    Ok(all)
}

/// Submits every entry, `concurrency` in flight; returns the latencies of the
/// accepted ones (seconds), the number refused, and the wall time.
async fn submit_all(
    clients: &[Client],
    entries: Vec<Vec<u8>>,
    concurrency: usize,
) -> (Vec<f64>, usize, f64) {
    let entries = Arc::new(entries);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..concurrency.min(entries.len()) {
        let client = clients[k % clients.len()].clone();
        let (next, entries) = (next.clone(), entries.clone());
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut errors) = (Vec::new(), 0usize);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(bytes) = entries.get(i) else { break };
                let t0 = Instant::now();
                match client.submit_bytes("/v1/pledges", bytes).await {
                    Ok(_) => lat.push(t0.elapsed().as_secs_f64()),
                    Err(e) => {
                        if errors == 0 {
                            eprintln!("pledge {i} refused: {e}");
                        }
                        errors += 1;
                    }
                }
            }
            (lat, errors)
        }));
    }
    let (mut lat, mut errors) = (Vec::with_capacity(entries.len()), 0);
    for t in tasks {
        match t.await {
            Ok((l, e)) => {
                lat.extend(l);
                errors += e;
            }
            Err(_) => errors += 1,
        }
    }
    let wall = started.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    (lat, errors, wall)
}

/// Reads the checkpoint and the campaign list in turn until `stop`; returns
/// each read's latency (seconds). A failed read fails the run.
async fn read_loop(
    client: Client,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> anyhow::Result<Vec<f64>> {
    let mut lat = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let t0 = Instant::now();
        if lat.len() % 2 == 0 {
            client
                .checkpoint()
                .await
                .map_err(|e| anyhow!("reading the checkpoint: {e}"))?;
        } else {
            client
                .campaigns()
                .await
                .map_err(|e| anyhow!("reading the campaigns: {e}"))?;
        }
        lat.push(t0.elapsed().as_secs_f64());
    }
    Ok(lat)
}

/// The `q` quantile of sorted latencies, in milliseconds.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted.get(i).map_or(f64::NAN, |s| s * 1000.0)
}

/// `n` results of `make`, on every core.
fn parallel<T: Send, F>(n: usize, make: F) -> anyhow::Result<Vec<T>>
where
    F: Fn() -> anyhow::Result<T> + Sync,
{
    parallel_map((0..n).collect(), |_| make())
}

/// `work` over `items`, on every core, in order.
fn parallel_map<I: Send, T: Send, F>(items: Vec<I>, work: F) -> anyhow::Result<Vec<T>>
where
    F: Fn(I) -> anyhow::Result<T> + Sync,
{
    let cores = cores();
    let per = items.len().div_ceil(cores).max(1);
    let mut chunks: Vec<Vec<I>> = Vec::new();
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        chunks.push(items.by_ref().take(per).collect());
    }
    let work = &work;
    let done: Vec<anyhow::Result<Vec<T>>> = std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|c| s.spawn(move || c.into_iter().map(work).collect()))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow!("a worker panicked")))
            })
            .collect()
    });
    let mut out = Vec::new();
    for d in done {
        out.extend(d?);
    }
    Ok(out)
}

fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    // The OS generator does not fail on Linux; a zero threshold offset is harmless.
    let _ = getrandom::fill(&mut b);
    u32::from_le_bytes(b)
}

/// OpenSSL RSA-2048 rates measured in this process.
#[derive(Debug, Clone, Copy)]
struct Limit {
    priv_core: f64,
    priv_all: f64,
    verify_core: f64,
    verify_all: f64,
}

/// Raw private operations (what the issuer does per token) and RSASSA-PSS-SHA384
/// verifications (what the server and the auditor do per pledge), on one thread
/// and on `threads` threads, `secs` seconds each.
fn rsa_limit(secs: f64, threads: usize) -> anyhow::Result<Limit> {
    let rsa = Rsa::generate(2048)?;
    let key = PKey::from_rsa(rsa.clone())?;
    let msg = [7u8; 111];
    let mut signer = Signer::new(MessageDigest::sha384(), &key)?;
    signer.set_rsa_padding(Padding::PKCS1_PSS)?;
    signer.set_rsa_pss_saltlen(RsaPssSaltlen::custom(48))?;
    signer.set_rsa_mgf1_md(MessageDigest::sha384())?;
    signer.update(&msg)?;
    let sig = signer.sign_to_vec()?;
    let public = PKey::public_key_from_der(&key.public_key_to_der()?)?;
    let dur = Duration::from_secs_f64(secs.max(0.01));

    let private_op = || -> anyhow::Result<u64> {
        let mut m = [0x5au8; 256];
        m[0] = 0;
        let mut out = [0u8; 256];
        let (mut n, t0) = (0u64, Instant::now());
        while t0.elapsed() < dur {
            rsa.private_encrypt(&m, &mut out, Padding::NONE)?;
            n += 1;
        }
        Ok(n)
    };
    let verify_op = || -> anyhow::Result<u64> {
        let (mut n, t0) = (0u64, Instant::now());
        while t0.elapsed() < dur {
            let mut v = Verifier::new(MessageDigest::sha384(), &public)?;
            v.set_rsa_padding(Padding::PKCS1_PSS)?;
            v.set_rsa_pss_saltlen(RsaPssSaltlen::custom(48))?;
            v.set_rsa_mgf1_md(MessageDigest::sha384())?;
            v.update(&msg)?;
            if !v.verify(&sig)? {
                bail!("OpenSSL rejected its own signature");
            }
            n += 1;
        }
        Ok(n)
    };
    let on_all = |op: &(dyn Fn() -> anyhow::Result<u64> + Sync)| per_second_on(threads, op);
    Ok(Limit {
        priv_core: private_op()? as f64 / dur.as_secs_f64(),
        priv_all: on_all(&private_op)?,
        verify_core: verify_op()? as f64 / dur.as_secs_f64(),
        verify_all: on_all(&verify_op)?,
    })
}

/// The database's own rate for the sequencer's write: transactions that
/// lock one state row and insert 256 entries of a pledge's size (420
/// bytes) with their nullifiers and two hashes each, as `commit_batch`
/// does, one after another on one connection, for `secs` seconds, into
/// tables of their own (dropped after). Rows (entries) per second.
fn pg_batch_limit(url: &str, secs: f64) -> anyhow::Result<f64> {
    let mut c = postgres::Client::connect(url, postgres::NoTls)?;
    c.batch_execute(
        "CREATE TABLE bench_state (id smallint PRIMARY KEY, size bigint NOT NULL);
         INSERT INTO bench_state VALUES (0, 0);
         CREATE TABLE bench_entries (idx bigint PRIMARY KEY, data bytea NOT NULL);
         CREATE TABLE bench_nullifiers (nullifier bytea PRIMARY KEY, idx bigint NOT NULL);
         CREATE TABLE bench_hashes (level smallint, idx bigint, hash bytea NOT NULL,
                                    PRIMARY KEY (level, idx));",
    )?;
    let started = Instant::now();
    let (mut rows, mut next) = (0u64, 0i64);
    while started.elapsed().as_secs_f64() < secs {
        let idx: Vec<i64> = (next..next + 256).collect();
        let data: Vec<Vec<u8>> = idx.iter().map(|_| random_bytes(420)).collect();
        let nulls: Vec<Vec<u8>> = idx.iter().map(|_| random_bytes(32)).collect();
        let hidx: Vec<i64> = (2 * next..2 * next + 512).collect();
        let hashes: Vec<Vec<u8>> = hidx.iter().map(|_| random_bytes(32)).collect();
        let mut tx = c.transaction()?;
        tx.query_one("SELECT size FROM bench_state WHERE id = 0 FOR UPDATE", &[])?;
        tx.execute(
            "INSERT INTO bench_entries SELECT * FROM unnest($1::bigint[], $2::bytea[])",
            &[&idx, &data],
        )?;
        tx.execute(
            "INSERT INTO bench_nullifiers SELECT * FROM unnest($1::bytea[], $2::bigint[])",
            &[&nulls, &idx],
        )?;
        tx.execute(
            "INSERT INTO bench_hashes SELECT 0, * FROM unnest($1::bigint[], $2::bytea[])",
            &[&hidx, &hashes],
        )?;
        tx.execute(
            "UPDATE bench_state SET size = $1 WHERE id = 0",
            &[&(next + 256)],
        )?;
        tx.commit()?;
        next += 256;
        rows += 256;
    }
    let rate = rows as f64 / started.elapsed().as_secs_f64();
    c.batch_execute("DROP TABLE bench_state, bench_entries, bench_nullifiers, bench_hashes;")?;
    Ok(rate)
}

/// Entries per second that `PostgresStore::commit_batch` (the sequencer's
/// commit, without HTTP or rules) stores back to back in batches of 256, as
/// `pg_batch_limit` shapes them: the store's cost against the database's.
fn pg_store_batch_rate(url: &str, secs: f64) -> anyhow::Result<f64> {
    use pledge_protocol::hash::Nullifier;
    use pledge_server::store::{Batch, BatchEntry, LogStore, PostgresStore, StoredHash};
    let store = PostgresStore::connect(url).map_err(|e| anyhow!("{e}"))?;
    let started = Instant::now();
    let mut next = 0u64;
    while started.elapsed().as_secs_f64() < secs {
        let random_32 = || {
            let mut b = [0u8; 32];
            getrandom::fill(&mut b).unwrap_or_default();
            b
        };
        let entries = (0..256)
            .map(|_| BatchEntry {
                data: random_bytes(420),
                nullifier: Some(Nullifier(random_32())),
            })
            .collect();
        let hashes = (2 * next..2 * next + 512)
            .map(|index| StoredHash {
                level: 0,
                index,
                hash: pledge_protocol::hash::Hash(random_32()),
            })
            .collect();
        store
            .commit_batch(Batch {
                first_index: next,
                entries,
                hashes,
                checkpoint: random_bytes(300),
                meta: Vec::new(),
            })
            .map_err(|e| anyhow!("{e}"))?;
        next += 256;
    }
    Ok(next as f64 / started.elapsed().as_secs_f64())
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    getrandom::fill(&mut v).unwrap_or_default();
    v
}

/// The cores this process may use.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Counters read before and after a submission, to tell where its time
/// went: the sequencing front end's batches (its `/metrics`), that
/// process's CPU time and the whole machine's (`/proc`).
#[derive(Debug, Default, Clone, Copy)]
struct Busy {
    batches: f64,
    batch_s: f64,
    commit_s: f64,
    server_cpu_s: f64,
    machine_busy_s: f64,
}

impl Busy {
    /// The counters now.
    async fn read(server: &Server, data: &Path) -> anyhow::Result<Self> {
        let admin =
            std::fs::read_to_string(data.join("admin.token")).context("reading the admin token")?;
        let text = reqwest::Client::new()
            .get(format!("{}/metrics", server.base))
            .bearer_auth(admin.trim())
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        let metric = |name: &str| -> anyhow::Result<f64> {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| anyhow!("no {name} in /metrics"))
        };
        // Linux reports both in USER_HZ ticks, 100 per second on every
        // architecture this runs on (proc(5)).
        let ticks = |fields: &[&str]| -> f64 {
            fields
                .iter()
                .filter_map(|v| v.parse::<u64>().ok())
                .sum::<u64>() as f64
                / 100.0
        };
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", server.child.id()))?;
        // After the command name in parentheses: utime and stime are the
        // 12th and 13th fields (14 and 15 of the whole line).
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after.split_whitespace().collect();
        let server_cpu_s = ticks(fields.get(11..13).unwrap_or_default());
        let machine = std::fs::read_to_string("/proc/stat")?;
        let cpu: Vec<&str> = machine
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .collect();
        // user nice system idle iowait irq softirq steal: busy is all but
        // idle and iowait.
        let busy: Vec<&str> = cpu
            .iter()
            .take(8)
            .enumerate()
            .filter(|(i, _)| *i != 3 && *i != 4)
            .map(|(_, v)| *v)
            .collect();
        Ok(Self {
            batches: metric("pledged_batches_total")?,
            batch_s: metric("pledged_batch_seconds_total")?,
            commit_s: metric("pledged_batch_commit_seconds_total")?,
            server_cpu_s,
            machine_busy_s: ticks(&busy),
        })
    }

    /// Adds what happened between `before` and `after`.
    fn add(&mut self, before: &Self, after: &Self) {
        self.batches += after.batches - before.batches;
        self.batch_s += after.batch_s - before.batch_s;
        self.commit_s += after.commit_s - before.commit_s;
        self.server_cpu_s += after.server_cpu_s - before.server_cpu_s;
        self.machine_busy_s += after.machine_busy_s - before.machine_busy_s;
    }

    /// The figures over `secs` seconds of submission, `accepted` entries.
    fn report(&self, secs: f64, accepted: usize, r: &mut Results) {
        r.extend([
            ("batches", f(self.batches)),
            ("mean_batch", f(accepted as f64 / self.batches)),
            // Share of the submission time the sequencer spent integrating
            // (near 1: the sequencer is what bounds the rate).
            ("sequencer_busy", f(self.batch_s / secs)),
            // Of which in the store's durable commits.
            ("commit_busy", f(self.commit_s / secs)),
            // Cores the (sequencing) server used, and the machine's share
            // of all cores in use (near 1: the CPU bounds the rate).
            ("server_cores", f(self.server_cpu_s / secs)),
            (
                "machine_busy",
                f(self.machine_busy_s / secs / cores() as f64),
            ),
        ]);
    }
}

/// A running `pledged`.
struct Server {
    child: Child,
    base: String,
    /// The PostgreSQL backend's database.
    db: Option<pledge_tests::postgres::TestDatabase>,
}

impl Server {
    /// Starts a server; `shared_db`: another front end's database URL
    /// (none: a fresh database with `--backend postgres`).
    fn start(
        args: &Args,
        pledged: &Path,
        data: &Path,
        shared_db: Option<String>,
    ) -> anyhow::Result<Self> {
        let mut cmd = Command::new(pledged);
        let db = (args.backend == "postgres" && shared_db.is_none())
            .then(|| pledge_tests::postgres::cluster().database());
        if let Some(url) = db.as_ref().map(|d| d.url().to_owned()).or(shared_db) {
            cmd.env("PLEDGED_DATABASE_URL", url);
        }
        cmd.args(["--demo", "--listen", "127.0.0.1:0", "--backend"])
            .arg(&args.backend)
            .arg("--data")
            .arg(data)
            .env("PLEDGED_OPEN_RATE_PER_MINUTE", "0")
            // One campaign, as in every earlier figure of BENCHMARKS.md.
            .env("PLEDGED_DEMO_FUNDING", "false")
            // The load generator is one address playing many clients: lift
            // the per-address and global connection caps (SPEC R-API-19).
            .env("PLEDGED_MAX_CONNECTIONS_PER_ADDRESS", "100000")
            .env("PLEDGED_MAX_CONNECTIONS", "100000")
            .env("PLEDGED_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(ms) = args.batch_interval_ms {
            cmd.env("PLEDGED_BATCH_INTERVAL_MS", ms.to_string());
        }
        if let Some(n) = args.batch_size {
            cmd.env("PLEDGED_BATCH_SIZE", n.to_string());
            // Room for every submission in flight plus a full batch.
            let cap = (n * 4).max(args.concurrency * 2).max(4096);
            cmd.env("PLEDGED_QUEUE_CAPACITY", cap.to_string());
        } else {
            let cap = (args.concurrency * 2).max(4096);
            cmd.env("PLEDGED_QUEUE_CAPACITY", cap.to_string());
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot run {}", pledged.display()))?;
        let out = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("no stdout pipe"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    // Keep reading so the server never blocks on a full pipe.
                    continue;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .map_err(|_| anyhow!("pledged did not start listening within 120 s"))?;
            if let Some(rest) = line.strip_prefix("listening on ") {
                let base = rest.split(';').next().unwrap_or_default().to_owned();
                return Ok(Self { child, base, db });
            }
        }
    }

    /// Bytes on disk: the data folder's, and the database's if any.
    fn disk_usage(&self, data: &Path) -> anyhow::Result<u64> {
        Ok(disk_usage(data)? + self.db.as_ref().map_or(0, |d| d.size_bytes()))
    }

    /// A `kB` field of `/proc/<pid>/status`.
    fn status_kib(&self, field: &str) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| anyhow!("no {field} in /proc/<pid>/status"))
    }

    /// SIGTERM (graceful: integrates what is queued), SIGKILL after 30 s.
    fn stop(&mut self) -> anyhow::Result<()> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child.kill()?;
        self.child.wait()?;
        bail!("pledged did not stop within 30 s of SIGTERM")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Bytes allocated on disk under `dir` (blocks, not apparent sizes).
fn disk_usage(dir: &Path) -> anyhow::Result<u64> {
    use std::os::unix::fs::MetadataExt as _;
    let mut total = 0;
    for e in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let e = e?;
        let m = e.metadata()?;
        if m.is_dir() {
            total += disk_usage(&e.path())?;
        } else {
            total += m.blocks() * 512;
        }
    }
    Ok(total)
}

fn load1() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = cores();
    format!("{cpu}, {cores} cores, {}", openssl::version::version())
}

fn f(x: f64) -> String {
    if x.is_finite() && x.abs() >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.3}")
    }
}

/// `x / limit`, with enough digits to be non-zero when small.
fn ratio(x: f64, limit: f64) -> String {
    let r = x / limit;
    if r.abs() >= 0.01 || r == 0.0 || !r.is_finite() {
        format!("{r:.4}")
    } else {
        format!("{r:.2e}")
    }
}

fn print_run(r: &Results) {
    let m: BTreeMap<&str, &str> = r.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let g = |k: &str| m.get(k).copied().unwrap_or("?");
    let mut t = String::new();
    let _ = writeln!(
        t,
        "\nrun {} (load average {} → {})",
        g("run"),
        g("load1_start"),
        g("load1_end")
    );
    let _ = writeln!(t, "  {:<34} {:>14} {:>10}", "measure", "value", "÷ limit");
    let live = [
        (
            "OpenSSL RSA-2048 private ops/s (all)",
            "rsa_priv_per_s_all",
            "",
        ),
        (
            "OpenSSL RSA-2048 private ops/s (1 core)",
            "rsa_priv_per_s_core",
            "",
        ),
        (
            "OpenSSL RSA-2048 PSS verify/s (all)",
            "rsa_verify_per_s_all",
            "",
        ),
        (
            "OpenSSL RSA-2048 PSS verify/s (1 core)",
            "rsa_verify_per_s_core",
            "",
        ),
        ("tokens issued/s", "tokens_per_s", "tokens_ratio"),
        ("durable pledges/s", "pledges_per_s", "pledges_ratio"),
        ("pledge latency p50 (ms)", "p50_ms", ""),
        ("pledge latency p99 (ms)", "p99_ms", ""),
        ("pledge latency max (ms)", "max_ms", ""),
        ("read latency p50 under load (ms)", "read_p50_ms", ""),
        ("read latency p99 under load (ms)", "read_p99_ms", ""),
        ("audit entries/s", "audit_entries_per_s", "audit_ratio"),
        ("audit time (s)", "audit_s", ""),
        ("server peak RSS (KiB)", "rss_peak_kib", ""),
        ("disk bytes per pledge", "disk_per_pledge", ""),
        ("disk bytes added per pledge", "disk_growth_per_pledge", ""),
    ];
    let sealed = [
        ("buckets B", "buckets", ""),
        ("key generation through the log (s)", "dkg_s", ""),
        ("proof verifies/s (1 core)", "proof_verify_per_s_core", ""),
        (
            "proof verifies/s (all: the limit)",
            "proof_verify_per_s_all",
            "",
        ),
        (
            "decodes + verifies/s (all: limit from bytes)",
            "proof_decode_verify_per_s_all",
            "",
        ),
        ("tokens issued/s", "tokens_per_s", "tokens_ratio"),
        ("sealing/s, client side (all cores)", "seal_per_s", ""),
        ("entry bytes per sealed pledge", "entry_bytes", ""),
        ("durable sealed pledges/s", "pledges_per_s", "proof_ratio"),
        (
            "  the same ÷ the limit from bytes",
            "pledges_per_s",
            "decode_proof_ratio",
        ),
        ("pledge latency p50 (ms)", "p50_ms", ""),
        ("pledge latency p99 (ms)", "p99_ms", ""),
        ("pledge latency max (ms)", "max_ms", ""),
        (
            "audit entries/s",
            "audit_entries_per_s",
            "audit_proof_ratio",
        ),
        (
            "  the same ÷ the limit from bytes",
            "audit_entries_per_s",
            "audit_decode_proof_ratio",
        ),
        ("audit time (s)", "audit_s", ""),
        ("close, shares and reveal (s)", "reveal_s", ""),
        ("server peak RSS (KiB)", "rss_peak_kib", ""),
        ("disk bytes per pledge", "disk_per_pledge", ""),
        ("disk bytes added per pledge", "disk_growth_per_pledge", ""),
    ];
    let rows: &[(&str, &str, &str)] = if m.contains_key("sealed") {
        &sealed
    } else {
        &live
    };
    for &(label, key, rk) in rows {
        let _ = writeln!(
            t,
            "  {label:<40} {:>14} {:>8}",
            g(key),
            if rk.is_empty() { "" } else { g(rk) }
        );
    }
    print!("{t}");
    let line: Vec<String> = r.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("RESULT {}", line.join(" "));
}
