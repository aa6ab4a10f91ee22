// Tally arithmetic of SPEC §9, in the page (no DOM: node imports it too).
// A histogram is an array of [threshold, count] pairs, thresholds ascending.

/**
 * Parses the body of a tally statement (SPEC R-TALLY-7), or a whole signed
 * note (the body ends at the first empty line). Returns
 * {origin, campaign, size, live, active, buckets} or throws.
 * The page only draws it: the wasm client verifies signatures for status.
 */
export function parseStatement(text) {
  const body = String(text).split("\n\n")[0];
  const lines = body.split("\n").filter((l, i, a) => !(i === a.length - 1 && l === ""));
  if (lines.length >= 8 && lines[0].endsWith("/funding-tally/v1")) return parseFunding(lines);
  if (lines.length < 5 || !lines[0].endsWith("/tally/v1")) throw new Error("not a tally statement");
  const num = (s) => {
    if (!/^(0|[1-9][0-9]*)$/.test(s)) throw new Error(`not a decimal: ${s}`);
    return Number(s);
  };
  const campaign = lines[1];
  if (!/^[0-9a-f]{64}$/.test(campaign)) throw new Error("bad campaign id");
  const size = num(lines[2]);
  const [l, lv] = lines[3].split(" ");
  const [a, av] = lines[4].split(" ");
  if (l !== "live" || a !== "active") throw new Error("bad tally lines");
  const buckets = [];
  for (const line of lines.slice(5)) {
    const [t, c] = line.split(" ");
    buckets.push([num(t), num(c)]);
  }
  return {
    kind: "plain",
    origin: lines[0].slice(0, -"/tally/v1".length),
    campaign, size, live: num(lv), active: num(av), buckets,
  };
}

/**
 * A funding statement (SPEC R-FUND-7): `{kind: "funding", origin, campaign,
 * size, live, active, funds, cost, demand, levels: [[y, eligible, funded]],
 * actors: [[t, y, count]], funders: [[n, count, sum]], buckets}` where
 * `buckets` counts the action pledges per threshold (the first chart).
 * Counts and support amounts are Numbers (at most 2^53 - 1); sums of money
 * (funds, cost, demand, a funder bucket's sum) are BigInts: they may pass
 * 2^64.
 */
function parseFunding(lines) {
  const dec = (s) => {
    if (!/^(0|[1-9][0-9]*)$/.test(s)) throw new Error(`not a decimal: ${s}`);
    return s;
  };
  const num = (s) => Number(dec(s));
  const big = (s) => BigInt(dec(s));
  const field = (line, name, conv = num) => {
    const [k, v, extra] = line.split(" ");
    if (k !== name || extra !== undefined) throw new Error(`expected ${name}`);
    return conv(v);
  };
  const campaign = lines[1];
  if (!/^[0-9a-f]{64}$/.test(campaign)) throw new Error("bad campaign id");
  const out = {
    kind: "funding",
    origin: lines[0].slice(0, -"/funding-tally/v1".length),
    campaign,
    size: num(lines[2]),
    live: field(lines[3], "live"),
    active: field(lines[4], "active"),
    funds: field(lines[5], "funds", big),
    cost: field(lines[6], "cost", big),
    demand: field(lines[7], "demand", big),
    levels: [], actors: [], funders: [],
  };
  for (const line of lines.slice(8)) {
    const [k, ...v] = line.split(" ");
    const list = { level: out.levels, act: out.actors, fund: out.funders }[k];
    if (!list || v.length !== 3) throw new Error(`bad funding line: ${line}`);
    list.push(k === "fund" ? [num(v[0]), num(v[1]), big(v[2])] : v.map(num));
  }
  const per = new Map();
  for (const [t, , c] of out.actors) per.set(t, (per.get(t) || 0) + c);
  out.buckets = [...per.entries()].sort((x, y) => x[0] - y[0]);
  return out;
}

/**
 * Money offered and needed by level of participation (SPEC R-FUND-1), in
 * BigInt minor units, for m = 1 … hi: `offered` = F(m), what funders with n <= m give; `needed` =
 * cost(m), the m smallest support demands among action pledges with t <= m,
 * or null when fewer than m could act. Also `active`, the largest m with
 * needed <= offered (0 if none): the joint A, recomputed from the buckets.
 */
export function fundingCurve(actors, funders, hi) {
  const points = [];
  let active = 0;
  const byT = [...actors].sort((x, y) => x[0] - y[0]);
  const byN = [...funders].sort((x, y) => x[0] - y[0]);
  const levels = new Map();   // support -> count among t <= m
  let ia = 0;
  let inf = 0;
  let offered = 0n;
  let eligible = 0;
  for (let m = 1; m <= hi; m++) {
    while (ia < byT.length && byT[ia][0] <= m) {
      const [, y, c] = byT[ia++];
      levels.set(y, (levels.get(y) || 0) + c);
      eligible += c;
    }
    while (inf < byN.length && byN[inf][0] <= m) offered += BigInt(byN[inf++][2]);
    let needed = null;
    if (eligible >= m) {
      needed = 0n;
      let left = m;
      for (const y of [...levels.keys()].sort((x, z) => x - z)) {
        const take = Math.min(left, levels.get(y));
        needed += BigInt(take) * BigInt(y);
        left -= take;
        if (left === 0) break;
      }
      if (needed <= offered) active = m;
    }
    points.push({ m, offered, needed });
  }
  return { points, active };
}

