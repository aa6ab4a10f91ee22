// One campaign's page (/c/<id>): the statement, the sentence with the
// threshold chosen on the page, the live chart, pledging, the status of this
// browser's pledge (amend, withdraw) and the wallet (export, import, forget).
// A sealed campaign (SPEC §17.3 "The web page", R-SEAL-50 … R-SEAL-55,
// R-WEB-20 … R-WEB-22): its thresholds as choices, what is hidden and until
// when, no chart or count before a reveal, the revealed histogram after one,
// cover null pledges.

import { getJson, formatDate, readySentence } from "./app.js";
import { translationFor } from "./texts.js";
import { t, tp, split, has, currentLanguage, fmt } from "./i18n.js";
import { parseStatement, moreNeeded } from "./tally.js";
import { renderChart, renderFundingChart, formatMoney } from "./chart.js";
import * as wallet from "./wallet.js";

const id = location.pathname.split("/")[2] || "";

const S = {
  coverTimer: null,  // the next cover issuance (a random time)
  pendingTimer: null,
  reencryptTimer: null, // the next cover re-encryption of my sealed pledge
  campaign: null,
  buckets: [],
  statement: null,   // the latest parsed statement (plain or funding)
  size: -1,
  summary: null,
  live: "connecting",
  mine: null,        // this campaign's element of app.status(), or null
  busy: false,
  loadError: null,
  showOriginal: false, // the visitor asked for the original text (R-WEB-15)
  emailSent: false,  // a code was mailed: the code step shows (R-WEB-17)
  emailSentTo: null, // the address it went to, in memory until used (R-WEB-19)
};

const $ = (sel) => document.getElementById(sel);

/** A message for an error from the API or the WebAssembly client. */
function errorText(e) {
  const code = e && e.code;
  if (code && has(`error.${code}`)) return t(`error.${code}`);
  return t("error.other", { error: e && e.message ? e.message : String(e) });
}

function setStatus(elId, text, kind = "") {
  const el = $(elId);
  el.textContent = text;
  el.dataset.kind = kind;
}

/** Whether this page shows a sealed campaign (SPEC R-SEAL-30, R-API-49). */
function sealed() {
  return Boolean(S.campaign && S.campaign.reveal === "sealed" && S.campaign.sealed);
}

/** The latest reveal of a sealed campaign (R-API-53), or null. */
function latestReveal() {
  const r = sealed() ? S.campaign.sealed.revealed || [] : [];
  return r.length ? r[r.length - 1] : null;
}

/** The revealed histogram [[threshold, count]] of a reveal: bucket values
 *  with a non-zero count (SPEC R-SEAL-37). */
function revealedHistogram(rev) {
  const b = S.campaign.sealed.buckets;
  return rev.counts.map((c, i) => [b[i], c]).filter(([, c]) => c > 0);
}

/** When the seal lifts next: the first early reveal still to come, else the
 *  deadline (SPEC R-SEAL-30: there is always a reveal at the deadline). */
export function nextReveal(reveals, deadline, now) {
  const next = (reveals || []).find((r) => r > now);
  return next !== undefined ? { at: next, early: true } : { at: deadline, early: false };
}

/** Reads the sealed campaign's object again: its entries count and its
 *  reveals (there is no tally statement to draw before a reveal). */
async function refreshSealed() {
  try {
    const c = await getJson(`/v1/campaigns/${id}`);
    if (c.reveal !== "sealed") return;
    const revealedBefore = latestReveal();
    S.campaign = c;
    const rev = latestReveal();
    if (rev && (!revealedBefore || revealedBefore.snapshot !== rev.snapshot)) pulse();
    rerender();
  } catch (_) { /* the next event or reload brings it */ }
}

// ---------------------------------------------------------------------------
// Loading and live updates
// ---------------------------------------------------------------------------

export async function start() {
  try {
    S.campaign = await getJson(`/v1/campaigns/${id}`);
  } catch (e) {
    S.loadError = e;
    rerender();
    return;
  }
  await refreshTally();
  wireForms();
  $("c-original").addEventListener("click", () => {
    S.showOriginal = !S.showOriginal;
    rerender();
  });
  rerender();
  listen();
  let resizeTimer = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(drawChart, 150);
  });
  if (wallet.hasWallet()) setStatus("mine-status", t("mine.locked"));
}

async function refreshTally() {
  if (sealed()) return refreshSealed();
  try {
    const resp = await fetch(`/v1/campaigns/${id}/tally`);
    if (resp.ok) applyStatement(await resp.text());
  } catch (_) { /* the event stream will bring the next one */ }
}

function applyStatement(text) {
  let st;
  try { st = parseStatement(text); } catch (_) { return; }
  if (st.campaign !== id || st.size < S.size) return;
  S.size = st.size;
  S.buckets = st.buckets;
  S.statement = st;
  drawChart();
  renderSentence();
  renderMine();
}

function listen() {
  const es = new EventSource("/v1/events");
  es.addEventListener("open", () => {
    S.live = "live";
    renderLiveState();
    refreshTally();   // catch up on anything missed while disconnected
  });
  es.addEventListener("error", () => {
    S.live = "reconnecting";
    renderLiveState();
  });
  // A sealed campaign's statement counts its sealed entries only (SPEC
  // R-API-50): the campaign object is read again for the count and for a
  // reveal.
  es.addEventListener("sealed_tally", (ev) => {
    let data;
    try { data = JSON.parse(ev.data); } catch (_) { return; }
    if (data.campaign_id === id) refreshSealed();
  });
  es.addEventListener("tally", (ev) => {
    let data;
    try { data = JSON.parse(ev.data); } catch (_) { return; }
    if (data.campaign_id === id && typeof data.statement === "string") {
      applyStatement(data.statement);
      pulse();
    }
  });
}

function pulse() {
  const fig = $("chart");
  fig.classList.remove("updated");
  void fig.offsetWidth;   // restart the highlight animation
  fig.classList.add("updated");
}

