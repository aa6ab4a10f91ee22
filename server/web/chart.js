// The chart of declarations ordered by threshold, drawn as SVG by hand (no
// library): one bar per threshold (or per group of nearby thresholds when
// they are too many to draw apart), activated pledges (threshold <= A) in one
// colour, waiting ones striped in another, a marker at the active count A
// and one at the goal. A summary sentence and a data table are the text
// alternative.

import { t, tp, fmt } from "./i18n.js";
import { summarize, fundingCurve, nextFunding } from "./tally.js";

const NS = "http://www.w3.org/2000/svg";
// The drawing is sized to its box (re-drawn on resize), so that text keeps
// its real size on a phone instead of shrinking with the picture.
let W = 640;
let H = 280;
const M = { top: 44, right: 16, bottom: 44, left: 40 };

function el(name, attrs = {}, text) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

function niceStep(v) {
  const p = 10 ** Math.floor(Math.log10(Math.max(1, v)));
  for (const f of [1, 2, 5, 10]) if (f * p >= v) return f * p;
  return 10 * p;
}

function niceCeil(v) {
  if (v <= 5) return Math.max(1, Math.ceil(v));
  const p = 10 ** Math.floor(Math.log10(v));
  for (const f of [1, 2, 2.5, 5, 10]) if (f * p >= v) return f * p;
  return 10 * p;
}

/** The x scale: linear for small thresholds, logarithmic beyond. */
function xScale(hi) {
  const x0 = M.left;
  const x1 = W - M.right;
  if (hi <= 120) {
    const slot = (x1 - x0) / hi;
    const step = niceStep(hi / Math.max(2, Math.floor((x1 - x0) / 70)));
    const ticks = [1];
    for (let v = step; v <= hi; v += step) ticks.push(v);
    return { log: false, slot, x: (v) => x0 + (Math.min(v, hi) - 0.5) * slot, ticks };
  }
  const lhi = Math.log10(hi);
  const ticks = [];
  for (let p = 1; p <= hi; p *= 10) ticks.push(p);
  return {
    log: true, slot: 6,
    x: (v) => x0 + 6 + (Math.log10(Math.max(1, Math.min(v, hi))) / lhi) * (x1 - x0 - 12),
    ticks,
  };
}

/**
 * Draws the tally into `figure` (a <figure> holding .chart-svg, .chart-summary,
 * .chart-next and a table body). `campaign` gives goal and threshold range.
 */
