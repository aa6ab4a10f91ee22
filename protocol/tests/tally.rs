//! Tally tests: known answers, the campaign page's "N more" vectors for every
//! threshold, statement and final-tally vectors, failure vectors, and property
//! tests of the incremental tally against brute force.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use pledge_protocol::codec::{Reader, Writer};
use pledge_protocol::hash::CampaignId;
use pledge_protocol::tally::{
    MAX_LIVE, MAX_THRESHOLD, NextActivation, Tally, TallyError, TallySnapshot, TallyStatement,
    recompute_active,
};
use proptest::prelude::*;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::PathBuf;

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

fn load<T: for<'de> Deserialize<'de>>(name: &str) -> T {
    let path = vectors_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

// ---------------------------------------------------------------------------
// Brute force straight from the definition (DESIGN §5)
// ---------------------------------------------------------------------------

/// `counts[t]` = live pledges with threshold `t`; index 0 unused.
fn brute_active(counts: &[u64]) -> u64 {
    let live: u64 = counts.iter().sum();
    (0..=live)
        .filter(|&m| {
            let at_most: u64 = counts
                .iter()
                .enumerate()
                .filter(|&(t, _)| t as u64 <= m)
                .map(|(_, c)| *c)
                .sum();
            at_most >= m
        })
        .max()
        .unwrap_or(0)
}

/// Smallest waiting threshold and the least k pledges at it that activate it,
/// by trying k = 1, 2, …
fn brute_next(counts: &[u64]) -> Option<NextActivation> {
    let active = brute_active(counts);
    let threshold = (1..counts.len()).find(|&t| counts[t] > 0 && t as u64 > active)?;
    let mut more = counts.to_vec();
    for k in 1.. {
        more[threshold] += 1;
        if brute_active(&more) >= threshold as u64 {
            // Placing the k pledges lower (at threshold 1) does not do better
            // with one fewer.
            let mut low = counts.to_vec();
            low[1] += k - 1;
            assert!(brute_active(&low) < threshold as u64);
            return Some(NextActivation {
                threshold: threshold as u32,
                more_needed: k,
            });
        }
    }
    unreachable!()
}

fn buckets_of(counts: &[u64]) -> Vec<(u32, u64)> {
    counts
        .iter()
        .enumerate()
        .filter(|&(_, &c)| c > 0)
        .map(|(t, &c)| (t as u32, c))
        .collect()
}

fn kind(e: &TallyError) -> &'static str {
    match e {
        TallyError::NotAscending(_) => "not_ascending",
        TallyError::ZeroCount(_) => "zero_count",
        TallyError::LiveMismatch { .. } => "live_mismatch",
        TallyError::ActiveMismatch { .. } => "active_mismatch",
        TallyError::ThresholdOutOfRange { .. } => "threshold_out_of_range",
        TallyError::TooManyPledges => "too_many_pledges",
        TallyError::TooManyBuckets => "too_many_buckets",
        TallyError::BadOrigin(_) => "bad_origin",
        TallyError::Malformed { .. } => "malformed",
        TallyError::Decode(pledge_protocol::codec::DecodeError::Truncated { .. }) => "truncated",
        TallyError::Decode(pledge_protocol::codec::DecodeError::TrailingBytes(_)) => {
            "trailing_bytes"
        }
        _ => "other",
    }
}

// ---------------------------------------------------------------------------
// Known answers
// ---------------------------------------------------------------------------

#[derive(Deserialize)]
struct KnownAnswers {
    vectors: Vec<KnownAnswer>,
}

#[derive(Deserialize)]
struct KnownAnswer {
    name: String,
    thresholds: Vec<u32>,
    histogram: Vec<(u32, u64)>,
    live: u64,
    active: u64,
    next_activation: Option<(u32, u64)>,
    #[allow(dead_code)]
    reasoning: String,
}