// ---------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------

export function rerender() {
  if (S.loadError) {
    document.title = t("site.name");
    setStatus("campaign-status",
      S.loadError.code === "unknown_campaign" || S.loadError.code === "bad_request"
        ? t("campaign.unknown") : t("campaign.error", { error: S.loadError.message }), "error");
    return;
  }
  const c = S.campaign;
  if (!c) return;
  // SPEC R-WEB-15: the organiser's translation for this browser, unless the
  // visitor asked for the original; the action stays as logged.
  const tr = translationFor(c);
  const shown = tr && !S.showOriginal ? tr : { title: c.title, text: c.text, lang: "" };
  document.title = `${shown.title} · ${t("site.name")}`;
  setStatus("campaign-status", "");
  $("campaign-status").hidden = true;
  $("campaign").hidden = false;
  $("c-title").textContent = shown.title;
  $("c-text").textContent = shown.text;
  for (const id of ["c-title", "c-text"]) {
    if (shown.lang) $(id).lang = shown.lang; else $(id).removeAttribute("lang");
  }
  $("c-translation").hidden = !tr;
  if (tr) {
    $("c-translation-note").textContent = S.showOriginal
      ? t("campaign.original_note")
      : t("campaign.translation_note", { lang: tr.lang });
    $("c-original").textContent = S.showOriginal
      ? t("campaign.show_translation") : t("campaign.show_original");
  }
  $("c-action").textContent = c.action;
  $("c-deadline").textContent = formatDate(c.deadline, currentLanguage());
  // SPEC R-WEB-16: an extended deadline says so.
  $("c-extended").hidden = !c.original_deadline;
  $("c-extended").textContent = c.original_deadline
    ? t("campaign.extended", { date: formatDate(c.original_deadline, currentLanguage()) }) : "";
  $("c-goal").textContent = tp("campaign.goal_value", c.goal, { goal: c.goal });
  $("c-state").textContent = t(`state.${c.state}`);
  renderSealed();
  const th = $("threshold");
  th.min = c.threshold_min;
  th.max = c.threshold_max;
  if (!th.value) th.value = Math.min(c.threshold_max, Math.max(c.threshold_min, c.goal));
  // The slider is logarithmic: 1, 10, 100 and 1000 are equally far apart,
  // so small thresholds stay choosable on a wide range.
  const range = $("threshold-range");
  range.hidden = c.threshold_max <= c.threshold_min || sealed();
  range.value = toRange(Number(th.value), c.threshold_min, c.threshold_max);
  $("amend-threshold").min = c.threshold_min;
  $("amend-threshold").max = c.threshold_max;
  $("threshold-help").textContent = sealed()
    ? t("sealed.choose", { list: c.sealed.buckets.map(fmt).join(", ") })
    : t("pledge.range", { min: c.threshold_min, max: c.threshold_max });
  const open = c.state === "open";
  for (const e of $("pledge-form").elements) e.disabled = !open || S.busy;
  if (!open) setStatus("pledge-status", t("pledge.closed"));
  renderPass();
  renderReady();
  renderSentence();
  renderFunding();
  drawChart();
  renderLiveState();
  renderMine();
  renderWallet();
}

/** The sealed block (SPEC R-WEB-20 … R-WEB-22): until when and why the
 *  counts are hidden, the latest reveal, and the thresholds as choices. */
function renderSealed() {
  const c = S.campaign;
  const on = sealed();
  $("sealed-info").hidden = !on;
  $("threshold").hidden = on;
  $("threshold-choice").hidden = !on;
  $("amend-threshold").hidden = on;
  $("amend-choice").hidden = !on;
  if (!on) return;
  const s = c.sealed;
  const lang = currentLanguage();
  const next = nextReveal(s.reveals, c.deadline, Date.now() / 1000);
  const until = $("sealed-until");
  if (c.state === "open") {
    until.textContent = t(next.early ? "sealed.until" : "sealed.until_deadline", { date: formatDate(next.at, lang) });
  } else {
    until.textContent = "";
  }
  until.dataset.until = c.state === "open" ? String(next.at) : "";
  $("sealed-what").textContent = t("sealed.what", { n: s.trustees.length, k: s.k });
  const rev = latestReveal();
  const box = $("sealed-revealed");
  box.hidden = !rev;
  if (rev) {
    const final = c.closed_index !== null && c.closed_index !== undefined && rev.snapshot === c.closed_index;
    box.textContent = t(final ? "sealed.revealed_final" : "sealed.revealed",
      { snapshot: rev.snapshot, live: rev.live, active: rev.active });
    box.dataset.live = String(rev.live);
    box.dataset.active = String(rev.active);
    box.dataset.counts = rev.counts.join(",");
  } else {
    delete box.dataset.live;
    delete box.dataset.active;
    delete box.dataset.counts;
    box.textContent = "";
  }
  if (!rev) $("sealed-until").append(" ", t("sealed.no_chart"));
  for (const sel of [$("threshold-choice"), $("amend-choice")]) {
    if (sel.options.length === s.buckets.length) continue;
    sel.replaceChildren(...s.buckets.map((b) => new Option(fmt(b), String(b))));
  }
  const choice = $("threshold-choice");
  if (!choice.dataset.chosen) {
    // The bucket nearest the goal, as the free number starts at the goal.
    const near = s.buckets.reduce((a, b) => (Math.abs(b - c.goal) < Math.abs(a - c.goal) ? b : a), s.buckets[0]);
    choice.value = String(near);
    choice.dataset.chosen = "default";
  }
}

