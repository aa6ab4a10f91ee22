//! Native RSA backends of the `fast-rsa` feature (BENCHMARKS.md): OpenSSL for the
//! issuer's raw private operation and aws-lc for RSASSA-PSS-SHA384 verification.
//!
//! Both compute exactly what the pure-Rust `blind-rsa-signatures` path computes:
//!
//! - RFC 9474 `BlindSign` is `s = m^d mod n` on the 256-byte blinded message,
//!   which is OpenSSL's `RSA_private_encrypt` with `RSA_NO_PADDING`. OpenSSL blinds
//!   the private operation and runs it in constant time. We still check
//!   `s^e = m` ourselves afterwards (R-TOKEN-9), with the public operation.
//! - A finalised RFC 9474 signature (RSABSSA-SHA384-PSS-Randomized) is a standard
//!   RSASSA-PSS signature with SHA-384, MGF1-SHA-384 and a 48-byte salt over
//!   `randomizer ‖ msg`; aws-lc's `RSA_PSS_2048_8192_SHA384` checks exactly that
//!   (salt length = digest length, i.e. 48).
//!
//! `protocol/tests/rsa_backends.rs` proves the outputs byte for byte against the
//! crate, both ways. No I/O: OpenSSL and aws-lc are used as in-memory arithmetic.
//!
//! # Zeroization
//! The private key lives in an OpenSSL `RSA` object; dropping it calls
//! `RSA_free`, which releases `d`, `p`, `q`, `dmp1`, `dmq1` and `iqmp` with
//! `BN_clear_free` (memory cleared before it is freed). OpenSSL's cached
//! Montgomery contexts for `p` and `q` are freed with `BN_MONT_CTX_free`, which
//! does not clear them (they hold `p` and `q`), and temporaries inside the
//! arithmetic come from `BN_CTX` pools that are cleared on release only for
//! values flagged `BN_FLG_CONSTTIME`/secure. The DER bytes the key is loaded from
//! stay in the caller's zeroizing buffer.

use crate::token::{RANDOMIZER_BYTES, RSA_MODULUS_BYTES, TokenError};
use aws_lc_rs::signature::{ParsedPublicKey, RSA_PSS_2048_8192_SHA384};
use openssl::pkey::{PKey, Private};
use openssl::rsa::{Padding, Rsa};
use subtle::ConstantTimeEq;

/// A parsed RSA public key for RSASSA-PSS-SHA384 verification with aws-lc.
pub(crate) struct FastVerifier(ParsedPublicKey);

impl std::fmt::Debug for FastVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FastVerifier(..)")
    }
}

impl FastVerifier {
    /// From a PKCS#1 `RSAPublicKey` DER (the contents of the SPKI bit string).
    pub(crate) fn from_pkcs1(der: &[u8]) -> Result<Self, TokenError> {
        ParsedPublicKey::new(&RSA_PSS_2048_8192_SHA384, der)
            .map(Self)
            .map_err(|_| TokenError::KeyEncoding("rejected by the aws-lc RSA backend"))
    }

    /// RSASSA-PSS-VERIFY (SHA-384, MGF1-SHA-384, salt 48) over `randomizer ‖ msg`.
    pub(crate) fn verify(
        &self,
        randomizer: &[u8; RANDOMIZER_BYTES],
        msg: &[u8],
        signature: &[u8; RSA_MODULUS_BYTES],
    ) -> Result<(), TokenError> {
        let mut input = Vec::with_capacity(RANDOMIZER_BYTES + msg.len());
        input.extend_from_slice(randomizer);
        input.extend_from_slice(msg);
        self.0
            .verify_sig(&input, signature)
            .map_err(|_| TokenError::InvalidSignature)
    }
}

/// An RSA private key held by OpenSSL, for the raw private operation.
pub(crate) struct FastSigner(Rsa<Private>);

impl std::fmt::Debug for FastSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastSigner").finish_non_exhaustive()
    }
}

impl FastSigner {
    /// Loads a PKCS#8 (or PKCS#1) DER private key and checks its consistency.
    pub(crate) fn from_der(der: &[u8]) -> Result<Self, TokenError> {
        let rsa = PKey::private_key_from_der(der)
            .and_then(|k| k.rsa())
            .map_err(|_| TokenError::SecretKey("rejected by the OpenSSL RSA backend"))?;
        match rsa.check_key() {
            Ok(true) => Ok(Self(rsa)),
            _ => Err(TokenError::SecretKey("inconsistent RSA key")),
        }
    }

    /// `s = m^d mod n`, then the R-TOKEN-9 self-check `s^e mod n = m`. The
    /// caller has already made the R-TOKEN-8 checks on `m`.
    pub(crate) fn sign_raw(
        &self,
        m: &[u8; RSA_MODULUS_BYTES],
    ) -> Result<[u8; RSA_MODULUS_BYTES], TokenError> {
        let mut s = [0u8; RSA_MODULUS_BYTES];
        let n = self
            .0
            .private_encrypt(m, &mut s, Padding::NONE)
            .map_err(|_| TokenError::SigningFailed)?;
        if n != RSA_MODULUS_BYTES {
            return Err(TokenError::SigningFailed);
        }
        // SPEC R-TOKEN-9: re-encrypt and compare before releasing anything.
        let mut back = [0u8; RSA_MODULUS_BYTES];
        let n = self
            .0
            .public_encrypt(&s, &mut back, Padding::NONE)
            .map_err(|_| TokenError::SigningFailed)?;
        if n != RSA_MODULUS_BYTES || !bool::from(back.ct_eq(m)) {
            return Err(TokenError::SigningFailed);
        }
        Ok(s)
    }
}
