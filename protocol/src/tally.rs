//! Tallies: the histogram of live thresholds, the active count, and the tally
//! statements the log signs (DESIGN §5, SPEC R-TALLY-1…R-TALLY-11).
//!
//! A live pledge carries a threshold `t` ("I act if at least `t` people act, me
//! included"). The *active count* is
//! `A = max { m ≥ 0 : #{live pledges with t ≤ m} ≥ m }`, the largest group in
//! which every member's condition holds; a pledge is *activated* when `t ≤ A`.
//!
//! - [`Tally`]: the incremental per-campaign tally the ledger keeps. Every change
//!   and every query costs `O(log T)` (`T` = threshold domain), whatever the
//!   number of pledges or of distinct thresholds.
//! - [`TallySnapshot`]: an immutable, validated histogram with its live and
//!   active counts, and its canonical binary encoding (the final tally of a
//!   `CampaignClosed` entry).
//! - [`TallyStatement`]: the text body of a signed note binding a snapshot to a
//!   campaign and a checkpoint size.
//! - [`recompute_active`]: the simple from-scratch computation auditors use.
//!
//! # How the incremental tally works
//!
//! A sparse segment tree over `[1, t_max]`. Every range `[lo, hi]` has a
//! summary: `sum`, the live count in the range, and
//! `best = max over m in [lo, hi] of (count in [lo, m]) − m`. An empty range has
//! `best = −lo`; two halves combine as `best = max(best_left, sum_left +
//! best_right)`. The active count is the rightmost `m` with
//! `prefix(m) − m ≥ 0`, found by one right-first descent.
//!
//! Storage: a range is `Empty`, `Single(t)` (one distinct threshold, kept inline
//! in its parent) or an internal node in an arena (`Vec` plus free list, arena
//! indices instead of boxes) that stores the summaries of both halves. So an
//! update touches one node per level and never a sibling, and the arena holds
//! fewer nodes than there are distinct live thresholds plus the chains where two
//! thresholds share a long range prefix; nodes are freed as soon as their range
//! falls back to one threshold.
//!
//! All arithmetic is in `i64` on values bounded by [`MAX_LIVE`] (2^53 − 1) and
//! [`MAX_THRESHOLD`] (10^8), so nothing can overflow.

use crate::checkpoint::parse_decimal;
use crate::codec::{Decode, DecodeError, Reader, Writer};
use crate::hash::{CampaignId, Hash, sha256};
use std::fmt;

/// Largest threshold bound a campaign may declare (`t_max`). SPEC R-TALLY-1.
pub const MAX_THRESHOLD: u32 = 100_000_000;
/// Largest number of live pledges one tally counts: 2^53 − 1, so every count is
/// exact in a JavaScript number (web pages render these). SPEC R-TALLY-1.
pub const MAX_LIVE: u64 = (1 << 53) - 1;
/// Largest number of non-zero buckets a snapshot, a statement or a final tally
/// may carry. SPEC R-TALLY-5.
pub const MAX_BUCKETS: usize = 1 << 20;
/// Suffix appended to the log origin to form a statement's first line. SPEC R-TALLY-7.
pub const STATEMENT_FIRST_LINE_SUFFIX: &str = "/tally/v1";
/// Longest origin, in bytes, a statement accepts. SPEC R-TALLY-7.
pub const MAX_ORIGIN_LEN: usize = 1024;
/// Domain tag of [`TallySnapshot::digest`]. SPEC R-TALLY-10.
pub const SNAPSHOT_DIGEST_TAG: &[u8] = b"pledge/v1/tally-snapshot";