function renderSentence() {
  const c = S.campaign;
  if (!c) return;
  // Activated (A) and waiting (declared − A), never one "ready" total: only
  // the activated ones act if the campaign ended now.
  const el = $("sentence-ready");
  // SPEC R-SEAL-83: no live or active count for a sealed campaign before
  // a reveal; after one, the revealed counts (R-WEB-21).
  if (c.reveal === "sealed") {
    const rev = latestReveal();
    if (rev) {
      el.textContent = readySentence(rev.active, rev.live - rev.active, c.action);
      el.dataset.activated = String(rev.active);
      el.dataset.waiting = String(rev.live - rev.active);
    } else {
      el.textContent = t("list.sealed", {
        date: formatDate(c.deadline, currentLanguage()),
        entries: c.tally && typeof c.tally.entries === "number" ? c.tally.entries : 0,
      });
      delete el.dataset.activated;
      delete el.dataset.waiting;
    }
    const [before, after] = split("sentence.if", "input");
    $("sentence-if-before").textContent = ` ${before}`;
    $("sentence-if-after").textContent = after;
    return;
  }
  const live = S.summary ? S.summary.live : (c.tally ? c.tally.live : 0);
  const activated = S.summary ? S.summary.activated : (c.tally ? c.tally.active : 0);
  el.textContent = readySentence(activated, live - activated, c.action);
  el.dataset.activated = String(activated);
  el.dataset.waiting = String(live - activated);
  const [before, after] = split(chosenKind() === "fund" ? "sentence.fund_if" : "sentence.if", "input");
  $("sentence-if-before").textContent = ` ${before}`;
  $("sentence-if-after").textContent = after;
}

function drawChart() {
  if (!S.campaign) return;
  if (sealed()) {
    // SPEC R-SEAL-83, R-WEB-21: no chart before a reveal; after one, the
    // revealed histogram.
    const rev = latestReveal();
    $("chart").hidden = !rev;
    $("chart").dataset.sealed = rev ? "revealed" : "sealed";
    if (rev) S.summary = renderChart($("chart"), revealedHistogram(rev), S.campaign, null);
    return;
  }
  const funding = S.statement && S.statement.kind === "funding" ? S.statement : null;
  S.summary = renderChart($("chart"), S.buckets, S.campaign, funding);
  if (funding && S.campaign.funding) renderFundingChart($("funding-chart"), funding, S.campaign);
}

/** An amount typed in major units ("50", "12.5") as a whole number of minor
 *  units, exactly; null when it is not one (a sign, too many decimals, 0). */
export function parseAmount(text, digits) {
  const m = /^([0-9]+)(?:\.([0-9]+))?$/.exec(String(text).trim());
  if (!m || (m[2] && m[2].length > digits)) return null;
  const v = BigInt(m[1]) * 10n ** BigInt(digits) + BigInt((m[2] || "").padEnd(digits, "0") || "0");
  if (v < 1n || v > 9007199254740991n) return null;
  return Number(v);
}

/** The money of this campaign's currency, from minor units. */
function money(minor) {
  const f = S.campaign.funding;
  return formatMoney(minor, f.minor_digits, f.currency);
}

/** The kind chosen in the funding fieldset (`act` without funding). */
function chosenKind() {
  if (!S.campaign || !S.campaign.funding) return "act";
  const r = document.querySelector('input[name="kind"]:checked');
  return r ? r.value : "act";
}

/** The funding fieldset: shown for a campaign with conditional funding, its
 *  menu of support levels filled once. */
function renderFunding() {
  const f = S.campaign.funding;
  $("funding-fields").hidden = !f;
  if (!f) return;
  const sel = $("support-level");
  if (!sel.options.length) {
    for (const y of f.support_levels) sel.append(new Option(money(y), String(y)));
  }
  const noMenu = f.support_levels.length === 0;
  $("kind-supported").disabled = noMenu;
  sel.disabled = noMenu;
  $("fund-currency").textContent = ` ${f.currency}`;
  $("funding-help").textContent = t(chosenKind() === "fund" ? "funding.help_fund" : "funding.help");
  const [before, after] = split(chosenKind() === "fund" ? "sentence.fund_if" : "sentence.if", "input");
  $("sentence-if-before").textContent = ` ${before}`;
  $("sentence-if-after").textContent = after;
}

function renderLiveState() {
  $("live-state").textContent = t(S.live === "live" ? "chart.live" : "chart.reconnecting");
  $("live-state").dataset.state = S.live;
}

/** A threshold as a position 0–1000 of the logarithmic slider. */
export function toRange(value, min, max) {
  if (!(max > min) || !(value >= min)) return 0;
  return Math.round((1000 * Math.log(value / min)) / Math.log(max / min));
}

/** A position 0–1000 of the logarithmic slider as a threshold. */
export function fromRange(pos, min, max) {
  if (!(max > min)) return min;
  const v = Math.round(min * Math.pow(max / min, pos / 1000));
  return Math.min(max, Math.max(min, v));
}

function renderPass() {
  const unlocked = wallet.current() !== null;
  const fresh = !wallet.hasWallet();
  $("open-form").hidden = unlocked;
  $("pass2-row").hidden = !fresh;
  $("pass-label").textContent = t(fresh ? "wallet.pass_new" : "wallet.pass_existing");
  $("passphrase").autocomplete = fresh ? "new-password" : "current-password";
}

/** Whether this page can pledge now, and if not what is missing: the
 *  wallet (opened as a step of its own, which obtains the tokens), or a
 *  token for this campaign (an invite code for invite campaigns). The
 *  Pledge click never asks the server for a token. */
