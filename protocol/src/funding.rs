//! Conditional funding: the joint tally of action, supported-action and
//! funding pledges, its snapshots and statements, and what each pledge's
//! outcome is (ROUND2 §2, SPEC §9 R-FUND-1…R-FUND-7).
//!
//! Three kinds of live terms count (SPEC R-PLEDGE-3, R-PLEDGE-8): actions
//! `(t)` that ask no support (support `y = 0`), supported actions `(t, y)`
//! with `y` from the campaign's menu, and funders `(n, x)`. For a candidate
//! number of actors `m`:
//!
//! - `E(m)` = action pledges (both kinds) with `t ≤ m`;
//! - `F(m)` = `Σ x` over funders with `n ≤ m`;
//! - `cost(m)` = the sum of the `m` smallest `y` in `E(m)`, or ∞ if `|E(m)| < m`.
//!
//! The active count is `A = max { m ≥ 0 : cost(m) ≤ F(m) }`. With nobody asking
//! or offering money, `cost = 0` and `A` is the plain active count of
//! [`crate::tally`] (R-TALLY-2); adding any pledge never lowers `A`.
//!
//! - [`FundingTally`]: the per-campaign histograms, updated pledge by pledge in
//!   `O(log D)`; [`FundingTally::joint`] computes `A` and its figures by one
//!   sweep over the breakpoints, `O((Dₜ + Dₙ) · L)` for `Dₜ` distinct
//!   thresholds, `Dₙ` distinct funder `n` and `L ≤ 9` support levels (R-FUND-3).
//! - [`recompute_joint`]: the same computation from any list of terms, the
//!   auditors' reference.
//! - [`FundingSnapshot`]: a validated histogram with its [`JointTally`], its
//!   binary encoding and digest (the final tally of a funding campaign's
//!   `CampaignClosed`).
//! - [`FundingStatement`]: the signed-note body of a funding campaign's tally.
//! - Outcomes: [`JointTally::standing`], [`JointTally::due`],
//!   [`tiebreak_key`] and [`allocate`].
//!
//! Amounts are integer minor units (`u64`, at most [`MAX_AMOUNT`]); sums are
//! `u128` with checked arithmetic: `MAX_LIVE · MAX_AMOUNT < 2^106`.

use std::collections::BTreeMap;
use std::fmt;

use crate::checkpoint::{parse_decimal, parse_decimal_u128};
use crate::codec::{DecodeError, Reader, Writer};
use crate::hash::{CampaignId, Hash, Nullifier, sha256};
use crate::pledge::{MAX_AMOUNT, Terms};
use crate::tally::{MAX_BUCKETS, MAX_LIVE, MAX_THRESHOLD, TallyError, check_origin};

/// Suffix of a funding statement's first line. SPEC R-FUND-7.
pub const FUNDING_STATEMENT_SUFFIX: &str = "/funding-tally/v1";
/// Domain tag of [`FundingSnapshot::digest`]. SPEC R-FUND-6.
pub const FUNDING_SNAPSHOT_DIGEST_TAG: &[u8] = b"pledge/v1/funding-tally-snapshot";
/// Domain tag of the public tie-break order. SPEC R-FUND-4.
pub const FUNDING_ORDER_TAG: &[u8] = b"pledge/v1/funding-order";
/// Most distinct support amounts a joint tally holds: 0 and the at most 8
/// levels of a campaign's menu (R-CAMP-5). SPEC R-FUND-6.
pub const MAX_DISTINCT_SUPPORT: usize = 1 + crate::campaign::MAX_SUPPORT_LEVELS;

/// `A` and the figures a funding statement carries, for one histogram.
/// SPEC R-FUND-1, R-FUND-2.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JointTally {
    /// The active count `A`.
    pub active: u64,
    /// `F(A)`: money pledged by funders with `n ≤ A`.
    pub funds: u128,
    /// `cost(A)`: the sum of the `A` smallest support demands in `E(A)`.
    pub cost: u128,
    /// `Σ y` over all of `E(A)`: what funding every eligible actor would take.
    pub demand: u128,
    /// Per support amount present in `E(A)`, ascending (0 first when
    /// present): how many actors are eligible (`t ≤ A`) and how many of them
    /// are among the `A` cheapest (funded).
    pub levels: Vec<LevelCount>,
}

/// One support amount's share of `E(A)`. SPEC R-FUND-2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LevelCount {
    /// The support amount `y` (0 for `act` pledges).
    pub support: u64,
    /// Action pledges with this support and `t ≤ A`.
    pub eligible: u64,
    /// How many of them act (the cheapest `A` of `E(A)`); `≤ eligible`.
    pub funded: u64,
}

/// Where one action pledge stands in a joint tally. SPEC R-FUND-4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// `t > A`: the condition does not hold.
    NotActivated,
    /// Among the `A` actors, with its support (if any) paid for.
    Activated,
    /// `t ≤ A` but the money does not stretch to it: eligible, waiting for
    /// funds.
    WaitingForFunds,
    /// Its level is split: `slots` of the `eligible` pledges at this support
    /// act, chosen by the public order ([`tiebreak_key`], smallest first);
    /// resolve with [`resolve_tie`].
    TieBreak {
        /// Pledges at this level that act.
        slots: u64,
        /// Pledges at this level with `t ≤ A`.
        eligible: u64,
    },
}

impl JointTally {
    /// The standing of an action pledge with threshold `t` asking `support`
    /// (0 for `act`), from the public tally alone. SPEC R-FUND-4.
    pub fn standing(&self, t: u32, support: u64) -> Standing {
        if u64::from(t) > self.active {
            return Standing::NotActivated;
        }
        match self.levels.iter().find(|l| l.support == support) {
            Some(l) if l.funded >= l.eligible => Standing::Activated,
            Some(l) if l.funded == 0 => Standing::WaitingForFunds,
            Some(l) => Standing::TieBreak {
                slots: l.funded,
                eligible: l.eligible,
            },
            // Not counted at this level: a tally that does not contain the
            // pledge. Say so conservatively.
            None => Standing::WaitingForFunds,
        }
    }

    /// What a funder `(n, amount)` owes (SPEC R-FUND-5): 0 if `n > A`;
    /// else its whole `amount` when the campaign sends the surplus to the
    /// fund; else its pro-rata share `⌊amount · cost(A) / F(A)⌋`. Rounding is
    /// down, so no funder pays more than its share and the shares sum to at
    /// most `cost(A)`; the fund absorbs the shortfall, less than one minor
    /// unit per activated funder.
    pub fn due(&self, n: u32, amount: u64, surplus_to_fund: bool) -> u64 {
        if u64::from(n) > self.active {
            return 0;
        }
        if surplus_to_fund {
            return amount;
        }
        if self.funds == 0 {
            return 0;
        }
        mul_div_floor(amount, self.cost.min(self.funds), self.funds)
    }
}

/// `⌊x · c / f⌋` for `c ≤ f`, `f > 0`, exact for every `u64` `x` and `u128`
/// `c`, `f` (a 192-bit product and a bitwise long division when the product
/// does not fit `u128`). The result is at most `x`.
fn mul_div_floor(x: u64, c: u128, f: u128) -> u64 {
    if f == 0 {
        return 0;
    }
    let c = c.min(f);
    let q = if let Some(p) = u128::from(x).checked_mul(c) {
        p / f
    } else {
        let lo = u128::from(x) * (c & u128::from(u64::MAX));
        let hi = u128::from(x) * (c >> 64);
        let mid = hi + (lo >> 64);
        // Limbs of the 192-bit product, most significant first.
        let limbs = [(mid >> 64) as u64, mid as u64, lo as u64];
        let (mut r, mut q) = (0u128, 0u128);
        for limb in limbs {
            for bit in (0..64).rev() {
                let top = r >> 127;
                r = (r << 1) | u128::from((limb >> bit) & 1);
                q <<= 1;
                // The true remainder is `top·2^128 + r`, below `2f`.
                if top == 1 || r >= f {
                    r = r.wrapping_sub(f);
                    q |= 1;
                }
            }
        }
        q
    };
    // INVARIANT: c ≤ f, so q ≤ x.
    u64::try_from(q).unwrap_or(x)
}

/// The public tie-break key of a pledge, fixed only once the final checkpoint
/// root is known, so nobody can grind it:
/// `H("pledge/v1/funding-order" ‖ final_root ‖ nullifier)`. Smaller keys
/// come first. SPEC R-FUND-4.
pub fn tiebreak_key(final_root: &Hash, nullifier: &Nullifier) -> Hash {
    Hash(sha256(&[
        FUNDING_ORDER_TAG,
        final_root.as_bytes(),
        nullifier.as_bytes(),
    ]))
}

