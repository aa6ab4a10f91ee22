//! Campaign updates (issue 19, SPEC R-CAMP-6…R-CAMP-9, R-ENTRY-7…R-ENTRY-9):
//! what may change in a campaign after it opened, logged as a
//! `CampaignUpdated` entry so that every version stays public.
//!
//! A campaign's definition is hashed into its id and logged in its
//! CampaignOpened entry: nothing in it ever changes. An update amends only
//! the *effective deadline* (later, never earlier, at most
//! [`MAX_EXTENSION_SECS`] after the original) and the campaign's title and
//! text *per language* (the definition's own title and text stay the
//! original). The action, the goal, the thresholds, the funding menu and the
//! reveal policy are not in an update at all.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::campaign::{MAX_TEXT_BYTES, MAX_TITLE_BYTES};
use crate::codec::{DecodeError, Reader, Writer, check_text};
use crate::hash::CampaignId;

/// Longest language tag, in bytes. SPEC R-CAMP-7.
pub const MAX_LANG_BYTES: usize = 35;
/// Most texts one CampaignUpdated entry carries. SPEC R-ENTRY-7.
pub const MAX_UPDATE_TEXTS: usize = 16;
/// Most languages a campaign may have texts in, over all its updates.
/// SPEC R-RULE-13.
pub const MAX_CAMPAIGN_LANGUAGES: usize = 32;
/// How far past its original deadline a campaign's deadline may be moved:
/// 90 days. SPEC R-CAMP-8.
pub const MAX_EXTENSION_SECS: u64 = 90 * 86_400;

/// Whether `tag` is a language tag of SPEC R-CAMP-7: lower case, a primary
/// language subtag of 2 or 3 letters, then any number of subtags of 1 to 8
/// letters or digits, each after one `-`; at most 35 bytes (`fr`, `pt-br`,
/// `zh-hant-tw`, `sr-latn`). Not checked against the IANA registry.
pub fn valid_lang(tag: &str) -> bool {
    if tag.is_empty() || tag.len() > MAX_LANG_BYTES {
        return false;
    }
    let mut parts = tag.split('-');
    let primary = parts.next().unwrap_or("");
    if !(2..=3).contains(&primary.len()) || !primary.bytes().all(|b| b.is_ascii_lowercase()) {
        return false;
    }
    parts.all(|p| {
        (1..=8).contains(&p.len())
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}

/// A campaign's title and text in one language, given by an update.
/// Fields are private so every value satisfies R-CAMP-7 and the definition's
/// length and text rules (R-CAMP-1). SPEC R-CAMP-9.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignText {
    lang: String,
    title: String,
    text: String,
}

impl CampaignText {
    /// Validates one text: `lang` a tag of R-CAMP-7, `title` one line of
    /// 1..=200 bytes, `text` 0..=16,000 bytes that may hold line feeds.
    ///
    /// # Errors
    /// [`DecodeError`] naming the field.
    pub fn new(lang: String, title: String, text: String) -> Result<Self, DecodeError> {
        // SPEC R-CAMP-7
        if !valid_lang(&lang) {
            return Err(DecodeError::OutOfRange {
                field: "update.lang",
                reason: "not a lower-case language tag such as fr or pt-br",
            });
        }
        // SPEC R-CAMP-9: the definition's limits (R-CAMP-1).
        if title.is_empty() || title.len() > MAX_TITLE_BYTES {
            return Err(DecodeError::OutOfRange {
                field: "update.title",
                reason: "length outside the allowed range",
            });
        }
        check_text(&title, false, "update.title")?;
        if text.len() > MAX_TEXT_BYTES {
            return Err(DecodeError::OutOfRange {
                field: "update.text",
                reason: "length outside the allowed range",
            });
        }
        check_text(&text, true, "update.text")?;
        Ok(Self { lang, title, text })
    }

    /// The language tag.
    pub fn lang(&self) -> &str {
        &self.lang
    }
    /// The title in this language.
    pub fn title(&self) -> &str {
        &self.title
    }
    /// The text in this language.
    pub fn text(&self) -> &str {
        &self.text
    }

    fn encode_into(&self, w: &mut Writer) {
        w.bytes16(self.lang.as_bytes())
            .bytes16(self.title.as_bytes())
            .bytes16(self.text.as_bytes());
    }

    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let lang = r.text16(2, MAX_LANG_BYTES, false, "update.lang")?;
        let title = r.text16(1, MAX_TITLE_BYTES, false, "update.title")?;
        let text = r.text16(0, MAX_TEXT_BYTES, true, "update.text")?;
        Self::new(lang, title, text)
    }
}

