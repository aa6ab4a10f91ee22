// Entry point of both pages: picks the language, then runs the page's module.
// Everything is fetched from this server (Content-Security-Policy
// connect-src 'self'); nothing is loaded from any other host.

import { preferredLanguage, setLanguage, languageSwitch, tp } from "./i18n.js";

/** GET a JSON document of the API; throws an Error with .code on refusal. */
export async function getJson(path) {
  const resp = await fetch(path, { headers: { Accept: "application/json" } });
  if (!resp.ok) {
    let code = "server";
    let detail = `HTTP ${resp.status}`;
    try {
      const body = await resp.json();
      code = body.error || code;
      detail = body.detail || detail;
    } catch (_) { /* not JSON */ }
    throw Object.assign(new Error(detail), { code, status: resp.status });
  }
  return resp.json();
}

/** A deadline (Unix seconds) as a date and time in the page's language. */
export function formatDate(unix, lang) {
  return new Intl.DateTimeFormat(lang, { dateStyle: "long", timeStyle: "short" })
    .format(new Date(unix * 1000));
}

/** The headline of a campaign: how many are activated (their condition is
 *  met: they act if it ended now) and how many more wait for enough others.
 *  Both pages use it; SPEC R-WEB-13. */
export function readySentence(activated, waiting, action) {
  return `${tp("sentence.activated", activated, { action })} ${tp("sentence.waiting", waiting)}`;
}

async function main() {
  await setLanguage(preferredLanguage());
  const page = document.body.dataset.page;
  const mod = page === "campaign" ? await import("./campaign.js") : await import("./list.js");
  languageSwitch(document.getElementById("lang"), () => mod.rerender());
  await mod.start();
}

main().catch((e) => {
  const s = document.querySelector(".status");
  if (s) s.textContent = String(e && e.message ? e.message : e);
});