/// Resolves [`Standing::TieBreak`]: true if `own` is among the `slots`
/// smallest keys of its level, `others` being the keys of the other eligible
/// pledges at the same support (their nullifiers are public in the log).
pub fn resolve_tie<'a>(own: &Hash, others: impl IntoIterator<Item = &'a Hash>, slots: u64) -> bool {
    let ahead = others
        .into_iter()
        .filter(|k| k.as_bytes() < own.as_bytes())
        .count();
    (ahead as u64) < slots
}

// ---------------------------------------------------------------------------
// The joint computation
// ---------------------------------------------------------------------------

/// Walks the breakpoints of a histogram (the distinct `t` of `actors` and
/// `n` of `funders`, ascending): once every pledge at breakpoint `b` is
/// counted, calls `visit(b, end, counts, funds)`, `counts` being the
/// per-level counts of actors with `t ≤ b`, `funds` the money of funders with
/// `n ≤ b`, and `end` the last `m` before the next breakpoint (`u64::MAX`
/// after the last). `E` and `F` are constant on `b..=end`.
fn for_each_interval(
    ys: &[u64],
    actors: &[(u32, u64, u64)],
    funders: &[(u32, u128)],
    mut visit: impl FnMut(u32, u64, &[u64], u128) -> Result<(), TallyError>,
) -> Result<(), TallyError> {
    let next = |i: usize, j: usize| {
        [actors.get(i).map(|a| a.0), funders.get(j).map(|f| f.0)]
            .into_iter()
            .flatten()
            .min()
    };
    let mut counts = vec![0u64; ys.len()];
    let mut funds = 0u128;
    let (mut i, mut j) = (0usize, 0usize);
    while let Some(b) = next(i, j) {
        while let Some(&(_, y, c)) = actors.get(i).filter(|a| a.0 == b) {
            let l = ys.binary_search(&y).map_err(|_| TallyError::NotOnMenu(y))?;
            counts[l] = counts[l].checked_add(c).ok_or(TallyError::TooManyPledges)?;
            i += 1;
        }
        while let Some(&(_, x)) = funders.get(j).filter(|f| f.0 == b) {
            funds = funds.checked_add(x).ok_or(TallyError::AmountOverflow)?;
            j += 1;
        }
        let end = next(i, j).map_or(u64::MAX, |n| u64::from(n) - 1);
        visit(b, end, &counts, funds)?;
    }
    Ok(())
}

/// The joint tally of a histogram: `actors` as `(t, y, count)` and `funders`
/// as `(n, sum of x)`, both sorted ascending by threshold (`y` ascending within
/// a threshold is not required), `ys` the distinct support amounts ascending.
/// One sweep over the distinct thresholds: between breakpoints `E` and `F`
/// are constant and `cost(m)` grows with `m`, so the largest affordable `m`
/// comes from the per-level counts, cheapest first. SPEC R-FUND-3.
fn sweep(
    ys: &[u64],
    actors: &[(u32, u64, u64)],
    funders: &[(u32, u128)],
) -> Result<JointTally, TallyError> {
    let mut active = 0u64;
    for_each_interval(ys, actors, funders, |b, end, counts, funds| {
        let candidate = affordable(ys, counts, funds)?.min(end);
        if candidate >= u64::from(b) {
            active = candidate;
        }
        Ok(())
    })?;
    figures_at(ys, actors, funders, active)
}

/// The largest `m` with `cost(m) ≤ funds` for these per-level counts
/// (`m ≤ Σ counts`): whole levels, cheapest first, then what the money left
/// buys of the next.
fn affordable(ys: &[u64], counts: &[u64], funds: u128) -> Result<u64, TallyError> {
    let mut m = 0u64;
    let mut left = funds;
    for (&y, &c) in ys.iter().zip(counts) {
        if y == 0 {
            m = m.checked_add(c).ok_or(TallyError::TooManyPledges)?;
            continue;
        }
        let whole = u128::from(c) * u128::from(y);
        if whole <= left {
            left -= whole;
            m = m.checked_add(c).ok_or(TallyError::TooManyPledges)?;
        } else {
            // INVARIANT: left / y < c ≤ u64::MAX here.
            let part = u64::try_from(left / u128::from(y)).unwrap_or(c);
            m = m.checked_add(part).ok_or(TallyError::TooManyPledges)?;
            break;
        }
    }
    Ok(m)
}

/// `F(A)`, `cost(A)`, `demand(A)` and the per-level counts at `A`.
fn figures_at(
    ys: &[u64],
    actors: &[(u32, u64, u64)],
    funders: &[(u32, u128)],
    active: u64,
) -> Result<JointTally, TallyError> {
    let mut eligible = vec![0u64; ys.len()];
    for &(t, y, c) in actors.iter().filter(|a| u64::from(a.0) <= active) {
        let _ = t;
        let l = ys.binary_search(&y).map_err(|_| TallyError::NotOnMenu(y))?;
        eligible[l] = eligible[l]
            .checked_add(c)
            .ok_or(TallyError::TooManyPledges)?;
    }
    let mut funds = 0u128;
    for &(_, x) in funders.iter().filter(|f| u64::from(f.0) <= active) {
        funds = funds.checked_add(x).ok_or(TallyError::AmountOverflow)?;
    }
    let mut left = active;
    let (mut cost, mut demand) = (0u128, 0u128);
    let mut levels = Vec::new();
    for (&y, &e) in ys.iter().zip(&eligible) {
        if e == 0 {
            continue;
        }
        let funded = e.min(left);
        left -= funded;
        cost = cost
            .checked_add(u128::from(funded) * u128::from(y))
            .ok_or(TallyError::AmountOverflow)?;
        demand = demand
            .checked_add(u128::from(e) * u128::from(y))
            .ok_or(TallyError::AmountOverflow)?;
        levels.push(LevelCount {
            support: y,
            eligible: e,
            funded,
        });
    }
    Ok(JointTally {
        active,
        funds,
        cost,
        demand,
        levels,
    })
}

/// The least extra funding that raises the active count (SPEC R-FUND-2's
/// informative hint, the funding half of "k more pledges, or z more
/// funding"): `more_funds` more money from funders with `n ≤ actors` makes
/// `A ≥ actors`, and no smaller amount at any `n` raises `A` at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextFunding {
    /// The active count the extra money reaches.
    pub actors: u64,
    /// How much more money it takes, in minor units (≥ 1).
    pub more_funds: u128,
}

/// `min over m > A with |E(m)| ≥ m of cost(m) − F(m)`, from the same
/// breakpoints as [`sweep`]: within an interval `cost` grows with `m` and
/// `F` is constant, so its first `m` above `A` is the interval's best.
fn next_funding(
    ys: &[u64],
    actors: &[(u32, u64, u64)],
    funders: &[(u32, u128)],
    active: u64,
) -> Result<Option<NextFunding>, TallyError> {
    let mut best: Option<NextFunding> = None;
    for_each_interval(ys, actors, funders, |b, end, counts, funds| {
        let size: u64 = counts.iter().sum();
        let m = u64::from(b).max(active.saturating_add(1));
        if m > end.min(size) {
            return Ok(());
        }
        let cost = cheapest(ys, counts, m);
        // cost(m) > F(m) here, or A would be at least m.
        let more = cost.saturating_sub(funds).max(1);
        if best.is_none_or(|x| more < x.more_funds) {
            best = Some(NextFunding {
                actors: m,
                more_funds: more,
            });
        }
        Ok(())
    })?;
    Ok(best)
}

/// The sum of the `m` smallest demands of these per-level counts
/// (`m ≤ Σ counts`).
fn cheapest(ys: &[u64], counts: &[u64], m: u64) -> u128 {
    let mut left = m;
    let mut cost = 0u128;
    for (&y, &c) in ys.iter().zip(counts) {
        let take = c.min(left);
        cost += u128::from(take) * u128::from(y);
        left -= take;
    }
    cost
}

