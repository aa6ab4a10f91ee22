//! Campaign definitions and campaign ids (DESIGN §5, SPEC §4, R-CAMP-1…R-CAMP-5),
//! with the optional funding extension of conditional funding campaigns
//! (R-CAMP-5).

use crate::codec::{Decode, DecodeError, Reader, Writer, check_text};
use crate::hash::{CampaignId, sha256};
use crate::pledge::{MAX_AMOUNT, Terms};

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

/// Version byte of a definition without extensions: R-CAMP-1 exactly, so
/// every campaign opened before funding existed keeps its bytes and its id.
pub const DEFINITION_V1: u8 = 0x01;
/// Version byte of a version 1 definition followed by extensions (the high
/// bit says "extensions follow"; SPEC R-CAMP-5). `0x02` stays unknown.
pub const DEFINITION_V1_EXTENDED: u8 = 0x81;
/// Extension tag of the funding block. SPEC R-CAMP-5.
pub const EXTENSION_FUNDING: u8 = 0x01;
/// Extension tag of the sealed block. SPEC R-SEAL-30.
pub const EXTENSION_SEALED: u8 = 0x02;
/// Most buckets (allowed thresholds) of a sealed campaign. SPEC R-SEAL-30.
pub const MAX_SEALED_BUCKETS: usize = crate::sealed::MAX_BUCKETS;
/// Most trustees of a sealed campaign (the block fits one extension body).
/// SPEC R-SEAL-30.
pub const MAX_TRUSTEES: usize = 16;
/// Most scheduled reveals before the deadline's. SPEC R-SEAL-30.
pub const MAX_EARLY_REVEALS: usize = 8;
/// Largest extension body. SPEC R-CAMP-5.
pub const MAX_EXTENSION_BODY: usize = 1024;
/// Most support levels a campaign's menu may list. SPEC R-CAMP-5.
pub const MAX_SUPPORT_LEVELS: usize = 8;
/// Largest `minor_digits` (ISO 4217 exponents are 0, 2, 3 and 4). SPEC R-CAMP-5.
pub const MAX_MINOR_DIGITS: u8 = 4;
/// Funding flag: activated funders give their whole amount, not their share
/// of the cost (the surplus goes to the fund). SPEC R-CAMP-5, R-FUND-5.
pub const FLAG_SURPLUS_TO_FUND: u8 = 0x01;

/// The funding extension of a campaign: its currency, its menu of support
/// levels, its flags. Present iff the campaign accepts `act_if_supported` and
/// `fund` terms. Fields are private so every value satisfies R-CAMP-5.
/// SPEC R-CAMP-5.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Funding {
    currency: [u8; 3],
    minor_digits: u8,
    levels: Vec<u64>,
    flags: u8,
}

impl Funding {
    /// Validates a funding extension: `currency` three upper-case ASCII
    /// letters (ISO 4217 alphabetic code, not checked against the list),
    /// `minor_digits ≤ 4`, at most [`MAX_SUPPORT_LEVELS`] support levels,
    /// strictly ascending, each in `1..=MAX_AMOUNT` minor units (0 is not a
    /// level: an unsupported action is an `act` pledge), and only known
    /// flags. SPEC R-CAMP-5.
    ///
    /// # Errors
    /// [`DecodeError::OutOfRange`] naming the field.
    pub fn new(
        currency: [u8; 3],
        minor_digits: u8,
        levels: Vec<u64>,
        flags: u8,
    ) -> Result<Self, DecodeError> {
        if !currency.iter().all(u8::is_ascii_uppercase) {
            return Err(range("funding.currency", "must be three letters A-Z"));
        }
        if minor_digits > MAX_MINOR_DIGITS {
            return Err(range("funding.minor_digits", "must be at most 4"));
        }
        if levels.len() > MAX_SUPPORT_LEVELS {
            return Err(range("funding.levels", "at most 8 support levels"));
        }
        if levels.iter().any(|&y| y == 0 || y > MAX_AMOUNT) {
            return Err(range(
                "funding.levels",
                "support levels must be in 1..=2^53-1 minor units",
            ));
        }
        if levels.windows(2).any(|w| w[0] >= w[1]) {
            return Err(range(
                "funding.levels",
                "support levels must be strictly ascending",
            ));
        }
        if flags & !FLAG_SURPLUS_TO_FUND != 0 {
            return Err(range("funding.flags", "unknown flag bits set"));
        }
        Ok(Self {
            currency,
            minor_digits,
            levels,
            flags,
        })
    }