/// Why a tally operation, a snapshot or a statement was refused. Each variant
/// says what the caller should fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TallyError {
    /// `t_max` must lie in `1..=MAX_THRESHOLD`. SPEC R-TALLY-1.
    #[error("threshold bound t_max = {0} is outside 1..=100000000")]
    BadThresholdBound(u32),
    /// A threshold outside `1..=t_max`. SPEC R-TALLY-1.
    #[error("threshold {t} is outside 1..={t_max}")]
    ThresholdOutOfRange {
        /// The threshold given.
        t: u32,
        /// The upper bound in force.
        t_max: u32,
    },
    /// `remove`/`amend` named a threshold no live pledge has.
    #[error("no live pledge has threshold {0}")]
    NoLivePledge(u32),
    /// The live count would exceed [`MAX_LIVE`]. SPEC R-TALLY-1.
    #[error("live pledge count would exceed 2^53 - 1")]
    TooManyPledges,
    /// More than [`MAX_BUCKETS`] non-zero buckets. SPEC R-TALLY-5.
    #[error("histogram has more than 1048576 non-zero buckets")]
    TooManyBuckets,
    /// A histogram bucket with count 0. SPEC R-TALLY-5.
    #[error("histogram bucket for threshold {0} has count 0")]
    ZeroCount(u32),
    /// Thresholds not strictly ascending (out of order or repeated). SPEC R-TALLY-5.
    #[error("histogram thresholds are not strictly ascending at threshold {0}")]
    NotAscending(u32),
    /// The origin is empty, too long or contains a control character. SPEC R-TALLY-7.
    #[error("log origin is invalid: {0}")]
    BadOrigin(&'static str),
    /// A statement line does not have the required form. SPEC R-TALLY-8.
    #[error("tally statement line {line}: {reason}")]
    Malformed {
        /// 1-based line number in the note body.
        line: usize,
        /// What the line should have been.
        reason: &'static str,
    },
    /// The stated live count is not the sum of the histogram. SPEC R-TALLY-5.
    #[error("stated live count {stated} differs from the histogram's {computed}")]
    LiveMismatch {
        /// Value in the input.
        stated: u64,
        /// Sum of the bucket counts.
        computed: u64,
    },
    /// The stated active count is not the one the histogram gives. SPEC R-TALLY-5.
    #[error("stated active count {stated} differs from the histogram's {computed}")]
    ActiveMismatch {
        /// Value in the input.
        stated: u64,
        /// Value recomputed from the histogram (R-TALLY-2).
        computed: u64,
    },
    /// The node arena cannot grow further (about 4 billion nodes).
    #[error("tally index is full")]
    CapacityExhausted,
    /// A binary tally is truncated or followed by trailing bytes. SPEC R-TALLY-6.
    #[error("binary tally: {0}")]
    Decode(#[from] DecodeError),
    /// A support amount that is not a level of the campaign's menu (or a
    /// menu that is not strictly ascending). SPEC R-CAMP-5, R-FUND-3.
    #[error("support amount {0} is not one of the campaign's support levels")]
    NotOnMenu(u64),
    /// `remove`/`amend` named terms no live pledge of a funding tally has.
    #[error("no live pledge has these terms")]
    NoLiveTerms,
    /// An amount or a sum of amounts outside its range. SPEC R-FUND-6.
    #[error("an amount or a sum of amounts is out of range")]
    AmountOverflow,
    /// More distinct support amounts than a menu allows. SPEC R-FUND-6.
    #[error("more than 9 distinct support amounts")]
    TooManyLevels,
    /// A stated figure of a funding tally differs from the recomputed one.
    /// SPEC R-FUND-6, R-FUND-7.
    #[error("stated `{0}` differs from the one the histogram gives")]
    FundingMismatch(&'static str),
}

impl TallyError {
    /// The same rule violation as a binary [`DecodeError`] (for decoders built on
    /// the codec).
    fn into_decode_error(self) -> DecodeError {
        let (field, reason) = match self {
            Self::Decode(e) => return e,
            Self::ThresholdOutOfRange { .. } | Self::BadThresholdBound(_) => {
                ("tally.threshold", "thresholds must lie in 1..=100000000")
            }
            Self::NotAscending(_) => ("tally.threshold", "thresholds must be strictly ascending"),
            Self::ZeroCount(_) => ("tally.count", "bucket counts must be non-zero"),
            Self::TooManyPledges => ("tally.count", "counts must sum to at most 2^53 - 1"),
            Self::TooManyBuckets => ("tally.n_buckets", "at most 1048576 buckets"),
            Self::LiveMismatch { .. } => ("tally.live", "must equal the sum of the bucket counts"),
            Self::ActiveMismatch { .. } => (
                "tally.active",
                "must equal the active count of the histogram",
            ),
            Self::NotOnMenu(_) | Self::TooManyLevels => {
                ("tally.support", "support amounts must come from the menu")
            }
            Self::AmountOverflow => ("tally.amount", "amount out of range"),
            Self::FundingMismatch(_) => ("tally.funding", "must equal the recomputed figure"),
            Self::NoLivePledge(_)
            | Self::NoLiveTerms
            | Self::BadOrigin(_)
            | Self::Malformed { .. }
            | Self::CapacityExhausted => ("tally", "invalid tally"),
        };
        DecodeError::OutOfRange { field, reason }
    }
}

/// The active count of any multiset of thresholds, from scratch: a sorted scan,
/// `O(D log D)` for `D` buckets. Buckets may come in any order and repeat; a
/// repeated threshold counts as the sum of its buckets. This is the reference
/// auditors use (SPEC R-TALLY-2, R-TALLY-9); [`Tally::active`] must agree with it.
///
/// Between consecutive distinct thresholds `tᵢ ≤ m < tᵢ₊₁` the count
/// `#{t ≤ m}` is the constant prefix `cᵢ`, so the largest qualifying `m` there
/// is `min(cᵢ, tᵢ₊₁ − 1)` when `cᵢ ≥ tᵢ`; `A` is the largest such candidate
/// (or 0).
pub fn recompute_active(buckets: &[(u32, u64)]) -> u64 {
    let mut sorted = buckets.to_vec();
    sorted.sort_unstable_by_key(|&(t, _)| t);
    let mut active = 0u64;
    let mut prefix = 0u64;
    let mut iter = sorted.iter().peekable();
    while let Some(&(t, count)) = iter.next() {
        prefix = prefix.saturating_add(count);
        let t = u64::from(t);
        let interval_end = match iter.peek() {
            Some(&&(next, _)) => u64::from(next).saturating_sub(1),
            None => u64::MAX,
        };
        let candidate = prefix.min(interval_end);
        if candidate >= t {
            active = active.max(candidate);
        }
    }
    active
}

/// Checks the snapshot rules of SPEC R-TALLY-5 and returns the live count.
fn validate_buckets(buckets: &[(u32, u64)], t_max: u32) -> Result<u64, TallyError> {
    if buckets.len() > MAX_BUCKETS {
        return Err(TallyError::TooManyBuckets);
    }
    let mut live = 0u64;
    let mut previous = 0u32;
    for &(t, count) in buckets {
        if t == 0 || t > t_max {
            return Err(TallyError::ThresholdOutOfRange { t, t_max });
        }
        if t <= previous {
            return Err(TallyError::NotAscending(t));
        }
        if count == 0 {
            return Err(TallyError::ZeroCount(t));
        }
        live = live
            .checked_add(count)
            .filter(|&l| l <= MAX_LIVE)
            .ok_or(TallyError::TooManyPledges)?;
        previous = t;
    }
    Ok(live)
}

// ---------------------------------------------------------------------------
// Incremental tally
// ---------------------------------------------------------------------------

/// Deepest chain of internal nodes one insertion can create: `⌈log2(10^8)⌉`.
const MAX_DEPTH: usize = 27;

/// What a range of the tree holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Link {
    /// No live pledge in the range.
    Empty,
    /// Live pledges at exactly one threshold (the count is the slot's `sum`).
    Single(u32),
    /// Two or more distinct thresholds: an internal node in the arena.
    Node(u32),
}

/// A range `[lo, hi]` of the tree with its summary. `lo`/`hi` are implicit.
#[derive(Clone, Copy, Debug)]
struct Slot {
    /// Live pledges with a threshold in the range.
    sum: i64,
    /// `max over m in [lo, hi] of (count in [lo, m]) − m`.
    best: i64,
    link: Link,
}

impl Slot {
    fn empty(lo: u32) -> Self {
        Self {
            sum: 0,
            best: -i64::from(lo),
            link: Link::Empty,
        }
    }

    /// `count ≥ 1` pledges at `t`, in a range starting at `lo ≤ t`: the best
    /// `m` is either `lo` (count 0 if `t > lo`) or `t`.
    fn single(lo: u32, t: u32, count: i64) -> Self {
        Self {
            sum: count,
            best: (-i64::from(lo)).max(count - i64::from(t)),
            link: Link::Single(t),
        }
    }

    /// Summary of `[from, hi]` for a range `[lo, hi]` with `lo < from ≤ hi`
    /// whose content is `Empty` or `Single` (internal nodes are split instead).
    fn flat_suffix(&self, from: u32) -> (i64, i64) {
        match self.link {
            Link::Single(t) if t >= from => {
                (self.sum, (-i64::from(from)).max(self.sum - i64::from(t)))
            }
            _ => (0, -i64::from(from)),
        }
    }
}

/// An internal node over `[lo, hi]`: the summaries of its two halves
/// `[lo, mid]` and `[mid + 1, hi]`, so a descent never visits a sibling.
#[derive(Clone, Copy, Debug)]
struct Node {
    halves: [Slot; 2],
}

fn midpoint(lo: u32, hi: u32) -> u32 {
    lo + (hi - lo) / 2
}

/// The half of `[lo, hi]` holding `t`: index, bounds.
fn half_of(lo: u32, hi: u32, t: u32) -> (usize, u32, u32) {
    let mid = midpoint(lo, hi);
    if t <= mid {
        (0, lo, mid)
    } else {
        (1, mid + 1, hi)
    }
}

/// Summary of a node's range from its halves.
fn combine(left: &Slot, right: &Slot) -> (i64, i64) {
    (left.sum + right.sum, left.best.max(left.sum + right.best))
}

/// Non-negative `i64` counts as `u64` (all counts are `0..=MAX_LIVE`).
fn to_u64(v: i64) -> u64 {
    // INVARIANT: every `sum` and every difference taken here is non-negative.
    u64::try_from(v).unwrap_or(0)
}

/// The least number of extra live pledges that activates the next waiting group;
/// see [`Tally::next_activation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextActivation {
    /// The smallest live threshold above the active count.
    pub threshold: u32,
    /// How many more pledges with a threshold `≤ threshold` make the active
    /// count reach `threshold` (always ≥ 1).
    pub more_needed: u64,
}