#[test]
fn known_answers() {
    let v: KnownAnswers = load("tally_known_answers.json");
    assert!(v.vectors.len() >= 10);
    for ka in &v.vectors {
        let name = &ka.name;
        // Built pledge by pledge, over a domain wide enough for every threshold.
        let mut tally = Tally::new(100).unwrap();
        for &t in &ka.thresholds {
            tally.add(t).unwrap();
        }
        assert_eq!(tally.live(), ka.live, "{name}");
        assert_eq!(tally.active(), ka.active, "{name}");
        assert_eq!(
            tally.histogram().collect::<Vec<_>>(),
            ka.histogram,
            "{name}"
        );
        assert_eq!(recompute_active(&ka.histogram), ka.active, "{name}");
        assert_eq!(
            tally.next_activation(),
            ka.next_activation
                .map(|(threshold, more_needed)| NextActivation {
                    threshold,
                    more_needed
                }),
            "{name}"
        );
        // Exactly A pledges are activated (#{t ≤ A} = A).
        let activated = ka
            .thresholds
            .iter()
            .filter(|&&t| tally.activated(t))
            .count() as u64;
        assert_eq!(activated, ka.active, "{name}");
        assert_eq!(tally.count_at_most(100), ka.live, "{name}");
        // The same tally from its histogram, and as a snapshot.
        let rebuilt = Tally::from_histogram(100, ka.histogram.iter().copied()).unwrap();
        assert_eq!(rebuilt.active(), ka.active, "{name}");
        let snap = TallySnapshot::from_buckets(ka.histogram.clone()).unwrap();
        assert_eq!((snap.live(), snap.active()), (ka.live, ka.active), "{name}");
        assert_eq!(tally.snapshot().unwrap(), snap, "{name}");
    }
}

// ---------------------------------------------------------------------------
// "N more needed" for every threshold (the campaign page's number)
// ---------------------------------------------------------------------------

/// The least `k` such that `k` more pledges at threshold `t` make `A ≥ t`,
/// found by trying `k = 0, 1, …` on the definition (R-TALLY-2); checks that
/// `k − 1` pledges placed lower (at threshold 1, which counts for every `m`)
/// do not do it either, so no placement of fewer pledges does.
fn brute_more_needed(counts: &[u64], t: usize) -> u64 {
    let mut more = counts.to_vec();
    for k in 0.. {
        if brute_active(&more) >= t as u64 {
            if k > 0 {
                let mut low = counts.to_vec();
                low[1] += k - 1;
                assert!(brute_active(&low) < t as u64);
            }
            return k;
        }
        more[t] += 1;
    }
    unreachable!()
}

/// A small deterministic generator (xorshift64*), so the vectors need no
/// random-number crate and regenerate identically.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// The campaigns of `tally_more_needed.json`: `(name, t_max, counts)` with
/// `counts[t]` live pledges at threshold `t`.
fn more_needed_campaigns() -> Vec<(String, usize, Vec<u64>)> {
    let mut out = Vec::new();
    // Issue 14's page: 40 declared, A = 26, the pledger waits at 28 with one at
    // 29; one more pledge at 28 or lower activates both (28 − A says 2).
    let mut issue = vec![0u64; 61];
    for t in [
        1, 2, 3, 5, 5, 8, 10, 10, 10, 12, 15, 15, 18, 20, 20, 20, 21, 22, 24, 25, 25, 26, 26, 26,
        26, 26,
    ] {
        issue[t] += 1;
    }
    for t in [28, 29, 35, 40, 40, 40, 45, 50, 50, 50, 55, 60, 60, 60] {
        issue[t] += 1;
    }
    out.push(("issue14_page".to_owned(), 60, issue));
    // {3, 4, 4}: the pledger at 3 needs 1 more (at m = 4), not 3 − #{t ≤ 3} = 2.
    let mut dense = vec![0u64; 9];
    dense[3] = 1;
    dense[4] = 2;
    out.push(("best_beyond_own_threshold".to_owned(), 8, dense));
    // Generated campaigns: half the pledges spread over the range, half near a
    // focal threshold, so that groups form and break.
    for seed in 1..=6u64 {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ seed.wrapping_mul(0xA24B_AED4_963E_E407));
        let t_max = 20 + rng.below(50) as usize;
        let n = t_max as u64 / 3 + rng.below(t_max as u64);
        let focal = 1 + rng.below(t_max as u64) as usize;
        let mut counts = vec![0u64; t_max + 1];
        for _ in 0..n {
            let t = if rng.below(2) == 0 {
                1 + rng.below(t_max as u64) as usize
            } else {
                let near = focal + rng.below(7) as usize;
                near.saturating_sub(3).clamp(1, t_max)
            };
            counts[t] += 1;
        }
        out.push((format!("generated_seed_{seed}"), t_max, counts));
    }
    out
}