    /// The currency code, e.g. `"EUR"`.
    pub fn currency(&self) -> &str {
        // INVARIANT: `new` admits only ASCII upper-case letters.
        std::str::from_utf8(&self.currency).unwrap_or("???")
    }
    /// Decimal digits of the minor unit (2 for EUR: amounts are in cents).
    pub fn minor_digits(&self) -> u8 {
        self.minor_digits
    }
    /// The support menu, strictly ascending, in minor units.
    pub fn levels(&self) -> &[u64] {
        &self.levels
    }
    /// The flags byte.
    pub fn flags(&self) -> u8 {
        self.flags
    }
    /// True if activated funders give their whole amount (R-FUND-5).
    pub fn surplus_to_fund(&self) -> bool {
        self.flags & FLAG_SURPLUS_TO_FUND != 0
    }

    /// `currency [3] ‖ minor_digits u8 ‖ n_levels u8 ‖ level u64 × n ‖ flags u8`.
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.encode_into(&mut w);
        w.into_bytes()
    }

    fn encode_into(&self, w: &mut Writer) {
        w.raw(&self.currency).u8(self.minor_digits);
        // INVARIANT: at most MAX_SUPPORT_LEVELS (8) levels.
        w.u8(u8::try_from(self.levels.len()).unwrap_or(u8::MAX));
        for &y in &self.levels {
            w.u64(y);
        }
        w.u8(self.flags);
    }

    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let currency = r.array("funding.currency")?;
        let minor_digits = r.u8("funding.minor_digits")?;
        let n = usize::from(r.u8("funding.n_levels")?);
        if n > MAX_SUPPORT_LEVELS {
            return Err(range("funding.levels", "at most 8 support levels"));
        }
        let mut levels = Vec::with_capacity(n);
        for _ in 0..n {
            levels.push(r.u64("funding.level")?);
        }
        let flags = r.u8("funding.flags")?;
        Self::new(currency, minor_digits, levels, flags)
    }
}

/// Why terms are not acceptable in a campaign. SPEC R-RULE-5, R-RULE-10.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TermsRefusal {
    /// The threshold (or a funder's `n`) is outside `[t_min, t_max]`.
    #[error("threshold outside the campaign's allowed range")]
    ThresholdOutOfRange,
    /// `act_if_supported` or `fund` terms in a campaign without funding.
    #[error("the campaign does not take support or funding pledges")]
    FundingNotAllowed,
    /// A support amount that is not on the campaign's menu.
    #[error("support amount is not one of the campaign's support levels")]
    SupportNotOnMenu,
}

/// When the tally is published. SPEC R-CAMP-4, R-SEAL-30.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RevealPolicy {
    /// Tallies are published with every checkpoint: pledge terms are public.
    Live,
    /// Pledge terms are encrypted to the campaign's trustees; only the count
    /// of entries is public until a reveal (SPEC §17). Requires the sealed
    /// extension ([`Sealed`]).
    Sealed,
}

impl RevealPolicy {
    fn tag(self) -> u8 {
        match self {
            RevealPolicy::Live => 1,
            RevealPolicy::Sealed => 2,
        }
    }

    fn from_tag(tag: u8) -> Result<Self, DecodeError> {
        match tag {
            1 => Ok(RevealPolicy::Live),
            2 => Ok(RevealPolicy::Sealed),
            _ => Err(DecodeError::UnknownTag {
                field: "reveal_policy",
                tag,
            }),
        }
    }
}

/// The sealed extension of a campaign (SPEC R-SEAL-30): the thresholds a
/// pledger may choose (one bucket each), the trustees who generate the
/// joint key and decrypt the aggregate, how many of them a reveal needs,
/// and the reveals scheduled before the deadline (there is always one at
/// the deadline). Fields are private so every value satisfies R-SEAL-30.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    buckets: Vec<u32>,
    k: u8,
    trustees: Vec<[u8; 32]>,
    reveals: Vec<u64>,
}