/// The live tally of one campaign, updated pledge by pledge. SPEC R-TALLY-4.
///
/// Thresholds lie in `1..=t_max`; the caller also enforces the campaign's lower
/// bound. Every method is `O(log t_max)` except [`Tally::histogram`] (linear in
/// its output), [`Tally::snapshot`] and [`Tally::from_histogram`].
#[derive(Clone)]
pub struct Tally {
    t_max: u32,
    /// The whole domain `[1, t_max]`.
    root: Slot,
    nodes: Vec<Node>,
    free: Vec<u32>,
    distinct: u64,
}

impl fmt::Debug for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tally")
            .field("t_max", &self.t_max)
            .field("live", &self.live())
            .field("distinct", &self.distinct)
            .finish_non_exhaustive()
    }
}

impl Tally {
    /// An empty tally over thresholds `1..=t_max`.
    ///
    /// # Errors
    /// [`TallyError::BadThresholdBound`] unless `1 <= t_max <= MAX_THRESHOLD`.
    pub fn new(t_max: u32) -> Result<Self, TallyError> {
        // SPEC R-TALLY-1
        if t_max == 0 || t_max > MAX_THRESHOLD {
            return Err(TallyError::BadThresholdBound(t_max));
        }
        Ok(Self {
            t_max,
            root: Slot::empty(1),
            nodes: Vec::new(),
            free: Vec::new(),
            distinct: 0,
        })
    }

    /// Rebuilds a tally from a histogram of `(threshold, count)` buckets, which
    /// must be strictly ascending with non-zero counts and thresholds in
    /// `1..=t_max`, in `O(D log T)`.
    ///
    /// # Errors
    /// [`TallyError::BadThresholdBound`], [`TallyError::ThresholdOutOfRange`],
    /// [`TallyError::NotAscending`], [`TallyError::ZeroCount`],
    /// [`TallyError::TooManyPledges`].
    pub fn from_histogram<I>(t_max: u32, buckets: I) -> Result<Self, TallyError>
    where
        I: IntoIterator<Item = (u32, u64)>,
    {
        let mut tally = Self::new(t_max)?;
        let mut previous = 0u32;
        for (t, count) in buckets {
            tally.check_threshold(t)?;
            if t <= previous {
                return Err(TallyError::NotAscending(t));
            }
            if count == 0 {
                return Err(TallyError::ZeroCount(t));
            }
            tally.add_many(t, count)?;
            previous = t;
        }
        Ok(tally)
    }

    /// Rebuilds a tally from a snapshot whose thresholds must fit `1..=t_max`.
    ///
    /// # Errors
    /// As [`Tally::from_histogram`].
    pub fn from_snapshot(t_max: u32, snapshot: &TallySnapshot) -> Result<Self, TallyError> {
        Self::from_histogram(t_max, snapshot.buckets().iter().copied())
    }

    /// The threshold bound this tally was made with.
    pub fn t_max(&self) -> u32 {
        self.t_max
    }

    /// Counts one more live pledge with threshold `t`.
    ///
    /// # Errors
    /// [`TallyError::ThresholdOutOfRange`] unless `1 <= t <= t_max`;
    /// [`TallyError::TooManyPledges`] beyond [`MAX_LIVE`]. The tally is unchanged
    /// on error.
    pub fn add(&mut self, t: u32) -> Result<(), TallyError> {
        self.check_threshold(t)?;
        self.add_many(t, 1)
    }

    /// Removes one live pledge with threshold `t` (a withdrawal).
    ///
    /// # Errors
    /// [`TallyError::ThresholdOutOfRange`], or [`TallyError::NoLivePledge`] if no
    /// live pledge has threshold `t`. The tally is unchanged on error.
    pub fn remove(&mut self, t: u32) -> Result<(), TallyError> {
        self.check_threshold(t)?;
        let mut root = self.root;
        let left = self
            .update(&mut root, 1, self.t_max, t, -1)
            .ok_or(TallyError::NoLivePledge(t))?;
        self.root = root;
        self.distinct -= u64::from(left == 0);
        Ok(())
    }

    /// Moves one live pledge from threshold `old` to `new` (an amendment).
    ///
    /// # Errors
    /// As [`Tally::remove`] for `old` and [`Tally::add`] for `new`. Both are
    /// checked first: the tally is unchanged on error.
    pub fn amend(&mut self, old: u32, new: u32) -> Result<(), TallyError> {
        self.check_threshold(old)?;
        self.check_threshold(new)?;
        if old == new {
            return if self.count_at(old) == 0 {
                Err(TallyError::NoLivePledge(old))
            } else {
                Ok(())
            };
        }
        self.remove(old)?;
        // Cannot fail: `new` is in range and live went down by one first. If it
        // ever did, restore `old` so the tally stays consistent.
        if let Err(e) = self.add_many(new, 1) {
            self.add_many(old, 1)?;
            return Err(e);
        }
        Ok(())
    }

    /// The number of live pledges.
    pub fn live(&self) -> u64 {
        to_u64(self.root.sum)
    }

    /// Heap memory held by the tally's index, in bytes (for sizing: about
    /// 48 bytes per distinct live threshold, 0 while at most one is live).
    pub fn heap_bytes(&self) -> usize {
        self.nodes.capacity() * std::mem::size_of::<Node>()
            + self.free.capacity() * std::mem::size_of::<u32>()
    }