/// A campaign update: the log operator's entry that moves the deadline
/// later and/or gives the title and text in other languages. Unsigned, like
/// CampaignOpened and CampaignClosed (SPEC R-ENTRY-8). Fields are private so
/// every value has exactly one encoding (R-ENTRY-9). SPEC R-ENTRY-7.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignUpdated {
    campaign: CampaignId,
    update: u32,
    deadline: Option<u64>,
    texts: Vec<CampaignText>,
}

impl CampaignUpdated {
    /// Validates an update: `update ≥ 1`, a new deadline (if any) `≥ 1`, at
    /// most [`MAX_UPDATE_TEXTS`] texts in distinct languages (sorted here by
    /// tag, bytewise), and something to change. Whether it applies to the
    /// campaign is for the rules (R-RULE-11…R-RULE-13).
    ///
    /// # Errors
    /// [`DecodeError::OutOfRange`] naming the field.
    pub fn new(
        campaign: CampaignId,
        update: u32,
        deadline: Option<u64>,
        mut texts: Vec<CampaignText>,
    ) -> Result<Self, DecodeError> {
        texts.sort_by(|a, b| a.lang.cmp(&b.lang));
        Self::checked(campaign, update, deadline, texts)
    }

    /// The checks of R-ENTRY-9 on texts already in order.
    fn checked(
        campaign: CampaignId,
        update: u32,
        deadline: Option<u64>,
        texts: Vec<CampaignText>,
    ) -> Result<Self, DecodeError> {
        // SPEC R-ENTRY-9
        if update == 0 {
            return Err(DecodeError::OutOfRange {
                field: "update.number",
                reason: "update numbers start at 1",
            });
        }
        if deadline == Some(0) {
            return Err(DecodeError::OutOfRange {
                field: "update.deadline",
                reason: "must be after the epoch",
            });
        }
        if texts.len() > MAX_UPDATE_TEXTS {
            return Err(DecodeError::OutOfRange {
                field: "update.texts",
                reason: "at most 16 texts per update",
            });
        }
        if texts.windows(2).any(|w| w[0].lang >= w[1].lang) {
            return Err(DecodeError::OutOfRange {
                field: "update.texts",
                reason: "languages must be distinct and in ascending order",
            });
        }
        if deadline.is_none() && texts.is_empty() {
            return Err(DecodeError::OutOfRange {
                field: "update",
                reason: "an update must change the deadline or give a text",
            });
        }
        Ok(Self {
            campaign,
            update,
            deadline,
            texts,
        })
    }

    /// The campaign.
    pub fn campaign(&self) -> CampaignId {
        self.campaign
    }
    /// Its number: 1 for the campaign's first update, then 2, … (R-RULE-11).
    pub fn update(&self) -> u32 {
        self.update
    }
    /// The new deadline, if it moves one (Unix seconds).
    pub fn deadline(&self) -> Option<u64> {
        self.deadline
    }
    /// The texts, in ascending order of language tag.
    pub fn texts(&self) -> &[CampaignText] {
        &self.texts
    }

    /// `campaign_id [32] ‖ update u32 ‖ deadline u64 (0: unchanged) ‖
    /// n u8 ‖ n × (lang ‖ title ‖ text)`. SPEC R-ENTRY-7.
    pub(crate) fn encode_into(&self, w: &mut Writer) {
        w.raw(self.campaign.as_bytes())
            .u32(self.update)
            .u64(self.deadline.unwrap_or(0));
        // INVARIANT: at most MAX_UPDATE_TEXTS (16) texts.
        w.u8(u8::try_from(self.texts.len()).unwrap_or(u8::MAX));
        for t in &self.texts {
            t.encode_into(w);
        }
    }

    /// Reads one update body, strictly (SPEC R-ENTRY-9): a count above 16
    /// is refused before any text is read, languages must already be in
    /// ascending order.
    pub(crate) fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let campaign = CampaignId(r.array("update.campaign")?);
        let update = r.u32("update.number")?;
        let deadline = match r.u64("update.deadline")? {
            0 => None,
            d => Some(d),
        };
        let n = usize::from(r.u8("update.n_texts")?);
        if n > MAX_UPDATE_TEXTS {
            return Err(DecodeError::OutOfRange {
                field: "update.texts",
                reason: "at most 16 texts per update",
            });
        }
        let mut texts = Vec::with_capacity(n);
        for _ in 0..n {
            texts.push(CampaignText::decode_from(r)?);
        }
        Self::checked(campaign, update, deadline, texts)
    }
}

