// Which of a campaign's texts a visitor reads (SPEC R-WEB-15): pure, no DOM,
// so tests/browser/texts-check.mjs runs it in node alone.

/** The base language of a tag: `pt` of `pt-br`. */
function base(tag) {
  return String(tag).split("-")[0];
}

/** The organiser's text of campaign `c` (its `texts`, R-API-34) for a
 *  visitor whose preferred languages are `prefs` (navigator.languages
 *  order): the first preference, lower-cased, for which the campaign has a
 *  text, an exact tag first, then `pt-br` matching a text `pt`, then `pt`
 *  matching a text `pt-br`. `null` when none matches: the original is shown.
 *  Returns the {lang, title, text} element. */
export function translationFor(c, prefs = (typeof navigator !== "undefined"
  && (navigator.languages || [navigator.language])) || []) {
  const texts = Array.isArray(c && c.texts) ? c.texts : [];
  if (!texts.length) return null;
  for (const raw of prefs) {
    const p = String(raw || "").toLowerCase();
    if (!p) continue;
    const hit = texts.find((x) => x.lang === p)
      || texts.find((x) => x.lang === base(p))
      || texts.find((x) => base(x.lang) === p);
    if (hit) return hit;
  }
  return null;
}
