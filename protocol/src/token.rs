//! RFC 9474 blind-RSA tokens (DESIGN §4, SPEC §5, R-TOKEN-1…).
//!
//! Data types only for now; issuer keys, blinding, finalisation and verification
//! are filled in next to them.

use crate::codec::{DecodeError, Reader, Writer};
use crate::hash::{CampaignId, Nullifier, sha256};
use crate::pledge::PledgePublicKey;

/// Domain tag opening every token message. SPEC R-TOKEN-2.
pub const TOKEN_MESSAGE_TAG: &[u8] = b"pledge/v1/token";
/// Domain tag of the nullifier hash. SPEC R-TOKEN-3.
pub const NULLIFIER_TAG: &[u8] = b"pledge/v1/nullifier";
/// RSA modulus size of v1 issuer keys, in bytes (RSA-2048). SPEC R-TOKEN-1.
pub const RSA_MODULUS_BYTES: usize = 256;
/// Length of the RFC 9474 message randomizer.
pub const RANDOMIZER_BYTES: usize = 32;

/// The message an issuer blind-signs: `"pledge/v1/token" ‖ campaign_id ‖ pledge_pk`
/// (79 bytes). SPEC R-TOKEN-2.
pub fn token_message(campaign: &CampaignId, pledge_pk: &PledgePublicKey) -> [u8; 79] {
    let mut m = [0u8; 79];
    m[..15].copy_from_slice(TOKEN_MESSAGE_TAG);
    m[15..47].copy_from_slice(campaign.as_bytes());
    m[47..].copy_from_slice(pledge_pk.as_bytes());
    m
}

/// `SHA-256("pledge/v1/nullifier" ‖ token_message)`. SPEC R-TOKEN-3.
pub fn nullifier(campaign: &CampaignId, pledge_pk: &PledgePublicKey) -> Nullifier {
    Nullifier(sha256(&[NULLIFIER_TAG, &token_message(campaign, pledge_pk)]))
}

/// A finalised token: the public parts a pledge carries. The campaign id is not
/// repeated here; it is the pledge's. SPEC R-TOKEN-4.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    /// The fresh Ed25519 key the token authorises.
    pub pledge_pk: PledgePublicKey,
    /// RFC 9474 message randomizer (the `Randomized` variant's 32 bytes).
    pub randomizer: [u8; RANDOMIZER_BYTES],
    /// RSASSA-PSS-SHA384 signature over `randomizer ‖ token_message`, 256 bytes.
    pub signature: [u8; RSA_MODULUS_BYTES],
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("pledge_pk", &self.pledge_pk)
            .finish_non_exhaustive()
    }
}

impl Token {
    /// This token's nullifier for `campaign`.
    pub fn nullifier(&self, campaign: &CampaignId) -> Nullifier {
        nullifier(campaign, &self.pledge_pk)
    }

    /// Appends `pledge_pk(32) ‖ randomizer(32) ‖ signature(256)`. SPEC R-TOKEN-4.
    pub fn encode_into(&self, w: &mut Writer) {
        w.raw(self.pledge_pk.as_bytes())
            .raw(&self.randomizer)
            .raw(&self.signature);
    }

    /// Reads the layout of [`Token::encode_into`].
    ///
    /// # Errors
    /// Truncation, or a pledge key that is not a valid Ed25519 point.
    pub fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let pledge_pk = PledgePublicKey::from_bytes(r.array("token.pledge_pk")?)?;
        Ok(Self {
            pledge_pk,
            randomizer: r.array("token.randomizer")?,
            signature: r.array("token.signature")?,
        })
    }
}
