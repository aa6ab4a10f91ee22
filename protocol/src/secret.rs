//! Zeroizing containers for secret bytes (DESIGN §4 "Secrets", SPEC R-SEC-1).
//!
//! A secret lives only in a type that: zeroizes on drop, has a hand-written
//! `Debug` that prints no secret, derives neither `Clone` nor `Serialize`, and
//! compares in constant time.

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Secret bytes of any length (a DER-encoded issuer key, a wallet key…).
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// Takes ownership of `bytes`; the caller's copy is moved, not duplicated.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// Borrows the secret. Do not copy it into a type that does not zeroize.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes (not secret).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretBytes")
            .field("len", &self.0.len())
            .finish_non_exhaustive()
    }
}

impl PartialEq for SecretBytes {
    fn eq(&self, other: &Self) -> bool {
        // Length is not secret; contents are compared in constant time.
        self.0.len() == other.0.len() && bool::from(self.0.ct_eq(&other.0))
    }
}

impl Eq for SecretBytes {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_prints_no_secret_and_eq_is_by_value() {
        let s = SecretBytes::new(vec![0xAB; 4]);
        let d = format!("{s:?}");
        assert!(
            !d.contains("171") && !d.to_lowercase().contains("ab, "),
            "{d}"
        );
        assert_eq!(s, SecretBytes::new(vec![0xAB; 4]));
        assert_ne!(s, SecretBytes::new(vec![0xAB; 5]));
        assert_ne!(s, SecretBytes::new(vec![0xAC; 4]));
    }
}
