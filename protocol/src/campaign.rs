//! Campaign definitions and campaign ids (DESIGN §5, SPEC §4, R-CAMP-1…R-CAMP-4).

use crate::codec::{Decode, DecodeError, Reader, Writer, check_text};
use crate::hash::{CampaignId, sha256};

/// Domain tag of the campaign id hash. SPEC R-CAMP-2.
pub const CAMPAIGN_ID_TAG: &[u8] = b"pledge/v1/campaign";
/// Longest title and action, in bytes of UTF-8. SPEC R-CAMP-1.
pub const MAX_TITLE_BYTES: usize = 200;
/// Longest campaign text, in bytes of UTF-8. SPEC R-CAMP-1.
pub const MAX_TEXT_BYTES: usize = 16_000;
/// Largest allowed threshold (and goal). SPEC R-CAMP-3.
pub const MAX_THRESHOLD: u32 = 100_000_000;

/// Largest number of distinct thresholds a campaign allows (`t_max − t_min + 1`):
/// the most buckets a tally snapshot holds (`tally::MAX_BUCKETS`), so every
/// campaign's final tally can be published. SPEC R-CAMP-3.
pub const MAX_THRESHOLD_SPAN: u32 = 1 << 20;

/// When the tally is published. SPEC R-CAMP-4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RevealPolicy {
    /// Tallies are published with every checkpoint (the only v1 policy; pledge
    /// entries are public, so any other policy needs sealed pledges, DESIGN §8).
    Live,
}

impl RevealPolicy {
    fn tag(self) -> u8 {
        match self {
            RevealPolicy::Live => 1,
        }
    }

    fn from_tag(tag: u8) -> Result<Self, DecodeError> {
        match tag {
            1 => Ok(RevealPolicy::Live),
            _ => Err(DecodeError::UnknownTag {
                field: "reveal_policy",
                tag,
            }),
        }
    }
}

/// What a campaign asks and how its tally works. Fields are private so every
/// value that exists satisfies R-CAMP-1/R-CAMP-3; build one with
/// [`CampaignDefinition::new`] or [`CampaignDefinition::decode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignDefinition {
    nonce: [u8; 16],
    title: String,
    text: String,
    action: String,
    deadline: u64,
    goal: u32,
    threshold_min: u32,
    threshold_max: u32,
    reveal: RevealPolicy,
}

/// The fields of a new campaign, before validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignParams {
    /// 16 random bytes, so two campaigns with equal text get different ids.
    pub nonce: [u8; 16],
    /// One line, 1..=200 bytes.
    pub title: String,
    /// Free text, 0..=16,000 bytes, may contain line feeds.
    pub text: String,
    /// What pledgers commit to do ("strike on 8 March"), one line, 1..=200 bytes.
    pub action: String,
    /// Seconds since the Unix epoch (UTC) after which no pledge is accepted.
    pub deadline: u64,
    /// Success when the active count reaches this.
    pub goal: u32,
    /// Smallest threshold a pledger may choose (≥ 1).
    pub threshold_min: u32,
    /// Largest threshold a pledger may choose (≤ [`MAX_THRESHOLD`]).
    pub threshold_max: u32,
    /// Publication policy.
    pub reveal: RevealPolicy,
}

impl CampaignDefinition {
    /// Validates `p` against R-CAMP-1 and R-CAMP-3.
    ///
    /// # Errors
    /// [`DecodeError`] naming the field that is out of range or not valid text.
    pub fn new(p: CampaignParams) -> Result<Self, DecodeError> {
        // SPEC R-CAMP-1: lengths and text rules.
        check_len(&p.title, 1, MAX_TITLE_BYTES, "title")?;
        check_text(&p.title, false, "title")?;
        check_len(&p.text, 0, MAX_TEXT_BYTES, "text")?;
        check_text(&p.text, true, "text")?;
        check_len(&p.action, 1, MAX_TITLE_BYTES, "action")?;
        check_text(&p.action, false, "action")?;
        // SPEC R-CAMP-3: numeric ranges.
        if p.deadline == 0 {
            return Err(range("deadline", "must be after the epoch"));
        }
        if p.threshold_min == 0 || p.threshold_min > p.threshold_max {
            return Err(range(
                "threshold_min",
                "must satisfy 1 <= threshold_min <= threshold_max",
            ));
        }
        if p.threshold_max > MAX_THRESHOLD {
            return Err(range("threshold_max", "must be at most 100000000"));
        }
        if p.threshold_max - p.threshold_min >= MAX_THRESHOLD_SPAN {
            return Err(range(
                "threshold_max",
                "threshold_max - threshold_min must be below 1048576",
            ));
        }
        if p.goal == 0 || p.goal > MAX_THRESHOLD {
            return Err(range("goal", "must satisfy 1 <= goal <= 100000000"));
        }
        Ok(Self {
            nonce: p.nonce,
            title: p.title,
            text: p.text,
            action: p.action,
            deadline: p.deadline,
            goal: p.goal,
            threshold_min: p.threshold_min,
            threshold_max: p.threshold_max,
            reveal: p.reveal,
        })
    }

