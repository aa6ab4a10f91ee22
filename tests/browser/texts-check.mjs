// The campaign pages' choice of text (server/web/texts.js, SPEC R-WEB-15)
// in node alone: the visitor's languages in order, exact tags first, a
// regional preference matching a base text and back, the original when
// nothing matches.
//
//   node tests/browser/texts-check.mjs
//
// Prints one JSON summary line last; exits 0 only if every check passed.

import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");

let checks = 0;
function check(cond, what) {
  checks += 1;
  if (!cond) throw new Error(what);
}

try {
  const { translationFor } = await import(pathToFileURL(path.join(root, "server/web/texts.js")).href);
  const text = (lang) => ({ lang, title: `title ${lang}`, text: `text ${lang}` });
  const c = { title: "Original", text: "original", texts: [text("es"), text("fr"), text("pt-br")] };
  const pick = (prefs) => { const t = translationFor(c, prefs); return t ? t.lang : null; };
  check(pick(["fr-FR", "en"]) === "fr", "fr-FR reads the fr text");
  check(pick(["en-GB", "es"]) === "es", "the first preference with a text wins, in order");
  check(pick(["PT-BR"]) === "pt-br", "tags are compared lower-cased");
  check(pick(["pt"]) === "pt-br", "a base preference reads a regional text");
  check(pick(["pt-pt"]) === null, "pt-pt does not read pt-br");
  check(pick(["en", "de"]) === null, "no match: the original");
  check(pick([]) === null, "no preference: the original");
  check(translationFor({ title: "x", text: "" }, ["fr"]) === null, "a campaign without texts");
  check(translationFor({ texts: [text("pt")] }, ["pt-br"]).lang === "pt", "pt-br reads a pt text");
  check(translationFor({ texts: [text("fr"), text("fr-ca")] }, ["fr-ca"]).lang === "fr-ca",
    "an exact regional text before its base");
  console.log(JSON.stringify({ ok: true, checks }));
} catch (e) {
  console.log(JSON.stringify({ ok: false, checks, error: String(e && e.message ? e.message : e) }));
  process.exit(1);
}