function renderReady() {
  const c = S.campaign;
  if (!c) return;
  const app = wallet.current();
  const open = c.state === "open";
  // In a sealed campaign a null pledge of mine (cover, or withdrawn) holds
  // the token: pledging amends it (SPEC R-SEAL-52).
  const coverHeld = Boolean(sealed() && S.mine && S.mine.null);
  const hasToken = app !== null && (app.tokenCampaigns().includes(id) || coverHeld);
  const pledged = S.mine && S.mine.state !== "withdrawn" && !coverHeld;
  let needs = "";
  if (!open) needs = t("pledge.closed");
  else if (sealed() && !c.sealed.joint_key) needs = t("sealed.not_ready");
  else if (pledged) needs = t("pledge.already");
  else if (!app) needs = t("pledge.need_wallet");
  else if (!hasToken) {
    needs = t(c.attester === "invite" ? "pledge.need_invite"
      : c.attester === "email" ? "email.need" : "pledge.need_token");
  }
  $("pledge-needs").textContent = needs;
  $("pledge-form").dataset.ready = needs ? "no" : "yes";
  $("pledge-button").disabled = Boolean(needs) || S.busy;
  $("invite-form").hidden = !(open && app && !hasToken && !pledged && c.attester === "invite");
  // The e-mail step (SPEC R-WEB-17): what the server learns is said above
  // the address field, before anything is sent (R-WEB-18).
  const emailStep = Boolean(open && app && !hasToken && !pledged && c.attester === "email");
  if (!emailStep && S.emailSent) clearEmail();
  $("email-form").hidden = !emailStep || S.emailSent;
  $("email-code-form").hidden = !emailStep || !S.emailSent;
  const domains = c.email_domains || [];
  $("email-domains").hidden = domains.length === 0;
  $("email-domains").textContent = domains.length ? t("email.domains", { domains: domains.join(", ") }) : "";
}

/** Short form of a note verifier key `<name>+<key id>+<base64>`. */
function keyName(k) {
  const parts = String(k || "").split("+");
  return parts.length >= 2 ? `${parts[0]}+${parts[1]}` : String(k || "");
}

async function renderPins() {
  const app = wallet.current();
  const el = $("wallet-pins");
  if (!app) { el.hidden = true; return; }
  try {
    const p = await app.pins();
    if (!p.logKey) { el.hidden = true; return; }
    el.textContent = p.quorum > 0
      ? t("wallet.pins", { key: keyName(p.logKey), quorum: p.quorum, witnesses: p.witnesses.map(keyName).join(", ") })
      : t("wallet.pins_unwitnessed", { key: keyName(p.logKey) });
    el.dataset.quorum = String(p.quorum);
    el.hidden = false;
  } catch (_) { el.hidden = true; }
}

function renderMine() {
  const m = S.mine;
  const body = $("mine-body");
  if (!wallet.current()) {
    body.hidden = true;
    $("unlock-form").hidden = !wallet.hasWallet();
    setStatus("mine-status", wallet.hasWallet() ? t("mine.locked") : t("mine.none"));
    return;
  }
  $("unlock-form").hidden = true;
  if (!m) {
    body.hidden = true;
    setStatus("mine-status", t("mine.none"));
    return;
  }
  if (!$("mine-status").dataset.kind) setStatus("mine-status", "");
  body.hidden = false;
  if (m.sealed) { renderSealedMine(m); return; }
  // The same function as the chart's next activation (tally.js), over the
  // histogram of the latest statement, which counts this pledge; before one is
  // loaded, the active count of the status view (and no number).
  // A funding campaign's standing comes from the verified joint tally
  // (R-CLIENT-6): "more needed" of the plain histogram does not apply.
  const fund = m.funding;
  const more = fund ? null
    : (S.size >= 0 ? moreNeeded(S.buckets, m.threshold) : (m.threshold <= m.activeCount ? 0 : null));
  const activated = fund ? m.active : more === 0;
  let state;
  const scheduled = m.state === "pending" && m.sendAfter;
  if (m.state === "withdrawn") state = t("mine.withdrawn");
  else if (scheduled) state = t("mine.scheduled", { time: clock(m.sendAfter) });
  else if (m.state === "pending") state = t("mine.pending");
  else if (fund) state = fundingStanding(m);
  else if (activated) state = t("mine.activated");
  else if (more === null) state = t("chart.status_waiting");
  else state = tp("mine.waiting", more, { threshold: m.threshold });
  const parts = [termsText(m), state];
  if (m.index !== null && m.index !== undefined) {
    parts.push(t(m.receiptVerified ? "mine.receipt_ok" : "mine.receipt_missing", { index: m.index }));
  }
  $("mine-summary").textContent = parts.join(" · ");
  $("mine-summary").dataset.state = m.state === "withdrawn" ? "withdrawn" : (activated ? "activated" : "waiting");
  $("mine-summary").dataset.standing = fund ? fund.standing : "";
  $("mine-summary").dataset.more = m.state === "logged" && more !== null ? String(more) : "";
  $("mine-summary").dataset.pending = scheduled ? "scheduled" : (m.state === "pending" ? "sent" : "");
  $("mine-send-now").hidden = !(scheduled && !S.busy);
  renderOutcome(m);
  const live = m.state === "logged" && S.campaign.state === "open";
  $("amend-form").hidden = !live;
  $("withdraw-button").hidden = !live;
  if (live && !$("amend-threshold").value) $("amend-threshold").value = m.threshold;
}

/** My sealed pledge (SPEC R-SEAL-55): its bucket or the null vector, when
 *  a cover entry leaves, its receipt; whether it is activated only from a
 *  reveal. */
