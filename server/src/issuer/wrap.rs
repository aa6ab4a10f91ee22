//! Issuer secret keys at rest: wrapped (SPEC R-STORE-12). The store holds a
//! campaign's key only as XChaCha20-Poly1305 ciphertext under a key derived
//! from `issuer.hmac`, a file of the data folder, never in the database:
//! PostgreSQL's write-ahead log, replicas and backups (and freed pages of the
//! embedded engines) hold no usable issuer key, and the key is deleted with
//! the rest of the campaign's issuer state at its close (R-STORE-4).
//!
//! Layout: `"PKW1"` ‖ nonce (24 random bytes) ‖ ciphertext of the key's
//! PKCS#8 DER with its 16-byte tag; associated data
//! `"pledge/v1/issuer-key-wrap" ‖ campaign id`, so a wrapped key moved to
//! another campaign's row does not open.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use pledge_protocol::hash::CampaignId;
use sha2::Sha256;
use zeroize::Zeroizing;

const MAGIC: &[u8; 4] = b"PKW1";
const NONCE_LEN: usize = 24;
const AAD_LABEL: &[u8] = b"pledge/v1/issuer-key-wrap";

/// What a stored key value turned out to be.
#[derive(Debug)]
pub enum Stored {
    /// A wrapped key, opened: the DER.
    Wrapped(Zeroizing<Vec<u8>>),
    /// A key stored by an older server, in clear (PKCS#8 DER): to wrap.
    Legacy(Zeroizing<Vec<u8>>),
}

/// Why a stored key value does not open.
#[derive(Debug, thiserror::Error)]
pub enum WrapError {
    /// Neither a wrapped key nor DER.
    #[error("the stored issuer key is in no known format")]
    Format,
    /// The tag does not verify: another `issuer.hmac`, another campaign's
    /// row, or damage.
    #[error(
        "the stored issuer key does not open with this data folder's issuer.hmac (another \
         front end's key file, or a damaged row)"
    )]
    Open,
    /// No randomness for the nonce.
    #[error("the operating system gave no randomness")]
    Randomness,
}

/// The wrapping key.
pub struct KeyWrap {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for KeyWrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyWrap(..)")
    }
}

impl KeyWrap {
    /// The wrapping key derived from the issuer's HMAC key `k`:
    /// `HMAC-SHA256(k, "pledge/v1/issuer-key-wrap")` (key separation: the
    /// marks of R-STORE-5 use `k` itself).
    pub fn derive(hmac_key: &[u8; 32]) -> Self {
        let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(hmac_key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(AAD_LABEL);
        let key = Zeroizing::new(<[u8; 32]>::from(mac.finalize().into_bytes()));
        let cipher = XChaCha20Poly1305::new_from_slice(key.as_slice())
            .unwrap_or_else(|_| unreachable!("the key is 32 bytes"));
        Self { cipher }
    }

    fn aad(id: &CampaignId) -> Vec<u8> {
        [AAD_LABEL, id.as_bytes().as_slice()].concat()
    }

    /// Wraps `der`, the key of campaign `id`.
    ///
    /// # Errors
    /// [`WrapError::Randomness`].
    pub fn wrap(&self, id: &CampaignId, der: &[u8]) -> Result<Vec<u8>, WrapError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| WrapError::Randomness)?;
        let aad = Self::aad(id);
        let sealed = self
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: der,
                    aad: &aad,
                },
            )
            .map_err(|_| WrapError::Randomness)?;
        Ok([MAGIC.as_slice(), &nonce, &sealed].concat())
    }

    /// Opens a stored value of campaign `id`.
    ///
    /// # Errors
    /// [`WrapError`].
    pub fn open(&self, id: &CampaignId, stored: &[u8]) -> Result<Stored, WrapError> {
        if let Some(rest) = stored.strip_prefix(MAGIC.as_slice()) {
            if rest.len() < NONCE_LEN + 16 {
                return Err(WrapError::Format);
            }
            let (nonce, sealed) = rest.split_at(NONCE_LEN);
            let nonce = XNonce::try_from(nonce).map_err(|_| WrapError::Format)?;
            let aad = Self::aad(id);
            let der = self
                .cipher
                .decrypt(
                    &nonce,
                    Payload {
                        msg: sealed,
                        aad: &aad,
                    },
                )
                .map_err(|_| WrapError::Open)?;
            return Ok(Stored::Wrapped(Zeroizing::new(der)));
        }
        // PKCS#8 DER starts with a SEQUENCE.
        if stored.first() == Some(&0x30) {
            return Ok(Stored::Legacy(Zeroizing::new(stored.to_vec())));
        }
        Err(WrapError::Format)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(b: u8) -> CampaignId {
        CampaignId([b; 32])
    }

    #[test]
    fn a_wrapped_key_opens_only_with_its_key_and_campaign() {
        let w = KeyWrap::derive(&[7; 32]);
        let der = [0x30, 0x82, 1, 2, 3, 4, 5, 6, 7, 8];
        let blob = w.wrap(&id(1), &der).unwrap();
        // Nothing of the key in clear.
        assert!(!blob.windows(der.len()).any(|x| x == der));
        match w.open(&id(1), &blob).unwrap() {
            Stored::Wrapped(d) => assert_eq!(d.as_slice(), der),
            Stored::Legacy(_) => panic!("read as legacy"),
        }
        assert!(matches!(w.open(&id(2), &blob), Err(WrapError::Open)));
        let other = KeyWrap::derive(&[8; 32]);
        assert!(matches!(other.open(&id(1), &blob), Err(WrapError::Open)));
        let mut flipped = blob.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(matches!(w.open(&id(1), &flipped), Err(WrapError::Open)));
        // Two wraps of one key differ (random nonce).
        assert_ne!(blob, w.wrap(&id(1), &der).unwrap());
    }

    #[test]
    fn clear_keys_of_older_servers_are_recognised_and_junk_is_refused() {
        let w = KeyWrap::derive(&[7; 32]);
        assert!(matches!(
            w.open(&id(1), &[0x30, 1, 2]),
            Ok(Stored::Legacy(_))
        ));
        assert!(matches!(w.open(&id(1), b"junk"), Err(WrapError::Format)));
        assert!(matches!(
            w.open(&id(1), b"PKW1short"),
            Err(WrapError::Format)
        ));
    }
}
