//! Pledge keys, terms, and the three pledge messages: pledge, amendment,
//! withdrawal (DESIGN §4–§5, SPEC §6, R-PLEDGE-1…).

use crate::codec::{Decode, DecodeError, Reader, Writer, read_exactly};
use crate::hash::{CampaignId, Nullifier};
use crate::token::Token;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use zeroize::ZeroizeOnDrop;

/// An Ed25519 public key that authorises one pledge. SPEC R-PLEDGE-1.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PledgePublicKey(VerifyingKey);

impl PledgePublicKey {
    /// Parses 32 bytes. Rejects encodings that are not canonical points and
    /// points of small order (weak keys).
    ///
    /// # Errors
    /// [`DecodeError::Malformed`].
    pub fn from_bytes(b: [u8; 32]) -> Result<Self, DecodeError> {
        let k = VerifyingKey::from_bytes(&b).map_err(|_| DecodeError::Malformed {
            field: "pledge_pk",
            reason: "not an Ed25519 point",
        })?;
        // `from_bytes` keeps the input bytes and accepts y >= p. SPEC R-PLEDGE-1.
        // (The other non-canonical form, x = 0 with the sign bit set, only occurs
        // for y = ±1, both of small order, which `is_weak` refuses.)
        if k.is_weak() || !y_below_field_prime(&b) {
            return Err(DecodeError::Malformed {
                field: "pledge_pk",
                reason: "weak or non-canonical Ed25519 key",
            });
        }
        Ok(Self(k))
    }

    /// The 32-byte encoding.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }

    /// Verifies an Ed25519 signature with strict (RFC 8032 §5.1.7 plus
    /// canonical-R/S and no small-order) rules. SPEC R-PLEDGE-2.
    pub fn verify(&self, msg: &[u8], sig: &[u8; 64]) -> bool {
        let sig = ed25519_dalek::Signature::from_bytes(sig);
        self.0.verify_strict(msg, &sig).is_ok()
    }
}

/// True if the 255-bit little-endian `y` of an Ed25519 encoding is below
/// `p = 2^255 − 19`, i.e. the encoding is the canonical one for its `y`.
fn y_below_field_prime(b: &[u8; 32]) -> bool {
    let top = b[31] & 0x7f;
    !(top == 0x7f && b[1..31].iter().all(|&x| x == 0xff) && b[0] >= 0xed)
}

impl std::fmt::Debug for PledgePublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PledgePublicKey({})", hex::encode(self.as_bytes()))
    }
}

/// The secret Ed25519 key of one pledge. Zeroized on drop; no `Clone`, no
/// serialisation, `Debug` shows only the public half.
#[derive(ZeroizeOnDrop)]
pub struct PledgeSigningKey(SigningKey);

impl PledgeSigningKey {
    /// A fresh key from the operating system's CSPRNG.
    ///
    /// # Errors
    /// [`getrandom::Error`] if the OS has no randomness to give.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut())?;
        Ok(Self(SigningKey::from_bytes(&seed)))
    }

    /// Rebuilds a key from its 32-byte seed (wallet storage, test vectors).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self(SigningKey::from_bytes(seed))
    }

    /// The seed, for the wallet to store encrypted. Wrap the copy in `Zeroizing`.
    pub fn to_seed(&self) -> zeroize::Zeroizing<[u8; 32]> {
        zeroize::Zeroizing::new(self.0.to_bytes())
    }

    /// The public half.
    pub fn public_key(&self) -> PledgePublicKey {
        PledgePublicKey(self.0.verifying_key())
    }

    /// Ed25519 signature over `msg`.
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.0.sign(msg).to_bytes()
    }
}

impl std::fmt::Debug for PledgeSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PledgeSigningKey")
            .field("public", &self.public_key())
            .finish_non_exhaustive()
    }
}

/// Domain tag of a pledge's signing input. SPEC R-PLEDGE-4.
pub const PLEDGE_SIG_TAG: &[u8] = b"pledge/v1/pledge";
/// Domain tag of an amendment's signing input. SPEC R-PLEDGE-5.
pub const AMEND_SIG_TAG: &[u8] = b"pledge/v1/amend";