function renderSealedMine(m) {
  const scheduled = m.state === "pending" && m.sendAfter;
  const parts = [];
  if (m.null) parts.push(scheduled ? t("mine.sealed_cover", { time: formatDate(m.sendAfter, currentLanguage()) }) : t("mine.sealed_null"));
  else {
    parts.push(t("mine.sealed", { threshold: m.threshold }));
    if (scheduled) parts.push(t("mine.scheduled", { time: clock(m.sendAfter) }));
  }
  if (m.state === "pending" && !scheduled) parts.push(t("mine.pending"));
  const rev = latestReveal();
  let more = null;
  if (!m.null && m.state === "logged") {
    if (rev) {
      more = moreNeeded(revealedHistogram(rev), m.threshold);
      parts.push(more === 0 ? t("mine.activated") : tp("mine.waiting", more, { threshold: m.threshold }));
    } else parts.push(t("mine.sealed_revealed_only"));
  }
  if (m.index !== null && m.index !== undefined) {
    parts.push(t(m.receiptVerified ? "mine.receipt_ok" : "mine.receipt_missing", { index: m.index }));
  }
  const cover = m.coverDue && m.state === "logged" && S.campaign.state === "open" ? m.coverDue : null;
  if (cover) parts.push(t("mine.sealed_reencrypt", { time: formatDate(cover.at, currentLanguage()) }));
  $("cover-send-now").hidden = !(cover && !S.busy);
  const sum = $("mine-summary");
  sum.textContent = parts.join(" · ");
  sum.dataset.cover = cover ? String(cover.sent) : "";
  sum.dataset.state = m.null ? "null" : (more === 0 ? "activated" : "waiting");
  sum.dataset.sealed = "yes";
  sum.dataset.threshold = String(m.threshold);
  sum.dataset.standing = "";
  sum.dataset.more = more !== null ? String(more) : "";
  sum.dataset.pending = scheduled ? "scheduled" : (m.state === "pending" ? "sent" : "");
  $("mine-send-now").hidden = !(scheduled && !S.busy);
  $("mine-outcome").hidden = true;
  const live = m.state === "logged" && S.campaign.state === "open" && !m.null;
  $("amend-form").hidden = !live;
  $("withdraw-button").hidden = !live;
  if (live) $("amend-choice").value = String(m.threshold);
}

/** My terms in words: "threshold 3", "threshold 3, support 50.00 EUR",
 *  "up to 50.00 EUR if 3 act". */
function termsText(m) {
  const k = m.terms;
  if (k && k.kind === "act_if_supported" && S.campaign.funding) {
    return t("mine.terms_supported", { threshold: m.threshold, support: money(k.support) });
  }
  if (k && k.kind === "fund" && S.campaign.funding) {
    return t("mine.terms_fund", { threshold: m.threshold, amount: money(k.amount) });
  }
  return t("mine.threshold", { threshold: m.threshold });
}

/** Where a pledge of a funding campaign stands (SPEC R-CLIENT-6): never
 *  "activated" for a pledge the money does not reach. */
function fundingStanding(m) {
  const f = m.funding;
  const support = m.terms && m.terms.support ? money(m.terms.support) : "";
  switch (f.standing) {
    case "activated": return t(support ? "mine.funded" : "mine.activated", { support });
    case "waiting_for_funds": return t("mine.not_funded", { support });
    case "split": return t("mine.split", { slots: f.slots, eligible: f.eligible, support });
    case "not_activated":
      return support ? t("mine.not_activated_supported", { threshold: m.threshold, support })
        : t("chart.status_waiting");
    case "called": return t("mine.called", { due: money(f.due || 0) });
    case "not_called": return t("mine.not_called", { threshold: m.threshold });
    default: return t("chart.status_waiting");
  }
}

/** At the close, in plain words: is it on for me, and was the goal reached
 *  (SPEC R-CLIENT-4: from the inclusion-proven CampaignClosed entry). */
function renderOutcome(m) {
  const el = $("mine-outcome");
  const o = m.outcome;
  if (!o) { el.hidden = true; el.dataset.on = ""; return; }
  const c = S.campaign;
  const fund = m.funding;
  let line;
  if (m.state === "withdrawn") line = t("outcome.withdrawn");
  else if (fund && m.terms.kind === "fund") {
    line = o.onForMe ? t("outcome.fund_called", { active: o.finalActive, due: money(fund.due || 0) })
      : t("outcome.fund_not_called", { active: o.finalActive, threshold: m.threshold });
  } else if (fund && m.terms.kind === "act_if_supported" && o.onForMe) {
    line = t("outcome.on_funded", { active: o.finalActive, threshold: m.threshold, action: c.action, support: money(m.terms.support) });
  } else if (fund && !o.onForMe && m.threshold <= o.finalActive) {
    line = t("outcome.not_funded", { active: o.finalActive, threshold: m.threshold, support: money(m.terms.support || 0) });
  } else if (o.onForMe) line = t("outcome.on", { active: o.finalActive, threshold: m.threshold, action: c.action });
  else line = t("outcome.off", { active: o.finalActive, threshold: m.threshold });
  line += " " + t(o.goalReached ? "outcome.goal_reached" : "outcome.goal_missed", { goal: c.goal });
  el.textContent = line;
  el.dataset.on = o.onForMe ? "yes" : "no";
  el.hidden = false;
}

/** A Unix time as the reader's local clock time with its zone. */
function clock(unix) {
  return new Intl.DateTimeFormat(currentLanguage(), { timeStyle: "medium" }).format(new Date(unix * 1000))
    + " " + (Intl.DateTimeFormat().resolvedOptions().timeZone || "");
}

function renderWallet() {
  const has = wallet.hasWallet();
  const open = wallet.current() !== null;
  $("wallet-state").textContent = t(!has ? "wallet.none" : open ? "wallet.open" : "wallet.locked");
  $("export-button").disabled = !open;
  $("forget-button").disabled = !has;
}

async function refreshMine() {
  const app = wallet.current();
  if (!app) { S.mine = null; renderMine(); return; }
  try {
    if (sealed()) {
      // From the wallet alone (SPEC R-SEAL-55): no request names this campaign.
      S.mine = await app.sealedStatus(id);
    } else {
      const all = await app.status();
      S.mine = all.find((p) => p.campaign === id) || null;
    }
  } catch (e) {
    setStatus("mine-status", errorText(e), "error");
  }
  renderMine();
  renderWallet();
  renderReady();
  armReencryption();
}

/** Longest single wait of a timer: browsers fire at once past 2^31 ms. */
const MAX_TIMER_MS = 6 * 3600 * 1000;

/** Cover re-encryptions (SPEC R-SEAL-44, R-SEAL-54): a timer at the due
 *  time the wallet drew for this campaign (read from the wallet, no
 *  request), which then sends what is due. */