/// `tally_more_needed.json`: for generated campaigns, the number of further
/// pledges that activates a pledge of threshold `t`, for every `t` in
/// `1..=t_max` (the campaign page's "N more" in the chart and in "Your
/// pledge", SPEC R-WEB-13), from brute force. The browser suite checks the
/// page's `moreNeeded` against every entry. When the file is missing or
/// differs, this writes `tally_more_needed-new.json` for review and fails; it
/// never overwrites the file in place.
#[test]
fn more_needed_vectors() {
    let mut vectors = Vec::new();
    for (name, t_max, counts) in more_needed_campaigns() {
        let histogram = buckets_of(&counts);
        let tally = Tally::from_histogram(t_max as u32, histogram.iter().copied()).unwrap();
        let active = brute_active(&counts);
        assert_eq!(tally.active(), active, "{name}");
        let more: Vec<u64> = (1..=t_max).map(|t| brute_more_needed(&counts, t)).collect();
        for (t, &k) in (1..=t_max).zip(&more) {
            // Zero exactly for the activated thresholds (t ≤ A).
            assert_eq!(k == 0, tally.activated(t as u32), "{name} t={t}");
        }
        // The chart's next activation (R-TALLY-3) is this number at t*.
        let next = tally.next_activation();
        assert_eq!(next, brute_next(&counts), "{name}");
        if let Some(n) = next {
            assert_eq!(more[n.threshold as usize - 1], n.more_needed, "{name}");
        }
        vectors.push(serde_json::json!({
            "name": name,
            "t_max": t_max,
            "histogram": histogram,
            "live": tally.live(),
            "active": active,
            "next_activation": next.map(|n| (n.threshold, n.more_needed)),
            "more_needed": more,
        }));
    }
    // Most campaigns have pledges waiting, so there are numbers to disagree on.
    let waiting = vectors
        .iter()
        .filter(|v| !v["next_activation"].is_null())
        .count();
    assert!(waiting >= 6, "{waiting} campaigns with waiting pledges");
    // Issue 14's page: the pledger at 28 needs what the chart says at 28.
    let issue = &vectors[0];
    assert_eq!(issue["live"], 40);
    assert_eq!(issue["active"], 26);
    assert_eq!(issue["next_activation"], serde_json::json!([28, 1]));
    assert_eq!(issue["more_needed"][27], 1);
    let want = serde_json::json!({
        "source": "pledge project: protocol/tests/tally.rs more_needed_vectors, by brute force from R-TALLY-2 (adding k pledges at t for k = 0, 1, ... until A >= t)",
        "description": "more_needed[i] is how many more pledges (at threshold t = i + 1 or lower) make A >= t, counting the histogram as it is (a pledger's own pledge included): 0 when t <= A. At t* it is R-TALLY-3's k.",
        "vectors": vectors,
    });
    let path = vectors_dir().join("tally_more_needed.json");
    let have: Option<serde_json::Value> = std::fs::read_to_string(&path)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok());
    if have.as_ref() != Some(&want) {
        let new = vectors_dir().join("tally_more_needed-new.json");
        std::fs::write(&new, serde_json::to_string_pretty(&want).unwrap() + "\n").unwrap();
        panic!(
            "{} is missing or differs from the brute force: review {} and rename it",
            path.display(),
            new.display()
        );
    }
}

// ---------------------------------------------------------------------------
// Valid statements and final tallies
// ---------------------------------------------------------------------------

#[derive(Deserialize)]
struct ValidStatements {
    vectors: Vec<ValidStatement>,
}

#[derive(Deserialize)]
struct ValidStatement {
    name: String,
    origin: String,
    campaign_id: String,
    checkpoint_size: String,
    histogram: Vec<(u32, u64)>,
    live: u64,
    active: u64,
    body: String,
    binary_hex: String,
    digest_hex: String,
}