    /// Canonical encoding. SPEC R-CAMP-1.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.encode_into(&mut w);
        w.into_bytes()
    }

    /// Appends the canonical encoding to `w`.
    pub fn encode_into(&self, w: &mut Writer) {
        w.u8(crate::PROTOCOL_VERSION)
            .raw(&self.nonce)
            .bytes16(self.title.as_bytes())
            .bytes16(self.text.as_bytes())
            .bytes16(self.action.as_bytes())
            .u64(self.deadline)
            .u32(self.goal)
            .u32(self.threshold_min)
            .u32(self.threshold_max)
            .u8(self.reveal.tag());
    }

    /// `SHA-256("pledge/v1/campaign" ‖ encoding)`. SPEC R-CAMP-2.
    pub fn id(&self) -> CampaignId {
        CampaignId(sha256(&[CAMPAIGN_ID_TAG, &self.encode()]))
    }

    /// True if `t` is an allowed threshold. SPEC R-CAMP-3.
    pub fn threshold_allowed(&self, t: u32) -> bool {
        (self.threshold_min..=self.threshold_max).contains(&t)
    }

    /// The nonce.
    pub fn nonce(&self) -> &[u8; 16] {
        &self.nonce
    }
    /// The title.
    pub fn title(&self) -> &str {
        &self.title
    }
    /// The text.
    pub fn text(&self) -> &str {
        &self.text
    }
    /// The action pledged.
    pub fn action(&self) -> &str {
        &self.action
    }
    /// Deadline, seconds since the Unix epoch.
    pub fn deadline(&self) -> u64 {
        self.deadline
    }
    /// Goal for the active count.
    pub fn goal(&self) -> u32 {
        self.goal
    }
    /// Smallest allowed threshold.
    pub fn threshold_min(&self) -> u32 {
        self.threshold_min
    }
    /// Largest allowed threshold.
    pub fn threshold_max(&self) -> u32 {
        self.threshold_max
    }
    /// Reveal policy.
    pub fn reveal(&self) -> RevealPolicy {
        self.reveal
    }
}

crate::codec::inherent_decode!(CampaignDefinition);

impl Decode for CampaignDefinition {
    /// Reads one definition.
    ///
    /// # Errors
    /// Any [`DecodeError`].
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let version = r.u8("campaign.version")?;
        if version != crate::PROTOCOL_VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let nonce = r.array("campaign.nonce")?;
        let title = r.text16(1, MAX_TITLE_BYTES, false, "title")?;
        let text = r.text16(0, MAX_TEXT_BYTES, true, "text")?;
        let action = r.text16(1, MAX_TITLE_BYTES, false, "action")?;
        let deadline = r.u64("deadline")?;
        let goal = r.u32("goal")?;
        let threshold_min = r.u32("threshold_min")?;
        let threshold_max = r.u32("threshold_max")?;
        let reveal = RevealPolicy::from_tag(r.u8("reveal_policy")?)?;
        Self::new(CampaignParams {
            nonce,
            title,
            text,
            action,
            deadline,
            goal,
            threshold_min,
            threshold_max,
            reveal,
        })
    }
}

fn range(field: &'static str, reason: &'static str) -> DecodeError {
    DecodeError::OutOfRange { field, reason }
}

fn check_len(s: &str, min: usize, max: usize, field: &'static str) -> Result<(), DecodeError> {
    if s.len() < min || s.len() > max {
        return Err(range(field, "length outside the allowed range"));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> CampaignDefinition {
        CampaignDefinition::new(CampaignParams {
            nonce: [7; 16],
            title: "Grève du 8 mars".into(),
            text: "Nous cessons le travail le 8 mars.\nSi nous sommes assez.".into(),
            action: "strike on 8 March".into(),
            deadline: 1_772_928_000,
            goal: 1000,
            threshold_min: 1,
            threshold_max: 1_000_000,
            reveal: RevealPolicy::Live,
        })
        .unwrap()
    }

    #[test]
    fn round_trip_and_id_changes_with_any_field() {
        let d = sample();
        let bytes = d.encode();
        assert_eq!(CampaignDefinition::decode(&bytes).unwrap(), d);
        let mut other = CampaignParams {
            nonce: [8; 16],
            title: d.title().into(),
            text: d.text().into(),
            action: d.action().into(),
            deadline: d.deadline(),
            goal: d.goal(),
            threshold_min: d.threshold_min(),
            threshold_max: d.threshold_max(),
            reveal: d.reveal(),
        };
        assert_ne!(CampaignDefinition::new(other.clone()).unwrap().id(), d.id());
        other.nonce = [7; 16];
        assert_eq!(CampaignDefinition::new(other).unwrap().id(), d.id());
    }

    #[test]
    fn rejects_trailing_bytes_bad_ranges_and_control_chars() {
        let mut bytes = sample().encode();
        bytes.push(0);
        assert_eq!(
            CampaignDefinition::decode(&bytes),
            Err(DecodeError::TrailingBytes(1))
        );
        let mut p = CampaignParams {
            nonce: [0; 16],
            title: "t".into(),
            text: String::new(),
            action: "a".into(),
            deadline: 1,
            goal: 1,
            threshold_min: 5,
            threshold_max: 4,
            reveal: RevealPolicy::Live,
        };
        assert!(CampaignDefinition::new(p.clone()).is_err());
        p.threshold_max = 5;
        assert!(CampaignDefinition::new(p.clone()).is_ok());
        p.threshold_min = 1;
        p.threshold_max = MAX_THRESHOLD_SPAN;
        assert!(CampaignDefinition::new(p.clone()).is_ok());
        p.threshold_max = MAX_THRESHOLD_SPAN + 1;
        assert!(CampaignDefinition::new(p.clone()).is_err());
        p.threshold_min = 2;
        assert!(CampaignDefinition::new(p.clone()).is_ok());
        p.title = "a\tb".into();
        assert_eq!(
            CampaignDefinition::new(p),
            Err(DecodeError::BadText("title"))
        );
    }
}