function armReencryption() {
  clearTimeout(S.reencryptTimer);
  const due = S.mine && S.mine.sealed && S.mine.coverDue ? S.mine.coverDue.at : null;
  if (!due || !wallet.current()) return;
  const wait = Math.max(0, due * 1000 - Date.now()) + 1000;
  S.reencryptTimer = setTimeout(wait > MAX_TIMER_MS ? armReencryption : sendCoverDue,
    Math.min(wait, MAX_TIMER_MS));
}

/** Sends the cover entries that are due (`{now: true}`: this campaign's at
 *  once, the person's choice), then reads my pledge again. */
async function sendCoverDue(opts = {}) {
  const app = wallet.current();
  if (!app) return;
  try {
    const r = await app.sendCover(opts);
    if (r.sent.length) await refreshTally();
  } catch (e) {
    setStatus("mine-status", errorText(e), "error");
  }
  await refreshMine();
}

async function onCoverNow() {
  setStatus("mine-status", t("pledge.sending"), "busy");
  await sendCoverDue({ campaign: id, now: true });
  if ($("mine-status").dataset.kind === "busy") setStatus("mine-status", "", "");
}

/** A uniformly random whole number of milliseconds in [lo, hi] seconds. */
function randomMs(lo, hi) {
  const r = new Uint32Array(1);
  crypto.getRandomValues(r);
  return Math.floor((lo + (r[0] / 2 ** 32) * (hi - lo)) * 1000);
}

/** Cover issuance (DESIGN P3), at moments of its own: when the wallet is
 *  opened, then again at random times while the page stays open. A token
 *  for every open campaign, whatever this page shows; the server answers
 *  token requests with `Connection: close`, so a pledge never shares their
 *  connection. */
async function coverIssuance() {
  const app = wallet.current();
  clearTimeout(S.coverTimer);
  if (!app) return;
  setStatus("token-status", t("wallet.tokens_getting"), "busy");
  try {
    await app.obtainTokens({ kind: "open" });
    setStatus("token-status", app.tokenCampaigns().includes(id) ? t("wallet.tokens_ok") : "", "ok");
  } catch (e) {
    setStatus("token-status", errorText(e), "error");
  }
  await scheduleCover();
  renderReady();
  S.coverTimer = setTimeout(coverIssuance, randomMs(5 * 60, 30 * 60));
}

/** Cover (SPEC R-SEAL-54): the wallet signs a null pledge, due at a random
 *  time, for every sealed campaign it holds an unused token for and has no
 *  pledge in; `resumePending` sends each once due. */
async function scheduleCover() {
  const app = wallet.current();
  if (!app) return;
  try {
    const scheduled = await app.scheduleCover();
    if (scheduled.length) {
      await refreshMine();
      resumePending();
    }
  } catch (e) {
    setStatus("token-status", errorText(e), "error");
  }
}

/** Sends pledges left pending by a page closed during its countdown once
 *  their time has come, and wakes up again for those still waiting. */
async function resumePending() {
  const app = wallet.current();
  clearTimeout(S.pendingTimer);
  if (!app) return;
  try {
    const r = await app.sendPending({});
    if (r.sent.length) {
      await refreshTally();
      await refreshMine();
    }
    if (r.waiting.length) {
      const next = Math.min(...r.waiting.map((w) => w.sendAfter));
      S.pendingTimer = setTimeout(resumePending, Math.max(0, next * 1000 - Date.now()) + 1000);
    }
  } catch (e) {
    setStatus("mine-status", errorText(e), "error");
  }
}

async function afterUnlock() {
  renderPass();
  renderWallet();
  await refreshMine();
  renderPins();
  await coverIssuance();
  resumePending();
}

// ---------------------------------------------------------------------------
// Actions
// ---------------------------------------------------------------------------

function readThreshold(input) {
  const c = S.campaign;
  const v = Number(input.value);
  if (!Number.isInteger(v) || v < c.threshold_min || v > c.threshold_max) {
    return null;
  }
  return v;
}

async function openWallet(passInput, statusId, confirmInput = null) {
  if (wallet.current()) return wallet.current();
  const pass = passInput.value;
  const fresh = !wallet.hasWallet();
  if (fresh && pass.length < 8) {
    setStatus(statusId, t("wallet.pass_short"), "error");
    passInput.focus();
    return null;
  }
  if (fresh && (!confirmInput || confirmInput.value !== pass)) {
    setStatus(statusId, t("wallet.pass_mismatch"), "error");
    (confirmInput || passInput).focus();
    return null;
  }
  if (!pass) {
    setStatus(statusId, t("wallet.pass_missing"), "error");
    passInput.focus();
    return null;
  }
  setStatus(statusId, t("wallet.opening"));
  try {
    const app = await wallet.unlock(pass);
    passInput.value = "";
    if (confirmInput) confirmInput.value = "";
    setStatus(statusId, "");
    await afterUnlock();
    return app;
  } catch (e) {
    setStatus(statusId, errorText(e), "error");
    passInput.focus();
    return null;
  }
}

/** Shows the countdown to `due` (Unix seconds, drawn by the client at
 *  random, DESIGN P4) until then or until "send now" is clicked. The pledge
 *  is already signed and saved: closing the page loses nothing. */
function countdownUntil(due) {
  const box = $("countdown");
  const text = $("countdown-text");
  return new Promise((resolve) => {
    const left = () => Math.max(0, Math.ceil(due - Date.now() / 1000));
    const show = () => {
      const l = left();
      const mm = Math.floor(l / 60);
      const ss = String(l % 60).padStart(2, "0");
      text.textContent = t("pledge.countdown", { time: `${mm}:${ss}` });
      box.dataset.left = String(l);
    };
    const done = () => {
      clearInterval(timer);
      box.hidden = true;
      $("countdown-now").removeEventListener("click", done);
      resolve();
    };
    show();
    box.hidden = false;
    $("countdown-now").addEventListener("click", done);
    const timer = setInterval(() => { if (left() <= 0) done(); else show(); }, 1000);
    if (left() <= 0) done();
  });
}