/// The joint tally of any list of live terms, from scratch: the reference
/// auditors use (SPEC R-FUND-1, R-FUND-3). [`FundingTally::joint`] must
/// agree with it.
///
/// # Errors
/// [`TallyError::TooManyLevels`] if more than [`MAX_DISTINCT_SUPPORT`]
/// distinct support amounts occur; [`TallyError::TooManyPledges`] past
/// [`MAX_LIVE`].
pub fn recompute_joint(terms: &[Terms]) -> Result<JointTally, TallyError> {
    if terms.len() as u64 > MAX_LIVE {
        return Err(TallyError::TooManyPledges);
    }
    let mut actors: Vec<(u32, u64, u64)> = Vec::new();
    let mut funders: Vec<(u32, u128)> = Vec::new();
    for t in terms {
        match (t.support(), t) {
            (Some(y), _) => actors.push((t.threshold_value(), y, 1)),
            (None, Terms::Fund { n, amount }) => funders.push((*n, u128::from(*amount))),
            (None, _) => {}
        }
    }
    actors.sort_unstable();
    funders.sort_unstable();
    let mut ys: Vec<u64> = actors.iter().map(|a| a.1).collect();
    ys.sort_unstable();
    ys.dedup();
    if ys.len() > MAX_DISTINCT_SUPPORT {
        return Err(TallyError::TooManyLevels);
    }
    sweep(&ys, &actors, &funders)
}

// ---------------------------------------------------------------------------
// The incremental tally
// ---------------------------------------------------------------------------

/// Live funders at one `n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct FundBucket {
    count: u64,
    sum: u128,
}

/// The live tally of one funding campaign: per-threshold counts of each
/// support level and per-`n` funder sums, updated in `O(log D)` per change;
/// [`FundingTally::joint`] sweeps them. SPEC R-FUND-3.
#[derive(Clone)]
pub struct FundingTally {
    t_max: u32,
    /// 0 then the campaign's menu, ascending.
    ys: Vec<u64>,
    /// `t → count per level` (index into `ys`); no all-zero entry.
    actors: BTreeMap<u32, Vec<u64>>,
    /// `n → funders`; no empty entry.
    funders: BTreeMap<u32, FundBucket>,
    live: u64,
}

impl fmt::Debug for FundingTally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FundingTally")
            .field("t_max", &self.t_max)
            .field("levels", &self.ys)
            .field("live", &self.live)
            .finish_non_exhaustive()
    }
}

impl FundingTally {
    /// An empty tally over thresholds `1..=t_max` for a campaign whose menu
    /// is `levels` (strictly ascending, non-zero, at most 8, as R-CAMP-5).
    ///
    /// # Errors
    /// [`TallyError::BadThresholdBound`]; [`TallyError::TooManyLevels`] or
    /// [`TallyError::NotOnMenu`] for a menu R-CAMP-5 would refuse.
    pub fn new(t_max: u32, levels: &[u64]) -> Result<Self, TallyError> {
        if t_max == 0 || t_max > MAX_THRESHOLD {
            return Err(TallyError::BadThresholdBound(t_max));
        }
        if levels.len() + 1 > MAX_DISTINCT_SUPPORT {
            return Err(TallyError::TooManyLevels);
        }
        let mut ys = Vec::with_capacity(levels.len() + 1);
        ys.push(0);
        for &y in levels {
            if y > MAX_AMOUNT || ys.last().is_some_and(|&p| p >= y) {
                return Err(TallyError::NotOnMenu(y));
            }
            ys.push(y);
        }
        Ok(Self {
            t_max,
            ys,
            actors: BTreeMap::new(),
            funders: BTreeMap::new(),
            live: 0,
        })
    }

    /// Live pledges of all three kinds.
    pub fn live(&self) -> u64 {
        self.live
    }

    /// The support amounts this tally counts: 0, then the menu.
    pub fn support_levels(&self) -> &[u64] {
        &self.ys
    }

    fn check(&self, terms: &Terms) -> Result<(), TallyError> {
        let t = terms.threshold_value();
        if t == 0 || t > self.t_max {
            return Err(TallyError::ThresholdOutOfRange {
                t,
                t_max: self.t_max,
            });
        }
        if let Some(y) = terms.support() {
            self.level(y)?;
        } else if let Terms::Fund { amount, .. } = terms
            && (*amount == 0 || *amount > MAX_AMOUNT)
        {
            return Err(TallyError::AmountOverflow);
        }
        Ok(())
    }

    fn level(&self, y: u64) -> Result<usize, TallyError> {
        self.ys
            .binary_search(&y)
            .map_err(|_| TallyError::NotOnMenu(y))
    }

    /// True if a live pledge has exactly these terms.
    pub fn contains(&self, terms: &Terms) -> bool {
        match terms {
            // The tally keeps sums, not each amount: these terms may be live
            // if the funders left after removing them could still each hold
            // at least 1 (exact for a single funder). The ledger knows each
            // pledge's exact terms; this only keeps the sums consistent.
            Terms::Fund { n, amount } => self.funders.get(n).is_some_and(|b| {
                b.sum.checked_sub(u128::from(*amount)).is_some_and(|rest| {
                    rest >= u128::from(b.count - 1) && (b.count > 1 || rest == 0)
                })
            }),
            _ => {
                let (Some(y), t) = (terms.support(), terms.threshold_value()) else {
                    return false;
                };
                let Ok(l) = self.level(y) else { return false };
                self.actors.get(&t).is_some_and(|c| c[l] > 0)
            }
        }
    }

    /// Adds one live pledge.
    ///
    /// # Errors
    /// [`TallyError::ThresholdOutOfRange`], [`TallyError::NotOnMenu`],
    /// [`TallyError::TooManyPledges`] past [`MAX_LIVE`]; nothing changes.
    pub fn add(&mut self, terms: &Terms) -> Result<(), TallyError> {
        self.check(terms)?;
        if self.live >= MAX_LIVE {
            return Err(TallyError::TooManyPledges);
        }
        self.insert(terms)
    }

    fn insert(&mut self, terms: &Terms) -> Result<(), TallyError> {
        match terms {
            Terms::Fund { n, amount } => {
                let b = self.funders.entry(*n).or_default();
                b.count += 1;
                b.sum += u128::from(*amount);
            }
            _ => {
                let (t, y) = (terms.threshold_value(), terms.support().unwrap_or(0));
                let l = self.level(y)?;
                let width = self.ys.len();
                self.actors.entry(t).or_insert_with(|| vec![0; width])[l] += 1;
            }
        }
        self.live += 1;
        Ok(())
    }

    /// Removes one live pledge with these terms.
    ///
    /// # Errors
    /// [`TallyError::NoLiveTerms`] if no live pledge has them (for a funder:
    /// no funder at `n` whose amounts sum to at least `amount`); nothing
    /// changes.
    pub fn remove(&mut self, terms: &Terms) -> Result<(), TallyError> {
        if !self.contains(terms) {
            return Err(TallyError::NoLiveTerms);
        }
        match terms {
            Terms::Fund { n, amount } => {
                if let Some(b) = self.funders.get_mut(n) {
                    b.count -= 1;
                    b.sum -= u128::from(*amount);
                    if b.count == 0 {
                        self.funders.remove(n);
                    }
                }
            }
            _ => {
                let t = terms.threshold_value();
                let l = self.level(terms.support().unwrap_or(0))?;
                if let Some(c) = self.actors.get_mut(&t) {
                    c[l] -= 1;
                    if c.iter().all(|&k| k == 0) {
                        self.actors.remove(&t);
                    }
                }
            }
        }
        self.live -= 1;
        Ok(())
    }

    /// Moves one live pledge from `old` to `new` terms (any kinds).
    ///
    /// # Errors
    /// As [`FundingTally::remove`] for `old` and [`FundingTally::add`] for
    /// `new`; atomic.
    pub fn amend(&mut self, old: &Terms, new: &Terms) -> Result<(), TallyError> {
        self.check(new)?;
        self.remove(old)?;
        // INVARIANT-like: `new` passed `check` and the count just fell.
        self.insert(new)
    }

    /// Actor buckets `(t, y, count)`, ascending by `(t, y)`.
    pub fn actor_buckets(&self) -> Vec<(u32, u64, u64)> {
        let mut out = Vec::new();
        for (&t, counts) in &self.actors {
            for (&y, &c) in self.ys.iter().zip(counts) {
                if c > 0 {
                    out.push((t, y, c));
                }
            }
        }
        out
    }

    /// Funder buckets `(n, count, sum)`, ascending by `n`.
    pub fn funder_buckets(&self) -> Vec<(u32, u64, u128)> {
        self.funders
            .iter()
            .map(|(&n, b)| (n, b.count, b.sum))
            .collect()
    }