    /// The number of distinct live thresholds (non-zero buckets).
    pub fn distinct(&self) -> u64 {
        self.distinct
    }

    /// The live pledges with threshold exactly `t` (0 outside `1..=t_max`).
    pub fn count_at(&self, t: u32) -> u64 {
        if t == 0 || t > self.t_max {
            return 0;
        }
        let (mut slot, mut lo, mut hi) = (self.root, 1, self.t_max);
        loop {
            match slot.link {
                Link::Empty => return 0,
                Link::Single(s) => return if s == t { to_u64(slot.sum) } else { 0 },
                Link::Node(idx) => {
                    let (side, l, h) = half_of(lo, hi, t);
                    (slot, lo, hi) = (self.node(idx).halves[side], l, h);
                }
            }
        }
    }

    /// The live pledges with threshold `≤ t` ("declared for a group of `t`").
    pub fn count_at_most(&self, t: u32) -> u64 {
        if t >= self.t_max {
            return self.live();
        }
        let (mut slot, mut lo, mut hi) = (self.root, 1, self.t_max);
        let mut acc = 0i64;
        loop {
            if hi <= t {
                return to_u64(acc + slot.sum);
            }
            match slot.link {
                Link::Empty => return to_u64(acc),
                Link::Single(s) => return to_u64(acc + if s <= t { slot.sum } else { 0 }),
                Link::Node(idx) => {
                    let node = self.node(idx);
                    let (side, l, h) = half_of(lo, hi, t);
                    if side == 1 {
                        acc += node.halves[0].sum;
                    }
                    (slot, lo, hi) = (node.halves[side], l, h);
                }
            }
        }
    }

    /// The active count `A = max { m ≥ 0 : #{live pledges with t ≤ m} ≥ m }`.
    /// SPEC R-TALLY-2. `A` can exceed `t_max` (when `live ≥ t_max`, `A = live`);
    /// exactly `A` pledges are activated.
    pub fn active(&self) -> u64 {
        if self.root.sum >= i64::from(self.t_max) {
            // prefix(m) = live for every m ≥ t_max, so the largest m is live.
            return to_u64(self.root.sum);
        }
        if self.root.best < 0 {
            return 0;
        }
        // Rightmost m in [1, t_max] with prefix(m) − m ≥ 0. `p` is the live
        // count left of the current range; `p + best(range) ≥ 0` holds throughout.
        let (mut slot, mut lo, mut hi, mut p) = (self.root, 1u32, self.t_max, 0i64);
        loop {
            match slot.link {
                // prefix is p on the whole range: m = min(hi, p), and p ≥ lo.
                Link::Empty => return to_u64(p).min(u64::from(hi)),
                Link::Single(t) => {
                    // From t on, prefix is p + count; before t it is p.
                    let with = p + slot.sum;
                    return if with >= i64::from(t) {
                        to_u64(with).min(u64::from(hi))
                    } else {
                        to_u64(p).min(u64::from(t) - 1)
                    };
                }
                Link::Node(idx) => {
                    let [left, right] = self.node(idx).halves;
                    let mid = midpoint(lo, hi);
                    if p + left.sum + right.best >= 0 {
                        p += left.sum;
                        (slot, lo) = (right, mid + 1);
                    } else {
                        debug_assert!(p + left.best >= 0);
                        (slot, hi) = (left, mid);
                    }
                }
            }
        }
    }

    /// Whether a pledge with threshold `t` is activated (`1 <= t <= A`).
    pub fn activated(&self, t: u32) -> bool {
        t >= 1 && u64::from(t) <= self.active()
    }

    /// The next group waiting to be activated, or `None` when every live pledge
    /// is activated. SPEC R-TALLY-3.
    ///
    /// `threshold` is the smallest live threshold `t* > A`; `more_needed` is the
    /// least `k` such that `k` additional pledges with threshold `t*` (or any
    /// threshold `≤ t*`, which counts the same from `t*` upward) make the active
    /// count `≥ t*`: `k = min over m ≥ t* of (m − #{t ≤ m})`, always ≥ 1.
    pub fn next_activation(&self) -> Option<NextActivation> {
        let active = self.active();
        if active >= u64::from(self.t_max) {
            return None;
        }
        // active < t_max ≤ MAX_THRESHOLD, so active + 1 fits u32.
        let from = u32::try_from(active + 1).ok()?;
        let threshold = self.first_present_from(&self.root, 1, self.t_max, from)?;
        let (suffix_sum, suffix_best) = self.suffix(&self.root, 1, self.t_max, threshold);
        let prefix_before = self.root.sum - suffix_sum;
        // Max over m ≥ t* of prefix(m) − m (for m > t_max it only decreases).
        let deficit = -(prefix_before + suffix_best);
        debug_assert!(deficit >= 1);
        Some(NextActivation {
            threshold,
            more_needed: to_u64(deficit),
        })
    }