export function renderChart(figure, buckets, campaign, joint = null) {
  let s = summarize(buckets);
  if (joint) {
    // A funding campaign: A is the joint count of its statement (R-FUND-1),
    // which money can hold below the plain one; the bars show whose
    // threshold is met, and the money chart says who is funded.
    const met = buckets.filter(([t]) => t <= joint.active).reduce((n, [, c]) => n + c, 0);
    s = { live: s.live, active: joint.active, activated: Math.min(met, joint.active),
      waiting: s.live - Math.min(met, joint.active), next: null };
  }
  const svg = figure.querySelector(".chart-svg");
  W = Math.max(300, Math.min(900, Math.round(svg.parentElement.clientWidth || 640)));
  H = W < 500 ? 240 : 280;
  const maxT = buckets.length ? buckets[buckets.length - 1][0] : 1;
  const top = Math.max(maxT, campaign.goal || 1, s.active, 10);
  const hi = top <= 120 ? Math.ceil(top * 1.08) : niceCeil(top * 1.05);
  const sx = xScale(hi);

  // Group buckets whose bars would overlap into one column.
  const cols = [];
  for (const [th, c] of buckets) {
    const x = sx.x(th);
    const last = cols[cols.length - 1];
    const act = th <= s.active;
    if (last && x - last.x < sx.slot * 0.9) {
      last.to = th;
      if (act) last.activated += c; else last.waiting += c;
    } else {
      cols.push({ x, from: th, to: th, activated: act ? c : 0, waiting: act ? 0 : c });
    }
  }
  const ymax = niceCeil(Math.max(1, ...cols.map((c) => c.activated + c.waiting)));
  const y = (v) => H - M.bottom - (v / ymax) * (H - M.top - M.bottom);
  const bw = Math.max(3, Math.min(40, sx.slot * 0.8));

  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("role", "img");
  const summaryText = t("chart.summary", { declared: s.live, activated: s.activated, waiting: s.waiting });
  svg.append(el("title", {}, summaryText));

  const defs = el("defs");
  const pat = el("pattern", { id: "waiting-stripes", width: 6, height: 6, patternUnits: "userSpaceOnUse", patternTransform: "rotate(45)" });
  pat.append(el("rect", { width: 6, height: 6, class: "bar-waiting" }));
  pat.append(el("line", { x1: 0, y1: 0, x2: 0, y2: 6, class: "stripe" }));
  defs.append(pat);
  svg.append(defs);

  // Axes, grid and tick labels.
  const g = el("g", { class: "axes", "aria-hidden": "true" });
  for (const v of [0, ymax / 2, ymax]) {
    if (v !== Math.round(v)) continue;
    g.append(el("line", { x1: M.left, x2: W - M.right, y1: y(v), y2: y(v), class: "grid" }));
    g.append(el("text", { x: M.left - 6, y: y(v) + 4, class: "tick", "text-anchor": "end" }, fmt(v)));
  }
  g.append(el("line", { x1: M.left, x2: W - M.right, y1: y(0), y2: y(0), class: "axis" }));
  for (const v of sx.ticks) {
    g.append(el("text", { x: sx.x(v), y: H - M.bottom + 16, class: "tick", "text-anchor": "middle" }, fmt(v)));
  }
  g.append(el("text", { x: (M.left + W - M.right) / 2, y: H - 8, class: "axis-label", "text-anchor": "middle" },
    t(sx.log ? "chart.axis_x_log" : "chart.axis_x")));
  const ymid = (M.top + y(0)) / 2;
  g.append(el("text", { x: 12, y: ymid, class: "axis-label", "text-anchor": "middle", transform: `rotate(-90 12 ${ymid})` }, t("chart.axis_y")));
  svg.append(g);

  // The activated zone: every declaration left of its edge acts.
  const edge = s.active > 0 ? Math.min(W - M.right, sx.x(s.active) + (sx.log ? 3 : sx.slot / 2)) : null;
  if (edge !== null) {
    svg.append(el("rect", { x: M.left, y: M.top - 4, width: edge - M.left, height: y(0) - M.top + 4, class: "zone-activated", "aria-hidden": "true" }));
  }

  // Bars: activated at the bottom, waiting stacked above, striped.
  const bars = el("g", { class: "bars" });
  for (const c of cols) {
    const x = c.x - bw / 2;
    const label = c.from === c.to
      ? t("chart.bar_label", { threshold: c.from, activated: c.activated, waiting: c.waiting })
      : t("chart.bar_label_range", { from: c.from, to: c.to, activated: c.activated, waiting: c.waiting });
    const bar = el("g", { class: "bar" });
    bar.append(el("title", {}, label));
    if (c.activated) {
      bar.append(el("rect", { x, y: y(c.activated), width: bw, height: y(0) - y(c.activated), class: "bar-activated" }));
    }
    if (c.waiting) {
      const top = c.activated + c.waiting;
      bar.append(el("rect", { x, y: y(top), width: bw, height: y(c.activated) - y(top), fill: "url(#waiting-stripes)", class: "bar-waiting-outline" }));
    }
    bars.append(bar);
  }
  if (s.next) {
    const nx = sx.x(s.next.threshold);
    const col = cols.find((c) => c.from <= s.next.threshold && s.next.threshold <= c.to);
    const top = col ? col.activated + col.waiting : 0;
    bars.append(el("text", { x: nx, y: y(top) - 6, class: "next-label", "text-anchor": "middle", "aria-hidden": "true" },
      `+${fmt(s.next.more)}`));
  }
  svg.append(bars);

  // Goal and active-count markers, labels in two rows above the plot.
  const marks = el("g", { class: "markers", "aria-hidden": "true" });
  const clampX = (x) => Math.max(M.left + 40, Math.min(W - M.right - 40, x));
  if (campaign.goal) {
    const gx = sx.x(campaign.goal);
    marks.append(el("line", { x1: gx, x2: gx, y1: M.top - 24, y2: y(0), class: "marker-goal" }));
    marks.append(el("text", { x: clampX(gx), y: M.top - 28, class: "marker-label", "text-anchor": "middle" },
      t("chart.marker_goal", { goal: campaign.goal })));
  }
  if (edge !== null) {
    marks.append(el("line", { x1: edge, x2: edge, y1: M.top - 8, y2: y(0), class: "marker-active" }));
    marks.append(el("text", { x: Math.max(M.left + 4, edge - 4), y: M.top - 10,
      class: "marker-label marker-active-label", "text-anchor": edge - M.left > 90 ? "end" : "start" },
      t("chart.marker_active", { active: s.active })));
  }
  svg.append(marks);

  // Text alternative.
  figure.querySelector(".chart-summary").textContent = summaryText;
  const next = figure.querySelector(".chart-next");
  if (s.live === 0) next.textContent = t("chart.none");
  else if (joint && s.waiting > 0) next.textContent = t("chart.next_funding");
  else if (!s.next) next.textContent = t("chart.all_active");
  else next.textContent = tp("chart.next", s.next.more, { more: s.next.more, group: s.next.group, threshold: s.next.threshold });

  const tbody = figure.querySelector("tbody");
  tbody.replaceChildren();
  for (const [th, c] of buckets.slice(0, 1000)) {
    const tr = document.createElement("tr");
    for (const v of [fmt(th), fmt(c), th <= s.active ? t("chart.status_active") : t("chart.status_waiting")]) {
      const td = document.createElement("td");
      td.textContent = v;
      tr.append(td);
    }
    tbody.append(tr);
  }
  figure.dataset.live = String(s.live);
  figure.dataset.active = String(s.active);
  figure.dataset.activated = String(s.activated);
  figure.dataset.waiting = String(s.waiting);
  figure.dataset.nextThreshold = s.next ? String(s.next.threshold) : "";
  figure.dataset.nextMore = s.next ? String(s.next.more) : "";
  return s;
}

