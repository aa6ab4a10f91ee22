//! Pledge keys, terms, and the three pledge messages: pledge, amendment,
//! withdrawal (DESIGN §4–§5, SPEC §6, R-PLEDGE-1…).

use crate::codec::{DecodeError, Reader, Writer};
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
        if k.is_weak() || k.as_bytes() != &b {
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

#[allow(dead_code)]
fn _uses(_: &Writer, _: &Reader<'_>) {}