    /// The non-zero buckets `(threshold, count)` in ascending threshold order.
    pub fn histogram(&self) -> Buckets<'_> {
        Buckets {
            tally: self,
            stack: vec![self.root],
        }
    }

    /// An immutable copy of the histogram with its live and active counts.
    ///
    /// # Errors
    /// [`TallyError::TooManyBuckets`] beyond [`MAX_BUCKETS`] distinct thresholds.
    pub fn snapshot(&self) -> Result<TallySnapshot, TallyError> {
        // SPEC R-TALLY-5
        if self.distinct > MAX_BUCKETS as u64 {
            return Err(TallyError::TooManyBuckets);
        }
        Ok(TallySnapshot {
            buckets: self.histogram().collect(),
            live: self.live(),
            active: self.active(),
        })
    }

    // -- internals ---------------------------------------------------------

    fn check_threshold(&self, t: u32) -> Result<(), TallyError> {
        // SPEC R-TALLY-1
        if t == 0 || t > self.t_max {
            return Err(TallyError::ThresholdOutOfRange {
                t,
                t_max: self.t_max,
            });
        }
        Ok(())
    }

    /// Adds `count ≥ 1` pledges at an in-range `t`, all-or-nothing.
    fn add_many(&mut self, t: u32, count: u64) -> Result<(), TallyError> {
        let new_live = self
            .live()
            .checked_add(count)
            .filter(|&l| l <= MAX_LIVE)
            .ok_or(TallyError::TooManyPledges)?;
        // At most MAX_DEPTH nodes are allocated per insertion; make sure arena
        // indices cannot run out half-way.
        if self.free.len() < MAX_DEPTH
            && self.nodes.len().saturating_add(MAX_DEPTH) >= u32::MAX as usize
        {
            return Err(TallyError::CapacityExhausted);
        }
        // new_live ≤ MAX_LIVE < i64::MAX, so count fits i64.
        let delta = i64::try_from(count).map_err(|_| TallyError::TooManyPledges)?;
        let mut root = self.root;
        // INVARIANT: a positive delta at an in-range threshold always applies.
        let now = self
            .update(&mut root, 1, self.t_max, t, delta)
            .ok_or(TallyError::NoLivePledge(t))?;
        self.root = root;
        debug_assert_eq!(self.live(), new_live);
        self.distinct += u64::from(now == delta);
        Ok(())
    }

    fn node(&self, idx: u32) -> Node {
        // INVARIANT: every `Link::Node` index names a live slot of the arena.
        self.nodes[idx as usize]
    }

    fn node_mut(&mut self, idx: u32) -> &mut Node {
        // INVARIANT: as in `node`.
        &mut self.nodes[idx as usize]
    }

    fn alloc(&mut self, node: Node) -> u32 {
        if let Some(idx) = self.free.pop() {
            *self.node_mut(idx) = node;
            idx
        } else {
            // INVARIANT: `add_many` checked the arena has room below u32::MAX.
            let idx = u32::try_from(self.nodes.len()).unwrap_or(u32::MAX);
            self.nodes.push(node);
            idx
        }
    }

    /// Adds `delta` at threshold `t` inside `slot`, the range `[lo, hi]` that
    /// contains `t`, in one descent, and refreshes the summaries on the way
    /// back. Returns the new count at `t`, or `None` with nothing changed when
    /// the count would go negative (removal of an absent pledge). Recursion
    /// depth is at most `MAX_DEPTH`.
    ///
    /// Shape invariant kept here: a `Link::Node` range holds at least two
    /// distinct thresholds; one threshold is a `Single`, none is `Empty`.
    fn update(&mut self, slot: &mut Slot, lo: u32, hi: u32, t: u32, delta: i64) -> Option<i64> {
        match slot.link {
            Link::Empty => {
                if delta < 0 {
                    return None;
                }
                *slot = Slot::single(lo, t, delta);
                Some(delta)
            }
            Link::Single(s) if s == t => {
                let now = slot.sum + delta;
                if now < 0 {
                    return None;
                }
                *slot = if now == 0 {
                    Slot::empty(lo)
                } else {
                    Slot::single(lo, t, now)
                };
                Some(now)
            }
            Link::Single(s) => {
                if delta < 0 {
                    return None;
                }
                // A second threshold: split into an internal node holding `s`
                // in its half, then insert `t` into it.
                let mid = midpoint(lo, hi);
                let mut halves = [Slot::empty(lo), Slot::empty(mid + 1)];
                let (side, half_lo, _) = half_of(lo, hi, s);
                halves[side] = Slot::single(half_lo, s, slot.sum);
                let idx = self.alloc(Node { halves });
                slot.link = Link::Node(idx);
                self.update_node(slot, idx, lo, hi, t, delta)
            }
            Link::Node(idx) => self.update_node(slot, idx, lo, hi, t, delta),
        }
    }

    fn update_node(
        &mut self,
        slot: &mut Slot,
        idx: u32,
        lo: u32,
        hi: u32,
        t: u32,
        delta: i64,
    ) -> Option<i64> {
        let (side, half_lo, half_hi) = half_of(lo, hi, t);
        let mut half = self.node(idx).halves[side];
        let now = self.update(&mut half, half_lo, half_hi, t, delta)?;
        let node = self.node_mut(idx);
        node.halves[side] = half;
        let [left, right] = node.halves;
        // Collapse a node left with fewer than two distinct thresholds.
        match (left.link, right.link) {
            (Link::Empty, Link::Empty) => {
                self.free.push(idx);
                *slot = Slot::empty(lo);
            }
            (Link::Single(s), Link::Empty) | (Link::Empty, Link::Single(s)) => {
                self.free.push(idx);
                *slot = Slot::single(lo, s, left.sum + right.sum);
            }
            _ => {
                (slot.sum, slot.best) = combine(&left, &right);
            }
        }
        Some(now)
    }

    /// Smallest threshold `≥ from` with a live pledge inside `slot` over `[lo, hi]`.
    fn first_present_from(&self, slot: &Slot, lo: u32, hi: u32, from: u32) -> Option<u32> {
        if hi < from {
            return None;
        }
        match slot.link {
            Link::Empty => None,
            Link::Single(s) => (s >= from).then_some(s),
            Link::Node(idx) => {
                let [left, right] = self.node(idx).halves;
                let mid = midpoint(lo, hi);
                self.first_present_from(&left, lo, mid, from)
                    .or_else(|| self.first_present_from(&right, mid + 1, hi, from))
            }
        }
    }

    /// `(sum, best)` of `[from, hi]` inside `slot` over `[lo, hi]`, where
    /// `best = max over m in that range of (count in [from, m]) − m`.
    fn suffix(&self, slot: &Slot, lo: u32, hi: u32, from: u32) -> (i64, i64) {
        if from <= lo {
            return (slot.sum, slot.best);
        }
        let Link::Node(idx) = slot.link else {
            return slot.flat_suffix(from);
        };
        let [left, right] = self.node(idx).halves;
        let mid = midpoint(lo, hi);
        if from > mid {
            return self.suffix(&right, mid + 1, hi, from);
        }
        let (sum_left, best_left) = self.suffix(&left, lo, mid, from);
        (sum_left + right.sum, best_left.max(sum_left + right.best))
    }

    #[cfg(test)]
    fn check_invariants(&self) {
        fn walk(tally: &Tally, slot: &Slot, lo: u32, hi: u32, used: &mut usize) -> u64 {
            match slot.link {
                Link::Empty => {
                    assert_eq!((slot.sum, slot.best), (0, -i64::from(lo)));
                    0
                }
                Link::Single(t) => {
                    assert!(lo <= t && t <= hi && slot.sum > 0);
                    let s = Slot::single(lo, t, slot.sum);
                    assert_eq!(slot.best, s.best);
                    1
                }
                Link::Node(idx) => {
                    *used += 1;
                    assert!(lo < hi);
                    let [left, right] = tally.node(idx).halves;
                    assert_eq!((slot.sum, slot.best), combine(&left, &right));
                    let mid = midpoint(lo, hi);
                    let d =
                        walk(tally, &left, lo, mid, used) + walk(tally, &right, mid + 1, hi, used);
                    assert!(d >= 2, "internal node with fewer than two thresholds");
                    d
                }
            }
        }
        let mut used = 0usize;
        let distinct = walk(self, &self.root, 1, self.t_max, &mut used);
        assert_eq!(distinct, self.distinct);
        assert_eq!(
            used + self.free.len(),
            self.nodes.len(),
            "leaked arena slots"
        );
    }
}

