// What the browser scenarios share (e2e.mjs, sealed.mjs): checks and the
// summary line, Debian's chromium through playwright-core with a fresh
// profile per context recording every request, screenshots, the wallet
// step, admin requests, and the run wrapper that screenshots a failure,
// closes the browsers and prints the summary.
//
// Environment: PLEDGE_URL (required), PLEDGE_ARTIFACTS (screenshots,
// default target/browser-artifacts), PLEDGE_ADMIN_TOKEN, CHROMIUM (default
// /usr/bin/chromium).

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
export const root = path.resolve(here, "../..");
export const BASE = process.env.PLEDGE_URL;
export const ORIGIN = BASE ? new URL(BASE).origin : "";
export const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
export const ADMIN = process.env.PLEDGE_ADMIN_TOKEN || "";
export const TIMEOUT = 180_000;

/** What the run recorded: counts for the summary line. */
export const H = {
  art: path.resolve(process.env.PLEDGE_ARTIFACTS || path.join(root, "target/browser-artifacts")),
  checks: 0,
  screenshots: [],
  requests: [],
  foreign: [],
  problems: [],
  contexts: [],
  chromium: null,
};

export function check(cond, what) {
  H.checks += 1;
  if (!cond) throw new Error(`check failed: ${what}`);
  console.log(`ok ${H.checks} - ${what}`);
}

export function summary(ok, error) {
  console.log(JSON.stringify({
    ok, checks: H.checks, requests: H.requests.length, foreign_requests: H.foreign,
    screenshots: H.screenshots.length, artifacts: H.art, error: error ? String(error.stack || error) : null,
  }));
}

/** Checks the environment, loads playwright-core, and empties the
 *  screenshot folder `H.art` (its `sub` folder when given); exits with the
 *  step to run when something is missing. */
export async function setUp(sub = "") {
  if (sub) H.art = path.join(H.art, sub);
  if (!BASE) {
    console.error("PLEDGE_URL is not set: start `pledged --demo` and pass its URL");
    summary(false, "PLEDGE_URL not set");
    process.exit(2);
  }
  try {
    ({ chromium: H.chromium } = await import("playwright-core"));
  } catch (e) {
    console.error("playwright-core is missing: run `npm ci --prefix tests/browser` (.ci/run does)");
    summary(false, e);
    process.exit(2);
  }
  if (!fs.existsSync(CHROMIUM)) {
    console.error(`${CHROMIUM} is missing: run \`apt-get install chromium\` (.ci/run does)`);
    summary(false, "no chromium");
    process.exit(2);
  }
  fs.mkdirSync(H.art, { recursive: true });
  for (const f of fs.readdirSync(H.art)) {
    if (f.endsWith(".png") || f === "wallet.pledge") fs.rmSync(path.join(H.art, f));
  }
}

/** A fresh browser profile (its own --user-data-dir), recording requests. */
export async function newContext(name, options = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `pledge-browser-${name}-`));
  const ctx = await H.chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
    viewport: { width: 1000, height: 900 },
    acceptDownloads: true,
    ...options,
  });
  H.contexts.push({ ctx, dir });
  ctx.on("request", (r) => {
    const url = r.url();
    H.requests.push(url);
    let origin;
    try { origin = new URL(url.startsWith("blob:") ? url.slice(5) : url).origin; } catch (_) { origin = "?"; }
    if (origin !== ORIGIN) H.foreign.push(url);
  });
  ctx.on("page", watchPage);
  for (const p of ctx.pages()) watchPage(p);
  return ctx;
}

function watchPage(page) {
  page.on("pageerror", (e) => H.problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    const text = m.text();
    if (/Content.Security.Policy|Refused to/i.test(text)) H.problems.push(`CSP: ${text}`);
    // 403 and 429: the refusals the e-mail path provokes on purpose.
    if (m.type() === "error" && !/Failed to load resource: the server responded with a status of 4(0[349]|29)/.test(text)) {
      H.problems.push(`console error: ${text}`);
    }
  });
}

export async function page0(ctx) {
  return ctx.pages()[0] || ctx.newPage();
}

export async function shot(page, name, opts = {}) {
  const file = path.join(H.art, `${String(H.screenshots.length + 1).padStart(2, "0")}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true, ...opts });
  H.screenshots.push(file);
}

/** An admin request (creating campaigns, minting invite codes). */
export async function admin(pathname, body) {
  const resp = await fetch(`${BASE}${pathname}`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${ADMIN}` },
    body: JSON.stringify(body),
  });
  const text = await resp.text();
  if (!resp.ok) throw new Error(`${pathname}: HTTP ${resp.status} ${text}`);
  return JSON.parse(text);
}

/** Opens (or creates) the page's wallet: a step of its own, which obtains
 *  the tokens of every open campaign. */
export async function openWallet(page, pass) {
  await page.fill("#passphrase", pass);
  if (await page.isVisible("#passphrase2")) await page.fill("#passphrase2", pass);
  await page.click("#open-button");
  await page.waitForFunction(() => document.getElementById("open-form").hidden
    || document.getElementById("token-status").dataset.kind === "error", null, { timeout: TIMEOUT });
  // Attached, not visible: the status is empty on a page whose campaign
  // needs another attestation (invite code, e-mail).
  await page.waitForSelector('#token-status[data-kind="ok"], #token-status[data-kind="error"]', { timeout: TIMEOUT, state: "attached" });
  check(await page.getAttribute("#token-status", "data-kind") === "ok",
    `wallet opened, tokens obtained (${await page.textContent("#token-status")})`);
}

/** Runs `scenario`; on failure screenshots every page; closes the
 *  browsers, prints the problems and the summary line, and exits 0 only if
 *  it passed. */
export async function runAndExit(scenario) {
  let ok = false;
  let error = null;
  try {
    await scenario();
    ok = true;
  } catch (e) {
    error = e;
    console.error(e);
    for (const { ctx } of H.contexts) {
      for (const p of ctx.pages()) {
        try { await shot(p, "failure"); } catch (_) { /* page gone */ }
      }
    }
  } finally {
    for (const { ctx, dir } of H.contexts) {
      try { await ctx.close(); } catch (_) { /* already closed */ }
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  if (H.problems.length) console.error(H.problems.join("\n"));
  console.log(`screenshots in ${H.art}`);
  summary(ok, error);
  process.exit(ok ? 0 : 1);
}