    /// The joint tally: `A`, `F(A)`, `cost(A)`, the demand and the per-level
    /// counts. `O((Dₜ + Dₙ) · L)`. SPEC R-FUND-3.
    ///
    /// # Errors
    /// Only on sums that cannot occur under [`MAX_LIVE`].
    pub fn joint(&self) -> Result<JointTally, TallyError> {
        let actors = self.actor_buckets();
        let funders: Vec<(u32, u128)> = self.funders.iter().map(|(&n, b)| (n, b.sum)).collect();
        sweep(&self.ys, &actors, &funders)
    }

    /// The least extra funding that raises the active count, if some larger
    /// group could act with enough money (informative, like R-TALLY-3).
    ///
    /// # Errors
    /// Only on sums that cannot occur under [`MAX_LIVE`].
    pub fn next_funding(&self) -> Result<Option<NextFunding>, TallyError> {
        let actors = self.actor_buckets();
        let funders: Vec<(u32, u128)> = self.funders.iter().map(|(&n, b)| (n, b.sum)).collect();
        let active = sweep(&self.ys, &actors, &funders)?.active;
        next_funding(&self.ys, &actors, &funders, active)
    }

    /// A validated snapshot of this tally (SPEC R-FUND-6).
    ///
    /// # Errors
    /// [`TallyError::TooManyBuckets`] past [`MAX_BUCKETS`] buckets.
    pub fn snapshot(&self) -> Result<FundingSnapshot, TallyError> {
        FundingSnapshot::new(self.actor_buckets(), self.funder_buckets())
    }
}

// ---------------------------------------------------------------------------
// Snapshots
// ---------------------------------------------------------------------------

/// A validated funding histogram with its joint tally: the final tally of a
/// funding campaign and the content of a [`FundingStatement`]. SPEC R-FUND-6.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FundingSnapshot {
    actors: Vec<(u32, u64, u64)>,
    funders: Vec<(u32, u64, u128)>,
    live: u64,
    joint: JointTally,
}

impl FundingSnapshot {
    /// Validates the buckets (SPEC R-FUND-6) and computes the joint tally.
    ///
    /// # Errors
    /// [`TallyError::NotAscending`], [`TallyError::ZeroCount`],
    /// [`TallyError::ThresholdOutOfRange`], [`TallyError::TooManyBuckets`],
    /// [`TallyError::TooManyPledges`], [`TallyError::TooManyLevels`],
    /// [`TallyError::AmountOverflow`] (a funder sum outside
    /// `count..=count·MAX_AMOUNT`, a support above `MAX_AMOUNT`).
    pub fn new(
        actors: Vec<(u32, u64, u64)>,
        funders: Vec<(u32, u64, u128)>,
    ) -> Result<Self, TallyError> {
        if actors.len() > MAX_BUCKETS || funders.len() > MAX_BUCKETS {
            return Err(TallyError::TooManyBuckets);
        }
        let mut live = 0u64;
        let mut add_live = |c: u64| {
            live = live
                .checked_add(c)
                .filter(|&l| l <= MAX_LIVE)
                .ok_or(TallyError::TooManyPledges)?;
            Ok::<_, TallyError>(())
        };
        let mut previous: Option<(u32, u64)> = None;
        let mut ys: Vec<u64> = Vec::new();
        for &(t, y, c) in &actors {
            check_t(t)?;
            if previous.is_some_and(|p| p >= (t, y)) {
                return Err(TallyError::NotAscending(t));
            }
            if c == 0 {
                return Err(TallyError::ZeroCount(t));
            }
            if y > MAX_AMOUNT {
                return Err(TallyError::AmountOverflow);
            }
            add_live(c)?;
            if let Err(at) = ys.binary_search(&y) {
                ys.insert(at, y);
                if ys.len() > MAX_DISTINCT_SUPPORT {
                    return Err(TallyError::TooManyLevels);
                }
            }
            previous = Some((t, y));
        }
        let mut previous = 0u32;
        for &(n, c, sum) in &funders {
            check_t(n)?;
            if n <= previous {
                return Err(TallyError::NotAscending(n));
            }
            if c == 0 {
                return Err(TallyError::ZeroCount(n));
            }
            if sum < u128::from(c) || sum > u128::from(c) * u128::from(MAX_AMOUNT) {
                return Err(TallyError::AmountOverflow);
            }
            add_live(c)?;
            previous = n;
        }
        let sums: Vec<(u32, u128)> = funders.iter().map(|f| (f.0, f.2)).collect();
        let joint = sweep(&ys, &actors, &sums)?;
        Ok(Self {
            actors,
            funders,
            live,
            joint,
        })
    }

    /// Actor buckets `(t, y, count)`, ascending by `(t, y)`.
    pub fn actors(&self) -> &[(u32, u64, u64)] {
        &self.actors
    }
    /// Funder buckets `(n, count, sum)`, ascending by `n`.
    pub fn funders(&self) -> &[(u32, u64, u128)] {
        &self.funders
    }
    /// Live pledges, all kinds.
    pub fn live(&self) -> u64 {
        self.live
    }
    /// The joint tally.
    pub fn joint(&self) -> &JointTally {
        &self.joint
    }
    /// The active count.
    pub fn active(&self) -> u64 {
        self.joint.active
    }

    /// SPEC R-FUND-6, big-endian:
    /// `live u64 ‖ active u64 ‖ funds u128 ‖ cost u128 ‖
    ///  n_a u32 ‖ n_a × (t u32 ‖ y u64 ‖ count u64) ‖
    ///  n_f u32 ‖ n_f × (n u32 ‖ count u64 ‖ sum u128)`.
    pub fn encode_into(&self, w: &mut Writer) {
        w.u64(self.live).u64(self.joint.active);
        w.raw(&self.joint.funds.to_be_bytes())
            .raw(&self.joint.cost.to_be_bytes());
        // INVARIANT: lengths ≤ MAX_BUCKETS (checked at construction).
        w.u32(u32::try_from(self.actors.len()).unwrap_or(u32::MAX));
        for &(t, y, c) in &self.actors {
            w.u32(t).u64(y).u64(c);
        }
        w.u32(u32::try_from(self.funders.len()).unwrap_or(u32::MAX));
        for &(n, c, sum) in &self.funders {
            w.u32(n).u64(c).raw(&sum.to_be_bytes());
        }
    }

    /// The encoding of [`FundingSnapshot::encode_into`].
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.encode_into(&mut w);
        w.into_bytes()
    }

    /// Decodes exactly one snapshot and checks the stated `live`, `active`,
    /// `funds` and `cost` against the histogram.
    ///
    /// # Errors
    /// [`TallyError::Decode`] for truncation or trailing bytes, the rules of
    /// [`FundingSnapshot::new`], [`TallyError::LiveMismatch`],
    /// [`TallyError::ActiveMismatch`], [`TallyError::FundingMismatch`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TallyError> {
        crate::codec::read_exactly(bytes, Self::read)
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, TallyError> {
        let live = r.u64("funding.live")?;
        let active = r.u64("funding.active")?;
        let funds = u128::from_be_bytes(r.array("funding.funds")?);
        let cost = u128::from_be_bytes(r.array("funding.cost")?);
        let n_a = bounded_count(r, 20, "funding.actors")?;
        let mut actors = Vec::with_capacity(n_a);
        for _ in 0..n_a {
            actors.push((
                r.u32("funding.t")?,
                r.u64("funding.y")?,
                r.u64("funding.count")?,
            ));
        }
        let n_f = bounded_count(r, 28, "funding.funders")?;
        let mut funders = Vec::with_capacity(n_f);
        for _ in 0..n_f {
            funders.push((
                r.u32("funding.n")?,
                r.u64("funding.count")?,
                u128::from_be_bytes(r.array("funding.sum")?),
            ));
        }
        let s = Self::new(actors, funders)?;
        s.check_stated(live, active, funds, cost)?;
        Ok(s)
    }

    fn check_stated(
        &self,
        live: u64,
        active: u64,
        funds: u128,
        cost: u128,
    ) -> Result<(), TallyError> {
        if live != self.live {
            return Err(TallyError::LiveMismatch {
                stated: live,
                computed: self.live,
            });
        }
        if active != self.joint.active {
            return Err(TallyError::ActiveMismatch {
                stated: active,
                computed: self.joint.active,
            });
        }
        if funds != self.joint.funds {
            return Err(TallyError::FundingMismatch("funds"));
        }
        if cost != self.joint.cost {
            return Err(TallyError::FundingMismatch("cost"));
        }
        Ok(())
    }

    /// `SHA-256("pledge/v1/funding-tally-snapshot" ‖ encoding)`. SPEC R-FUND-6.
    pub fn digest(&self) -> Hash {
        Hash(sha256(&[FUNDING_SNAPSHOT_DIGEST_TAG, &self.to_bytes()]))
    }
}