impl Sealed {
    /// Validates a sealed block: 1 to [`MAX_SEALED_BUCKETS`] bucket values,
    /// strictly ascending, each `≥ 1`; `1 ≤ k ≤ n ≤ MAX_TRUSTEES` trustee
    /// keys, each a canonical ristretto255 encoding of a point other than
    /// the identity, all distinct; at most [`MAX_EARLY_REVEALS`] early
    /// reveal times, strictly ascending, each `≥ 1`. The campaign checks the
    /// rest (buckets within its threshold range, reveals before its
    /// deadline). SPEC R-SEAL-30.
    ///
    /// # Errors
    /// [`DecodeError::OutOfRange`] naming the field.
    pub fn new(
        buckets: Vec<u32>,
        k: u8,
        trustees: Vec<[u8; 32]>,
        reveals: Vec<u64>,
    ) -> Result<Self, DecodeError> {
        if buckets.is_empty() || buckets.len() > MAX_SEALED_BUCKETS {
            return Err(range("sealed.buckets", "1 to 64 buckets"));
        }
        if buckets[0] == 0 || buckets.windows(2).any(|w| w[0] >= w[1]) {
            return Err(range(
                "sealed.buckets",
                "bucket values must be at least 1 and strictly ascending",
            ));
        }
        let n = trustees.len();
        if k == 0 || usize::from(k) > n || n > MAX_TRUSTEES {
            return Err(range("sealed.k", "must satisfy 1 <= k <= n <= 16"));
        }
        for (i, t) in trustees.iter().enumerate() {
            let point = curve25519_dalek::ristretto::CompressedRistretto(*t).decompress();
            if point.is_none_or(|p| p == curve25519_dalek::RistrettoPoint::default()) {
                return Err(range(
                    "sealed.trustees",
                    "a trustee key is not a canonical ristretto255 point other than the identity",
                ));
            }
            if trustees[..i].contains(t) {
                return Err(range("sealed.trustees", "a trustee key is repeated"));
            }
        }
        if reveals.len() > MAX_EARLY_REVEALS {
            return Err(range("sealed.reveals", "at most 8 early reveals"));
        }
        if reveals.first() == Some(&0) || reveals.windows(2).any(|w| w[0] >= w[1]) {
            return Err(range(
                "sealed.reveals",
                "reveal times must be after the epoch and strictly ascending",
            ));
        }
        Ok(Self {
            buckets,
            k,
            trustees,
            reveals,
        })
    }

    /// The allowed thresholds, bucket 0 first.
    pub fn buckets(&self) -> &[u32] {
        &self.buckets
    }

    /// How many trustees a reveal needs.
    pub fn k(&self) -> u8 {
        self.k
    }

    /// The trustees' public keys for this campaign (fresh per campaign,
    /// SPEC R-DKG-4), trustee 1 first.
    pub fn trustees(&self) -> &[[u8; 32]] {
        &self.trustees
    }