/** `minor` (a BigInt or Number of minor units) in major units with the
 *  currency's decimals and code: 12345n, 2, "EUR" -> "123.45 EUR". */
export function formatMoney(minor, digits, currency) {
  const v = BigInt(minor);
  if (!digits) return `${v} ${currency}`;
  const scale = 10n ** BigInt(digits);
  const frac = String(v % scale).padStart(digits, "0");
  return `${v / scale}.${frac} ${currency}`;
}

/**
 * The money chart of a funding campaign: for m = 1 … hi people acting, the
 * money offered by funders whose condition holds (F(m)) and the support
 * the cheapest m would need (cost(m)), as two lines, with the joint A
 * marked; a sentence and one line per support level as the text
 * alternative. `st` is a parsed funding statement.
 */
export function renderFundingChart(figure, st, campaign) {
  const f = campaign.funding;
  const money = (v) => formatMoney(v, f.minor_digits, f.currency);
  const svg = figure.querySelector(".chart-svg");
  W = Math.max(300, Math.min(900, Math.round(svg.parentElement.clientWidth || 640)));
  H = W < 500 ? 240 : 280;
  const maxT = Math.max(1, ...st.actors.map(([t]) => t), ...st.funders.map(([n]) => n));
  const hi = Math.max(10, Math.min(campaign.threshold_max, Math.ceil(Math.max(maxT, st.active + 1, campaign.goal || 1) * 1.1)));
  const curve = fundingCurve(st.actors, st.funders, hi);
  const top = curve.points.reduce((mx, p) => {
    const v = p.needed === null ? p.offered : (p.needed > p.offered ? p.needed : p.offered);
    return v > mx ? v : mx;
  }, 1n);
  const ymax = top;
  const x0 = M.left + 24;
  const x1 = W - M.right;
  const x = (m) => x0 + ((m - 1) / Math.max(1, hi - 1)) * (x1 - x0);
  // BigInt to a fraction of the axis without losing the order of magnitude.
  const frac = (v) => Number((v * 10000n) / ymax) / 10000;
  const y = (v) => H - M.bottom - frac(v) * (H - M.top - M.bottom);

  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("role", "img");
  const summaryText = tp("fchart.summary", st.active, {
    active: st.active, funds: money(st.funds), cost: money(st.cost), demand: money(st.demand),
  });
  svg.append(el("title", {}, summaryText));
  const g = el("g", { class: "axes", "aria-hidden": "true" });
  g.append(el("line", { x1: x0, x2: x1, y1: y(0n), y2: y(0n), class: "axis" }));
  g.append(el("line", { x1: x0, x2: x0, y1: M.top, y2: y(0n), class: "axis" }));
  g.append(el("text", { x: x0 - 4, y: M.top + 4, class: "tick", "text-anchor": "end" }, money(ymax).split(" ")[0]));
  g.append(el("text", { x: x0 - 4, y: y(0n) + 4, class: "tick", "text-anchor": "end" }, "0"));
  const step = niceStep(hi / Math.max(2, Math.floor((x1 - x0) / 70)));
  for (let v = step; v <= hi; v += step) {
    g.append(el("text", { x: x(v), y: H - M.bottom + 16, class: "tick", "text-anchor": "middle" }, fmt(v)));
  }
  g.append(el("text", { x: (x0 + x1) / 2, y: H - 8, class: "axis-label", "text-anchor": "middle" }, t("fchart.axis_x")));
  svg.append(g);
  const path = (pick) => {
    let d = "";
    let pen = false;
    for (const p of curve.points) {
      const v = pick(p);
      if (v === null) { pen = false; continue; }
      d += `${pen ? "L" : "M"}${x(p.m).toFixed(1)},${y(v).toFixed(1)} `;
      pen = true;
    }
    return d.trim();
  };
  svg.append(el("path", { d: path((p) => p.offered), class: "line-offered" }));
  const needed = path((p) => p.needed);
  if (needed) svg.append(el("path", { d: needed, class: "line-needed" }));
  if (st.active > 0) {
    const ax = x(st.active);
    svg.append(el("line", { x1: ax, x2: ax, y1: M.top - 8, y2: y(0n), class: "marker-active", "aria-hidden": "true" }));
    svg.append(el("text", { x: Math.max(x0 + 4, ax - 4), y: M.top - 10, class: "marker-label marker-active-label",
      "text-anchor": ax - x0 > 90 ? "end" : "start", "aria-hidden": "true" }, t("chart.marker_active", { active: st.active })));
  }
  const next = nextFunding(st.actors, st.funders, st.active);
  figure.querySelector("#fchart-summary").textContent = next
    ? `${summaryText} ${t("fchart.next", { more: money(next.more), actors: next.actors })}`
    : summaryText;
  figure.dataset.nextActors = next ? String(next.actors) : "";
  figure.dataset.nextMore = next ? String(next.more) : "";
  const ul = figure.querySelector("#fchart-levels");
  ul.replaceChildren();
  for (const [lvl, eligible, funded] of st.levels) {
    const li = document.createElement("li");
    li.textContent = lvl === 0
      ? t("fchart.level_none", { eligible, funded })
      : t("fchart.level", { support: money(lvl), eligible, funded });
    ul.append(li);
  }
  figure.dataset.active = String(st.active);
  figure.dataset.curveActive = String(curve.active);
  figure.dataset.funds = String(st.funds);
  figure.dataset.cost = String(st.cost);
  figure.hidden = false;
}