fn check_t(t: u32) -> Result<(), TallyError> {
    if t == 0 || t > MAX_THRESHOLD {
        return Err(TallyError::ThresholdOutOfRange {
            t,
            t_max: MAX_THRESHOLD,
        });
    }
    Ok(())
}

/// A `u32` bucket count, bounded by [`MAX_BUCKETS`] and by the bytes left
/// (`width` bytes a bucket) before anything is allocated.
fn bounded_count(
    r: &mut Reader<'_>,
    width: usize,
    field: &'static str,
) -> Result<usize, TallyError> {
    let n = usize::try_from(r.u32(field)?).unwrap_or(usize::MAX);
    if n > MAX_BUCKETS {
        return Err(TallyError::TooManyBuckets);
    }
    if n.saturating_mul(width) > r.remaining() {
        return Err(TallyError::Decode(DecodeError::Truncated { field }));
    }
    Ok(n)
}

// ---------------------------------------------------------------------------
// Statements
// ---------------------------------------------------------------------------

/// "At checkpoint size `N` of log `origin`, funding campaign `C` has this
/// joint tally": the body of a signed note. SPEC R-FUND-7.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FundingStatement {
    origin: String,
    checkpoint_size: u64,
    campaign: CampaignId,
    snapshot: FundingSnapshot,
}

impl FundingStatement {
    /// A statement for `campaign` at `checkpoint_size` of the log `origin`.
    ///
    /// # Errors
    /// [`TallyError::BadOrigin`].
    pub fn new(
        origin: &str,
        checkpoint_size: u64,
        campaign: CampaignId,
        snapshot: FundingSnapshot,
    ) -> Result<Self, TallyError> {
        check_origin(origin)?;
        Ok(Self {
            origin: origin.to_owned(),
            checkpoint_size,
            campaign,
            snapshot,
        })
    }

    /// The log origin.
    pub fn origin(&self) -> &str {
        &self.origin
    }
    /// The checkpoint size.
    pub fn checkpoint_size(&self) -> u64 {
        self.checkpoint_size
    }
    /// The campaign.
    pub fn campaign(&self) -> &CampaignId {
        &self.campaign
    }
    /// The tally.
    pub fn snapshot(&self) -> &FundingSnapshot {
        &self.snapshot
    }

    /// The note body (SPEC R-FUND-7), every line ending in `\n`:
    ///
    /// ```text
    /// <origin>/funding-tally/v1
    /// <campaign id, 64 lower-case hex digits>
    /// <checkpoint size>
    /// live <n>
    /// active <A>
    /// funds <F(A)>
    /// cost <cost(A)>
    /// demand <Σ y over E(A)>
    /// level <y> <eligible> <funded>   per support amount in E(A), ascending y
    /// act <t> <y> <count>             per actor bucket, ascending (t, y)
    /// fund <n> <count> <sum>          per funder bucket, ascending n
    /// ```
    pub fn to_note_body(&self) -> String {
        use fmt::Write as _;
        let s_ = &self.snapshot;
        let j = &s_.joint;
        let mut s = String::new();
        let _ = write!(
            s,
            "{}{}\n{}\n{}\nlive {}\nactive {}\nfunds {}\ncost {}\ndemand {}\n",
            self.origin,
            FUNDING_STATEMENT_SUFFIX,
            self.campaign.to_hex(),
            self.checkpoint_size,
            s_.live,
            j.active,
            j.funds,
            j.cost,
            j.demand
        );
        for l in &j.levels {
            let _ = writeln!(s, "level {} {} {}", l.support, l.eligible, l.funded);
        }
        for &(t, y, c) in &s_.actors {
            let _ = writeln!(s, "act {t} {y} {c}");
        }
        for &(n, c, sum) in &s_.funders {
            let _ = writeln!(s, "fund {n} {c} {sum}");
        }
        s
    }

    /// Parses a note body strictly: exactly the text
    /// [`FundingStatement::to_note_body`] produces for some valid statement;
    /// every derived line (`active`, `funds`, `cost`, `demand`, `level`) must
    /// be the one the histogram gives.
    ///
    /// # Errors
    /// [`TallyError::Malformed`] with the offending line, the snapshot rules,
    /// [`TallyError::LiveMismatch`], [`TallyError::ActiveMismatch`],
    /// [`TallyError::FundingMismatch`].
    pub fn parse_note_body(body: &str) -> Result<Self, TallyError> {
        let malformed = |line: usize, reason: &'static str| TallyError::Malformed { line, reason };
        let content = body.strip_suffix('\n').ok_or_else(|| {
            malformed(body.split('\n').count(), "the body must end with a newline")
        })?;
        let lines: Vec<&str> = content.split('\n').collect();
        if let Some(i) = lines.iter().position(|l| l.is_empty()) {
            return Err(malformed(i + 1, "empty line"));
        }
        let get = |i: usize, missing: &'static str| {
            lines.get(i).copied().ok_or(malformed(i + 1, missing))
        };
        let origin = get(0, "missing first line")?
            .strip_suffix(FUNDING_STATEMENT_SUFFIX)
            .ok_or(malformed(1, "first line must be <origin>/funding-tally/v1"))?;
        check_origin(origin)?;
        let id = get(1, "missing campaign id line")?;
        if id.len() != 64 || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(malformed(2, "campaign id must be 64 lower-case hex digits"));
        }
        let campaign = CampaignId::from_hex(id)
            .map_err(|_| malformed(2, "campaign id must be 64 lower-case hex digits"))?;
        let checkpoint_size = parse_decimal(get(2, "missing checkpoint size line")?)
            .ok_or(malformed(3, "checkpoint size must be a canonical decimal"))?;
        let field =
            |i: usize, name: &'static str, reason: &'static str| -> Result<u128, TallyError> {
                get(i, reason)?
                    .strip_prefix(name)
                    .and_then(|v| v.strip_prefix(' '))
                    .and_then(parse_decimal_u128)
                    .ok_or(malformed(i + 1, reason))
            };
        let live = field(3, "live", "expected `live <canonical decimal>`")?;
        let active = field(4, "active", "expected `active <canonical decimal>`")?;
        let funds = field(5, "funds", "expected `funds <canonical decimal>`")?;
        let cost = field(6, "cost", "expected `cost <canonical decimal>`")?;
        let demand = field(7, "demand", "expected `demand <canonical decimal>`")?;
        let (live, active) = match (u64::try_from(live), u64::try_from(active)) {
            (Ok(l), Ok(a)) => (l, a),
            _ => return Err(malformed(4, "live and active must fit 64 bits")),
        };
        let mut levels = Vec::new();
        let mut actors = Vec::new();
        let mut funders = Vec::new();
        let mut section = 0u8;
        for (i, line) in lines.iter().enumerate().skip(8) {
            let n = i + 1;
            let bad = || {
                malformed(
                    n,
                    "expected `level`, `act` or `fund` and three canonical decimals, in that order",
                )
            };
            let mut parts = line.split(' ');
            let (Some(tag), Some(a), Some(b), Some(c), None) = (
                parts.next(),
                parts.next(),
                parts.next(),
                parts.next(),
                parts.next(),
            ) else {
                return Err(bad());
            };
            let order = match tag {
                "level" => 0,
                "act" => 1,
                "fund" => 2,
                _ => return Err(bad()),
            };
            if order < section {
                return Err(bad());
            }
            section = order;
            let (Some(a), Some(b), Some(c)) = (
                parse_decimal_u128(a),
                parse_decimal_u128(b),
                parse_decimal_u128(c),
            ) else {
                return Err(bad());
            };
            let as64 = |v: u128| u64::try_from(v).map_err(|_| bad());
            let as32 = |v: u128| u32::try_from(v).map_err(|_| bad());
            if actors.len() + funders.len() + levels.len() > 2 * MAX_BUCKETS + MAX_DISTINCT_SUPPORT
            {
                return Err(TallyError::TooManyBuckets);
            }
            match order {
                0 => levels.push(LevelCount {
                    support: as64(a)?,
                    eligible: as64(b)?,
                    funded: as64(c)?,
                }),
                1 => actors.push((as32(a)?, as64(b)?, as64(c)?)),
                _ => funders.push((as32(a)?, as64(b)?, c)),
            }
        }
        let snapshot = FundingSnapshot::new(actors, funders)?;
        snapshot.check_stated(live, active, funds, cost)?;
        if snapshot.joint.demand != demand {
            return Err(TallyError::FundingMismatch("demand"));
        }
        if snapshot.joint.levels != levels {
            return Err(TallyError::FundingMismatch("level"));
        }
        Ok(Self {
            origin: origin.to_owned(),
            checkpoint_size,
            campaign,
            snapshot,
        })
    }
}

