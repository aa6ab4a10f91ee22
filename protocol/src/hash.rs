//! SHA-256 newtypes. No bare `[u8; 32]` crosses a module boundary.

use sha2::{Digest, Sha256};
use std::fmt;

macro_rules! hash_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// The raw 32 bytes.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// Lower-case hexadecimal, 64 characters.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// Parses exactly 64 hexadecimal characters (either case accepted on input,
            /// lower case is the canonical output).
            ///
            /// # Errors
            /// [`crate::hash::HexError`] if the text is not 64 hex digits.
            pub fn from_hex(s: &str) -> Result<Self, HexError> {
                let mut out = [0u8; 32];
                if s.len() != 64 {
                    return Err(HexError);
                }
                hex::decode_to_slice(s, &mut out).map_err(|_| HexError)?;
                Ok(Self(out))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl From<[u8; 32]> for $name {
            fn from(b: [u8; 32]) -> Self {
                Self(b)
            }
        }

        impl AsRef<[u8]> for $name {
            fn as_ref(&self) -> &[u8] {
                &self.0
            }
        }
    };
}

hash_newtype!(
    /// A SHA-256 value in the Merkle tree (leaf hash, node hash or root).
    Hash
);
hash_newtype!(
    /// A campaign id: SHA-256 over the domain tag and the canonical campaign
    /// definition. SPEC R-CAMP-2.
    CampaignId
);
hash_newtype!(
    /// A token's nullifier: `SHA-256("pledge/v1/nullifier" ‖ token_message)`.
    /// SPEC R-TOKEN-3. Public once the token is spent.
    Nullifier
);

/// Text was not exactly 64 hexadecimal digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("expected 64 hexadecimal digits")]
pub struct HexError;

/// SHA-256 over the concatenation of `parts`.
pub fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_rejects_bad_lengths() {
        let h = Hash(sha256(&[b"abc"]));
        assert_eq!(
            h.to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(Hash::from_hex(&h.to_hex()), Ok(h));
        assert_eq!(Hash::from_hex(&h.to_hex()[..62]), Err(HexError));
        assert_eq!(
            Hash::from_hex(&format!("{}zz", &h.to_hex()[..62])),
            Err(HexError)
        );
    }
}
