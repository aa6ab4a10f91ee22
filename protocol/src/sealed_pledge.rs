//! Sealed pledges and amendments (SPEC R-SEAL-31 … R-SEAL-33): the entries
//! of kinds `Pledge` (2) and `PledgeAmended` (3) whose terms are of kind
//! `0x02`, *sealed*: [`SealedTerms`], the encryption of a one-hot (or
//! all-zero) bucket vector under a sealed campaign's joint key, with proofs.
//!
//! The layouts are those of R-PLEDGE-4 and R-PLEDGE-5 with terms of kind
//! `0x02` (`0x02 ‖ len u16 ‖ sealed terms`), and so are the signing inputs:
//! a sealed pledge is a pledge whose terms nobody but the trustees (jointly)
//! can read. In Rust they are types of their own ([`SealedPledge`],
//! [`SealedAmendment`]) because their terms are not a threshold.

use crate::codec::{DecodeError, Reader, Writer};
use crate::hash::{CampaignId, Nullifier};
use crate::pledge::{
    PledgeKeyMismatch, PledgePublicKey, PledgeSigningKey, amend_signing_input, pledge_signing_input,
};
use crate::sealed::{SealContext, SealedTerms};
use crate::token::Token;

/// The terms kind of sealed terms. SPEC R-SEAL-31.
pub const SEALED_TERMS_KIND: u8 = 0x02;

/// Largest body of sealed terms: the encoding at 64 buckets (18,657 bytes).
/// SPEC R-SEAL-31.
pub const MAX_SEALED_TERMS_BODY: usize =
    crate::sealed::sealed_terms_len(crate::sealed::MAX_BUCKETS);

/// `0x02 ‖ len u16 ‖ sealed terms`. SPEC R-SEAL-31.
fn encode_terms(terms: &SealedTerms, w: &mut Writer) {
    w.u8(SEALED_TERMS_KIND).bytes16(&terms.encode());
}

/// Reads the body of kind-`0x02` terms (the kind byte already read).
pub(crate) fn decode_terms_body(r: &mut Reader<'_>) -> Result<SealedTerms, DecodeError> {
    let body = r.bytes16(MAX_SEALED_TERMS_BODY, "terms.body")?;
    SealedTerms::decode(body)
}

/// A pledge with sealed terms. SPEC R-SEAL-31.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedPledge {
    /// The campaign pledged to (a sealed one).
    pub campaign: CampaignId,
    /// The finalised blind-signed token; its pledge key signs the pledge.
    pub token: Token,
    /// The encrypted bucket vector and its proofs.
    pub terms: SealedTerms,
    /// Ed25519 signature by `token.pledge_pk` over [`SealedPledge::signing_input`].
    pub signature: [u8; 64],
}

impl SealedPledge {
    /// Builds and signs a sealed pledge with the key the token was issued for.
    /// The terms must have been sealed for [`SealedPledge::context_of`].
    ///
    /// # Errors
    /// [`PledgeKeyMismatch`] if `key` is not the token's pledge key.
    pub fn sign(
        campaign: CampaignId,
        token: Token,
        terms: SealedTerms,
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

    /// `"pledge/v1/pledge" ‖ campaign_id ‖ nullifier ‖ terms` (R-PLEDGE-4,
    /// with terms of kind `0x02`).
    pub fn signing_input(
        campaign: &CampaignId,
        nullifier: &Nullifier,
        terms: &SealedTerms,
    ) -> Vec<u8> {
        pledge_signing_input(campaign, nullifier, |w| encode_terms(terms, w))
    }

    /// What the proofs of a pledge by `token` in `campaign` are bound to:
    /// the campaign, the nullifier, sequence 0 and the pledge key
    /// (SPEC R-SEAL-32).
    pub fn context_of(campaign: &CampaignId, token: &Token) -> SealContext {
        SealContext {
            campaign: *campaign.as_bytes(),
            nullifier: *token.nullifier(campaign).as_bytes(),
            seq: 0,
            pledge_key: *token.pledge_pk.as_bytes(),
        }
    }

    /// [`SealedPledge::context_of`] this pledge.
    pub fn context(&self) -> SealContext {
        Self::context_of(&self.campaign, &self.token)
    }

    /// The nullifier this pledge spends.
    pub fn nullifier(&self) -> Nullifier {
        self.token.nullifier(&self.campaign)
    }

    /// Checks the pledge-key signature (not the token, not the proofs).
    pub fn verify_pledge_signature(&self) -> bool {
        let input = Self::signing_input(&self.campaign, &self.nullifier(), &self.terms);
        self.token.pledge_pk.verify(&input, &self.signature)
    }

    /// `campaign_id 32 ‖ token 320 ‖ 0x02 ‖ len u16 ‖ sealed terms ‖ signature 64`.
    pub fn encode_into(&self, w: &mut Writer) {
        w.raw(self.campaign.as_bytes());
        self.token.encode_into(w);
        encode_terms(&self.terms, w);
        w.raw(&self.signature);
    }
}

/// New sealed terms for a sealed pledge, signed by its pledge key: a change
/// of bucket, a re-encryption of the same vector (cover) or the null vector
/// (a withdrawal, which looks the same). SPEC R-SEAL-31.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedAmendment {
    /// The campaign of the pledge.
    pub campaign: CampaignId,
    /// The pledge's nullifier.
    pub nullifier: Nullifier,
    /// 1 for the first amendment, then +1 for each (R-PLEDGE-7).
    pub seq: u32,
    /// The new encrypted vector and its proofs.
    pub terms: SealedTerms,
    /// Ed25519 signature by the pledge key over [`SealedAmendment::signing_input`].
    pub signature: [u8; 64],
}

impl SealedAmendment {
    /// Builds and signs an amendment. The terms must have been sealed for
    /// [`SealedAmendment::context_of`].
    pub fn sign(
        campaign: CampaignId,
        nullifier: Nullifier,
        seq: u32,
        terms: SealedTerms,
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

    /// `"pledge/v1/amend" ‖ campaign_id ‖ nullifier ‖ seq u32 ‖ terms`
    /// (R-PLEDGE-5, with terms of kind `0x02`).
    pub fn signing_input(
        campaign: &CampaignId,
        nullifier: &Nullifier,
        seq: u32,
        terms: &SealedTerms,
    ) -> Vec<u8> {
        amend_signing_input(campaign, nullifier, seq, |w| encode_terms(terms, w))
    }

    /// What the proofs of amendment `seq` of pledge `nullifier` (key `pk`)
    /// are bound to (SPEC R-SEAL-32).
    pub fn context_of(
        campaign: &CampaignId,
        nullifier: &Nullifier,
        seq: u32,
        pk: &PledgePublicKey,
    ) -> SealContext {
        SealContext {
            campaign: *campaign.as_bytes(),
            nullifier: *nullifier.as_bytes(),
            seq,
            pledge_key: *pk.as_bytes(),
        }
    }

    /// Checks the signature against the pledge's key (known from the log).
    pub fn verify(&self, pk: &PledgePublicKey) -> bool {
        let input = Self::signing_input(&self.campaign, &self.nullifier, self.seq, &self.terms);
        pk.verify(&input, &self.signature)
    }

    /// `campaign_id 32 ‖ nullifier 32 ‖ seq u32 ‖ 0x02 ‖ len u16 ‖ sealed
    /// terms ‖ signature 64`.
    pub fn encode_into(&self, w: &mut Writer) {
        w.raw(self.campaign.as_bytes())
            .raw(self.nullifier.as_bytes())
            .u32(self.seq);
        encode_terms(&self.terms, w);
        w.raw(&self.signature);
    }
}