/// Iterator over a [`Tally`]'s non-zero buckets, ascending; see [`Tally::histogram`].
#[derive(Debug)]
pub struct Buckets<'a> {
    tally: &'a Tally,
    stack: Vec<Slot>,
}

impl Iterator for Buckets<'_> {
    type Item = (u32, u64);

    fn next(&mut self) -> Option<(u32, u64)> {
        while let Some(slot) = self.stack.pop() {
            match slot.link {
                Link::Empty => {}
                Link::Single(t) => return Some((t, to_u64(slot.sum))),
                Link::Node(idx) => {
                    let [left, right] = self.tally.node(idx).halves;
                    self.stack.push(right);
                    self.stack.push(left);
                }
            }
        }
        None
    }
}

// ---------------------------------------------------------------------------
// Snapshot and its binary encoding
// ---------------------------------------------------------------------------

/// A validated, immutable tally: strictly ascending non-zero buckets with their
/// live and active counts. The final tally of a `CampaignClosed` entry and the
/// content of a [`TallyStatement`]. SPEC R-TALLY-5.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TallySnapshot {
    buckets: Vec<(u32, u64)>,
    live: u64,
    active: u64,
}

impl TallySnapshot {
    /// The empty tally (no live pledge, `A = 0`).
    pub fn empty() -> Self {
        Self::default()
    }

    /// Validates `(threshold, count)` buckets and computes live and active counts.
    ///
    /// # Errors
    /// Thresholds outside `1..=MAX_THRESHOLD` ([`TallyError::ThresholdOutOfRange`]),
    /// not strictly ascending ([`TallyError::NotAscending`]), a zero count
    /// ([`TallyError::ZeroCount`]), more than [`MAX_BUCKETS`] buckets or more
    /// than [`MAX_LIVE`] pledges.
    pub fn from_buckets(buckets: Vec<(u32, u64)>) -> Result<Self, TallyError> {
        let live = validate_buckets(&buckets, MAX_THRESHOLD)?;
        let active = recompute_active(&buckets);
        Ok(Self {
            buckets,
            live,
            active,
        })
    }

    /// The non-zero buckets, ascending by threshold.
    pub fn buckets(&self) -> &[(u32, u64)] {
        &self.buckets
    }

    /// The number of live pledges (sum of the counts).
    pub fn live(&self) -> u64 {
        self.live
    }

    /// The active count (SPEC R-TALLY-2).
    pub fn active(&self) -> u64 {
        self.active
    }

    /// Appends `live u64 ‖ active u64 ‖ n u32 ‖ n × (threshold u32 ‖ count u64)`,
    /// big-endian. SPEC R-TALLY-6.
    pub fn encode_into(&self, w: &mut Writer) {
        w.u64(self.live).u64(self.active);
        // INVARIANT: len ≤ MAX_BUCKETS < u32::MAX (checked at construction).
        w.u32(u32::try_from(self.buckets.len()).unwrap_or(u32::MAX));
        for &(t, count) in &self.buckets {
            w.u32(t).u64(count);
        }
    }

    /// The encoding of [`TallySnapshot::encode_into`] as a vector.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.encode_into(&mut w);
        w.into_bytes()
    }

    /// Decodes exactly one snapshot from `bytes` (no trailing bytes), with the
    /// precise rule that failed.
    ///
    /// # Errors
    /// [`TallyError::Decode`] for truncation or trailing bytes; otherwise the
    /// rule errors of [`TallySnapshot::from_buckets`], [`TallyError::LiveMismatch`]
    /// and [`TallyError::ActiveMismatch`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TallyError> {
        crate::codec::read_exactly(bytes, Self::read)
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, TallyError> {
        let live = r.u64("tally.live").map_err(TallyError::Decode)?;
        let active = r.u64("tally.active").map_err(TallyError::Decode)?;
        let n = r.u32("tally.n_buckets").map_err(TallyError::Decode)?;
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        // SPEC R-TALLY-5: bound the allocation before reading.
        if n > MAX_BUCKETS {
            return Err(TallyError::TooManyBuckets);
        }
        if n.saturating_mul(12) > r.remaining() {
            return Err(TallyError::Decode(DecodeError::Truncated {
                field: "tally.buckets",
            }));
        }
        let mut buckets = Vec::with_capacity(n);
        for _ in 0..n {
            let t = r.u32("tally.threshold").map_err(TallyError::Decode)?;
            let count = r.u64("tally.count").map_err(TallyError::Decode)?;
            buckets.push((t, count));
        }
        Self::checked(buckets, live, active)
    }

    /// `SHA-256("pledge/v1/tally-snapshot" ‖ encoding)`: a 32-byte commitment to
    /// this tally, for records that cannot carry the whole histogram.
    /// SPEC R-TALLY-10.
    pub fn digest(&self) -> Hash {
        Hash(sha256(&[SNAPSHOT_DIGEST_TAG, &self.to_bytes()]))
    }

    /// Builds a snapshot and checks stated live/active counts against it.
    fn checked(buckets: Vec<(u32, u64)>, live: u64, active: u64) -> Result<Self, TallyError> {
        let s = Self::from_buckets(buckets)?;
        // SPEC R-TALLY-5
        if s.live != live {
            return Err(TallyError::LiveMismatch {
                stated: live,
                computed: s.live,
            });
        }
        if s.active != active {
            return Err(TallyError::ActiveMismatch {
                stated: active,
                computed: s.active,
            });
        }
        Ok(s)
    }
}

crate::codec::inherent_decode!(TallySnapshot);

impl Decode for TallySnapshot {
    /// Reads the layout of [`TallySnapshot::encode_into`] and checks every rule
    /// of SPEC R-TALLY-5/R-TALLY-6: the stated live and active counts must be
    /// the ones the histogram gives. Allocates no more than the input's length.
    /// For use inside a larger codec value (the `CampaignClosed` entry).
    ///
    /// # Errors
    /// [`DecodeError::Truncated`], or [`DecodeError::OutOfRange`] naming the
    /// violated rule.
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Self::read(r).map_err(TallyError::into_decode_error)
    }
}

// ---------------------------------------------------------------------------
// Tally statements (signed-note bodies)
// ---------------------------------------------------------------------------