    /// The reveals scheduled before the deadline.
    pub fn early_reveals(&self) -> &[u64] {
        &self.reveals
    }

    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        // INVARIANT: at most 64 buckets, 16 trustees, 8 reveals.
        w.u8(u8::try_from(self.buckets.len()).unwrap_or(u8::MAX));
        for &b in &self.buckets {
            w.u32(b);
        }
        w.u8(self.k)
            .u8(u8::try_from(self.trustees.len()).unwrap_or(u8::MAX));
        for t in &self.trustees {
            w.raw(t);
        }
        w.u8(u8::try_from(self.reveals.len()).unwrap_or(u8::MAX));
        for &t in &self.reveals {
            w.u64(t);
        }
        w.into_bytes()
    }

    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let nb = r.u8("sealed.n_buckets")?;
        let buckets = (0..nb)
            .map(|_| r.u32("sealed.bucket"))
            .collect::<Result<Vec<_>, _>>()?;
        let k = r.u8("sealed.k")?;
        let n = r.u8("sealed.n_trustees")?;
        let trustees = (0..n)
            .map(|_| r.array("sealed.trustee"))
            .collect::<Result<Vec<_>, _>>()?;
        let m = r.u8("sealed.n_reveals")?;
        let reveals = (0..m)
            .map(|_| r.u64("sealed.reveal"))
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(buckets, k, trustees, reveals)
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
    funding: Option<Funding>,
    sealed: Option<Sealed>,
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
    /// Validates `p` against R-CAMP-1 and R-CAMP-3: a campaign without
    /// funding.
    ///
    /// # Errors
    /// [`DecodeError`] naming the field that is out of range or not valid text.
    pub fn new(p: CampaignParams) -> Result<Self, DecodeError> {
        Self::with_funding(p, None)
    }

    /// As [`CampaignDefinition::new`], with the funding extension when
    /// `funding` is `Some` (SPEC R-CAMP-5): the campaign then takes
    /// `act_if_supported` and `fund` terms and its tally is the joint one
    /// (R-FUND-1).
    ///
    /// # Errors
    /// [`DecodeError`] naming the field that is out of range or not valid text.
    pub fn with_funding(p: CampaignParams, funding: Option<Funding>) -> Result<Self, DecodeError> {
        Self::with_extensions(p, funding, None)
    }

    /// A sealed campaign (SPEC R-SEAL-30): `p.reveal` must be
    /// [`RevealPolicy::Sealed`].
    ///
    /// # Errors
    /// As [`CampaignDefinition::with_extensions`].
    pub fn sealed(p: CampaignParams, sealed: Sealed) -> Result<Self, DecodeError> {
        Self::with_extensions(p, None, Some(sealed))
    }

    /// Validates `p` with its extensions (R-CAMP-1, R-CAMP-3, R-CAMP-5,
    /// R-SEAL-30): the sealed block is present iff the reveal policy is
    /// sealed, its buckets lie in `[t_min, t_max]` and its early reveals
    /// before the deadline; a campaign is not both sealed and funding (sealed
    /// funding is not specified yet).
    ///
    /// # Errors
    /// [`DecodeError`] naming the field that is out of range or not valid text.
    pub fn with_extensions(
        p: CampaignParams,
        funding: Option<Funding>,
        sealed: Option<Sealed>,
    ) -> Result<Self, DecodeError> {
        // SPEC R-SEAL-30
        match (&sealed, p.reveal) {
            (Some(_), RevealPolicy::Live) => {
                return Err(range(
                    "reveal_policy",
                    "a sealed block needs the sealed reveal policy",
                ));
            }
            (None, RevealPolicy::Sealed) => {
                return Err(range(
                    "reveal_policy",
                    "the sealed reveal policy needs a sealed block",
                ));
            }
            _ => {}
        }
        if let Some(s) = &sealed {
            if funding.is_some() {
                return Err(range(
                    "campaign.extension",
                    "a campaign is not both sealed and funding",
                ));
            }
            if s.buckets
                .iter()
                .any(|b| !(p.threshold_min..=p.threshold_max).contains(b))
            {
                return Err(range(
                    "sealed.buckets",
                    "every bucket value must lie in [threshold_min, threshold_max]",
                ));
            }
            if s.reveals.last().is_some_and(|&t| t >= p.deadline) {
                return Err(range(
                    "sealed.reveals",
                    "early reveals come before the deadline",
                ));
            }
        }
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
            funding,
            sealed,
        })
    }

    /// Canonical encoding. SPEC R-CAMP-1, R-CAMP-5.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.encode_into(&mut w);
        w.into_bytes()
    }

    /// Appends the canonical encoding to `w`: R-CAMP-1 without funding,
    /// byte for byte what it was before funding existed; with funding, the
    /// version byte `0x81` and the extension list after the v1 fields
    /// (R-CAMP-5).
    pub fn encode_into(&self, w: &mut Writer) {
        let version = if self.funding.is_some() || self.sealed.is_some() {
            DEFINITION_V1_EXTENDED
        } else {
            DEFINITION_V1
        };
        w.u8(version)
            .raw(&self.nonce)
            .bytes16(self.title.as_bytes())
            .bytes16(self.text.as_bytes())
            .bytes16(self.action.as_bytes())
            .u64(self.deadline)
            .u32(self.goal)
            .u32(self.threshold_min)
            .u32(self.threshold_max)
            .u8(self.reveal.tag());
        // One extension: `n u8 ‖ tag u8 ‖ len u16 ‖ body` (a campaign has
        // at most one of the two blocks).
        if let Some(f) = &self.funding {
            w.u8(1).u8(EXTENSION_FUNDING).bytes16(&f.encode());
        }
        if let Some(s) = &self.sealed {
            w.u8(1).u8(EXTENSION_SEALED).bytes16(&s.encode());
        }
    }

    /// `SHA-256("pledge/v1/campaign" ‖ encoding)`. SPEC R-CAMP-2.
    pub fn id(&self) -> CampaignId {
        CampaignId(sha256(&[CAMPAIGN_ID_TAG, &self.encode()]))
    }

    /// True if `t` is an allowed threshold. SPEC R-CAMP-3.
    pub fn threshold_allowed(&self, t: u32) -> bool {
        (self.threshold_min..=self.threshold_max).contains(&t)
    }

    /// Checks terms against the campaign (SPEC R-RULE-5, R-RULE-10): the
    /// threshold (a funder's `n` too) within `[t_min, t_max]`; support and
    /// funding kinds only in a campaign with the funding extension; a support
    /// amount only from the menu.
    ///
    /// # Errors
    /// The first [`TermsRefusal`] found, in that order.
    pub fn check_terms(&self, terms: &Terms) -> Result<(), TermsRefusal> {
        // SPEC R-RULE-5
        if !self.threshold_allowed(terms.threshold_value()) {
            return Err(TermsRefusal::ThresholdOutOfRange);
        }
        // SPEC R-RULE-10
        match (terms, &self.funding) {
            (Terms::Threshold { .. }, _) => Ok(()),
            (_, None) => Err(TermsRefusal::FundingNotAllowed),
            (Terms::SupportedThreshold { support, .. }, Some(f)) => {
                if f.levels.binary_search(support).is_ok() {
                    Ok(())
                } else {
                    Err(TermsRefusal::SupportNotOnMenu)
                }
            }
            (_, Some(_)) => Ok(()),
        }
    }

    /// The funding extension, if the campaign has one.
    pub fn funding(&self) -> Option<&Funding> {
        self.funding.as_ref()
    }

    /// The sealed extension, if the campaign is sealed (SPEC R-SEAL-30).
    pub fn sealed_block(&self) -> Option<&Sealed> {
        self.sealed.as_ref()
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
        if version != DEFINITION_V1 && version != DEFINITION_V1_EXTENDED {
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
        let (funding, sealed) = if version == DEFINITION_V1_EXTENDED {
            read_extensions(r)?
        } else {
            (None, None)
        };
        Self::with_extensions(
            CampaignParams {
                nonce,
                title,
                text,
                action,
                deadline,
                goal,
                threshold_min,
                threshold_max,
                reveal,
            },
            funding,
            sealed,
        )
    }
}

