// Message catalogs: one JSON file per language under /static/i18n/, chosen
// from the saved choice, else the browser's preferred languages, else English.
// The catalog sets <html lang> and <html dir> (ready for right-to-left scripts).

export const LANGUAGES = ["en", "fr", "es"];
const STORE_KEY = "pledge.lang";

let catalog = {};
let lang = "en";
let plural = new Intl.PluralRules("en");
let number = new Intl.NumberFormat("en");

/** The language to use: saved choice, then navigator.languages, then "en". */
export function preferredLanguage() {
  try {
    const saved = localStorage.getItem(STORE_KEY);
    if (saved && LANGUAGES.includes(saved)) return saved;
  } catch (_) { /* storage unavailable: fall through */ }
  for (const l of navigator.languages || [navigator.language || "en"]) {
    const base = String(l).toLowerCase().split("-")[0];
    if (LANGUAGES.includes(base)) return base;
  }
  return "en";
}

/** Loads a catalog and applies it to the document. */
export async function setLanguage(code, { save = false } = {}) {
  if (!LANGUAGES.includes(code)) code = "en";
  const resp = await fetch(`/static/i18n/${code}.json`);
  if (!resp.ok) throw new Error(`catalog ${code}: HTTP ${resp.status}`);
  catalog = await resp.json();
  lang = code;
  plural = new Intl.PluralRules(code);
  number = new Intl.NumberFormat(code);
  document.documentElement.lang = catalog._lang || code;
  document.documentElement.dir = catalog._dir === "rtl" ? "rtl" : "ltr";
  if (save) {
    try { localStorage.setItem(STORE_KEY, code); } catch (_) { /* not kept */ }
  }
  translateDom(document);
  return code;
}

export function currentLanguage() { return lang; }

/** Formats a number for the current language. */
export function fmt(n) { return number.format(n); }

function fill(s, vars) {
  return s.replace(/\{(\w+)\}/g, (m, k) =>
    vars && k in vars ? (typeof vars[k] === "number" ? fmt(vars[k]) : String(vars[k])) : m);
}

/** The message `key` with `{name}` placeholders filled from `vars`. */
export function t(key, vars) {
  const s = catalog[key];
  return fill(typeof s === "string" ? s : key, vars);
}

/** The plural form of `key` for count `n` (`key.one`, `key.other`, …). */
export function tp(key, n, vars) {
  const form = plural.select(n);
  const s = catalog[`${key}.${form}`] ?? catalog[`${key}.other`];
  return fill(typeof s === "string" ? s : key, { count: n, ...vars });
}

/** Splits a message around `{hole}` for building DOM around an element. */
export function split(key, hole, vars) {
  const raw = typeof catalog[key] === "string" ? catalog[key] : key;
  const [before, after = ""] = raw.split(`{${hole}}`);
  return [fill(before, vars), fill(after, vars)];
}

/** Applies data-i18n (text), data-i18n-label (aria-label) attributes. */
export function translateDom(root) {
  for (const el of root.querySelectorAll("[data-i18n]")) {
    el.textContent = t(el.dataset.i18n);
  }
  for (const el of root.querySelectorAll("[data-i18n-label]")) {
    el.setAttribute("aria-label", t(el.dataset.i18nLabel));
  }
}

/** Fills the language <select> and switches language when it changes. */
export function languageSwitch(select, onChange) {
  select.replaceChildren();
  for (const code of LANGUAGES) {
    const o = document.createElement("option");
    o.value = code;
    o.lang = code;
    o.textContent = { en: "English", fr: "Français", es: "Español" }[code];
    select.append(o);
  }
  select.value = lang;
  select.addEventListener("change", async () => {
    await setLanguage(select.value, { save: true });
    onChange();
  });
}

/** Whether the catalog has `key`. */
export function has(key) { return typeof catalog[key] === "string"; }