/// `"pledge/v1/pledge" ‖ campaign_id ‖ nullifier ‖ terms` (SPEC R-PLEDGE-4),
/// the terms written by `terms`: one layout for plain and sealed terms.
pub(crate) fn pledge_signing_input(
    campaign: &CampaignId,
    nullifier: &Nullifier,
    terms: impl FnOnce(&mut Writer),
) -> Vec<u8> {
    let mut w = Writer::new();
    w.raw(PLEDGE_SIG_TAG)
        .raw(campaign.as_bytes())
        .raw(nullifier.as_bytes());
    terms(&mut w);
    w.into_bytes()
}

/// `"pledge/v1/amend" ‖ campaign_id ‖ nullifier ‖ seq u32 ‖ terms` (SPEC
/// R-PLEDGE-5), the terms written by `terms`: plain or sealed.
pub(crate) fn amend_signing_input(
    campaign: &CampaignId,
    nullifier: &Nullifier,
    seq: u32,
    terms: impl FnOnce(&mut Writer),
) -> Vec<u8> {
    let mut w = Writer::new();
    w.raw(AMEND_SIG_TAG)
        .raw(campaign.as_bytes())
        .raw(nullifier.as_bytes())
        .u32(seq);
    terms(&mut w);
    w.into_bytes()
}

/// Domain tag of a withdrawal's signing input. SPEC R-PLEDGE-6.
pub const WITHDRAW_SIG_TAG: &[u8] = b"pledge/v1/withdraw";
/// Largest body a terms kind may carry (room for future kinds). SPEC R-PLEDGE-3.
pub const MAX_TERMS_BODY: usize = 1024;

/// Largest money amount one term may carry, in minor units of the campaign's
/// currency: `2^53 − 1`, so every amount is exact in a JavaScript number (web
/// pages render these). Sums of amounts are computed in `u128` and cannot
/// overflow (at most `MAX_LIVE` pledges). SPEC R-PLEDGE-8.
pub const MAX_AMOUNT: u64 = (1 << 53) - 1;

/// What a pledger commits to. Versioned by a kind tag so new kinds (sealed
/// terms) can be added without a format break. SPEC R-PLEDGE-3, R-PLEDGE-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Terms {
    /// Kind `0x01`, `act`: "I act if at least `t` people act, me included."
    /// `t ≥ 1`.
    Threshold {
        /// The threshold.
        t: u32,
    },
    /// Kind `0x03`, `act_if_supported`: "I act if at least `t` people act, me
    /// included, and the fund pays me `support`." `t ≥ 1`; `support` is one
    /// of the campaign's support levels (minor units, `1..=MAX_AMOUNT`; an
    /// unsupported action is kind `0x01`, so each meaning has one encoding).
    /// SPEC R-PLEDGE-8.
    SupportedThreshold {
        /// The threshold.
        t: u32,
        /// Support asked, in minor units of the campaign's currency.
        support: u64,
    },
    /// Kind `0x04`, `fund`: "I give up to `amount` if at least `n` people
    /// act." `n ≥ 1`, `amount` in `1..=MAX_AMOUNT` minor units. Intent only:
    /// no money moves through the ledger. SPEC R-PLEDGE-8.
    Fund {
        /// How many people must act.
        n: u32,
        /// The most this funder gives, in minor units.
        amount: u64,
    },
}

/// Which of the three kinds a [`Terms`] value is (the names the API and the
/// CLI use).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TermsKind {
    /// `act` (`0x01`).
    Act,
    /// `act_if_supported` (`0x03`).
    ActIfSupported,
    /// `fund` (`0x04`).
    Fund,
}

impl TermsKind {
    /// The wire tag (SPEC R-PLEDGE-3).
    pub fn tag(self) -> u8 {
        match self {
            TermsKind::Act => Terms::THRESHOLD_TAG,
            TermsKind::ActIfSupported => Terms::SUPPORTED_TAG,
            TermsKind::Fund => Terms::FUND_TAG,
        }
    }