/// What a campaign's valid updates amount to (SPEC R-CAMP-8, R-CAMP-9):
/// the last update number, the extended deadline and the texts by language.
/// Cheap to clone (the texts are shared).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CampaignUpdates {
    count: u32,
    deadline: Option<u64>,
    texts: Arc<BTreeMap<String, CampaignText>>,
}

/// Why an update does not apply to a campaign. SPEC R-RULE-11…R-RULE-13.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateRefusal {
    /// R-RULE-11: the update number is not the previous one plus one.
    Number {
        /// The next valid number.
        expected: u32,
        /// The one in the entry.
        got: u32,
    },
    /// R-RULE-12: the new deadline is not later than the effective one.
    DeadlineNotLater,
    /// R-RULE-12: the new deadline is more than [`MAX_EXTENSION_SECS`] after
    /// the original.
    DeadlineTooLate,
    /// R-RULE-13: the campaign would have texts in more than
    /// [`MAX_CAMPAIGN_LANGUAGES`] languages.
    TooManyLanguages,
}

impl CampaignUpdates {
    /// Valid updates applied so far (the last update number).
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The deadline set by the last update that moved it, if any.
    pub fn extended_deadline(&self) -> Option<u64> {
        self.deadline
    }

    /// The texts by language tag, ascending.
    pub fn texts(&self) -> &BTreeMap<String, CampaignText> {
        &self.texts
    }

    /// The shared map of texts (no copy).
    pub fn texts_shared(&self) -> Arc<BTreeMap<String, CampaignText>> {
        self.texts.clone()
    }

    /// The effective deadline of a campaign whose definition says
    /// `original`. SPEC R-CAMP-8.
    pub fn effective_deadline(&self, original: u64) -> u64 {
        self.deadline.unwrap_or(original)
    }

    /// Checks `u` against the campaign's updates so far and its `original`
    /// deadline, in the order R-RULE-11, R-RULE-12, R-RULE-13.
    ///
    /// # Errors
    /// The first [`UpdateRefusal`].
    pub fn check(&self, u: &CampaignUpdated, original: u64) -> Result<(), UpdateRefusal> {
        // SPEC R-RULE-11
        let expected = self.count.saturating_add(1);
        if u.update != expected {
            return Err(UpdateRefusal::Number {
                expected,
                got: u.update,
            });
        }
        // SPEC R-RULE-12
        if let Some(d) = u.deadline {
            if d <= self.effective_deadline(original) {
                return Err(UpdateRefusal::DeadlineNotLater);
            }
            if d > original.saturating_add(MAX_EXTENSION_SECS) {
                return Err(UpdateRefusal::DeadlineTooLate);
            }
        }
        // SPEC R-RULE-13
        let new_langs = u
            .texts
            .iter()
            .filter(|t| !self.texts.contains_key(&t.lang))
            .count();
        if self.texts.len().saturating_add(new_langs) > MAX_CAMPAIGN_LANGUAGES {
            return Err(UpdateRefusal::TooManyLanguages);
        }
        Ok(())
    }