async function onPledge(ev) {
  ev.preventDefault();
  if (S.busy) return;
  const c = S.campaign;
  const threshold = sealed() ? Number($("threshold-choice").value) : readThreshold($("threshold"));
  if (threshold === null) {
    setStatus("pledge-status", t("pledge.bad_threshold", { min: c.threshold_min, max: c.threshold_max }), "error");
    $("threshold").focus();
    return;
  }
  const terms = {};
  const kind = chosenKind();
  if (kind === "act_if_supported") terms.support = Number($("support-level").value);
  if (kind === "fund") {
    const amount = parseAmount($("fund-amount").value, c.funding.minor_digits);
    if (amount === null) {
      setStatus("pledge-status", t("funding.bad_amount", { digits: c.funding.minor_digits }), "error");
      $("fund-amount").focus();
      return;
    }
    terms.fund = amount;
  }
  const app = wallet.current();
  const coverHeld = sealed() && S.mine && S.mine.null;
  if (!app || !(app.tokenCampaigns().includes(id) || coverHeld)) {
    // Never a token request here: that is what the wallet step is for.
    renderReady();
    setStatus("pledge-status", $("pledge-needs").textContent || t("pledge.need_wallet"), "error");
    return;
  }
  S.busy = true;
  $("pledge-button").disabled = true;
  try {
    const prepared = await app.preparePledge(id, threshold, { now: $("send-now").checked, ...terms });
    await refreshMine();
    if (prepared.sendAfter) {
      setStatus("pledge-status", t("pledge.scheduled", { time: clock(prepared.sendAfter) }));
      await countdownUntil(prepared.sendAfter);
    }
    setStatus("pledge-status", t("pledge.sending"));
    const r = await app.sendPending({ campaign: id });
    await refreshTally();
    await refreshMine();
    const sent = r.sent.find((x) => x.campaign === id);
    const index = sent ? sent.index : (S.mine ? S.mine.index : null);
    setStatus("pledge-status", t("pledge.done", { index, threshold }), "ok");
  } catch (e) {
    setStatus("pledge-status", errorText(e), "error");
    await refreshMine();
  } finally {
    S.busy = false;
    renderReady();
  }
}

async function onOpen(ev) {
  ev.preventDefault();
  await openWallet($("passphrase"), "token-status", $("passphrase2"));
}

async function onInvite(ev) {
  ev.preventDefault();
  const app = wallet.current();
  const code = $("invite").value.trim();
  if (!app || !code) return;
  setStatus("token-status", t("wallet.tokens_getting"), "busy");
  try {
    await app.obtainTokens({ kind: "invite", code, group: S.campaign.invite_group });
    $("invite").value = "";
    setStatus("token-status", t("pledge.invite_ok"), "ok");
  } catch (e) {
    setStatus("token-status", errorText(e), "error");
  }
  renderReady();
}

/** The domain of an address as the server reads it (after the last "@",
 *  lower-cased: SPEC R-API-28). */
function emailDomain(address) {
  const at = address.lastIndexOf("@");
  return at > 0 ? address.slice(at + 1).toLowerCase() : "";
}

/** The e-mail step's refusals in plain words (SPEC R-WEB-18). */
function emailErrorText(e) {
  switch (e && e.code) {
    case "rate_limited":
      return t("email.rate_limited", { minutes: Math.max(1, Math.ceil((e.retryAfter || 60) / 60)) });
    case "bad_request": return t("email.bad_address");
    case "email_domain_not_allowed": return t("email.domain_not_allowed");
    case "email_code_invalid": return t("email.code_invalid");
    case "mail_unavailable": return t("email.mail_unavailable");
    case "already_issued": return t("email.already_issued");
    default: return errorText(e);
  }
}

/** Drops the address and the code from the page (SPEC R-WEB-19: they are
 *  never stored; once used they leave the page's memory too). */
function clearEmail() {
  $("email-address").value = "";
  $("email-code").value = "";
  $("email-sent").textContent = "";
  S.emailSent = false;
  S.emailSentTo = null;
}

/** "Send me a code": the server mails a one-time code to the address, for
 *  every open e-mail campaign of its domain (cover, as for tokens). */
async function onEmailSend(ev) {
  ev.preventDefault();
  const app = wallet.current();
  if (!app) return;
  const address = $("email-address").value.trim();
  const domain = emailDomain(address);
  if (!domain.includes(".") || /\s/.test(address)) {
    setStatus("token-status", t("email.bad_address"), "error");
    $("email-address").focus();
    return;
  }
  const domains = S.campaign.email_domains || [];
  if (domains.length && !domains.includes(domain)) {
    setStatus("token-status", t("email.domain_not_allowed_list", { domains: domains.join(", ") }), "error");
    $("email-address").focus();
    return;
  }
  setStatus("token-status", t("email.sending"), "busy");
  $("email-send").disabled = true;
  try {
    const r = await app.requestEmailCode(address);
    if (!r.campaigns) {
      setStatus("token-status", t("email.no_campaign"), "error");
    } else {
      S.emailSent = true;
      S.emailSentTo = address;
      const minutes = Math.max(1, Math.round((r.expiresIn || 900) / 60));
      $("email-sent").textContent = t("email.sent", { address, minutes });
      setStatus("token-status", t("email.sent_status"), "ok");
    }
  } catch (e) {
    let text = emailErrorText(e);
    if (e && e.code === "rate_limited" && S.emailSentTo === address) {
      // The code mailed last is still pending: back to the code step.
      S.emailSent = true;
      text += " " + t("email.last_code");
    }
    setStatus("token-status", text, "error");
  } finally {
    $("email-send").disabled = false;
  }
  renderReady();
  if (S.emailSent) $("email-code").focus();
}

