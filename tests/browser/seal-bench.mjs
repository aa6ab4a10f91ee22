// Sealed terms in the browser (issue 16: client proof within 25 ms at B = 32
// in Chromium): loads the pledge-web WebAssembly bundle in Debian's chromium
// (playwright-core), calls its `benchSeal(B, n)` export (web/src/bench.rs:
// n seals at B buckets, each a random bucket or a null pledge, timed with
// performance.now()) and prints min, median, p95 and mean per B.
//
//   PLEDGE_URL=http://127.0.0.1:8080 node tests/browser/seal-bench.mjs
//   PLEDGE_WEB_DIR=<dir with pledge_web.js and pledge_web_bg.wasm> node tests/browser/seal-bench.mjs
//
// PLEDGE_URL: a running pledged, which serves the bundle at /app/. Or
// PLEDGE_WEB_DIR: the bundle server/build.rs writes (target/<profile>/build/
// pledge-server-*/out/web after `cargo check -p pledge-server`), served here
// on 127.0.0.1. SEAL_BUCKETS (default "16,32"), SEAL_ITERATIONS (default 200),
// SEAL_WARMUP (default 20), CHROMIUM (default /usr/bin/chromium).
// BENCHMARKS.md "Session 12" records its figures; tests/tests/browser.rs runs
// it with few iterations to check that it works. Prints one JSON summary line
// last; exits 0 only if every run returned positive timings.

import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";

const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const BUCKETS = (process.env.SEAL_BUCKETS || "16,32").split(",").map(Number);
const ITERATIONS = Number(process.env.SEAL_ITERATIONS || 200);
const WARMUP = Number(process.env.SEAL_WARMUP || 20);

function summary(ok, extra) {
  console.log(JSON.stringify({ ok, ...extra }));
}

function quantile(sorted, q) {
  // Nearest rank.
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i];
}

/** Serves `dir`'s bundle and an empty page on 127.0.0.1:0. */
function serve(dir) {
  const types = { ".js": "text/javascript", ".wasm": "application/wasm", ".html": "text/html" };
  const server = http.createServer((req, res) => {
    const name = new URL(req.url, "http://x").pathname.replace(/^\/app\//, "");
    if (name === "/" || name === "") {
      res.writeHead(200, { "content-type": "text/html" });
      return res.end("<!doctype html><title>seal bench</title>");
    }
    const file = path.join(dir, path.basename(name));
    if (!fs.existsSync(file)) {
      res.writeHead(404);
      return res.end();
    }
    res.writeHead(200, { "content-type": types[path.extname(file)] || "application/octet-stream" });
    fs.createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

let server = null;
let base = process.env.PLEDGE_URL;
if (!base) {
  const dir = process.env.PLEDGE_WEB_DIR;
  if (!dir || !fs.existsSync(path.join(dir, "pledge_web_bg.wasm"))) {
    summary(false, { error: "set PLEDGE_URL (a running pledged) or PLEDGE_WEB_DIR (a bundle folder)" });
    process.exit(2);
  }
  server = await serve(dir);
  base = `http://127.0.0.1:${server.address().port}`;
}

let chromium;
try {
  ({ chromium } = await import("playwright-core"));
} catch (e) {
  summary(false, { error: "playwright-core is missing: run `npm ci --prefix tests/browser`" });
  process.exit(2);
}

const profile = fs.mkdtempSync(path.join(os.tmpdir(), "pledge-seal-bench-"));
const ctx = await chromium.launchPersistentContext(profile, {
  executablePath: CHROMIUM,
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
let ok = true;
const results = [];
let error = null;
try {
  const page = ctx.pages()[0] || (await ctx.newPage());
  await page.goto(`${base}/`);
  const ua = await page.evaluate(() => navigator.userAgent);
  for (const b of BUCKETS) {
    const times = await page.evaluate(async ([b, n, warm]) => {
      const m = await import("/app/pledge_web.js");
      await m.default();
      if (warm > 0) m.benchSeal(b, warm);
      return Array.from(m.benchSeal(b, n));
    }, [b, ITERATIONS, WARMUP]);
    const sorted = [...times].sort((x, y) => x - y);
    const r = {
      buckets: b,
      iterations: times.length,
      min_ms: sorted[0],
      median_ms: quantile(sorted, 0.5),
      p95_ms: quantile(sorted, 0.95),
      mean_ms: times.reduce((a, t) => a + t, 0) / times.length,
    };
    if (!(times.length === ITERATIONS && sorted[0] > 0 && Number.isFinite(r.p95_ms))) ok = false;
    results.push(r);
    console.log(`B=${b}: ${r.iterations} seals, min ${r.min_ms.toFixed(2)} ms, median ${r.median_ms.toFixed(2)} ms, `
      + `p95 ${r.p95_ms.toFixed(2)} ms, mean ${r.mean_ms.toFixed(2)} ms`);
  }
  console.log(ua);
  results.push({ user_agent: ua, load: os.loadavg() });
} catch (e) {
  ok = false;
  error = String(e && e.stack || e);
  console.error(error);
} finally {
  await ctx.close();
  fs.rmSync(profile, { recursive: true, force: true });
  if (server) server.close();
}
summary(ok, { results, error });
process.exit(ok ? 0 : 1);