/// "At checkpoint size `N` of log `origin`, campaign `C` has this tally": the
/// body of a signed note. SPEC R-TALLY-7.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TallyStatement {
    origin: String,
    checkpoint_size: u64,
    campaign: CampaignId,
    snapshot: TallySnapshot,
}

/// SPEC R-TALLY-7: non-empty, at most [`MAX_ORIGIN_LEN`] bytes, no control
/// characters (so no newline can split the line).
pub(crate) fn check_origin(origin: &str) -> Result<(), TallyError> {
    origin_problem(origin).map_or(Ok(()), |why| Err(TallyError::BadOrigin(why)))
}

/// What is wrong with a statement's origin line, if anything (R-TALLY-7;
/// the same rule for the funding and sealed statements).
pub(crate) fn origin_problem(origin: &str) -> Option<&'static str> {
    if origin.is_empty() {
        Some("empty")
    } else if origin.len() > MAX_ORIGIN_LEN {
        Some("longer than 1024 bytes")
    } else if origin.chars().any(char::is_control) {
        Some("contains a control character")
    } else {
        None
    }
}

/// Numbered, non-empty lines of a note body.
struct Lines<'a> {
    iter: std::str::Split<'a, char>,
    number: usize,
}

impl<'a> Lines<'a> {
    /// The next line, if any; an empty line is an error (SPEC R-TALLY-8).
    fn next_line(&mut self) -> Result<Option<(usize, &'a str)>, TallyError> {
        let Some(line) = self.iter.next() else {
            return Ok(None);
        };
        self.number += 1;
        if line.is_empty() {
            return Err(TallyError::Malformed {
                line: self.number,
                reason: "empty line",
            });
        }
        Ok(Some((self.number, line)))
    }

    /// The next line, which must exist.
    fn required(&mut self, missing: &'static str) -> Result<(usize, &'a str), TallyError> {
        self.next_line()?.ok_or(TallyError::Malformed {
            line: self.number + 1,
            reason: missing,
        })
    }
}

impl TallyStatement {
    /// A statement for `campaign` at `checkpoint_size` of the log `origin`.
    ///
    /// # Errors
    /// [`TallyError::BadOrigin`] if the origin is empty, longer than
    /// [`MAX_ORIGIN_LEN`] bytes or contains a control character.
    pub fn new(
        origin: &str,
        checkpoint_size: u64,
        campaign: CampaignId,
        snapshot: TallySnapshot,
    ) -> Result<Self, TallyError> {
        check_origin(origin)?;
        Ok(Self {
            origin: origin.to_owned(),
            checkpoint_size,
            campaign,
            snapshot,
        })
    }

    /// The log origin (without the `/tally/v1` suffix).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The checkpoint size the tally was computed at: entries `0..size` count.
    pub fn checkpoint_size(&self) -> u64 {
        self.checkpoint_size
    }

    /// The campaign.
    pub fn campaign(&self) -> &CampaignId {
        &self.campaign
    }

    /// The tally.
    pub fn snapshot(&self) -> &TallySnapshot {
        &self.snapshot
    }

    /// Live pledges.
    pub fn live(&self) -> u64 {
        self.snapshot.live
    }

    /// Active count.
    pub fn active(&self) -> u64 {
        self.snapshot.active
    }

    /// The note body (SPEC R-TALLY-7), every line ending in `\n`:
    ///
    /// ```text
    /// <origin>/tally/v1
    /// <campaign id, 64 lower-case hex digits>
    /// <checkpoint size>
    /// live <n>
    /// active <A>
    /// <t> <count>          one line per non-zero bucket, ascending t
    /// ```
    pub fn to_note_body(&self) -> String {
        use fmt::Write as _;
        let mut s = String::with_capacity(160 + 24 * self.snapshot.buckets.len());
        // Writing to a String cannot fail.
        let _ = write!(
            s,
            "{}{}\n{}\n{}\nlive {}\nactive {}\n",
            self.origin,
            STATEMENT_FIRST_LINE_SUFFIX,
            self.campaign.to_hex(),
            self.checkpoint_size,
            self.snapshot.live,
            self.snapshot.active
        );
        for &(t, count) in &self.snapshot.buckets {
            let _ = writeln!(s, "{t} {count}");
        }
        s
    }

    /// Parses a note body strictly (SPEC R-TALLY-8): exactly the text
    /// [`TallyStatement::to_note_body`] would produce for some valid statement.
    /// The caller must still compare [`TallyStatement::origin`] with the log it
    /// expects, and verify the note's signature.
    ///
    /// # Errors
    /// [`TallyError::Malformed`] with the offending line; [`TallyError::BadOrigin`];
    /// the snapshot rules ([`TallyError::NotAscending`], [`TallyError::ZeroCount`],
    /// [`TallyError::ThresholdOutOfRange`], [`TallyError::TooManyBuckets`],
    /// [`TallyError::TooManyPledges`]); [`TallyError::LiveMismatch`],
    /// [`TallyError::ActiveMismatch`].
    pub fn parse_note_body(body: &str) -> Result<Self, TallyError> {
        let malformed = |line: usize, reason: &'static str| TallyError::Malformed { line, reason };
        let content = body.strip_suffix('\n').ok_or_else(|| {
            malformed(body.split('\n').count(), "the body must end with a newline")
        })?;
        let mut lines = Lines {
            iter: content.split('\n'),
            number: 0,
        };

        let (n, first) = lines.required("missing first line <origin>/tally/v1")?;
        let origin = first
            .strip_suffix(STATEMENT_FIRST_LINE_SUFFIX)
            .ok_or_else(|| malformed(n, "first line must be <origin>/tally/v1"))?;
        check_origin(origin)?;

        let (n, id) = lines.required("missing campaign id line")?;
        if id.len() != 64 || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(malformed(n, "campaign id must be 64 lower-case hex digits"));
        }
        let campaign = CampaignId::from_hex(id)
            .map_err(|_| malformed(n, "campaign id must be 64 lower-case hex digits"))?;

        let (n, size) = lines.required("missing checkpoint size line")?;
        let checkpoint_size = parse_decimal(size)
            .ok_or_else(|| malformed(n, "checkpoint size must be a canonical decimal"))?;

        let (n, l) = lines.required("missing `live <n>` line")?;
        let live = l
            .strip_prefix("live ")
            .and_then(parse_decimal)
            .ok_or_else(|| malformed(n, "expected `live <canonical decimal>`"))?;

        let (n, l) = lines.required("missing `active <n>` line")?;
        let active = l
            .strip_prefix("active ")
            .and_then(parse_decimal)
            .ok_or_else(|| malformed(n, "expected `active <canonical decimal>`"))?;