#[test]
fn statement_vectors() {
    let v: ValidStatements = load("tally_statement_valid.json");
    assert!(!v.vectors.is_empty());
    for sv in &v.vectors {
        let name = &sv.name;
        let size: u64 = sv.checkpoint_size.parse().unwrap();
        let campaign = CampaignId::from_hex(&sv.campaign_id).unwrap();
        let snap = TallySnapshot::from_buckets(sv.histogram.clone()).unwrap();
        assert_eq!((snap.live(), snap.active()), (sv.live, sv.active), "{name}");

        // Text: exact bytes both ways.
        let st = TallyStatement::new(&sv.origin, size, campaign, snap.clone()).unwrap();
        assert_eq!(st.to_note_body(), sv.body, "{name}");
        let parsed = TallyStatement::parse_note_body(&sv.body).unwrap();
        assert_eq!(parsed, st, "{name}");
        assert_eq!(parsed.origin(), sv.origin);
        assert_eq!(parsed.checkpoint_size(), size);
        assert_eq!(parsed.campaign(), &campaign);
        assert_eq!((parsed.live(), parsed.active()), (sv.live, sv.active));

        // Binary: exact bytes both ways, standalone and inside a larger value.
        let bytes = hex::decode(&sv.binary_hex).unwrap();
        assert_eq!(snap.to_bytes(), bytes, "{name}");
        assert_eq!(TallySnapshot::from_bytes(&bytes).unwrap(), snap, "{name}");
        let mut w = Writer::new();
        w.u8(0xAA);
        snap.encode_into(&mut w);
        w.u8(0xBB);
        let framed = w.into_bytes();
        let mut r = Reader::new(&framed);
        assert_eq!(r.u8("pre").unwrap(), 0xAA);
        assert_eq!(TallySnapshot::decode_from(&mut r).unwrap(), snap);
        assert_eq!(r.u8("post").unwrap(), 0xBB);
        r.finish().unwrap();
        assert_eq!(snap.digest().to_hex(), sv.digest_hex, "{name}");
    }
}

// ---------------------------------------------------------------------------
// Failure vectors
// ---------------------------------------------------------------------------

#[derive(Deserialize)]
struct FailureFile {
    #[allow(dead_code)]
    description: String,
    cases: Vec<FailureCase>,
}

#[derive(Deserialize)]
struct FailureCase {
    name: String,
    text: Option<String>,
    binary_hex: Option<String>,
    error: String,
}

const FAILURE_FILES: &[&str] = &[
    "tally_active_wrong",
    "tally_crlf",
    "tally_empty_line",
    "tally_histogram_not_ascending",
    "tally_leading_zero",
    "tally_live_mismatch",
    "tally_live_overflow",
    "tally_missing_final_newline",
    "tally_plus_sign",
    "tally_threshold_too_large",
    "tally_threshold_zero",
    "tally_trailing_garbage",
    "tally_truncated",
    "tally_uppercase_campaign_id",
    "tally_wrong_first_line",
    "tally_zero_count",
];

#[test]
fn failure_vectors() {
    // Every tally_*.json file is either a known-good file or listed here, and
    // every listed file exists: no vector file goes unread.
    let on_disk: BTreeSet<String> = std::fs::read_dir(vectors_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("tally_") && n.ends_with(".json"))
        .map(|n| n.trim_end_matches(".json").to_owned())
        .filter(|n| {
            !matches!(
                n.as_str(),
                "tally_known_answers" | "tally_statement_valid" | "tally_more_needed"
            )
        })
        .collect();
    let listed: BTreeSet<String> = FAILURE_FILES.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(on_disk, listed);

    let mut checked = 0;
    for file in FAILURE_FILES {
        let f: FailureFile = load(&format!("{file}.json"));
        assert!(!f.cases.is_empty(), "{file}");
        for case in &f.cases {
            let label = format!("{file}/{}", case.name);
            let err = match (&case.text, &case.binary_hex) {
                (Some(text), None) => TallyStatement::parse_note_body(text).unwrap_err(),
                (None, Some(h)) => {
                    let bytes = hex::decode(h).unwrap();
                    // The codec-level decoder refuses it too.
                    let mut r = Reader::new(&bytes);
                    assert!(
                        TallySnapshot::decode_from(&mut r)
                            .and_then(|_| r.finish())
                            .is_err(),
                        "{label}"
                    );
                    TallySnapshot::from_bytes(&bytes).unwrap_err()
                }
                _ => panic!("{label}: exactly one of text / binary_hex"),
            };
            assert_eq!(kind(&err), case.error, "{label}: {err}");
            checked += 1;
        }
    }
    assert!(checked >= 30, "{checked}");
}

