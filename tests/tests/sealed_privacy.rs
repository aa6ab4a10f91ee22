//! Sealed campaigns hide the thresholds until a reveal (issue 16, SPEC
//! §17, R-SEAL-60): three runs of the real `pledged` (the binary, its own
//! data folder and its stderr) with the same clients, the same entries and
//! different threshold choices — every pledge in bucket 0, pledges spread
//! over every bucket, every pledge null — must look the same before any
//! reveal. Exactly the same for what is deterministic: the kinds and
//! lengths of every log entry, the header bytes of every sealed terms, the
//! paths and sizes of every tile and bundle, the files of the data folder
//! and their sizes, the server's log lines and the campaign object once
//! random hex, numbers and times are masked. The same in distribution for
//! the random bytes of the ciphertexts and the proofs: two-sample
//! chi-square tests at a fixed significance, whose power is shown by a
//! planted leak (the one-hot vector written in clear into one bit of each
//! ciphertext) that they must catch, both on these runs' own bytes and in a
//! unit check without a server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use pledge_client::audit::AuditOptions;
use pledge_client::client::Client;
use pledge_protocol::entry::Entry;
use pledge_protocol::pledge::PledgeSigningKey;
use pledge_protocol::sealed::{CIPHERTEXT_LEN, JointPublicKey, SealContext, SealedTerms};
use pledge_protocol::tile::{BundleId, decode_bundle, tiles_for_size};
use pledge_tests::pledged::{self, Launch};
use pledge_tests::sealed;
use pledge_tests::unix_now;
use rand::SeedableRng as _;
use rand::rngs::StdRng;

/// Clients per run: each obtains a token and pledges once.
const CLIENTS: usize = 64;
/// Of them, the first this many amend once.
const AMENDMENTS: usize = 16;
const BUCKETS: [u32; 4] = [1, 10, 100, 1000];
const B: usize = BUCKETS.len();

/// The significance of each family of tests (one family: one statistic
/// over one group of bytes for one pair of runs). About 20 families: a
/// false alarm once in about 5,000 runs of this test.
const ALPHA: f64 = 1e-5;

/// A run's threshold choices: client `i`'s pledge and, for `i <
/// AMENDMENTS`, its amendment (`None`: null).
#[derive(Debug, Clone, Copy)]
enum Profile {
    /// Every pledge and amendment in bucket 0.
    AllFirst,
    /// Pledges over every bucket in turn, amendments shifted by one.
    Spread,
    /// Every pledge and amendment null.
    AllNull,
}

impl Profile {
    fn pledge(self, i: usize) -> Option<usize> {
        match self {
            Self::AllFirst => Some(0),
            Self::Spread => Some(i % B),
            Self::AllNull => None,
        }
    }

    fn amendment(self, i: usize) -> Option<usize> {
        match self {
            Self::AllFirst => Some(0),
            Self::Spread => Some((i + 1) % B),
            Self::AllNull => None,
        }
    }
}

/// What an observer of one run sees before any reveal.
#[derive(Debug, Default)]
struct Observed {
    /// Per log entry: its kind, its length and, for sealed terms, their
    /// header (bucket count) and length.
    shape: Vec<String>,
    /// Every tile and bundle path with its size.
    tiles: Vec<(String, usize)>,
    /// Every file of the data folder (relative path) with its size.
    files: BTreeMap<String, u64>,
    /// The server's stderr lines, masked, sorted.
    log: Vec<String>,
    /// The campaign object, masked.
    campaign: String,
    /// The sealed entries' terms in log order, with the one-hot vector each
    /// encrypts (for the planted leak only).
    terms: Vec<(SealedTerms, [u8; B])>,
}

