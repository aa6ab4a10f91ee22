// A sealed campaign through the page in Debian's chromium (issue 16; SPEC
// R-SEAL-50 … R-SEAL-55, R-WEB-20 … R-WEB-22):
//
//   PLEDGE_URL=… PLEDGE_ADMIN_TOKEN=… PLEDGE_SEALED_CAMPAIGN=<id> node tests/browser/sealed.mjs
//
// The campaign (buckets 1, 5, 20) must be open with its joint key logged,
// and its trustees must keep acting on the log while this runs (they share
// the close's snapshot): tests/tests/browser.rs `sealed_campaign_in_chromium`
// does both. Three browsers: A pledges at 5 over its cover null pledge,
// then amends to 1 and sends a cover re-encryption of it at once; B sends
// its cover null pledge; C pledges at 20 and
// withdraws (an amendment to the null vector). Before the reveal the page
// shows no count and no chart; the script closes the campaign and waits for
// the page to show the revealed counts (1 at threshold 1: live 1, active 1)
// and A's pledge activated. Screenshots in PLEDGE_ARTIFACTS/sealed. Prints
// one JSON summary line last; exits 0 only if every check passed.

import {
  BASE, ORIGIN, TIMEOUT, H, check, setUp, newContext, page0, shot, admin, openWallet, runAndExit,
} from "./harness.mjs";

const ID = process.env.PLEDGE_SEALED_CAMPAIGN || "";

await setUp("sealed");

/** The campaign object as the server serves it. */
async function campaign() {
  const r = await fetch(`${BASE}/v1/campaigns/${ID}`);
  if (!r.ok) throw new Error(`GET campaign: HTTP ${r.status}`);
  return r.json();
}