// ---------------------------------------------------------------------------
// Unit-level behaviour through the public API
// ---------------------------------------------------------------------------

#[test]
fn errors_leave_the_tally_unchanged() {
    let mut t = Tally::new(10).unwrap();
    for th in [2, 2, 3, 7] {
        t.add(th).unwrap();
    }
    let before: Vec<_> = t.histogram().collect();
    assert_eq!(
        t.add(0),
        Err(TallyError::ThresholdOutOfRange { t: 0, t_max: 10 })
    );
    assert_eq!(
        t.add(11),
        Err(TallyError::ThresholdOutOfRange { t: 11, t_max: 10 })
    );
    assert_eq!(t.remove(5), Err(TallyError::NoLivePledge(5)));
    assert_eq!(t.amend(5, 2), Err(TallyError::NoLivePledge(5)));
    assert_eq!(
        t.amend(2, 0),
        Err(TallyError::ThresholdOutOfRange { t: 0, t_max: 10 })
    );
    assert_eq!(t.histogram().collect::<Vec<_>>(), before);
    t.amend(2, 2).unwrap();
    assert_eq!(t.histogram().collect::<Vec<_>>(), before);
    t.amend(7, 3).unwrap();
    assert_eq!(t.histogram().collect::<Vec<_>>(), vec![(2, 2), (3, 2)]);
    assert_eq!(t.active(), 4);
}

#[test]
fn from_histogram_validates() {
    assert_eq!(
        Tally::from_histogram(10, [(3, 1), (2, 1)]).unwrap_err(),
        TallyError::NotAscending(2)
    );
    assert_eq!(
        Tally::from_histogram(10, [(3, 1), (3, 1)]).unwrap_err(),
        TallyError::NotAscending(3)
    );
    assert_eq!(
        Tally::from_histogram(10, [(3, 0)]).unwrap_err(),
        TallyError::ZeroCount(3)
    );
    assert_eq!(
        Tally::from_histogram(10, [(11, 1)]).unwrap_err(),
        TallyError::ThresholdOutOfRange { t: 11, t_max: 10 }
    );
    assert_eq!(
        Tally::from_histogram(10, [(1, MAX_LIVE), (2, 1)]).unwrap_err(),
        TallyError::TooManyPledges
    );
    let mut full = Tally::from_histogram(10, [(1, MAX_LIVE)]).unwrap();
    assert_eq!(full.active(), MAX_LIVE);
    assert_eq!(full.add(1), Err(TallyError::TooManyPledges));
    assert_eq!(full.live(), MAX_LIVE);
    let snap = TallySnapshot::from_buckets(vec![(1, MAX_LIVE)]).unwrap();
    assert_eq!(Tally::from_snapshot(10, &snap).unwrap().live(), MAX_LIVE);
    assert_eq!(
        Tally::from_snapshot(0, &snap).unwrap_err(),
        TallyError::BadThresholdBound(0)
    );
}

#[test]
fn extreme_domain() {
    let mut t = Tally::new(MAX_THRESHOLD).unwrap();
    t.add(MAX_THRESHOLD).unwrap();
    t.add(1).unwrap();
    assert_eq!(t.active(), 1);
    assert_eq!(
        t.next_activation(),
        Some(NextActivation {
            threshold: MAX_THRESHOLD,
            more_needed: u64::from(MAX_THRESHOLD) - 2
        })
    );
    assert_eq!(t.count_at(MAX_THRESHOLD), 1);
    assert_eq!(t.count_at(MAX_THRESHOLD + 1), 0);
    assert_eq!(t.count_at(0), 0);
    assert_eq!(t.count_at_most(MAX_THRESHOLD - 1), 1);
    let st = TallyStatement::new("o", 1, CampaignId([0; 32]), t.snapshot().unwrap()).unwrap();
    assert_eq!(
        TallyStatement::parse_note_body(&st.to_note_body()).unwrap(),
        st
    );
}