/** "Use this code": tokens for every campaign the code was asked for. */
async function onEmailCode(ev) {
  ev.preventDefault();
  const app = wallet.current();
  const address = $("email-address").value.trim();
  const code = $("email-code").value.replace(/\s+/g, "");
  if (!app || !address) return;
  if (!/^[0-9]{8}$/.test(code)) {
    setStatus("token-status", t("email.code_format"), "error");
    $("email-code").focus();
    return;
  }
  setStatus("token-status", t("wallet.tokens_getting"), "busy");
  $("email-code-button").disabled = true;
  try {
    await app.obtainTokens({ kind: "email", address, code });
    clearEmail();
    setStatus("token-status", t("email.ok"), "ok");
  } catch (e) {
    $("email-code").value = "";
    if (e && e.code === "already_issued") clearEmail();
    setStatus("token-status", emailErrorText(e), "error");
  } finally {
    $("email-code-button").disabled = false;
  }
  renderReady();
}

function onEmailRestart() {
  $("email-code").value = "";
  $("email-sent").textContent = "";
  S.emailSent = false;
  setStatus("token-status", "");
  renderReady();
  $("email-address").focus();
}

async function onSendPendingNow() {
  const app = wallet.current();
  if (!app) return;
  setStatus("mine-status", t("pledge.sending"), "busy");
  try {
    await app.sendPending({ campaign: id });
    await refreshTally();
    await refreshMine();
    setStatus("mine-status", "", "");
  } catch (e) {
    setStatus("mine-status", errorText(e), "error");
  }
}

async function onUnlock(ev) {
  ev.preventDefault();
  await openWallet($("unlock-pass"), "mine-status");
}

async function onAmend(ev) {
  ev.preventDefault();
  const app = wallet.current();
  const threshold = sealed() ? Number($("amend-choice").value) : readThreshold($("amend-threshold"));
  if (!app) return;
  if (threshold === null) {
    const c = S.campaign;
    setStatus("mine-status", t("pledge.bad_threshold", { min: c.threshold_min, max: c.threshold_max }), "error");
    return;
  }
  setStatus("mine-status", t("mine.amending"), "busy");
  try {
    // The same kind of terms, at the new threshold.
    const k = S.mine && S.mine.terms;
    const opts = k && k.kind === "act_if_supported" ? { support: k.support }
      : (k && k.kind === "fund" ? { fund: k.amount } : {});
    await app.amend(id, threshold, opts);
    await refreshTally();
    await refreshMine();
    setStatus("mine-status", t("mine.amended", { threshold }), "ok");
  } catch (e) {
    setStatus("mine-status", errorText(e), "error");
  }
}

async function onWithdraw() {
  const app = wallet.current();
  if (!app || !confirm(t(sealed() ? "mine.withdraw_sealed_confirm" : "mine.withdraw_confirm"))) return;
  setStatus("mine-status", t("mine.withdrawing"), "busy");
  try {
    await app.withdraw(id);
    await refreshTally();
    await refreshMine();
    setStatus("mine-status", t("mine.withdrawn_done"), "ok");
  } catch (e) {
    setStatus("mine-status", errorText(e), "error");
  }
}

function onExport() {
  try {
    wallet.exportWallet();
    setStatus("wallet-status", t("wallet.exported"), "ok");
  } catch (e) {
    setStatus("wallet-status", errorText(e), "error");
  }
}

async function onImport(ev) {
  ev.preventDefault();
  const file = $("import-file").files[0];
  const pass = $("import-pass").value;
  if (!file || !pass) {
    setStatus("wallet-status", t("wallet.import_missing"), "error");
    return;
  }
  setStatus("wallet-status", t("wallet.opening"));
  try {
    const bytes = new Uint8Array(await file.arrayBuffer());
    await wallet.importWallet(bytes, pass);
    $("import-pass").value = "";
    $("import-file").value = "";
    await afterUnlock();
    setStatus("wallet-status", t("wallet.imported"), "ok");
  } catch (e) {
    setStatus("wallet-status", errorText(e), "error");
  }
  renderWallet();
}

async function onForget() {
  if (!confirm(t("wallet.forget_confirm"))) return;
  await wallet.forget();
  S.mine = null;
  clearEmail();
  clearTimeout(S.coverTimer);
  clearTimeout(S.pendingTimer);
  clearTimeout(S.reencryptTimer);
  renderPass();
  renderReady();
  renderPins();
  renderMine();
  renderWallet();
  setStatus("wallet-status", t("wallet.forgotten"), "ok");
}

function wireForms() {
  $("pledge-form").addEventListener("submit", onPledge);
  $("open-form").addEventListener("submit", onOpen);
  $("invite-form").addEventListener("submit", onInvite);
  $("email-form").addEventListener("submit", onEmailSend);
  $("email-code-form").addEventListener("submit", onEmailCode);
  $("email-restart").addEventListener("click", onEmailRestart);
  $("mine-send-now").addEventListener("click", onSendPendingNow);
  $("cover-send-now").addEventListener("click", onCoverNow);
  $("unlock-form").addEventListener("submit", onUnlock);
  $("amend-form").addEventListener("submit", onAmend);
  $("withdraw-button").addEventListener("click", onWithdraw);
  $("export-button").addEventListener("click", onExport);
  $("import-form").addEventListener("submit", onImport);
  $("forget-button").addEventListener("click", onForget);
  const th = $("threshold");
  const range = $("threshold-range");
  const c = () => S.campaign;
  range.addEventListener("input", () => {
    th.value = fromRange(Number(range.value), c().threshold_min, c().threshold_max);
  });
  th.addEventListener("input", () => {
    range.value = toRange(Number(th.value), c().threshold_min, c().threshold_max);
  });
  $("threshold-choice").addEventListener("change", () => { $("threshold-choice").dataset.chosen = "person"; });
  for (const r of document.querySelectorAll('input[name="kind"]')) r.addEventListener("change", renderFunding);
  $("support-level").addEventListener("change", () => { $("kind-supported").checked = true; renderFunding(); });
  $("fund-amount").addEventListener("input", () => { $("kind-fund").checked = true; renderFunding(); });
}