/** Waits until the server counts `n` sealed entries (R-SEAL-80). */
async function entriesAre(n) {
  for (let i = 0; i < 600; i++) {
    const c = await campaign();
    if (c.tally && c.tally.entries === n) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the campaign never counted ${n} sealed entries`);
}

/** "Your pledge" of a sealed campaign: the summary's data attributes. */
async function mineIs(page, want) {
  await page.waitForFunction((w) => {
    const d = document.getElementById("mine-summary").dataset;
    return d.sealed === "yes" && Object.entries(w).every(([k, v]) => d[k] === String(v));
  }, want, { timeout: TIMEOUT });
  return page.textContent("#mine-summary");
}

/** What the page shows of the counts before a reveal: nothing. */
async function noCount(page, when) {
  // Rendered: the sealed block shown and the chart's state set.
  await page.waitForSelector('#sealed-info:not([hidden])', { timeout: TIMEOUT });
  await page.waitForSelector('#chart[data-sealed="sealed"]', { timeout: TIMEOUT, state: "attached" });
  await page.waitForFunction(() => /sealed entries/.test(document.getElementById("sentence-ready").textContent),
    null, { timeout: TIMEOUT });
  check(await page.isHidden("#chart"), `${when}: no chart`);
  check(await page.isHidden("#sealed-revealed"), `${when}: no revealed counts`);
  const d = await page.evaluate(() => ({ ...document.getElementById("sentence-ready").dataset }));
  check(d.activated === undefined && d.waiting === undefined, `${when}: no activated or waiting count`);
  const text = await page.textContent("#sentence-ready");
  check(/Sealed until/.test(text) && !/activated|waiting|declared/.test(text),
    `${when}: the headline says sealed, with no live count (${text})`);
  const c = await campaign();
  check(c.tally.live === undefined && c.tally.active === undefined && c.sealed.revealed.length === 0,
    `${when}: the campaign object has no live or active count (R-SEAL-83)`);
}

/** Pledges at `threshold` (one of the campaign's buckets), sending at once. */
async function pledgeSealed(page, threshold) {
  await page.waitForSelector('#pledge-form[data-ready="yes"]', { timeout: TIMEOUT });
  await page.selectOption("#threshold-choice", String(threshold));
  await page.check("#send-now");
  await page.click("#pledge-button");
  await page.waitForSelector('#pledge-status[data-kind="ok"], #pledge-status[data-kind="error"]', { timeout: TIMEOUT });
  const text = await page.textContent("#pledge-status");
  check(await page.getAttribute("#pledge-status", "data-kind") === "ok", `sealed pledge at ${threshold} accepted (${text})`);
}

async function run() {
  if (!/^[0-9a-f]{64}$/.test(ID)) throw new Error("PLEDGE_SEALED_CAMPAIGN is not a campaign id");
  const url = `${BASE}/c/${ID}`;
  const before = await campaign();
  check(before.reveal === "sealed" && /^[0-9a-f]{64}$/.test(before.sealed.joint_key || ""),
    "the campaign is sealed and its joint key is logged");

  // 1. The page before anything: what is hidden, why, until when; the
  // thresholds as choices, not a free number.
  const ctxA = await newContext("sealed-a");
  const a = await page0(ctxA);
  await a.goto(url);
  await a.waitForSelector("#sealed-info:not([hidden])", { timeout: TIMEOUT });
  const until = await a.textContent("#sealed-until");
  check(/^Sealed until .+: the reveal at the deadline\. No chart and no count before the reveal/.test(until),
    `the page says until when the campaign is sealed (${until})`);
  check(Number(await a.getAttribute("#sealed-until", "data-until")) === before.deadline,
    "sealed until the deadline: the campaign has no early reveal");
  const why = await a.textContent("#sealed-what");
  check(/encrypted in this browser/.test(why) && /3 trustees/.test(why) && /any 2 of the trustees/.test(why)
    && /time a crackdown/.test(why), `the page says what is hidden and why (${why})`);
  const choices = await a.$$eval("#threshold-choice option", (os) => os.map((o) => o.value));
  check(JSON.stringify(choices) === JSON.stringify(["1", "5", "20"]), `the thresholds are the bucket values (${choices})`);
  check(await a.isHidden("#threshold") && await a.isHidden("#threshold-range"), "no free number for the threshold");
  check(/1, 5, 20/.test(await a.textContent("#threshold-help")), "the help names the allowed thresholds");
  await noCount(a, "before any pledge");
  await shot(a, "sealed-before");

  // 2. A opens its wallet: a token, and a cover null pledge scheduled for it
  // (R-SEAL-54), which pledging then replaces (nobody saw it).
  await openWallet(a, "a sealed wallet for browser A");
  let mine = await mineIs(a, { state: "null", pending: "scheduled" });
  check(/an empty cover entry, to be sent at/.test(mine), `A's cover null pledge is scheduled (${mine})`);
  await pledgeSealed(a, 5);
  mine = await mineIs(a, { state: "waiting", threshold: 5, pending: "" });
  check(/threshold 5, sealed until the reveal/.test(mine) && /whether it is activated shows at the reveal/.test(mine)
    && /receipt verified/.test(mine), `A's sealed pledge at 5 is logged, receipt verified (${mine})`);
  await entriesAre(1);
  await a.reload();
  await a.fill("#unlock-pass", "a sealed wallet for browser A");
  await a.click("#unlock-form button");
  mine = await mineIs(a, { state: "waiting", threshold: 5 });
  check(/threshold 5/.test(mine), "after a reload the wallet still knows the bucket");
  await noCount(a, "after one sealed pledge");
  await shot(a, "sealed-pledged");

  // 3. A amends to 1 (after the reload: the wallet kept the pledge key).
  check(!(await a.isHidden("#amend-choice")) && await a.isHidden("#amend-threshold"), "amending offers the bucket values");
  await a.selectOption("#amend-choice", "1");
  await a.click("#amend-form button");
  await a.waitForSelector('#mine-status[data-kind="ok"], #mine-status[data-kind="error"]', { timeout: TIMEOUT });
  check(await a.getAttribute("#mine-status", "data-kind") === "ok", `A amended (${await a.textContent("#mine-status")})`);
  mine = await mineIs(a, { state: "waiting", threshold: 1 });
  await entriesAre(2);

  // 3b. Cover re-encryptions (R-SEAL-44, R-SEAL-54): after each entry of its
  // own, A's wallet drew a time for a re-encryption of the same vector (the
  // deadline is 30 days away: it does not fall within the run); A sends one
  // at once. One more sealed entry; the bucket stays 1 (the reveal shows it).
  mine = await mineIs(a, { state: "waiting", threshold: 1, cover: 0 });
  check(/a cover re-encryption of it \(the same choice, new randomness\) leaves at/.test(mine),
    `A's cover re-encryption is scheduled (${mine})`);
  check(!(await a.isHidden("#cover-send-now")), "A may send its cover re-encryption at once");
  await a.click("#cover-send-now");
  mine = await mineIs(a, { state: "waiting", threshold: 1, cover: 1 });
  check(/receipt verified/.test(mine), `A's re-encryption is logged, receipt verified (${mine})`);
  await entriesAre(3);

  // 4. B sends its cover null pledge ("send now" instead of its random time).
  const ctxB = await newContext("sealed-b");
  const b = await page0(ctxB);
  await b.goto(url);
  await openWallet(b, "a sealed wallet for browser B");
  await mineIs(b, { state: "null", pending: "scheduled" });
  await b.click("#mine-send-now");
  mine = await mineIs(b, { state: "null", pending: "" });
  check(/no pledge: an empty entry/.test(mine) && /receipt verified/.test(mine), `B's cover null pledge is logged (${mine})`);
  check(await b.isHidden("#withdraw-button") && await b.isHidden("#amend-form"), "a null pledge offers no amend or withdraw");
  await entriesAre(4);

  // 5. C pledges at 20, then withdraws: an amendment to the null vector.
  const ctxC = await newContext("sealed-c");
  const c = await page0(ctxC);
  await c.goto(url);
  await openWallet(c, "a sealed wallet for browser C");
  await pledgeSealed(c, 20);
  await mineIs(c, { state: "waiting", threshold: 20 });
  c.once("dialog", (dlg) => dlg.accept());
  await c.click("#withdraw-button");
  mine = await mineIs(c, { state: "null", threshold: 0 });
  check(/no pledge: an empty entry/.test(mine), `C withdrew: its pledge is the null vector (${mine})`);
  await entriesAre(6);
  await c.reload();
  await noCount(c, "after pledges, an amendment, cover (a re-encryption, a null pledge) and a withdrawal");
  const counted = await c.textContent("#sentence-ready");
  check(/6 sealed entries/.test(counted), `the page counts the sealed entries only (${counted})`);
  await shot(c, "sealed-entries");

  // 6. The organiser closes; the trustees share the close's snapshot; the
  // page shows the revealed counts and A's pledge activated.
  await admin(`/v1/admin/campaigns/${ID}/close`, {});
  let revealed = null;
  for (let i = 0; i < 600 && !revealed; i++) {
    const now = await campaign();
    if (now.sealed.revealed.length) revealed = now.sealed.revealed[0];
    else await new Promise((r) => setTimeout(r, 200));
  }
  check(revealed !== null, "the trustees revealed the close's snapshot");
  check(JSON.stringify(revealed.counts) === "[1,0,0]" && revealed.live === 1 && revealed.active === 1,
    `revealed: 1 pledge at threshold 1, active 1 (${JSON.stringify(revealed)})`);
  await a.reload();
  await a.waitForSelector("#sealed-revealed:not([hidden])", { timeout: TIMEOUT });
  const shown = await a.textContent("#sealed-revealed");
  check(/Final count, revealed \(log entry \d+\): live pledges 1, activated 1/.test(shown), `the page shows the revealed count (${shown})`);
  check(await a.getAttribute("#sealed-revealed", "data-counts") === "1,0,0", "the page shows the revealed counts per bucket");
  check(!(await a.isHidden("#chart")), "the chart appears at the reveal");
  const chart = await a.evaluate(() => ({ ...document.getElementById("chart").dataset }));
  check(chart.live === "1" && chart.activated === "1" && chart.sealed === "revealed", `the chart is the revealed histogram (${JSON.stringify(chart)})`);
  await a.fill("#unlock-pass", "a sealed wallet for browser A");
  await a.click("#unlock-form button");
  mine = await mineIs(a, { state: "activated", threshold: 1 });
  check(/activated/.test(mine), `A's pledge is activated by the revealed count (${mine})`);
  const headline = await a.evaluate(() => ({ ...document.getElementById("sentence-ready").dataset }));
  check(headline.activated === "1" && headline.waiting === "0", `the headline gives the revealed counts (${JSON.stringify(headline)})`);
  await shot(a, "sealed-revealed");

  // 7. Nothing but the server was asked for anything.
  check(H.foreign.length === 0, `every request went to ${ORIGIN} (${H.foreign.slice(0, 5).join(" ")})`);
  check(H.problems.length === 0, `no page error, console error or CSP violation (${H.problems.slice(0, 5).join(" | ")})`);
}

await runAndExit(run);