#[test]
fn origin_rules() {
    let c = CampaignId([7; 32]);
    for bad in ["", "a\nb", "a\tb", &"x".repeat(1025)] {
        assert!(matches!(
            TallyStatement::new(bad, 0, c, TallySnapshot::empty()),
            Err(TallyError::BadOrigin(_))
        ));
    }
    // An origin that itself ends in the suffix is unambiguous: only the last
    // `/tally/v1` is stripped.
    let st = TallyStatement::new("a/tally/v1", 3, c, TallySnapshot::empty()).unwrap();
    let body = st.to_note_body();
    assert!(body.starts_with("a/tally/v1/tally/v1\n"));
    assert_eq!(
        TallyStatement::parse_note_body(&body).unwrap().origin(),
        "a/tally/v1"
    );
}

// ---------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    Add(u32),
    Remove(u32),
    Amend(u32, u32),
}

fn op(max: u32) -> impl Strategy<Value = Op> {
    // Thresholds one past each end of the domain exercise the range errors.
    prop_oneof![
        3 => (0..=max + 1).prop_map(Op::Add),
        2 => (0..=max + 1).prop_map(Op::Remove),
        1 => (0..=max + 1, 0..=max + 1).prop_map(|(a, b)| Op::Amend(a, b)),
    ]
}

fn small_case() -> impl Strategy<Value = (u32, Vec<Op>)> {
    (1u32..=12).prop_flat_map(|max| (Just(max), prop::collection::vec(op(max), 0..60)))
}

fn snapshot_strategy() -> impl Strategy<Value = TallySnapshot> {
    prop::collection::btree_map(1..=MAX_THRESHOLD, 1..=u64::from(u32::MAX), 0..20)
        .prop_map(|m| TallySnapshot::from_buckets(m.into_iter().collect()).unwrap())
}

