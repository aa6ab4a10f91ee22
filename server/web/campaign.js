// One campaign's page (/c/<id>): the statement, the sentence with the
// threshold chosen on the page, the live chart, pledging, the status of this
// browser's pledge (amend, withdraw) and the wallet (export, import, forget).

import { getJson, formatDate, readySentence } from "./app.js";
import { t, tp, split, has, currentLanguage } from "./i18n.js";
import { parseStatement, moreNeeded } from "./tally.js";
import { renderChart } from "./chart.js";
import * as wallet from "./wallet.js";

const id = location.pathname.split("/")[2] || "";
const MAX_DELAY_SECONDS = 600;

const S = {
  campaign: null,
  buckets: [],
  size: -1,
  summary: null,
  live: "connecting",
  mine: null,        // this campaign's element of app.status(), or null
  busy: false,
  loadError: null,
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
  document.title = `${c.title} · ${t("site.name")}`;
  setStatus("campaign-status", "");
  $("campaign-status").hidden = true;
  $("campaign").hidden = false;
  $("c-title").textContent = c.title;
  $("c-text").textContent = c.text;
  $("c-action").textContent = c.action;
  $("c-deadline").textContent = formatDate(c.deadline, currentLanguage());
  $("c-goal").textContent = tp("campaign.goal_value", c.goal, { goal: c.goal });
  $("c-state").textContent = t(`state.${c.state}`);
  const th = $("threshold");
  th.min = c.threshold_min;
  th.max = c.threshold_max;
  if (!th.value) th.value = Math.min(c.threshold_max, Math.max(c.threshold_min, c.goal));
  const range = $("threshold-range");
  range.hidden = c.threshold_max - c.threshold_min > 10000;
  range.min = c.threshold_min;
  range.max = c.threshold_max;
  range.value = th.value;
  $("amend-threshold").min = c.threshold_min;
  $("amend-threshold").max = c.threshold_max;
  $("threshold-help").textContent = t("pledge.range", { min: c.threshold_min, max: c.threshold_max });
  $("invite-row").hidden = c.attester !== "invite";
  const open = c.state === "open";
  for (const e of $("pledge-form").elements) e.disabled = !open || S.busy;
  if (!open) setStatus("pledge-status", t("pledge.closed"));
  renderPass();
  renderSentence();
  drawChart();
  renderLiveState();
  renderMine();
  renderWallet();
}

function renderSentence() {
  const c = S.campaign;
  if (!c) return;
  // Activated (A) and waiting (declared − A), never one "ready" total: only
  // the activated ones act if the campaign ended now.
  const live = S.summary ? S.summary.live : (c.tally ? c.tally.live : 0);
  const activated = S.summary ? S.summary.activated : (c.tally ? c.tally.active : 0);
  const el = $("sentence-ready");
  el.textContent = readySentence(activated, live - activated, c.action);
  el.dataset.activated = String(activated);
  el.dataset.waiting = String(live - activated);
  const [before, after] = split("sentence.if", "input");
  $("sentence-if-before").textContent = ` ${before}`;
  $("sentence-if-after").textContent = after;
}

function drawChart() {
  if (!S.campaign) return;
  S.summary = renderChart($("chart"), S.buckets, S.campaign);
}

function renderLiveState() {
  $("live-state").textContent = t(S.live === "live" ? "chart.live" : "chart.reconnecting");
  $("live-state").dataset.state = S.live;
}

function renderPass() {
  const unlocked = wallet.current() !== null;
  $("pass-row").hidden = unlocked;
  $("pass-label").textContent = t(wallet.hasWallet() ? "wallet.pass_existing" : "wallet.pass_new");
  $("passphrase").autocomplete = wallet.hasWallet() ? "current-password" : "new-password";
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
  // The same function as the chart's next activation (tally.js), over the
  // histogram of the latest statement, which counts this pledge; before one is
  // loaded, the active count of the status view (and no number).
  const more = S.size >= 0 ? moreNeeded(S.buckets, m.threshold) : (m.threshold <= m.activeCount ? 0 : null);
  const activated = more === 0;
  let state;
  if (m.state === "withdrawn") state = t("mine.withdrawn");
  else if (m.state === "pending") state = t("mine.pending");
  else if (activated) state = t("mine.activated");
  else if (more === null) state = t("chart.status_waiting");
  else state = tp("mine.waiting", more, { threshold: m.threshold });
  const parts = [t("mine.threshold", { threshold: m.threshold }), state];
  if (m.index !== null && m.index !== undefined) {
    parts.push(t(m.receiptVerified ? "mine.receipt_ok" : "mine.receipt_missing", { index: m.index }));
  }
  $("mine-summary").textContent = parts.join(" · ");
  $("mine-summary").dataset.state = m.state === "withdrawn" ? "withdrawn" : (activated ? "activated" : "waiting");
  $("mine-summary").dataset.more = m.state === "logged" && more !== null ? String(more) : "";
  const live = m.state !== "withdrawn" && S.campaign.state === "open";
  $("amend-form").hidden = !live;
  $("withdraw-button").hidden = !live;
  if (live && !$("amend-threshold").value) $("amend-threshold").value = m.threshold;
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
    const all = await app.status();
    S.mine = all.find((p) => p.campaign === id) || null;
  } catch (e) {
    setStatus("mine-status", errorText(e), "error");
  }
  renderMine();
  renderWallet();
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