        let mut buckets = Vec::new();
        while let Some((n, l)) = lines.next_line()? {
            if buckets.len() >= MAX_BUCKETS {
                return Err(TallyError::TooManyBuckets);
            }
            let bad = || malformed(n, "expected `<threshold> <count>` in canonical decimals");
            let (t, count) = l.split_once(' ').ok_or_else(bad)?;
            let t = parse_decimal(t)
                .and_then(|t| u32::try_from(t).ok())
                .ok_or_else(bad)?;
            let count = parse_decimal(count).ok_or_else(bad)?;
            buckets.push((t, count));
        }
        let snapshot = TallySnapshot::checked(buckets, live, active)?;
        Ok(Self {
            origin: origin.to_owned(),
            checkpoint_size,
            campaign,
            snapshot,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Brute force from the definition, for small inputs.
    fn brute_active(counts: &[u64]) -> u64 {
        // counts[t] = live pledges with threshold t (index 0 unused).
        let live: u64 = counts.iter().sum();
        (0..=live)
            .filter(|&m| {
                let le: u64 = counts
                    .iter()
                    .enumerate()
                    .filter(|&(t, _)| t as u64 <= m)
                    .map(|(_, c)| c)
                    .sum();
                le >= m
            })
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn rejects_bad_bounds_and_thresholds() {
        assert_eq!(Tally::new(0).unwrap_err(), TallyError::BadThresholdBound(0));
        assert_eq!(
            Tally::new(MAX_THRESHOLD + 1).unwrap_err(),
            TallyError::BadThresholdBound(MAX_THRESHOLD + 1)
        );
        let mut t = Tally::new(10).unwrap();
        assert_eq!(
            t.add(0),
            Err(TallyError::ThresholdOutOfRange { t: 0, t_max: 10 })
        );
        assert_eq!(
            t.add(11),
            Err(TallyError::ThresholdOutOfRange { t: 11, t_max: 10 })
        );
        assert_eq!(t.remove(3), Err(TallyError::NoLivePledge(3)));
        assert_eq!(t.amend(3, 4), Err(TallyError::NoLivePledge(3)));
        t.add(3).unwrap();
        assert_eq!(
            t.amend(3, 11),
            Err(TallyError::ThresholdOutOfRange { t: 11, t_max: 10 })
        );
        assert_eq!(t.count_at(3), 1);
        assert_eq!(t.live(), 1);
        t.check_invariants();
    }

    #[test]
    fn arena_is_reclaimed() {
        let mut t = Tally::new(MAX_THRESHOLD).unwrap();
        for round in 0..3 {
            for i in 1..=200u32 {
                t.add(i * 499_979).unwrap();
                t.add(i * 499_979).unwrap();
            }
            t.check_invariants();
            let used = t.nodes.len() - t.free.len();
            // Evenly spread thresholds: fewer internal nodes than thresholds.
            assert!(used < 200, "{used}");
            for i in 1..=200u32 {
                t.remove(i * 499_979).unwrap();
                t.remove(i * 499_979).unwrap();
            }
            t.check_invariants();
            assert_eq!(t.live(), 0);
            assert_eq!(t.distinct(), 0);
            assert_eq!(t.free.len(), t.nodes.len());
            if round > 0 {
                // Re-adding the same thresholds reuses freed slots.
                assert_eq!(t.nodes.len(), used);
            }
        }
        // Two adjacent thresholds at the top of the domain need a full chain.
        t.add(MAX_THRESHOLD).unwrap();
        t.add(MAX_THRESHOLD - 1).unwrap();
        t.check_invariants();
        assert!(t.nodes.len() - t.free.len() <= MAX_DEPTH);
        t.remove(MAX_THRESHOLD).unwrap();
        t.check_invariants();
        assert_eq!(t.free.len(), t.nodes.len());
    }

    #[test]
    fn random_operations_keep_invariants() {
        let mut state = 0x1234_5678_9abc_def0u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for t_max in [1u32, 2, 3, 17, 1000, MAX_THRESHOLD] {
            let mut t = Tally::new(t_max).unwrap();
            let mut live: Vec<u32> = Vec::new();
            for _ in 0..3000 {
                let r = next();
                if r % 3 == 0 && !live.is_empty() {
                    let i = (r as usize / 3) % live.len();
                    let th = live.swap_remove(i);
                    t.remove(th).unwrap();
                } else if r % 3 == 1 && !live.is_empty() {
                    let i = (r as usize / 3) % live.len();
                    let new = 1 + (next() % u64::from(t_max.min(40))) as u32;
                    t.amend(live[i], new).unwrap();
                    live[i] = new;
                } else {
                    let th = 1 + (next() % u64::from(t_max.min(60))) as u32;
                    t.add(th).unwrap();
                    live.push(th);
                }
                t.check_invariants();
                let flat: Vec<(u32, u64)> = live.iter().map(|&th| (th, 1)).collect();
                assert_eq!(t.active(), recompute_active(&flat));
            }
        }
    }

    #[test]
    fn active_beyond_t_max() {
        let mut t = Tally::new(5).unwrap();
        for _ in 0..7 {
            t.add(5).unwrap();
        }
        assert_eq!(t.active(), 7);
        assert_eq!(t.next_activation(), None);
        assert!(t.activated(5));
        assert!(!t.activated(0));
    }

    #[test]
    fn exhaustive_small_histograms() {
        // Every histogram over thresholds 1..=4 with counts 0..=4.
        for code in 0..5u32.pow(4) {
            let mut counts = vec![0u64; 5];
            let mut c = code;
            for slot in counts.iter_mut().skip(1) {
                *slot = u64::from(c % 5);
                c /= 5;
            }
            let buckets: Vec<(u32, u64)> = counts
                .iter()
                .enumerate()
                .filter(|&(_, &n)| n > 0)
                .map(|(t, &n)| (t as u32, n))
                .collect();
            let tally = Tally::from_histogram(4, buckets.iter().copied()).unwrap();
            tally.check_invariants();
            let want = brute_active(&counts);
            assert_eq!(tally.active(), want, "{buckets:?}");
            assert_eq!(recompute_active(&buckets), want, "{buckets:?}");
            assert_eq!(tally.histogram().collect::<Vec<_>>(), buckets);
            // Exactly A pledges are activated.
            let activated: u64 = buckets
                .iter()
                .filter(|&&(t, _)| u64::from(t) <= want)
                .map(|&(_, n)| n)
                .sum();
            assert_eq!(activated, want, "{buckets:?}");
        }
    }
}