    /// `act`, `act_if_supported` or `fund`.
    pub fn name(self) -> &'static str {
        match self {
            TermsKind::Act => "act",
            TermsKind::ActIfSupported => "act_if_supported",
            TermsKind::Fund => "fund",
        }
    }
}

impl Terms {
    const THRESHOLD_TAG: u8 = 1;
    /// `0x02` is reserved for sealed terms (ROUND2 §6).
    const SUPPORTED_TAG: u8 = 3;
    const FUND_TAG: u8 = 4;

    /// A threshold pledge.
    ///
    /// # Errors
    /// [`DecodeError::OutOfRange`] if `t == 0`.
    pub fn threshold(t: u32) -> Result<Self, DecodeError> {
        check_threshold(t, "terms.threshold")?;
        Ok(Terms::Threshold { t })
    }

    /// A supported-action pledge. Whether `support` is on the campaign's menu
    /// is the campaign's check ([`crate::campaign::CampaignDefinition::check_terms`]).
    ///
    /// # Errors
    /// [`DecodeError::OutOfRange`] if `t == 0` or `support` is not in
    /// `1..=MAX_AMOUNT`.
    pub fn supported(t: u32, support: u64) -> Result<Self, DecodeError> {
        check_threshold(t, "terms.threshold")?;
        check_amount(support, "terms.support")?;
        Ok(Terms::SupportedThreshold { t, support })
    }

    /// A funding pledge.
    ///
    /// # Errors
    /// [`DecodeError::OutOfRange`] if `n == 0` or `amount` is not in
    /// `1..=MAX_AMOUNT`.
    pub fn fund(n: u32, amount: u64) -> Result<Self, DecodeError> {
        check_threshold(n, "terms.n")?;
        check_amount(amount, "terms.amount")?;
        Ok(Terms::Fund { n, amount })
    }

    /// The kind.
    pub fn kind(&self) -> TermsKind {
        match self {
            Terms::Threshold { .. } => TermsKind::Act,
            Terms::SupportedThreshold { .. } => TermsKind::ActIfSupported,
            Terms::Fund { .. } => TermsKind::Fund,
        }
    }

    /// The number of actors the condition names: `t` for the two action
    /// kinds, `n` for a funding pledge. Every kind's value must lie in the
    /// campaign's threshold range (SPEC R-RULE-5).
    pub fn threshold_value(&self) -> u32 {
        match self {
            Terms::Threshold { t } | Terms::SupportedThreshold { t, .. } => *t,
            Terms::Fund { n, .. } => *n,
        }
    }

    /// True for the two kinds whose pledger acts (`act`,
    /// `act_if_supported`); false for `fund`.
    pub fn is_action(&self) -> bool {
        !matches!(self, Terms::Fund { .. })
    }

    /// The support an action pledge asks (0 for `act`, `None` for `fund`).
    pub fn support(&self) -> Option<u64> {
        match self {
            Terms::Threshold { .. } => Some(0),
            Terms::SupportedThreshold { support, .. } => Some(*support),
            Terms::Fund { .. } => None,
        }
    }

    /// `kind u8 ‖ body_len u16 ‖ body`. SPEC R-PLEDGE-3, R-PLEDGE-8.
    pub fn encode_into(&self, w: &mut Writer) {
        match self {
            Terms::Threshold { t } => {
                w.u8(Self::THRESHOLD_TAG).bytes16(&t.to_be_bytes());
            }
            Terms::SupportedThreshold { t, support } => {
                w.u8(Self::SUPPORTED_TAG).bytes16(&u32_u64(*t, *support));
            }
            Terms::Fund { n, amount } => {
                w.u8(Self::FUND_TAG).bytes16(&u32_u64(*n, *amount));
            }
        }
    }

    /// The canonical encoding alone.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.encode_into(&mut w);
        w.into_bytes()
    }
}