/// The extension list of a `0x81` definition: `n u8 ‖ n × (tag u8 ‖ len u16
/// ‖ body)`, tags strictly ascending, each body consumed exactly. Two tags
/// are defined, the funding block and the sealed block, and a campaign has
/// one of them: the list is exactly one entry; unknown tags are rejected
/// (SPEC R-VER-2, R-CAMP-5, R-SEAL-30).
fn read_extensions(r: &mut Reader<'_>) -> Result<(Option<Funding>, Option<Sealed>), DecodeError> {
    let n = r.u8("campaign.n_extensions")?;
    if n == 0 {
        return Err(range(
            "campaign.n_extensions",
            "a definition without extensions has version 0x01",
        ));
    }
    let mut funding = None;
    let mut sealed = None;
    for _ in 0..n {
        let tag = r.u8("campaign.extension")?;
        let body = r.bytes16(MAX_EXTENSION_BODY, "campaign.extension")?;
        match tag {
            EXTENSION_FUNDING if funding.is_none() => {
                funding = Some(crate::codec::read_exactly(body, Funding::decode_from)?);
            }
            EXTENSION_FUNDING => {
                return Err(range("campaign.extension", "funding block repeated"));
            }
            EXTENSION_SEALED if funding.is_none() && sealed.is_none() => {
                sealed = Some(crate::codec::read_exactly(body, Sealed::decode_from)?);
            }
            EXTENSION_SEALED => {
                return Err(range(
                    "campaign.extension",
                    "sealed block repeated or after a funding block",
                ));
            }
            tag => {
                return Err(DecodeError::UnknownTag {
                    field: "campaign.extension",
                    tag,
                });
            }
        }
    }
    if funding.is_none() && sealed.is_none() {
        return Err(range("campaign.extension", "no extension block"));
    }
    Ok((funding, sealed))
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
            ..params_of(&d)
        };
        assert_ne!(CampaignDefinition::new(other.clone()).unwrap().id(), d.id());
        other.nonce = [7; 16];
        assert_eq!(CampaignDefinition::new(other).unwrap().id(), d.id());
    }

    pub(crate) fn funding_sample(levels: Vec<u64>, flags: u8) -> CampaignDefinition {
        let d = sample();
        CampaignDefinition::with_funding(
            params_of(&d),
            Some(Funding::new(*b"EUR", 2, levels, flags).unwrap()),
        )
        .unwrap()
    }

    fn params_of(d: &CampaignDefinition) -> CampaignParams {
        CampaignParams {
            nonce: *d.nonce(),
            title: d.title().into(),
            text: d.text().into(),
            action: d.action().into(),
            deadline: d.deadline(),
            goal: d.goal(),
            threshold_min: d.threshold_min(),
            threshold_max: d.threshold_max(),
            reveal: d.reveal(),
        }
    }

    #[test]
    fn funding_extension_round_trips_and_leaves_v1_alone() {
        let plain = sample();
        let v1 = plain.encode();
        assert_eq!(v1[0], DEFINITION_V1);
        let f = funding_sample(vec![3000, 6000], 0);
        let v2 = f.encode();
        assert_eq!(v2[0], DEFINITION_V1_EXTENDED);
        // = v1 fields (version byte aside) ‖ 1 extension ‖ funding block.
        assert_eq!(&v2[1..v1.len()], &v1[1..]);
        assert_eq!(
            &v2[v1.len()..],
            [
                1,
                EXTENSION_FUNDING,
                0,
                22,
                b'E',
                b'U',
                b'R',
                2,
                2,
                0,
                0,
                0,
                0,
                0,
                0,
                0x0b,
                0xb8,
                0,
                0,
                0,
                0,
                0,
                0,
                0x17,
                0x70,
                0
            ]
        );
        assert_eq!(CampaignDefinition::decode(&v2).unwrap(), f);
        assert_ne!(f.id(), plain.id());
        // A v1 encoding with extensions, an extended one without: refused.
        let mut v1_with_block = v1.clone();
        v1_with_block.extend_from_slice(&v2[v1.len()..]);
        assert_eq!(
            CampaignDefinition::decode(&v1_with_block),
            Err(DecodeError::TrailingBytes(26))
        );
        let mut without = v1.clone();
        without[0] = DEFINITION_V1_EXTENDED;
        assert!(CampaignDefinition::decode(&without).is_err());
        without.push(0);
        assert!(CampaignDefinition::decode(&without).is_err());
        // Version 2 stays unknown (entry_failures.json).
        let mut v2b = v2.clone();
        v2b[0] = 2;
        assert_eq!(
            CampaignDefinition::decode(&v2b),
            Err(DecodeError::UnsupportedVersion(2))
        );
        // Unknown extension tag, repeated block, padded body.
        let at = v1.len();
        let mut unknown = v2.clone();
        unknown[at + 1] = 3;
        assert!(matches!(
            CampaignDefinition::decode(&unknown),
            Err(DecodeError::UnknownTag { tag: 3, .. })
        ));
        let mut twice = v2.clone();
        twice[at] = 2;
        twice.extend_from_slice(&v2[at + 1..]);
        assert!(CampaignDefinition::decode(&twice).is_err());
        let mut padded = v2.clone();
        padded[at + 3] = 23;
        padded.push(0);
        assert_eq!(
            CampaignDefinition::decode(&padded),
            Err(DecodeError::TrailingBytes(1))
        );
    }

    /// Trustee keys for tests: `i·G` for `i = 1..=n`.
    pub(crate) fn trustee_keys(n: u8) -> Vec<[u8; 32]> {
        (1..=n)
            .map(|i| {
                curve25519_dalek::RistrettoPoint::mul_base(&curve25519_dalek::Scalar::from(
                    u64::from(i),
                ))
                .compress()
                .to_bytes()
            })
            .collect()
    }

    pub(crate) fn sealed_sample(buckets: Vec<u32>, k: u8, n: u8) -> CampaignDefinition {
        let d = sample();
        CampaignDefinition::sealed(
            CampaignParams {
                reveal: RevealPolicy::Sealed,
                ..params_of(&d)
            },
            Sealed::new(buckets, k, trustee_keys(n), vec![d.deadline() - 86_400]).unwrap(),
        )
        .unwrap()
    }

    /// SPEC R-SEAL-30: the sealed block's layout, round trip and rules.
    #[test]
    fn sealed_block_round_trips_and_is_checked() {
        let d = sealed_sample(vec![1, 10, 100, 1000], 2, 3);
        let bytes = d.encode();
        assert_eq!(bytes[0], DEFINITION_V1_EXTENDED);
        assert_eq!(CampaignDefinition::decode(&bytes).unwrap(), d);
        assert_eq!(d.reveal(), RevealPolicy::Sealed);
        let s = d.sealed_block().unwrap();
        assert_eq!(
            (s.buckets(), s.k(), s.trustees().len()),
            (&[1, 10, 100, 1000][..], 2, 3)
        );
        assert_ne!(d.id(), sample().id());
        // The block is the last bytes: n_ext 1, tag 2, len, body.
        let body_len = 1 + 4 * 4 + 1 + 1 + 3 * 32 + 1 + 8;
        let tail = &bytes[bytes.len() - body_len - 4..];
        assert_eq!(&tail[..4], &[1, EXTENSION_SEALED, 0, body_len as u8]);
        assert_eq!(tail[4], 4);
        assert_eq!(&tail[5..9], &1u32.to_be_bytes());

        let keys = trustee_keys(3);
        let bad =
            |b: Vec<u32>, k: u8, t: Vec<[u8; 32]>, r: Vec<u64>| Sealed::new(b, k, t, r).is_err();
        assert!(bad(vec![], 1, keys.clone(), vec![]), "no bucket");
        assert!(
            bad((1..=65).collect(), 1, keys.clone(), vec![]),
            "65 buckets"
        );
        assert!(bad(vec![0, 1], 1, keys.clone(), vec![]), "bucket 0");
        assert!(
            bad(vec![2, 2], 1, keys.clone(), vec![]),
            "not strictly ascending"
        );
        assert!(bad(vec![1], 0, keys.clone(), vec![]), "k = 0");
        assert!(bad(vec![1], 4, keys.clone(), vec![]), "k > n");
        assert!(bad(vec![1], 1, trustee_keys(17), vec![]), "17 trustees");
        assert!(
            bad(vec![1], 1, vec![keys[0], keys[0]], vec![]),
            "repeated trustee"
        );
        assert!(bad(vec![1], 1, vec![[0; 32]], vec![]), "identity");
        assert!(bad(vec![1], 1, vec![[0xff; 32]], vec![]), "not a point");
        assert!(
            bad(vec![1], 1, keys.clone(), vec![5, 5]),
            "reveals not ascending"
        );
        assert!(bad(vec![1], 1, keys.clone(), vec![0]), "reveal at 0");
        assert!(
            bad(vec![1], 1, keys.clone(), (1..=9).collect()),
            "9 reveals"
        );
        assert!(Sealed::new((1..=64).collect(), 16, trustee_keys(16), (1..=8).collect()).is_ok());

        let p = |reveal| CampaignParams {
            reveal,
            ..params_of(&sample())
        };
        let block = || Sealed::new(vec![1, 10], 1, keys.clone(), vec![]).unwrap();
        // The policy and the block come together.
        assert!(CampaignDefinition::sealed(p(RevealPolicy::Live), block()).is_err());
        assert!(CampaignDefinition::new(p(RevealPolicy::Sealed)).is_err());
        // Buckets within the campaign's range, reveals before its deadline.
        let narrow = CampaignParams {
            threshold_min: 2,
            ..p(RevealPolicy::Sealed)
        };
        assert!(CampaignDefinition::sealed(narrow, block()).is_err());
        let late = Sealed::new(vec![1], 1, keys.clone(), vec![sample().deadline()]).unwrap();
        assert!(CampaignDefinition::sealed(p(RevealPolicy::Sealed), late).is_err());
        // Not both sealed and funding.
        assert!(
            CampaignDefinition::with_extensions(
                p(RevealPolicy::Sealed),
                Some(Funding::new(*b"EUR", 2, vec![100], 0).unwrap()),
                Some(block()),
            )
            .is_err()
        );
        // Decoding applies the same rules: a live policy byte with the block.
        let mut live = bytes.clone();
        let at = bytes.len() - body_len - 4 - 1;
        assert_eq!(live[at], 2, "the reveal policy byte");
        live[at] = 1;
        assert!(CampaignDefinition::decode(&live).is_err());
        // Truncated or padded blocks are refused.
        assert!(CampaignDefinition::decode(&bytes[..bytes.len() - 1]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(CampaignDefinition::decode(&longer).is_err());
    }

    #[test]
    fn funding_block_rules() {
        assert!(Funding::new(*b"EUR", 2, vec![], 0).is_ok());
        assert!(Funding::new(*b"EUR", 2, (1..=8).collect(), 1).is_ok());
        for (cur, digits, levels, flags) in [
            (*b"eur", 2, vec![], 0),
            (*b"EU1", 2, vec![], 0),
            (*b"EUR", 5, vec![], 0),
            (*b"EUR", 2, (1..=9).collect(), 0),
            (*b"EUR", 2, vec![0, 5], 0),
            (*b"EUR", 2, vec![5, 5], 0),
            (*b"EUR", 2, vec![6, 5], 0),
            (*b"EUR", 2, vec![MAX_AMOUNT + 1], 0),
            (*b"EUR", 2, vec![], 2),
        ] {
            assert!(
                Funding::new(cur, digits, levels.clone(), flags).is_err(),
                "{cur:?} {digits} {levels:?} {flags}"
            );
        }
        // A level count above 8 is refused before any level is read.
        let mut v2 = funding_sample(vec![], 0).encode();
        let n_at = v2.len() - 2;
        v2[n_at] = 200;
        assert_eq!(
            CampaignDefinition::decode(&v2),
            Err(range("funding.levels", "at most 8 support levels"))
        );
    }

    #[test]
    fn terms_are_checked_against_the_campaign() {
        let plain = sample();
        let f = funding_sample(vec![3000, 6000], 0);
        let act = Terms::threshold(5).unwrap();
        let sup = Terms::supported(5, 3000).unwrap();
        let off_menu = Terms::supported(5, 3001).unwrap();
        let fund = Terms::fund(5, 1).unwrap();
        assert_eq!(plain.check_terms(&act), Ok(()));
        assert_eq!(
            plain.check_terms(&sup),
            Err(TermsRefusal::FundingNotAllowed)
        );
        assert_eq!(
            plain.check_terms(&fund),
            Err(TermsRefusal::FundingNotAllowed)
        );
        assert_eq!(f.check_terms(&act), Ok(()));
        assert_eq!(f.check_terms(&sup), Ok(()));
        assert_eq!(f.check_terms(&fund), Ok(()));
        assert_eq!(
            f.check_terms(&off_menu),
            Err(TermsRefusal::SupportNotOnMenu)
        );
        // A funder's n beyond the range is refused like a threshold.
        let far = Terms::fund(1_000_001, 1).unwrap();
        assert_eq!(f.check_terms(&far), Err(TermsRefusal::ThresholdOutOfRange));
        let none = funding_sample(vec![], 0);
        assert_eq!(none.check_terms(&sup), Err(TermsRefusal::SupportNotOnMenu));
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