// ---------------------------------------------------------------------------
// Either kind of campaign tally (for readers of any campaign: auditors)
// ---------------------------------------------------------------------------

/// The tally of a campaign of either kind: R-TALLY-5 for a campaign without
/// funding, R-FUND-6 for a funding campaign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CampaignSnapshot {
    /// A plain campaign's histogram.
    Plain(crate::tally::TallySnapshot),
    /// A funding campaign's joint tally.
    Funding(FundingSnapshot),
}

impl CampaignSnapshot {
    /// Live pledges.
    pub fn live(&self) -> u64 {
        match self {
            Self::Plain(s) => s.live(),
            Self::Funding(s) => s.live(),
        }
    }
    /// The active count (R-TALLY-2 or R-FUND-1).
    pub fn active(&self) -> u64 {
        match self {
            Self::Plain(s) => s.active(),
            Self::Funding(s) => s.active(),
        }
    }
    /// Number of buckets (of both sorts for a funding tally).
    pub fn buckets(&self) -> usize {
        match self {
            Self::Plain(s) => s.buckets().len(),
            Self::Funding(s) => s.actors().len() + s.funders().len(),
        }
    }
}

/// A parsed tally statement of either kind, told apart by its first line
/// (`…/tally/v1` or `…/funding-tally/v1`: no first line ends in both, since
/// the character before `tally` differs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CampaignStatement {
    /// R-TALLY-7.
    Plain(crate::tally::TallyStatement),
    /// R-FUND-7.
    Funding(FundingStatement),
}

impl CampaignStatement {
    /// Parses either kind strictly (R-TALLY-8, R-FUND-7).
    ///
    /// # Errors
    /// As [`crate::tally::TallyStatement::parse_note_body`] or
    /// [`FundingStatement::parse_note_body`].
    pub fn parse_note_body(body: &str) -> Result<Self, TallyError> {
        let first = body.split('\n').next().unwrap_or_default();
        if first.ends_with(FUNDING_STATEMENT_SUFFIX) {
            FundingStatement::parse_note_body(body).map(Self::Funding)
        } else {
            crate::tally::TallyStatement::parse_note_body(body).map(Self::Plain)
        }
    }
    /// The log origin.
    pub fn origin(&self) -> &str {
        match self {
            Self::Plain(s) => s.origin(),
            Self::Funding(s) => s.origin(),
        }
    }
    /// The campaign.
    pub fn campaign(&self) -> &CampaignId {
        match self {
            Self::Plain(s) => s.campaign(),
            Self::Funding(s) => s.campaign(),
        }
    }
    /// The checkpoint size it is bound to.
    pub fn checkpoint_size(&self) -> u64 {
        match self {
            Self::Plain(s) => s.checkpoint_size(),
            Self::Funding(s) => s.checkpoint_size(),
        }
    }
    /// Live pledges.
    pub fn live(&self) -> u64 {
        match self {
            Self::Plain(s) => s.live(),
            Self::Funding(s) => s.snapshot().live(),
        }
    }
    /// The active count.
    pub fn active(&self) -> u64 {
        match self {
            Self::Plain(s) => s.active(),
            Self::Funding(s) => s.snapshot().active(),
        }
    }
    /// True if the statement's tally is exactly `snap` (same kind, same
    /// buckets).
    pub fn states(&self, snap: &CampaignSnapshot) -> bool {
        match (self, snap) {
            (Self::Plain(s), CampaignSnapshot::Plain(t)) => s.snapshot() == t,
            (Self::Funding(s), CampaignSnapshot::Funding(t)) => s.snapshot() == t,
            _ => false,
        }
    }
    /// Number of buckets stated.
    pub fn buckets(&self) -> usize {
        match self {
            Self::Plain(s) => s.snapshot().buckets().len(),
            Self::Funding(s) => s.snapshot().actors().len() + s.snapshot().funders().len(),
        }
    }
}

// ---------------------------------------------------------------------------
// Allocation: every pledge's outcome at the close
// ---------------------------------------------------------------------------

/// The outcome of one live pledge at the close. SPEC R-FUND-4, R-FUND-5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An action pledge that acts; `support` is what the fund pays it (0 for
    /// `act`).
    Acts {
        /// Support paid, minor units.
        support: u64,
    },
    /// An action pledge with `t ≤ A` the money does not stretch to.
    WaitingForFunds,
    /// An action pledge with `t > A`.
    NotActivated,
    /// A funder: what it owes (0 when `n > A`).
    Owes {
        /// Amount due, minor units.
        due: u64,
    },
}