/// Replaces what differs between any two runs whatever the pledges: runs
/// of hex digits (ids, keys, hashes, signatures), base64 blobs, and
/// numbers (ports, times, durations). Words and punctuation stay.
fn mask(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if word.is_empty() {
            return;
        }
        let hexish = word.len() >= 8 && word.chars().all(|c| c.is_ascii_hexdigit());
        let b64ish = word.len() >= 16
            && word
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/' || c == '=');
        let numeric = word.chars().any(|c| c.is_ascii_digit());
        if hexish || b64ish {
            out.push('H');
        } else if numeric {
            // Digits and the units or separators around them.
            out.push('N');
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || c == '+' || c == '/' || c == '=' || c == '.' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// Every file under `dir` (relative path → size).
fn files(dir: &Path, base: &Path, out: &mut BTreeMap<String, u64>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        if m.is_dir() {
            files(&e.path(), base, out);
        } else {
            let rel = e.path().strip_prefix(base).unwrap().display().to_string();
            out.insert(rel, m.len());
        }
    }
}

/// The one-hot vector of a choice.
fn one_hot(choice: Option<usize>) -> [u8; B] {
    let mut v = [0; B];
    if let Some(b) = choice {
        v[b] = 1;
    }
    v
}

/// One run of the real server with `profile`'s choices, observed up to
/// (not including) any reveal; the server is stopped (SIGTERM) before its
/// data folder and log are read.
async fn run(profile: Profile) -> Observed {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let stderr = dir.path().join("stderr");
    let launch = Launch::new(
        pledged::binary(env!("CARGO_BIN_EXE_pledged-under-test")),
        &data,
    )
    .env("PLEDGED_LOG", "trace")
    .env("PLEDGED_OPEN_RATE_PER_MINUTE", "0")
    .env("PLEDGED_DEMO_FUNDING", "false")
    .env("PLEDGED_BATCH_INTERVAL_MS", "10")
    .env("PLEDGED_PUBLISH_MIN_PLEDGES", "1")
    .env("PLEDGED_PUBLISH_MAX_DELAY_MS", "0");
    let (server, base) = tokio::task::spawn_blocking({
        let stderr = stderr.clone();
        move || pledged::start(&launch, &stderr)
    })
    .await
    .unwrap();
    let admin = std::fs::read_to_string(data.join("admin.token"))
        .unwrap()
        .trim()
        .to_owned();
    let client = Client::new(&base).unwrap();
    let opts = AuditOptions::new(base.clone());
    let mut rng = sealed::system_rng();
    let keys = sealed::trustee_keys(3, &mut rng);
    let spec = sealed::campaign(
        "Sealed strike",
        unix_now() + 86_400,
        &BUCKETS,
        2,
        &keys,
        Vec::new(),
    );
    let id = sealed::create(&client, &admin, &spec).await;
    let (joint, issuer) = sealed::key_generation(&opts, &client, &id, &keys).await;

    // One at a time, each acknowledged (durable) before the next: the log
    // order is the order sent, in every run.
    let mut sent = Vec::new();
    let mut pledge_keys: Vec<PledgeSigningKey> = Vec::new();
    for i in 0..CLIENTS {
        let choice = profile.pledge(i);
        pledge_keys.push(sealed::pledge(&client, &id, &issuer, &joint, B, choice, &mut rng).await);
        sent.push(one_hot(choice));
    }
    for (i, key) in pledge_keys.iter().enumerate().take(AMENDMENTS) {
        let choice = profile.amendment(i);
        let e = sealed::amendment_entry(&id, key, 1, &joint, B, choice, &mut rng);
        client.submit(&e).await.unwrap();
        sent.push(one_hot(choice));
    }
    let info = sealed::wait_for(&client, &id, Duration::from_secs(30), |c| {
        c.tally
            .as_ref()
            .is_some_and(|t| t.entries == Some((CLIENTS + AMENDMENTS) as u64))
    })
    .await;
    assert!(
        info.sealed.as_ref().unwrap().revealed.is_empty(),
        "no reveal yet"
    );

    let mut seen = Observed {
        campaign: mask(&serde_json::to_string(&info).unwrap()),
        ..Observed::default()
    };
    // The public log: every bundle (entries) and every tile.
    let cp = client.checkpoint().await.unwrap();
    let size: u64 = std::str::from_utf8(&cp)
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let mut n = 0;
    let mut sealed_terms = Vec::new();
    while n * 256 < size {
        let bundle = BundleId::new(n, u16::try_from((size - n * 256).min(256)).unwrap()).unwrap();
        let bytes = client.bundle(&bundle).await.unwrap();
        seen.tiles.push((bundle.path(), bytes.len()));
        for raw in decode_bundle(&bytes, &bundle).unwrap() {
            let e = Entry::decode(raw).unwrap();
            let mut shape = format!("{} {}", entry_kind(&e), raw.len());
            let terms = match e {
                Entry::SealedPledge(p) => Some(p.terms),
                Entry::SealedAmended(a) => Some(a.terms),
                _ => None,
            };
            if let Some(t) = terms {
                let enc = t.encode();
                shape.push_str(&format!(" terms {} head {:02x}", enc.len(), enc[0]));
                sealed_terms.push(t);
            }
            seen.shape.push(shape);
        }
        n += 1;
    }
    for tile in tiles_for_size(size) {
        let bytes = client.tile(&tile).await.unwrap();
        seen.tiles.push((tile.path(), bytes.len()));
    }
    assert_eq!(sealed_terms.len(), sent.len());
    seen.terms = sealed_terms.into_iter().zip(sent).collect();

    let status = server.terminate(Duration::from_secs(30));
    assert!(status.success(), "pledged stopped with {status:?}");
    files(&data, &data, &mut seen.files);
    let log = std::fs::read_to_string(&stderr).unwrap();
    let mut lines: Vec<String> = log.lines().map(mask).collect();
    lines.sort();
    seen.log = lines;
    seen
}

fn entry_kind(e: &Entry) -> &'static str {
    match e {
        Entry::CampaignOpened(_) => "CampaignOpened",
        Entry::TrusteeMessage(_) => "TrusteeMessage",
        Entry::SealedPledge(_) => "SealedPledge",
        Entry::SealedAmended(_) => "SealedAmended",
        _ => "other",
    }
}

