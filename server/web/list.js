// The campaign list page (/).

import { getJson, formatDate, readySentence } from "./app.js";
import { translationFor } from "./texts.js";
import { t, currentLanguage } from "./i18n.js";

let campaigns = null;
let error = null;

export async function start() {
  try {
    campaigns = (await getJson("/v1/campaigns")).campaigns;
  } catch (e) {
    error = e;
  }
  rerender();
}

export function rerender() {
  document.title = `${t("list.title")} · ${t("site.name")}`;
  const status = document.getElementById("list-status");
  const ul = document.getElementById("campaigns");
  ul.replaceChildren();
  if (error) {
    status.textContent = t("list.error", { error: error.message });
    return;
  }
  if (!campaigns) return;
  status.textContent = campaigns.length ? "" : t("list.empty");
  // Open campaigns first, newest first within each state.
  const order = { open: 0, closing: 1, closed: 2 };
  const sorted = [...campaigns].reverse().sort((a, b) => (order[a.state] ?? 3) - (order[b.state] ?? 3));
  for (const c of sorted) {
    const li = document.createElement("li");
    li.className = `campaign state-${c.state}`;
    const h = document.createElement("h2");
    const a = document.createElement("a");
    a.href = `/c/${c.campaign_id}`;
    // SPEC R-WEB-15: the organiser's title in the visitor's language.
    const tr = translationFor(c);
    a.textContent = tr ? tr.title : c.title;
    if (tr) a.lang = tr.lang;
    h.append(a);
    // SPEC R-SEAL-83: a sealed campaign has no live or active count before
    // its reveal, only its number of sealed entries.
    const sealed = c.reveal === "sealed";
    const live = c.tally && !sealed ? c.tally.live : 0;
    const active = c.tally && !sealed ? c.tally.active : 0;
    const p = document.createElement("p");
    p.textContent = sealed
      ? t("list.sealed", {
        date: formatDate(c.deadline, currentLanguage()),
        entries: c.tally && typeof c.tally.entries === "number" ? c.tally.entries : 0,
      })
      : readySentence(active, live - active, c.action);
    const meta = document.createElement("p");
    meta.className = "meta";
    meta.textContent = [
      t(`state.${c.state}`),
      t("list.deadline", { date: formatDate(c.deadline, currentLanguage()) })
        // SPEC R-WEB-16
        + (c.original_deadline
          ? ` (${t("list.extended", { date: formatDate(c.original_deadline, currentLanguage()) })})`
          : ""),
      ...(sealed ? [] : [t("list.counts", { active, goal: c.goal })]),
    ].join(" · ");
    li.append(h, p, meta);
    ul.append(li);
  }
}