fn statement_strategy() -> impl Strategy<Value = TallyStatement> {
    (
        "[a-z0-9./-]{1,40}",
        any::<u64>(),
        any::<[u8; 32]>(),
        snapshot_strategy(),
    )
        .prop_map(|(origin, size, id, snap)| {
            TallyStatement::new(&origin, size, CampaignId(id), snap).unwrap()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Random add/remove/amend sequences on a small domain: the incremental
    /// tally agrees with a model, with the from-scratch recompute and with the
    /// brute-force definition after every step; errors change nothing.
    #[test]
    fn incremental_matches_brute_force((max, ops) in small_case()) {
        let mut tally = Tally::new(max).unwrap();
        let mut model = vec![0u64; max as usize + 1];
        let valid = |t: u32| t >= 1 && t <= max;
        for op in ops {
            match op {
                Op::Add(t) => {
                    let r = tally.add(t);
                    prop_assert_eq!(r.is_ok(), valid(t));
                    if valid(t) { model[t as usize] += 1; }
                }
                Op::Remove(t) => {
                    let ok = valid(t) && model[t as usize] > 0;
                    prop_assert_eq!(tally.remove(t).is_ok(), ok);
                    if ok { model[t as usize] -= 1; }
                }
                Op::Amend(a, b) => {
                    let ok = valid(a) && valid(b) && model[a as usize] > 0;
                    prop_assert_eq!(tally.amend(a, b).is_ok(), ok);
                    if ok { model[a as usize] -= 1; model[b as usize] += 1; }
                }
            }
            let buckets = buckets_of(&model);
            let want = brute_active(&model);
            prop_assert_eq!(tally.live(), model.iter().sum::<u64>());
            prop_assert_eq!(tally.distinct(), buckets.len() as u64);
            prop_assert_eq!(tally.active(), want);
            prop_assert_eq!(recompute_active(&buckets), want);
            prop_assert_eq!(tally.histogram().collect::<Vec<_>>(), buckets);
            prop_assert_eq!(tally.next_activation(), brute_next(&model));
            for t in 0..=max + 1 {
                let exact = if valid(t) { model[t as usize] } else { 0 };
                prop_assert_eq!(tally.count_at(t), exact);
                let at_most: u64 = model.iter().take(t as usize + 1).sum();
                prop_assert_eq!(tally.count_at_most(t), at_most);
                prop_assert_eq!(tally.activated(t), t >= 1 && u64::from(t) <= want);
            }
        }
    }

    /// Wide, sparse domains: incremental == recompute, and the tally rebuilt
    /// from its own histogram is identical.
    #[test]
    fn wide_domain_matches_recompute(
        t_max in 1u32..=MAX_THRESHOLD,
        raw in prop::collection::vec((any::<u32>(), any::<bool>()), 1..200),
    ) {
        let mut tally = Tally::new(t_max).unwrap();
        let mut live: Vec<u32> = Vec::new();
        for (x, remove) in raw {
            if remove && !live.is_empty() {
                let t = live.swap_remove(x as usize % live.len());
                tally.remove(t).unwrap();
            } else {
                // Bias towards few distinct values so groups actually form.
                let t = if x % 2 == 0 { 1 + x % 8 } else { 1 + x % t_max };
                let t = t.min(t_max);
                tally.add(t).unwrap();
                live.push(t);
            }
        }
        let hist: Vec<_> = tally.histogram().collect();
        let flat: Vec<(u32, u64)> = live.iter().map(|&t| (t, 1)).collect();
        prop_assert_eq!(tally.active(), recompute_active(&flat));
        prop_assert_eq!(recompute_active(&hist), recompute_active(&flat));
        let rebuilt = Tally::from_histogram(t_max, hist.iter().copied()).unwrap();
        prop_assert_eq!(rebuilt.histogram().collect::<Vec<_>>(), hist);
        prop_assert_eq!(rebuilt.active(), tally.active());
        prop_assert_eq!(rebuilt.next_activation(), tally.next_activation());
    }

    /// next_activation on wide domains: adding `more_needed` pledges at the
    /// threshold activates it, one fewer does not.
    #[test]
    fn next_activation_is_least(
        buckets in prop::collection::btree_map(1u32..=5_000, 1u64..=50, 1..40),
    ) {
        let tally = Tally::from_histogram(5_000, buckets.clone()).unwrap();
        if let Some(NextActivation { threshold, more_needed }) = tally.next_activation() {
            prop_assert!(u64::from(threshold) > tally.active());
            prop_assert!(tally.count_at(threshold) > 0);
            prop_assert!(more_needed >= 1);
            let with = |k: u64| {
                let mut t = tally.clone();
                for _ in 0..k { t.add(threshold).unwrap(); }
                t.active()
            };
            prop_assert!(with(more_needed) >= u64::from(threshold));
            prop_assert!(with(more_needed - 1) < u64::from(threshold));
        } else {
            prop_assert!(buckets.keys().all(|&t| u64::from(t) <= tally.active()));
        }
    }

    /// Text and binary round trips.
    #[test]
    fn statement_round_trips(st in statement_strategy()) {
        let body = st.to_note_body();
        prop_assert_eq!(TallyStatement::parse_note_body(&body).unwrap(), st.clone());
        let bytes = st.snapshot().to_bytes();
        prop_assert_eq!(&TallySnapshot::from_bytes(&bytes).unwrap(), st.snapshot());
    }

    /// Canonical text: any altered body is either rejected or is itself exactly
    /// the serialisation of what it parses to (one text per statement).
    #[test]
    fn altered_text_is_rejected_or_canonical(
        st in statement_strategy(),
        pos in any::<prop::sample::Index>(),
        byte in prop::sample::select(b"0123456789 \nabcdef+-/".to_vec()),
        insert in any::<bool>(),
    ) {
        let mut body = st.to_note_body().into_bytes();
        let i = pos.index(body.len() + 1);
        if insert {
            body.insert(i, byte);
        } else if i < body.len() {
            body[i] = byte;
        } else {
            body.pop();
        }
        let body = String::from_utf8(body).unwrap();
        if let Ok(parsed) = TallyStatement::parse_note_body(&body) {
            prop_assert_eq!(parsed.to_note_body(), body);
        }
    }

    /// Canonical binary: a flipped bit is rejected unless the result is the
    /// exact encoding of another valid tally.
    #[test]
    fn flipped_bit_binary_is_rejected_or_canonical(
        snap in snapshot_strategy(),
        bit in any::<prop::sample::Index>(),
    ) {
        let mut bytes = snap.to_bytes();
        let b = bit.index(bytes.len() * 8);
        bytes[b / 8] ^= 1 << (b % 8);
        if let Ok(other) = TallySnapshot::from_bytes(&bytes) {
            prop_assert_ne!(&other, &snap);
            prop_assert_eq!(other.to_bytes(), bytes);
        }
        // Truncation anywhere is rejected.
        let full = snap.to_bytes();
        let cut = bit.index(full.len());
        prop_assert!(TallySnapshot::from_bytes(&full[..cut]).is_err());
    }
}
