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
    origin: lines[0].slice(0, -"/tally/v1".length),
    campaign, size, live: num(lv), active: num(av), buckets,
  };
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