/// A plain `act` threshold, the terms of every campaign without funding:
/// what clients pass where they used to pass a threshold. Like the variant
/// itself, it is checked when used (`t ≥ 1` and the campaign's range,
/// [`crate::campaign::CampaignDefinition::check_terms`]), not here.
impl From<u32> for Terms {
    fn from(t: u32) -> Self {
        Terms::Threshold { t }
    }
}

/// `a u32 ‖ b u64`, the 12-byte body of kinds `0x03` and `0x04`.
fn u32_u64(a: u32, b: u64) -> [u8; 12] {
    let mut out = [0u8; 12];
    out[..4].copy_from_slice(&a.to_be_bytes());
    out[4..].copy_from_slice(&b.to_be_bytes());
    out
}

fn check_threshold(t: u32, field: &'static str) -> Result<(), DecodeError> {
    if t == 0 {
        return Err(DecodeError::OutOfRange {
            field,
            reason: "must be at least 1",
        });
    }
    Ok(())
}

fn check_amount(amount: u64, field: &'static str) -> Result<(), DecodeError> {
    if amount == 0 || amount > MAX_AMOUNT {
        return Err(DecodeError::OutOfRange {
            field,
            reason: "must be in 1..=2^53-1 minor units",
        });
    }
    Ok(())
}

crate::codec::inherent_decode!(Terms);

impl Decode for Terms {
    /// Reads one terms value.
    ///
    /// # Errors
    /// Unknown kind, wrong body length, `t == 0` / `n == 0`, or an amount
    /// outside `1..=MAX_AMOUNT`.
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let kind = r.u8("terms.kind")?;
        Self::decode_after_kind(kind, r)
    }
}

impl Terms {
    /// Reads `body_len u16 ‖ body` of terms of kind `kind` (read already):
    /// the entry decoder reads the kind first to tell sealed terms apart
    /// (SPEC R-SEAL-31).
    ///
    /// # Errors
    /// As [`Terms::decode`].
    pub(crate) fn decode_after_kind(kind: u8, r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let body = r.bytes16(MAX_TERMS_BODY, "terms.body")?;
        match kind {
            Self::THRESHOLD_TAG => {
                Self::threshold(read_exactly(body, |br| br.u32("terms.threshold"))?)
            }
            Self::SUPPORTED_TAG => {
                let (t, y) = read_exactly(body, |br| {
                    Ok::<_, DecodeError>((br.u32("terms.threshold")?, br.u64("terms.support")?))
                })?;
                Self::supported(t, y)
            }
            Self::FUND_TAG => {
                let (n, x) = read_exactly(body, |br| {
                    Ok::<_, DecodeError>((br.u32("terms.n")?, br.u64("terms.amount")?))
                })?;
                Self::fund(n, x)
            }
            tag => Err(DecodeError::UnknownTag {
                field: "terms.kind",
                tag,
            }),
        }
    }
}

/// An anonymous pledge: a token for `campaign`, terms, and the pledge key's
/// signature over both. SPEC R-PLEDGE-4.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pledge {
    /// The campaign pledged to.
    pub campaign: CampaignId,
    /// The finalised blind-signed token; its pledge key signs the pledge.
    pub token: Token,
    /// What is pledged.
    pub terms: Terms,
    /// Ed25519 signature by `token.pledge_pk` over [`Pledge::signing_input`].
    pub signature: [u8; 64],
}

impl Pledge {
    /// Builds and signs a pledge with the key the token was issued for.
    ///
    /// # Errors
    /// [`PledgeKeyMismatch`] if `key` is not the token's pledge key.
    pub fn sign(
        campaign: CampaignId,
        token: Token,
        terms: Terms,
        key: &PledgeSigningKey,
    ) -> Result<Self, PledgeKeyMismatch> {
        if key.public_key() != token.pledge_pk {
            return Err(PledgeKeyMismatch);
        }
        let nullifier = token.nullifier(&campaign);
        let signature = key.sign(&Self::signing_input(&campaign, &nullifier, &terms));
        Ok(Self {
            campaign,
            token,
            terms,
            signature,
        })
    }