// ---------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------

/// `P(Z > z)` for a standard normal `Z` (Simpson's rule over `[z, z + 12]`,
/// far more precise than the tails used here need).
fn normal_tail(z: f64) -> f64 {
    let (a, b, steps) = (z, z + 12.0, 20_000);
    let h = (b - a) / f64::from(steps);
    let phi = |t: f64| (-t * t / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt();
    let mut s = phi(a) + phi(b);
    for k in 1..steps {
        let w = if k % 2 == 1 { 4.0 } else { 2.0 };
        s += w * phi(a + f64::from(k) * h);
    }
    s * h / 3.0
}

/// The `z` with `P(Z > z) = p` (bisection).
fn normal_quantile(p: f64) -> f64 {
    let (mut lo, mut hi) = (0.0, 40.0);
    for _ in 0..200 {
        let mid = (lo + hi) / 2.0;
        if normal_tail(mid) > p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (lo + hi) / 2.0
}

/// The chi-square critical value at upper tail `p` with `df` degrees of
/// freedom: exact for `df = 1` (`z²`), Wilson–Hilferty otherwise.
fn chi2_critical(df: usize, p: f64) -> f64 {
    if df == 1 {
        let z = normal_quantile(p / 2.0);
        return z * z;
    }
    let k = df as f64;
    let z = normal_quantile(p);
    let c = 2.0 / (9.0 * k);
    k * (1.0 - c + z * c.sqrt()).powi(3)
}

/// A failed test: which one, its statistic and its critical value.
#[derive(Debug)]
struct Rejected {
    what: String,
    statistic: f64,
    critical: f64,
}

/// Two-sample chi-square test of homogeneity of the byte values of `a`
/// and `b` (256 bins; df = non-empty bins − 1), at [`ALPHA`].
fn byte_values_test(what: &str, a: &[u8], b: &[u8]) -> Result<(), Rejected> {
    let (mut ha, mut hb) = ([0f64; 256], [0f64; 256]);
    for &x in a {
        ha[usize::from(x)] += 1.0;
    }
    for &x in b {
        hb[usize::from(x)] += 1.0;
    }
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let (mut stat, mut bins) = (0.0, 0usize);
    for (x, y) in ha.iter().zip(&hb) {
        let t = x + y;
        if t == 0.0 {
            continue;
        }
        bins += 1;
        let (ea, eb) = (t * na / (na + nb), t * nb / (na + nb));
        stat += (x - ea).powi(2) / ea + (y - eb).powi(2) / eb;
    }
    let critical = chi2_critical(bins.saturating_sub(1).max(1), ALPHA);
    if stat > critical {
        return Err(Rejected {
            what: format!("byte values of {what}"),
            statistic: stat,
            critical,
        });
    }
    Ok(())
}

/// For every bit position of equally long samples, the 2×2 chi-square of
/// "bit set" in `a` against `b`; the largest against the Bonferroni
/// critical value for [`ALPHA`] over all positions (constant positions,
/// e.g. the sign bit of a canonical encoding, are skipped).
fn bits_test(what: &str, a: &[Vec<u8>], b: &[Vec<u8>]) -> Result<(), Rejected> {
    let len = a[0].len();
    assert!(a.iter().chain(b).all(|s| s.len() == len));
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let ones = |s: &[Vec<u8>], bit: usize| -> f64 {
        s.iter()
            .filter(|v| v[bit / 8] >> (bit % 8) & 1 == 1)
            .count() as f64
    };
    let (mut worst, mut worst_bit, mut tested) = (0.0, 0, 0usize);
    for bit in 0..len * 8 {
        let (oa, ob) = (ones(a, bit), ones(b, bit));
        let (set, clear) = (oa + ob, na + nb - oa - ob);
        if set == 0.0 || clear == 0.0 {
            continue;
        }
        tested += 1;
        let d = oa * (nb - ob) - ob * (na - oa);
        let stat = (na + nb) * d * d / (na * nb * set * clear);
        if stat > worst {
            (worst, worst_bit) = (stat, bit);
        }
    }
    let critical = chi2_critical(1, ALPHA / tested.max(1) as f64);
    if worst > critical {
        return Err(Rejected {
            what: format!("bit {worst_bit} of {what}"),
            statistic: worst,
            critical,
        });
    }
    Ok(())
}

/// The random parts of sealed terms, grouped: bucket `b`'s ciphertexts,
/// and the proofs (every bit proof and the sum proof).
struct Samples {
    ciphertexts: Vec<Vec<Vec<u8>>>,
    proofs: Vec<Vec<u8>>,
}

/// `terms` split into [`Samples`]; with `leak`, the one-hot vector is
/// written in clear into bit 0 of each ciphertext (always 0 in a canonical
/// ristretto255 encoding: a leak a careless sealer could make).
fn samples(terms: &[(SealedTerms, [u8; B])], leak: bool) -> Samples {
    let mut s = Samples {
        ciphertexts: vec![Vec::new(); B],
        proofs: Vec::new(),
    };
    for (t, hot) in terms {
        assert_eq!(t.bucket_count(), B);
        for (b, ct) in t.ciphertexts().iter().enumerate() {
            let mut bytes = ct.to_bytes().to_vec();
            if leak {
                bytes[0] |= hot[b];
            }
            s.ciphertexts[b].push(bytes);
        }
        s.proofs.push(t.encode()[1 + CIPHERTEXT_LEN * B..].to_vec());
    }
    s
}

/// Every statistical test of run `x` against run `y`; the first rejection.
fn same_distribution(x: &Samples, y: &Samples) -> Result<(), Rejected> {
    let flat = |v: &[Vec<u8>]| v.concat();
    for b in 0..B {
        let what = format!("bucket {b}'s ciphertexts");
        bits_test(&what, &x.ciphertexts[b], &y.ciphertexts[b])?;
        byte_values_test(&what, &flat(&x.ciphertexts[b]), &flat(&y.ciphertexts[b]))?;
    }
    bits_test("the proofs", &x.proofs, &y.proofs)?;
    byte_values_test("the proofs", &flat(&x.proofs), &flat(&y.proofs))
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

/// R-SEAL-60: before a reveal, runs that differ only in the thresholds
/// chosen are the same to every observer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn before_a_reveal_the_log_the_store_and_the_logs_do_not_depend_on_the_thresholds() {
    let first = run(Profile::AllFirst).await;
    let spread = run(Profile::Spread).await;
    let null = run(Profile::AllNull).await;

    // The runs did what they should: every sealed entry in the log. (The
    // server logs little by design: its lines, at trace level, are
    // compared whatever their number.)
    assert_eq!(first.terms.len(), CLIENTS + AMENDMENTS);
    assert!(first.files.len() >= 3, "{:?}", first.files);

    for (name, other) in [("spread", &spread), ("null", &null)] {
        // Exactly the same: what is deterministic.
        assert_eq!(first.shape, other.shape, "entry kinds and lengths ({name})");
        assert_eq!(first.tiles, other.tiles, "tiles and bundles ({name})");
        assert_eq!(first.files, other.files, "data folder ({name})");
        assert_eq!(first.log, other.log, "server log lines, masked ({name})");
        assert_eq!(first.campaign, other.campaign, "campaign object ({name})");
        // The same in distribution: the ciphertexts and proofs.
        let (x, y) = (samples(&first.terms, false), samples(&other.terms, false));
        if let Err(r) = same_distribution(&x, &y) {
            panic!(
                "all-first against {name}: {} differ (chi-square {} > {})",
                r.what, r.statistic, r.critical
            );
        }
        // The same tests on the same bytes with the thresholds in clear
        // (planted into bit 0 of each ciphertext) must fail: they have the
        // power to see such a leak with this many clients.
        let (x, y) = (samples(&first.terms, true), samples(&other.terms, true));
        assert!(
            same_distribution(&x, &y).is_err(),
            "the planted leak went unseen (all-first against {name})"
        );
    }
}

/// Unit check of the statistics, without a server: honest sealed terms of
/// different choices pass, the same terms with the one-hot vector in clear
/// are rejected, and so are terms of another kind of leak (bucket 0 sealed
/// under a different key, an encoding difference a byte histogram sees).
#[test]
fn the_statistics_pass_honest_terms_and_catch_a_planted_leak() {
    let mut rng = StdRng::seed_from_u64(60);
    let key = |rng: &mut StdRng| {
        let kp = pledge_protocol::dkg::TrusteeKeyPair::generate(rng);
        JointPublicKey::from_bytes(kp.public_key().to_bytes()).unwrap()
    };
    let joint = key(&mut rng);
    let seal = |profile: Profile, rng: &mut StdRng| -> Vec<(SealedTerms, [u8; B])> {
        (0..CLIENTS)
            .map(|i| {
                let ctx = SealContext {
                    campaign: [60; 32],
                    nullifier: [u8::try_from(i).unwrap(); 32],
                    seq: 0,
                    pledge_key: [7; 32],
                };
                let c = profile.pledge(i);
                (
                    SealedTerms::seal(&ctx, &joint, B, c, rng).unwrap(),
                    one_hot(c),
                )
            })
            .collect()
    };
    let first = seal(Profile::AllFirst, &mut rng);
    let spread = seal(Profile::Spread, &mut rng);
    let null = seal(Profile::AllNull, &mut rng);
    for (name, other) in [("spread", &spread), ("null", &null)] {
        same_distribution(&samples(&first, false), &samples(other, false))
            .unwrap_or_else(|r| panic!("honest terms rejected ({name}): {r:?}"));
        let r = same_distribution(&samples(&first, true), &samples(other, true)).unwrap_err();
        assert!(r.statistic > r.critical, "{r:?}");
    }
    // A byte-level leak: constant bytes where random bytes belong.
    let mut x = samples(&spread, false);
    for v in &mut x.ciphertexts[2] {
        v[5..13].fill(0);
    }
    assert!(same_distribution(&samples(&first, false), &x).is_err());
    // The masking keeps words and drops what is random or a time.
    assert_eq!(
        mask(
            "2026-12-06T22:42:23.123Z INFO batch committed entries=3 root=9f86d081884c7d65 in 1.2ms"
        ),
        mask(
            "2026-12-07T01:02:03.999Z INFO batch committed entries=7 root=0123456789abcdef in 17ms"
        )
    );
    assert_ne!(
        mask("INFO sealed pledge bucket=low"),
        mask("INFO sealed pledge bucket=high")
    );
}
