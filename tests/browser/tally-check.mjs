// The campaign page's tally arithmetic (server/web/tally.js) against the
// protocol's vectors, without a browser: the known answers of R-TALLY-2 and
// R-TALLY-3, and "N more needed" for every threshold of generated campaigns
// (tally_more_needed.json, written by brute force in protocol/tests/tally.rs).
//
//   node tests/browser/tally-check.mjs
//
// e2e.mjs runs the same checks first; tests/tests/browser.rs runs this file
// alone too, so a wrong number fails even where no chromium is installed.
// Prints one JSON summary line last; exits 0 only if every check passed.

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");

function vectors(name) {
  return JSON.parse(fs.readFileSync(path.join(root, "protocol/tests/vectors", name), "utf8")).vectors;
}

/** Runs every check through `check(cond, what)`, which throws on failure. */
export async function checkTally(check) {
  const tally = await import(pathToFileURL(path.join(root, "server/web/tally.js")).href);
  for (const v of vectors("tally_known_answers.json")) {
    const n = tally.nextActivation(v.histogram);
    check(tally.activeCount(v.histogram) === v.active
      && JSON.stringify(n ? [n.threshold, n.more] : null) === JSON.stringify(v.next_activation),
      `tally.js matches known answer ${v.name}`);
  }
  const campaigns = vectors("tally_more_needed.json");
  check(campaigns.length >= 5, `${campaigns.length} generated campaigns`);
  for (const v of campaigns) {
    const s = tally.summarize(v.histogram);
    check(s.live === v.live && s.active === v.active && s.activated === v.active && s.waiting === v.live - v.active,
      `${v.name}: declared ${s.live}, activated ${s.activated}, waiting ${s.waiting} (A = ${v.active})`);
    const wrong = [];
    for (let t = 1; t <= v.t_max; t++) {
      const got = tally.moreNeeded(v.histogram, t);
      if (got !== v.more_needed[t - 1]) wrong.push(`t=${t}: page ${got}, tally ${v.more_needed[t - 1]}`);
    }
    check(wrong.length === 0,
      `${v.name}: moreNeeded agrees with the tally for every threshold 1..=${v.t_max} (${wrong.slice(0, 4).join("; ") || "all equal"})`);
    // The chart's sentence is the same function at t*.
    const n = s.next;
    check(JSON.stringify(n ? [n.threshold, n.more] : null) === JSON.stringify(v.next_activation)
      && (!n || n.more === tally.moreNeeded(v.histogram, n.threshold)),
      `${v.name}: the chart's next activation is moreNeeded at its threshold`);
  }
  // Funding statements (R-FUND-7): the page parses them, and its curve of
  // money offered and needed gives the joint A they state (R-FUND-1).
  const funding = JSON.parse(fs.readFileSync(path.join(root, "protocol/tests/vectors/funding.json"), "utf8")).tallies;
  check(funding.length >= 5, `${funding.length} funding tallies`);
  for (const v of funding) {
    const st = tally.parseStatement(v.statement);
    const hi = Math.max(1, ...st.actors.map(([t]) => t), ...st.funders.map(([n]) => n)) + 1;
    const curve = tally.fundingCurve(st.actors, st.funders, hi);
    const atA = curve.points.find((p) => p.m === st.active);
    check(st.kind === "funding" && st.active === v.active && String(st.funds) === v.funds
      && String(st.cost) === v.cost && String(st.demand) === v.demand,
      `${v.name}: the page reads the funding statement's figures`);
    check(curve.active === v.active && (v.active === 0 || (atA && String(atA.needed) === v.cost && String(atA.offered) === v.funds)),
      `${v.name}: fundingCurve gives A = ${curve.active} (statement ${v.active}), its cost and funds`);
    const next = tally.nextFunding(st.actors, st.funders, st.active);
    const want = v.next_funding;
    check(JSON.stringify(next && { actors: next.actors, more_funds: String(next.more) }) === JSON.stringify(want),
      `${v.name}: the page's "z more funding" is R-FUND-2's (${JSON.stringify(want)})`);
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] || "").href) {
  let checks = 0;
  let error = null;
  try {
    await checkTally((cond, what) => {
      checks += 1;
      if (!cond) throw new Error(`check failed: ${what}`);
      console.log(`ok ${checks} - ${what}`);
    });
  } catch (e) {
    error = e;
    console.error(e);
  }
  console.log(JSON.stringify({ ok: error === null, checks, error: error ? String(error.stack || error) : null }));
  process.exit(error === null ? 0 : 1);
}