    /// `"pledge/v1/pledge" ‖ campaign_id ‖ nullifier ‖ terms`. SPEC R-PLEDGE-4.
    pub fn signing_input(campaign: &CampaignId, nullifier: &Nullifier, terms: &Terms) -> Vec<u8> {
        pledge_signing_input(campaign, nullifier, |w| terms.encode_into(w))
    }

    /// The nullifier this pledge spends.
    pub fn nullifier(&self) -> Nullifier {
        self.token.nullifier(&self.campaign)
    }

    /// Checks the pledge-key signature (not the token; see
    /// [`Token::verify`](crate::token::Token)). SPEC R-PLEDGE-4.
    pub fn verify_pledge_signature(&self) -> bool {
        let input = Self::signing_input(&self.campaign, &self.nullifier(), &self.terms);
        self.token.pledge_pk.verify(&input, &self.signature)
    }

    /// `campaign_id 32 ‖ token 320 ‖ terms ‖ signature 64`.
    pub fn encode_into(&self, w: &mut Writer) {
        w.raw(self.campaign.as_bytes());
        self.token.encode_into(w);
        self.terms.encode_into(w);
        w.raw(&self.signature);
    }
}

crate::codec::inherent_decode!(Pledge);

impl Decode for Pledge {
    /// Reads the layout of [`Pledge::encode_into`].
    ///
    /// # Errors
    /// Any [`DecodeError`].
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            campaign: CampaignId(r.array("pledge.campaign")?),
            token: Token::decode_from(r)?,
            terms: Terms::decode_from(r)?,
            signature: r.array("pledge.signature")?,
        })
    }
}

/// New terms for a live pledge, signed by its pledge key. SPEC R-PLEDGE-5.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Amendment {
    /// The campaign of the pledge.
    pub campaign: CampaignId,
    /// The pledge's nullifier.
    pub nullifier: Nullifier,
    /// 1 for the first change of this pledge, then +1 for each (R-PLEDGE-7).
    pub seq: u32,
    /// The new terms.
    pub terms: Terms,
    /// Ed25519 signature by the pledge key over [`Amendment::signing_input`].
    pub signature: [u8; 64],
}

impl Amendment {
    /// Builds and signs an amendment.
    pub fn sign(
        campaign: CampaignId,
        nullifier: Nullifier,
        seq: u32,
        terms: Terms,
        key: &PledgeSigningKey,
    ) -> Self {
        let signature = key.sign(&Self::signing_input(&campaign, &nullifier, seq, &terms));
        Self {
            campaign,
            nullifier,
            seq,
            terms,
            signature,
        }
    }

    /// `"pledge/v1/amend" ‖ campaign_id ‖ nullifier ‖ seq u32 ‖ terms`. SPEC R-PLEDGE-5.
    pub fn signing_input(
        campaign: &CampaignId,
        nullifier: &Nullifier,
        seq: u32,
        terms: &Terms,
    ) -> Vec<u8> {
        amend_signing_input(campaign, nullifier, seq, |w| terms.encode_into(w))
    }

    /// Checks the signature against the pledge's key (known from the log).
    pub fn verify(&self, pk: &PledgePublicKey) -> bool {
        let input = Self::signing_input(&self.campaign, &self.nullifier, self.seq, &self.terms);
        pk.verify(&input, &self.signature)
    }

    /// `campaign_id 32 ‖ nullifier 32 ‖ seq u32 ‖ terms ‖ signature 64`.
    pub fn encode_into(&self, w: &mut Writer) {
        w.raw(self.campaign.as_bytes())
            .raw(self.nullifier.as_bytes())
            .u32(self.seq);
        self.terms.encode_into(w);
        w.raw(&self.signature);
    }
}

crate::codec::inherent_decode!(Amendment);

impl Decode for Amendment {
    /// Reads the layout of [`Amendment::encode_into`].
    ///
    /// # Errors
    /// Any [`DecodeError`]; `seq == 0` is out of range.
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let campaign = CampaignId(r.array("amend.campaign")?);
        let nullifier = Nullifier(r.array("amend.nullifier")?);
        let seq = read_seq(r)?;
        Ok(Self {
            campaign,
            nullifier,
            seq,
            terms: Terms::decode_from(r)?,
            signature: r.array("amend.signature")?,
        })
    }
}