/// Every live pledge's outcome from the public log: `pledges` are the live
/// pledges' nullifiers and terms, `final_root` the root of the checkpoint the
/// outcome is fixed at (the one that includes the `CampaignClosed` entry).
/// Within each support level, the funded pledges are those with the smallest
/// [`tiebreak_key`]. Returns the joint tally and the outcomes in input
/// order: the operator's export of amounts due per anonymous pledge and the
/// auditor's check. SPEC R-FUND-4, R-FUND-5.
///
/// # Errors
/// As [`recompute_joint`].
pub fn allocate(
    final_root: &Hash,
    pledges: &[(Nullifier, Terms)],
    surplus_to_fund: bool,
) -> Result<(JointTally, Vec<Outcome>), TallyError> {
    let terms: Vec<Terms> = pledges.iter().map(|p| p.1).collect();
    let joint = recompute_joint(&terms)?;
    let mut out = vec![Outcome::NotActivated; pledges.len()];
    // Per level: the eligible pledges' (key, index), sorted by key.
    let mut by_level: BTreeMap<u64, Vec<(Hash, usize)>> = BTreeMap::new();
    for (i, (nf, t)) in pledges.iter().enumerate() {
        match (t.support(), t) {
            (None, Terms::Fund { n, amount }) => {
                out[i] = Outcome::Owes {
                    due: joint.due(*n, *amount, surplus_to_fund),
                };
            }
            (Some(y), _) if u64::from(t.threshold_value()) <= joint.active => {
                by_level
                    .entry(y)
                    .or_default()
                    .push((tiebreak_key(final_root, nf), i));
            }
            _ => {}
        }
    }
    for l in &joint.levels {
        let Some(list) = by_level.get_mut(&l.support) else {
            continue;
        };
        list.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        for (rank, &(_, i)) in list.iter().enumerate() {
            out[i] = if (rank as u64) < l.funded {
                Outcome::Acts { support: l.support }
            } else {
                Outcome::WaitingForFunds
            };
        }
    }
    Ok((joint, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tally::recompute_active;
    use proptest::prelude::*;

    /// `A` straight from the definition (SPEC R-FUND-1), for small inputs.
    fn brute(terms: &[Terms]) -> u64 {
        let actors = terms.iter().filter(|t| t.is_action()).count() as u64;
        (0..=actors)
            .filter(|&m| {
                let mut ys: Vec<u64> = terms
                    .iter()
                    .filter(|t| t.is_action() && u64::from(t.threshold_value()) <= m)
                    .filter_map(Terms::support)
                    .collect();
                if (ys.len() as u64) < m {
                    return false;
                }
                ys.sort_unstable();
                let cost: u128 = ys.iter().take(m as usize).map(|&y| u128::from(y)).sum();
                let funds: u128 = terms
                    .iter()
                    .filter_map(|t| match t {
                        Terms::Fund { n, amount } if u64::from(*n) <= m => {
                            Some(u128::from(*amount))
                        }
                        _ => None,
                    })
                    .sum();
                cost <= funds
            })
            .max()
            .unwrap_or(0)
    }

    const MENU: [u64; 3] = [10, 25, 60];

    fn arb_terms(t_max: u32) -> impl Strategy<Value = Terms> {
        prop_oneof![
            (1..=t_max).prop_map(|t| Terms::threshold(t).unwrap()),
            (1..=t_max, 0..MENU.len()).prop_map(|(t, l)| Terms::supported(t, MENU[l]).unwrap()),
            (1..=t_max, 1u64..=120).prop_map(|(n, x)| Terms::fund(n, x).unwrap()),
        ]
    }

    fn tally_of(terms: &[Terms], t_max: u32) -> FundingTally {
        let mut f = FundingTally::new(t_max, &MENU).unwrap();
        for t in terms {
            f.add(t).unwrap();
        }
        f
    }

    #[test]
    fn round2_example_eligible_but_not_funded() {
        // Y = 10 each, one funder n = 1 x = 10, two supported actors t = 1.
        let terms = [
            Terms::supported(1, 10).unwrap(),
            Terms::supported(1, 10).unwrap(),
            Terms::fund(1, 10).unwrap(),
        ];
        let j = recompute_joint(&terms).unwrap();
        assert_eq!((j.active, j.funds, j.cost, j.demand), (1, 10, 10, 20));
        assert_eq!(
            j.levels,
            [LevelCount {
                support: 10,
                eligible: 2,
                funded: 1
            }]
        );
        assert_eq!(
            j.standing(1, 10),
            Standing::TieBreak {
                slots: 1,
                eligible: 2
            }
        );
        assert_eq!(j.due(1, 10, false), 10);
        let root = Hash([5; 32]);
        let pledges: Vec<(Nullifier, Terms)> = terms
            .iter()
            .enumerate()
            .map(|(i, t)| (Nullifier([i as u8; 32]), *t))
            .collect();
        let (_, out) = allocate(&root, &pledges, false).unwrap();
        let acts = out
            .iter()
            .filter(|o| matches!(o, Outcome::Acts { support: 10 }))
            .count();
        let waits = out
            .iter()
            .filter(|o| **o == Outcome::WaitingForFunds)
            .count();
        assert_eq!((acts, waits), (1, 1));
        assert_eq!(out[2], Outcome::Owes { due: 10 });
        // The one chosen has the smaller key, and resolve_tie agrees.
        let k0 = tiebreak_key(&root, &pledges[0].0);
        let k1 = tiebreak_key(&root, &pledges[1].0);
        let first_wins = k0.as_bytes() < k1.as_bytes();
        assert_eq!(out[0] == (Outcome::Acts { support: 10 }), first_wins);
        assert_eq!(resolve_tie(&k0, [&k1], 1), first_wins);
    }

    #[test]
    fn pro_rata_rounds_down_and_fund_absorbs_the_rest() {
        // Three funders of 100 at n = 1, two actors asking 10 and 25: cost 35.
        let terms = [
            Terms::supported(1, 10).unwrap(),
            Terms::supported(2, 25).unwrap(),
            Terms::fund(1, 100).unwrap(),
            Terms::fund(1, 100).unwrap(),
            Terms::fund(1, 100).unwrap(),
        ];
        let j = recompute_joint(&terms).unwrap();
        assert_eq!((j.active, j.funds, j.cost), (2, 300, 35));
        // 100 · 35 / 300 = 11.67 → 11 each; 33 paid, the fund absorbs 2.
        assert_eq!(j.due(1, 100, false), 11);
        assert_eq!(j.due(1, 100, true), 100);
        assert_eq!(j.due(3, 100, false), 0);
    }

    #[test]
    fn either_statement_kind_parses_and_compares_only_with_its_kind() {
        let plain = crate::tally::TallySnapshot::from_buckets(vec![(1, 2)]).unwrap();
        let ps = crate::tally::TallyStatement::new(
            "o/funding-tally/v1",
            3,
            CampaignId([2; 32]),
            plain.clone(),
        )
        .unwrap();
        let parsed = CampaignStatement::parse_note_body(&ps.to_note_body()).unwrap();
        assert_eq!(parsed, CampaignStatement::Plain(ps));
        assert!(parsed.states(&CampaignSnapshot::Plain(plain)));
        let f = tally_of(
            &[Terms::threshold(1).unwrap(), Terms::threshold(1).unwrap()],
            5,
        )
        .snapshot()
        .unwrap();
        assert!(!parsed.states(&CampaignSnapshot::Funding(f.clone())));
        let fs = FundingStatement::new("o", 3, CampaignId([2; 32]), f.clone()).unwrap();
        let parsed = CampaignStatement::parse_note_body(&fs.to_note_body()).unwrap();
        assert_eq!(
            (parsed.live(), parsed.active(), parsed.checkpoint_size()),
            (2, 2, 3)
        );
        assert!(parsed.states(&CampaignSnapshot::Funding(f)));
    }

    #[test]
    fn mul_div_is_exact_beyond_128_bits() {
        assert_eq!(mul_div_floor(7, 3, 4), 5);
        assert_eq!(mul_div_floor(MAX_AMOUNT, u128::MAX, u128::MAX), MAX_AMOUNT);
        assert_eq!(
            mul_div_floor(u64::MAX, u128::MAX - 1, u128::MAX),
            u64::MAX - 1
        );
        // x · (f/2) / f with a product above 2^128.
        let f = 1u128 << 120;
        assert_eq!(mul_div_floor(MAX_AMOUNT, f / 2, f), MAX_AMOUNT / 2);
        assert_eq!(mul_div_floor(1000, (f / 3) * 2, f), 666);
        assert_eq!(mul_div_floor(5, 0, 9), 0);
    }

    #[test]
    fn hostile_terms_are_refused_without_change() {
        let mut f = FundingTally::new(100, &MENU).unwrap();
        assert_eq!(
            f.add(&Terms::supported(5, 11).unwrap()),
            Err(TallyError::NotOnMenu(11))
        );
        assert!(matches!(
            f.add(&Terms::fund(101, 5).unwrap()),
            Err(TallyError::ThresholdOutOfRange { .. })
        ));
        assert_eq!(
            f.remove(&Terms::fund(5, 5).unwrap()),
            Err(TallyError::NoLiveTerms)
        );
        f.add(&Terms::fund(5, 5).unwrap()).unwrap();
        assert!(
            f.amend(
                &Terms::fund(5, 5).unwrap(),
                &Terms::supported(5, 11).unwrap()
            )
            .is_err()
        );
        assert_eq!(f.live(), 1);
        assert_eq!(f.funder_buckets(), [(5, 1, 5)]);
        assert_eq!(
            f.remove(&Terms::fund(5, 4).unwrap()),
            Err(TallyError::NoLiveTerms)
        );
        // Sums of the largest amounts cannot overflow.
        let big = Terms::fund(1, MAX_AMOUNT).unwrap();
        let many = vec![big; 1000];
        let j = recompute_joint(&many).unwrap();
        assert_eq!(j.active, 0);
        assert!(FundingTally::new(10, &[5, 5]).is_err());
        assert!(FundingTally::new(10, &[1, 2, 3, 4, 5, 6, 7, 8, 9]).is_err());
    }

    #[test]
    fn snapshot_and_statement_round_trip_and_check_every_derived_line() {
        let terms = [
            Terms::threshold(1).unwrap(),
            Terms::supported(2, 25).unwrap(),
            Terms::supported(2, 10).unwrap(),
            Terms::fund(2, 30).unwrap(),
            Terms::fund(3, 4).unwrap(),
        ];
        let f = tally_of(&terms, 10);
        let s = f.snapshot().unwrap();
        assert_eq!(s.active(), 2);
        assert_eq!(FundingSnapshot::from_bytes(&s.to_bytes()).unwrap(), s);
        let st =
            FundingStatement::new("example.org/log", 9, CampaignId([0xab; 32]), s.clone()).unwrap();
        let body = st.to_note_body();
        assert_eq!(
            body,
            format!(
                "example.org/log/funding-tally/v1\n{}\n9\nlive 5\nactive 2\nfunds 30\ncost 10\n\
                 demand 35\nlevel 0 1 1\nlevel 10 1 1\nlevel 25 1 0\nact 1 0 1\nact 2 10 1\n\
                 act 2 25 1\nfund 2 1 30\nfund 3 1 4\n",
                "ab".repeat(32)
            )
        );
        assert_eq!(FundingStatement::parse_note_body(&body).unwrap(), st);
        for (from, to) in [
            ("active 2", "active 3"),
            ("funds 30", "funds 31"),
            ("cost 10", "cost 010"),
            ("demand 35", "demand 36"),
            ("level 25 1 0", "level 25 1 1"),
            ("act 2 10 1\n", ""),
            ("fund 2 1 30\nfund 3 1 4\n", "fund 3 1 4\nfund 2 1 30\n"),
            ("fund 2 1 30", "fund 2 1 30 1"),
            ("fund 2 1 30", "fund 2 1 0"),
            ("level 0 1 1\nlevel 10 1 1\n", "level 10 1 1\nlevel 0 1 1\n"),
            ("act 1 0 1\n", "act 1 0 1\nlevel 0 1 1\n"),
        ] {
            let bad = body.replacen(from, to, 1);
            assert!(
                FundingStatement::parse_note_body(&bad).is_err(),
                "{from} -> {to}"
            );
        }
        let mut bytes = s.to_bytes();
        bytes[15] ^= 1; // active
        assert!(FundingSnapshot::from_bytes(&bytes).is_err());
        bytes[15] ^= 1;
        bytes.push(0);
        assert!(FundingSnapshot::from_bytes(&bytes).is_err());
        assert_ne!(
            s.digest(),
            FundingSnapshot::new(vec![], vec![]).unwrap().digest()
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Incremental = from scratch = brute force; reduction to the plain
        /// tally; exactly A actors act; dues within amounts and cost.
        #[test]
        fn joint_matches_brute_force(terms in proptest::collection::vec(arb_terms(12), 0..14)) {
            let f = tally_of(&terms, 12);
            let inc = f.joint().unwrap();
            let scratch = recompute_joint(&terms).unwrap();
            prop_assert_eq!(&inc, &scratch);
            prop_assert_eq!(inc.active, brute(&terms));
            prop_assert!(inc.cost <= inc.funds);
            let acting: u64 = inc.levels.iter().map(|l| l.funded).sum();
            prop_assert_eq!(acting, inc.active);
            // Plain actors in E(A) always act.
            if let Some(l) = inc.levels.iter().find(|l| l.support == 0) {
                prop_assert_eq!(l.funded, l.eligible);
            }
            let dues: u128 = terms.iter().filter_map(|t| match t {
                Terms::Fund { n, amount } => {
                    let d = inc.due(*n, *amount, false);
                    assert!(d <= *amount);
                    Some(u128::from(d))
                }
                _ => None,
            }).sum();
            prop_assert!(dues <= inc.cost);
            let activated_funders = terms.iter().filter(|t| matches!(t, Terms::Fund { n, .. } if u64::from(*n) <= inc.active)).count() as u128;
            prop_assert!(inc.cost - dues < activated_funders.max(1));
            // The snapshot agrees and survives its encodings.
            let s = f.snapshot().unwrap();
            prop_assert_eq!(s.joint(), &inc);
            prop_assert_eq!(&FundingSnapshot::from_bytes(&s.to_bytes()).unwrap(), &s);
            let st = FundingStatement::new("o", 1, CampaignId([1; 32]), s).unwrap();
            prop_assert_eq!(FundingStatement::parse_note_body(&st.to_note_body()).unwrap(), st);
        }

        /// The funding hint: the amount it names, given by one funder at
        /// its `actors`, reaches that count; one unit less at any `n` raises
        /// nothing; and it is absent exactly when no larger group exists.
        #[test]
        fn next_funding_is_sufficient_and_minimal(terms in proptest::collection::vec(arb_terms(10), 0..12), n in 1u32..=10) {
            let f = tally_of(&terms, 10);
            let a = f.joint().unwrap().active;
            let hint = f.next_funding().unwrap();
            let actors = terms.iter().filter(|t| t.is_action()).count() as u64;
            let larger_group_exists = (a + 1..=actors).any(|m| {
                terms.iter().filter(|t| t.is_action() && u64::from(t.threshold_value()) <= m).count() as u64 >= m
            });
            prop_assert_eq!(hint.is_some(), larger_group_exists);
            if let Some(h) = hint {
                prop_assert!(h.actors > a);
                let x = u64::try_from(h.more_funds).unwrap();
                let mut more = terms.clone();
                more.push(Terms::fund(u32::try_from(h.actors).unwrap(), x).unwrap());
                prop_assert!(recompute_joint(&more).unwrap().active >= h.actors);
                if x > 1 {
                    let mut less = terms.clone();
                    less.push(Terms::fund(n, x - 1).unwrap());
                    prop_assert_eq!(recompute_joint(&less).unwrap().active, a);
                }
            }
        }

        /// Adding any pledge never lowers A.
        #[test]
        fn monotone(terms in proptest::collection::vec(arb_terms(12), 0..14), extra in arb_terms(12)) {
            let before = recompute_joint(&terms).unwrap().active;
            let mut more = terms.clone();
            more.push(extra);
            prop_assert!(recompute_joint(&more).unwrap().active >= before);
        }

        /// With no support asked, A is the plain active count whatever the
        /// funders offer, and every funder owes 0.
        #[test]
        fn reduces_to_the_plain_tally(
            ts in proptest::collection::vec(1u32..=30, 0..40),
            funders in proptest::collection::vec((1u32..=30, 1u64..=1000), 0..5),
        ) {
            let mut terms: Vec<Terms> = ts.iter().map(|&t| Terms::threshold(t).unwrap()).collect();
            let plain: Vec<(u32, u64)> = ts.iter().map(|&t| (t, 1)).collect();
            prop_assert_eq!(recompute_joint(&terms).unwrap().active, recompute_active(&plain));
            terms.extend(funders.iter().map(|&(n, x)| Terms::fund(n, x).unwrap()));
            let j = recompute_joint(&terms).unwrap();
            prop_assert_eq!(j.active, recompute_active(&plain));
            prop_assert_eq!(j.cost, 0);
            for &(n, x) in &funders {
                prop_assert_eq!(j.due(n, x, false), 0);
            }
        }

        /// Random add / amend / remove sequences keep the incremental tally
        /// equal to a recomputation of the live list.
        #[test]
        fn incremental_operations(ops in proptest::collection::vec((0u8..3, arb_terms(9), any::<prop::sample::Index>()), 0..60)) {
            let mut f = FundingTally::new(9, &MENU).unwrap();
            let mut live: Vec<Terms> = Vec::new();
            for (op, terms, at) in ops {
                match op {
                    0 if !live.is_empty() => {
                        let i = at.index(live.len());
                        f.remove(&live[i]).unwrap();
                        live.swap_remove(i);
                    }
                    1 if !live.is_empty() => {
                        let i = at.index(live.len());
                        f.amend(&live[i], &terms).unwrap();
                        live[i] = terms;
                    }
                    _ => {
                        f.add(&terms).unwrap();
                        live.push(terms);
                    }
                }
                prop_assert_eq!(f.live(), live.len() as u64);
                prop_assert_eq!(f.joint().unwrap(), recompute_joint(&live).unwrap());
            }
        }

        /// Allocation: exactly A actors act, each with t ≤ A; ties go to the
        /// smallest keys; standings agree with the outcomes.
        #[test]
        fn allocation_is_consistent(terms in proptest::collection::vec(arb_terms(8), 0..14), root in any::<[u8; 32]>()) {
            let root = Hash(root);
            let pledges: Vec<(Nullifier, Terms)> = terms.iter().enumerate().map(|(i, t)| {
                let mut n = [0u8; 32];
                n[..8].copy_from_slice(&(i as u64).to_be_bytes());
                (Nullifier(n), *t)
            }).collect();
            let (j, out) = allocate(&root, &pledges, false).unwrap();
            let acting = out.iter().filter(|o| matches!(o, Outcome::Acts { .. })).count() as u64;
            prop_assert_eq!(acting, j.active);
            for (i, ((nf, t), o)) in pledges.iter().zip(&out).enumerate() {
                let Some(y) = t.support() else { continue };
                match j.standing(t.threshold_value(), y) {
                    Standing::NotActivated => prop_assert_eq!(*o, Outcome::NotActivated),
                    Standing::Activated => prop_assert_eq!(*o, Outcome::Acts { support: y }),
                    Standing::WaitingForFunds => prop_assert_eq!(*o, Outcome::WaitingForFunds),
                    Standing::TieBreak { slots, .. } => {
                        let own = tiebreak_key(&root, nf);
                        let others: Vec<Hash> = pledges.iter().enumerate()
                            .filter(|&(k, (_, u))| k != i && u.support() == Some(y) && u64::from(u.threshold_value()) <= j.active)
                            .map(|(_, (m, _))| tiebreak_key(&root, m)).collect();
                        let wins = resolve_tie(&own, &others, slots);
                        prop_assert_eq!(*o == Outcome::Acts { support: y }, wins);
                    }
                }
            }
        }
    }
}