async function openWallet(passInput, statusId) {
  if (wallet.current()) return wallet.current();
  const pass = passInput.value;
  if (!wallet.hasWallet() && pass.length < 8) {
    setStatus(statusId, t("wallet.pass_short"), "error");
    passInput.focus();
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
    renderPass();
    await refreshMine();
    return app;
  } catch (e) {
    setStatus(statusId, errorText(e), "error");
    passInput.focus();
    return null;
  }
}

/** Waits a uniformly random delay with a visible countdown (DESIGN P4).
 *  Resolves true to send, false when cancelled. */
function privateDelay() {
  const r = new Uint32Array(1);
  crypto.getRandomValues(r);
  let left = Math.floor((r[0] / 2 ** 32) * (MAX_DELAY_SECONDS + 1));
  const box = $("countdown");
  const text = $("countdown-text");
  return new Promise((resolve) => {
    const show = () => {
      const mm = Math.floor(left / 60);
      const ss = String(left % 60).padStart(2, "0");
      text.textContent = t("pledge.countdown", { time: `${mm}:${ss}` });
    };
    const done = (send) => {
      clearInterval(timer);
      box.hidden = true;
      $("countdown-now").removeEventListener("click", now);
      resolve(send);
    };
    const now = () => done(true);
    show();
    box.hidden = false;
    $("countdown-now").addEventListener("click", now);
    const timer = setInterval(() => {
      left -= 1;
      if (left <= 0) done(true); else show();
    }, 1000);
    if (left <= 0) done(true);
  });
}

async function onPledge(ev) {
  ev.preventDefault();
  if (S.busy) return;
  const c = S.campaign;
  const threshold = readThreshold($("threshold"));
  if (threshold === null) {
    setStatus("pledge-status", t("pledge.bad_threshold", { min: c.threshold_min, max: c.threshold_max }), "error");
    $("threshold").focus();
    return;
  }
  S.busy = true;
  $("pledge-button").disabled = true;
  try {
    const app = await openWallet($("passphrase"), "pledge-status");
    if (!app) return;
    if (!app.tokenCampaigns().includes(id)) {
      setStatus("pledge-status", t("pledge.getting_token"));
      const attestation = c.attester === "invite"
        ? { kind: "invite", code: $("invite").value.trim(), group: c.invite_group }
        : { kind: "open" };
      await app.obtainTokens(attestation);
    }
    if (!$("send-now").checked) {
      setStatus("pledge-status", t("pledge.waiting"));
      await privateDelay();
    }
    setStatus("pledge-status", t("pledge.sending"));
    const r = await app.pledge(id, threshold, { now: true });
    setStatus("pledge-status", t("pledge.done", { index: r.index, threshold }), "ok");
    await refreshTally();
    await refreshMine();
  } catch (e) {
    setStatus("pledge-status", errorText(e), "error");
  } finally {
    S.busy = false;
    $("pledge-button").disabled = S.campaign.state !== "open";
  }
}

async function onUnlock(ev) {
  ev.preventDefault();
  await openWallet($("unlock-pass"), "mine-status");
}

async function onAmend(ev) {
  ev.preventDefault();
  const app = wallet.current();
  const threshold = readThreshold($("amend-threshold"));
  if (!app) return;
  if (threshold === null) {
    const c = S.campaign;
    setStatus("mine-status", t("pledge.bad_threshold", { min: c.threshold_min, max: c.threshold_max }), "error");
    return;
  }
  setStatus("mine-status", t("mine.amending"), "busy");
  try {
    await app.amend(id, threshold);
    await refreshTally();
    await refreshMine();
    setStatus("mine-status", t("mine.amended", { threshold }), "ok");
  } catch (e) {
    setStatus("mine-status", errorText(e), "error");
  }
}

async function onWithdraw() {
  const app = wallet.current();
  if (!app || !confirm(t("mine.withdraw_confirm"))) return;
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
    renderPass();
    await refreshMine();
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
  renderPass();
  renderMine();
  renderWallet();
  setStatus("wallet-status", t("wallet.forgotten"), "ok");
}

function wireForms() {
  $("pledge-form").addEventListener("submit", onPledge);
  $("unlock-form").addEventListener("submit", onUnlock);
  $("amend-form").addEventListener("submit", onAmend);
  $("withdraw-button").addEventListener("click", onWithdraw);
  $("export-button").addEventListener("click", onExport);
  $("import-form").addEventListener("submit", onImport);
  $("forget-button").addEventListener("click", onForget);
  const th = $("threshold");
  const range = $("threshold-range");
  range.addEventListener("input", () => { th.value = range.value; });
  th.addEventListener("input", () => { range.value = th.value; });
}