/// Withdrawal of a live pledge, signed by its pledge key. Final: a withdrawn
/// nullifier stays spent. SPEC R-PLEDGE-6.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withdrawal {
    /// The campaign of the pledge.
    pub campaign: CampaignId,
    /// The pledge's nullifier.
    pub nullifier: Nullifier,
    /// Next sequence number of this pledge (R-PLEDGE-7).
    pub seq: u32,
    /// Ed25519 signature by the pledge key over [`Withdrawal::signing_input`].
    pub signature: [u8; 64],
}

impl Withdrawal {
    /// Builds and signs a withdrawal.
    pub fn sign(
        campaign: CampaignId,
        nullifier: Nullifier,
        seq: u32,
        key: &PledgeSigningKey,
    ) -> Self {
        let signature = key.sign(&Self::signing_input(&campaign, &nullifier, seq));
        Self {
            campaign,
            nullifier,
            seq,
            signature,
        }
    }

    /// `"pledge/v1/withdraw" ‖ campaign_id ‖ nullifier ‖ seq u32`. SPEC R-PLEDGE-6.
    pub fn signing_input(campaign: &CampaignId, nullifier: &Nullifier, seq: u32) -> Vec<u8> {
        let mut w = Writer::new();
        w.raw(WITHDRAW_SIG_TAG)
            .raw(campaign.as_bytes())
            .raw(nullifier.as_bytes())
            .u32(seq);
        w.into_bytes()
    }

    /// Checks the signature against the pledge's key (known from the log).
    pub fn verify(&self, pk: &PledgePublicKey) -> bool {
        pk.verify(
            &Self::signing_input(&self.campaign, &self.nullifier, self.seq),
            &self.signature,
        )
    }

    /// `campaign_id 32 ‖ nullifier 32 ‖ seq u32 ‖ signature 64`.
    pub fn encode_into(&self, w: &mut Writer) {
        w.raw(self.campaign.as_bytes())
            .raw(self.nullifier.as_bytes())
            .u32(self.seq)
            .raw(&self.signature);
    }
}

crate::codec::inherent_decode!(Withdrawal);

impl Decode for Withdrawal {
    /// Reads the layout of [`Withdrawal::encode_into`].
    ///
    /// # Errors
    /// Any [`DecodeError`]; `seq == 0` is out of range.
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            campaign: CampaignId(r.array("withdraw.campaign")?),
            nullifier: Nullifier(r.array("withdraw.nullifier")?),
            seq: read_seq(r)?,
            signature: r.array("withdraw.signature")?,
        })
    }
}

pub(crate) fn read_seq(r: &mut Reader<'_>) -> Result<u32, DecodeError> {
    let seq = r.u32("seq")?;
    if seq == 0 {
        // SPEC R-PLEDGE-7: sequence 0 is the pledge itself.
        return Err(DecodeError::OutOfRange {
            field: "seq",
            reason: "must be at least 1 (0 is the original pledge)",
        });
    }
    Ok(seq)
}