    /// The updates after `u` (checked by [`CampaignUpdates::check`]): its
    /// number, its deadline if it gives one, and its texts replacing those
    /// of the same languages (R-CAMP-9).
    pub fn applied(&self, u: &CampaignUpdated) -> Self {
        let texts = if u.texts.is_empty() {
            self.texts.clone()
        } else {
            let mut t = BTreeMap::clone(&self.texts);
            for x in &u.texts {
                t.insert(x.lang.clone(), x.clone());
            }
            Arc::new(t)
        };
        Self {
            count: u.update,
            deadline: u.deadline.or(self.deadline),
            texts,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn text(lang: &str) -> CampaignText {
        CampaignText::new(
            lang.into(),
            format!("titre {lang}"),
            "ligne 1\nligne 2".into(),
        )
        .unwrap()
    }

    #[test]
    fn language_tags() {
        for ok in [
            "fr",
            "pt-br",
            "zh-hant-tw",
            "sr-latn",
            "es-419",
            "ast",
            "de-ch-1901",
        ] {
            assert!(valid_lang(ok), "{ok}");
        }
        for bad in [
            "",
            "f",
            "fran",
            "FR",
            "pt-BR",
            "pt_br",
            "pt-",
            "-pt",
            "pt--br",
            "fr-abcdefghi",
            "f1",
            "fr br",
            "é",
            "en-gb-oxendict-with-a-very-long-tail",
        ] {
            assert!(!valid_lang(bad), "{bad}");
        }
    }

    #[test]
    fn round_trip_sorted_and_strict() {
        let id = CampaignId([3; 32]);
        let u = CampaignUpdated::new(id, 1, Some(2_000_000_000), vec![text("pt-br"), text("fr")])
            .unwrap();
        assert_eq!(u.texts()[0].lang(), "fr");
        let mut w = Writer::new();
        u.encode_into(&mut w);
        let bytes = w.into_bytes();
        let back = crate::codec::read_exactly(&bytes, CampaignUpdated::decode_from).unwrap();
        assert_eq!(back, u);
        // Duplicate languages, nothing to change, update 0: refused.
        assert!(CampaignUpdated::new(id, 1, None, vec![text("fr"), text("fr")]).is_err());
        assert!(CampaignUpdated::new(id, 1, None, vec![]).is_err());
        assert!(CampaignUpdated::new(id, 0, Some(5), vec![]).is_err());
        assert!(CampaignUpdated::new(id, 1, Some(0), vec![text("fr")]).is_err());
        let many: Vec<_> = (0..17u8)
            .map(|i| text(&format!("a{}", char::from(b'a' + i))))
            .collect();
        assert!(CampaignUpdated::new(id, 1, None, many).is_err());
    }

    #[test]
    fn rules_of_an_update() {
        let id = CampaignId([3; 32]);
        let original = 1_000_000;
        let s = CampaignUpdates::default();
        let later = CampaignUpdated::new(id, 1, Some(original + 10), vec![]).unwrap();
        assert_eq!(s.check(&later, original), Ok(()));
        let s1 = s.applied(&later);
        assert_eq!(s1.effective_deadline(original), original + 10);
        // Replayed number, earlier or equal deadline, beyond the bound.
        assert_eq!(
            s1.check(&later, original),
            Err(UpdateRefusal::Number {
                expected: 2,
                got: 1
            })
        );
        let same = CampaignUpdated::new(id, 2, Some(original + 10), vec![]).unwrap();
        assert_eq!(
            s1.check(&same, original),
            Err(UpdateRefusal::DeadlineNotLater)
        );
        let far =
            CampaignUpdated::new(id, 2, Some(original + MAX_EXTENSION_SECS + 1), vec![]).unwrap();
        assert_eq!(
            s1.check(&far, original),
            Err(UpdateRefusal::DeadlineTooLate)
        );
        let edge =
            CampaignUpdated::new(id, 2, Some(original + MAX_EXTENSION_SECS), vec![]).unwrap();
        assert_eq!(s1.check(&edge, original), Ok(()));
        // Texts merge by language; a text-only update keeps the deadline.
        let t = CampaignUpdated::new(id, 2, None, vec![text("fr")]).unwrap();
        let s2 = s1.applied(&t);
        assert_eq!(s2.effective_deadline(original), original + 10);
        assert_eq!(s2.texts().len(), 1);
        let mut fr2 = text("fr");
        fr2.title = "autre".into();
        let s3 = s2.applied(&CampaignUpdated::new(id, 3, None, vec![fr2, text("es")]).unwrap());
        assert_eq!(s3.texts()["fr"].title(), "autre");
        assert_eq!(s3.texts().len(), 2);
        assert_eq!(s3.count(), 3);
    }

    #[test]
    fn at_most_32_languages() {
        let id = CampaignId([3; 32]);
        let mut s = CampaignUpdates::default();
        let langs: Vec<String> = (0..33u8)
            .map(|i| format!("{}{}", char::from(b'a' + i / 26), char::from(b'a' + i % 26)))
            .collect();
        for (n, chunk) in langs[..32].chunks(16).enumerate() {
            let u = CampaignUpdated::new(
                id,
                u32::try_from(n).unwrap() + 1,
                None,
                chunk.iter().map(|l| text(l)).collect(),
            )
            .unwrap();
            assert_eq!(s.check(&u, 1), Ok(()));
            s = s.applied(&u);
        }
        let again = CampaignUpdated::new(id, 3, None, vec![text(&langs[0])]).unwrap();
        assert_eq!(s.check(&again, 1), Ok(()), "replacing a language is fine");
        let one_more = CampaignUpdated::new(id, 3, None, vec![text(&langs[32])]).unwrap();
        assert_eq!(s.check(&one_more, 1), Err(UpdateRefusal::TooManyLanguages));
    }
}