/** Number of live pledges. */
export function liveCount(buckets) {
  return buckets.reduce((s, [, c]) => s + c, 0);
}

/**
 * Active count A = max { m >= 0 : #{t <= m} >= m } (SPEC R-TALLY-2).
 * Between two thresholds the prefix count is constant, so the best m in
 * [t_i, t_{i+1} - 1] is min(t_{i+1} - 1, prefix_i) when that is >= t_i.
 */
export function activeCount(buckets) {
  let best = 0;
  let prefix = 0;
  for (let i = 0; i < buckets.length; i++) {
    const [t, c] = buckets[i];
    prefix += c;
    const end = i + 1 < buckets.length ? buckets[i + 1][0] - 1 : Infinity;
    const m = Math.min(end, prefix);
    if (m >= t && m > best) best = m;
  }
  return best;
}

/**
 * How many more pledges activate a pledge of threshold `t`: the least k such
 * that k more live pledges with threshold <= t make A >= t, which is
 *
 *   max(0, min over m >= t of (m - #{live pledges with threshold <= m}))
 *
 * with every live pledge counted, the pledger's own included. 0 exactly when
 * t <= A (the minimum is <= 0 at m = A); no placement of fewer pledges, at any
 * thresholds, activates it (a pledge at threshold <= t counts for every
 * m >= t, as much as any other can). At the smallest waiting threshold t*
 * this is R-TALLY-3's k. It is not t - #{t' <= t}: for {3, 4, 4} the pledger
 * at 3 needs one more (m = 4), not two. The chart's "next activation" and
 * "Your pledge" both use this function, so they cannot disagree.
 * Between bucket thresholds the count is constant, so the minimum is reached
 * at m = t or at a bucket threshold above t.
 */
export function moreNeeded(buckets, t) {
  let prefix = 0;
  let i = 0;
  for (; i < buckets.length && buckets[i][0] <= t; i++) prefix += buckets[i][1];
  let best = t - prefix;
  for (; i < buckets.length && best > 0; i++) {
    prefix += buckets[i][1];
    best = Math.min(best, buckets[i][0] - prefix);
  }
  return Math.max(0, best);
}

/**
 * Next activation (SPEC R-TALLY-3): the smallest threshold t* > A and
 * k = moreNeeded(buckets, t*). Also `group`: how many of the pledges waiting
 * now would be activated once k more pledges at t* arrive. Null when all are
 * activated.
 */
export function nextActivation(buckets) {
  const active = activeCount(buckets);
  const waiting = buckets.find(([t]) => t > active);
  if (!waiting) return null;
  const threshold = waiting[0];
  const more = moreNeeded(buckets, threshold);
  // k new pledges at t*: recompute A and count the waiting pledges it covers.
  const after = buckets.map(([t, c]) => [t, t === threshold ? c + more : c]);
  const newActive = activeCount(after);
  const group = buckets
    .filter(([t]) => t > active && t <= newActive)
    .reduce((s, [, c]) => s + c, 0);
  return { threshold, more, group };
}

/** Live, activated and waiting counts and the next activation. By R-TALLY-2
 *  exactly A pledges are activated (#{t <= A} = A). */
export function summarize(buckets) {
  const live = liveCount(buckets);
  const active = activeCount(buckets);
  const activated = buckets.filter(([t]) => t <= active).reduce((s, [, c]) => s + c, 0);
  return { live, active, activated, waiting: live - activated, next: nextActivation(buckets) };
}

/**
 * The funding half of "k more pledges, or z more funding" (SPEC R-FUND-2,
 * informative): `{actors: m, more: z}` with z = min over m > A with
 * |E(m)| >= m of cost(m) - F(m) (the smallest such m on a tie), or null when
 * no larger group could act whatever the money. Within an interval between
 * consecutive thresholds or funders' n, E and F are constant and cost grows
 * with m, so only the first m of each interval above A can be the best.
 * BigInt amounts.
 */
export function nextFunding(actors, funders, active) {
  const marks = new Set([active + 1]);
  for (const [t] of actors) if (t > active + 1) marks.add(t);
  for (const [n] of funders) if (n > active + 1) marks.add(n);
  let best = null;
  for (const m of [...marks].sort((x, y) => x - y)) {
    const levels = new Map();
    let eligible = 0;
    for (const [t, y, c] of actors) {
      if (t <= m) {
        levels.set(y, (levels.get(y) || 0) + c);
        eligible += c;
      }
    }
    if (eligible < m) continue;
    let needed = 0n;
    let left = m;
    for (const y of [...levels.keys()].sort((x, z) => x - z)) {
      const take = Math.min(left, levels.get(y));
      needed += BigInt(take) * BigInt(y);
      left -= take;
      if (left === 0) break;
    }
    let offered = 0n;
    for (const [n, , sum] of funders) if (n <= m) offered += BigInt(sum);
    const more = needed - offered;
    if (more > 0n && (best === null || more < best.more)) best = { actors: m, more };
  }
  return best;
}