/// The signing key given is not the one the token was issued for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the pledge key does not match the token's pledge key")]
pub struct PledgeKeyMismatch;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_and_invalid_keys_are_rejected() {
        // The identity point (small order) encodes as 1 followed by zeros.
        let mut ident = [0u8; 32];
        ident[0] = 1;
        assert!(PledgePublicKey::from_bytes(ident).is_err());
        // A valid key round-trips.
        let k = PledgeSigningKey::from_seed(&[9; 32]);
        let pk = k.public_key();
        assert_eq!(PledgePublicKey::from_bytes(*pk.as_bytes()), Ok(pk));
        // Non-canonical encodings y + p of a valid point y < 19 must be refused, or
        // one key would have two encodings and two nullifiers.
        let mut checked = 0;
        for v in 0u8..19 {
            let mut canonical = [0u8; 32];
            canonical[0] = v;
            if PledgePublicKey::from_bytes(canonical).is_err() {
                continue; // not on the curve or of small order
            }
            let mut alias = [0xffu8; 32];
            alias[0] = 0xed + v; // p = 2^255 - 19 = 0x7fff…ffed, little-endian
            alias[31] = 0x7f;
            assert!(PledgePublicKey::from_bytes(alias).is_err(), "y = p + {v}");
            checked += 1;
        }
        assert!(
            checked > 0,
            "no small valid y found: the test checks nothing"
        );
    }

    #[test]
    fn terms_reject_zero_unknown_kind_and_padding() {
        assert!(Terms::threshold(0).is_err());
        let enc = Terms::threshold(5).unwrap().encode();
        assert_eq!(enc, [1, 0, 4, 0, 0, 0, 5]);
        let mut r = Reader::new(&[2, 0, 4, 0, 0, 0, 5]);
        assert_eq!(
            Terms::decode_from(&mut r),
            Err(DecodeError::UnknownTag {
                field: "terms.kind",
                tag: 2
            })
        );
        let mut r = Reader::new(&[1, 0, 5, 0, 0, 0, 5, 0]);
        assert_eq!(
            Terms::decode_from(&mut r),
            Err(DecodeError::TrailingBytes(1))
        );
    }

    #[test]
    fn funding_terms_encode_canonically_and_reject_bad_amounts() {
        let s = Terms::supported(7, 3000).unwrap();
        assert_eq!(
            s.encode(),
            [3, 0, 12, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0x0b, 0xb8]
        );
        assert_eq!(Terms::decode(&s.encode()), Ok(s));
        assert_eq!(s.kind(), TermsKind::ActIfSupported);
        assert_eq!((s.threshold_value(), s.support()), (7, Some(3000)));
        let f = Terms::fund(1000, 50_000).unwrap();
        assert_eq!(
            f.encode(),
            [4, 0, 12, 0, 0, 0x03, 0xe8, 0, 0, 0, 0, 0, 0, 0xc3, 0x50]
        );
        assert_eq!(Terms::decode(&f.encode()), Ok(f));
        assert!(!f.is_action() && f.support().is_none());
        // Zero, over the cap, wrong body length, the reserved sealed tag.
        for bad in [
            &[3u8, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1][..],
            &[3, 0, 12, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0],
            &[4, 0, 12, 0, 0, 0, 1, 0, 0x20, 0, 0, 0, 0, 0, 0],
            &[4, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            &[4, 0, 11, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1],
            &[4, 0, 13, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0],
            &[2, 0, 4, 0, 0, 0, 5],
        ] {
            assert!(Terms::decode(bad).is_err(), "{bad:?}");
        }
        assert!(Terms::fund(1, MAX_AMOUNT).is_ok());
        assert!(Terms::fund(1, MAX_AMOUNT + 1).is_err());
        assert!(Terms::supported(0, 1).is_err());
    }

    #[test]
    fn amendment_signature_binds_every_field() {
        let k = PledgeSigningKey::from_seed(&[3; 32]);
        let a = Amendment::sign(
            CampaignId([1; 32]),
            Nullifier([2; 32]),
            1,
            Terms::threshold(10).unwrap(),
            &k,
        );
        assert!(a.verify(&k.public_key()));
        let mut b = a.clone();
        b.seq = 2;
        assert!(!b.verify(&k.public_key()));
        let mut b = a.clone();
        b.terms = Terms::threshold(11).unwrap();
        assert!(!b.verify(&k.public_key()));
        let other = PledgeSigningKey::from_seed(&[4; 32]);
        assert!(!a.verify(&other.public_key()));
    }

    #[test]
    fn debug_of_signing_key_shows_no_seed() {
        let k = PledgeSigningKey::from_seed(&[0x42; 32]);
        let d = format!("{k:?}");
        assert!(!d.contains(&hex::encode([0x42; 32])));
        assert!(d.contains("PledgeSigningKey"));
    }
}
