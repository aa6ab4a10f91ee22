//! RFC 9474 blind-RSA tokens (DESIGN §4, SPEC §5, R-TOKEN-1…R-TOKEN-13): issuer
//! keys, client blinding, issuer blind signing, finalisation and verification.
//!
//! Variant RSABSSA-SHA384-PSS-Randomized with RSA-2048 keys only. The RSA
//! arithmetic is done by the `blind-rsa-signatures` crate (pure Rust, `rsa` crate
//! underneath). Two entry points carry the cost:
//! [`IssuerSecretKey::blind_sign`] (one RSA private operation) and
//! [`IssuerPublicKey::verify_message`] (one RSASSA-PSS verification), which
//! [`Token::verify`] calls. With the `fast-rsa` cargo feature (native builds;
//! the server enables it) these two run on OpenSSL and aws-lc instead
//! (`rsa_fast.rs`), with byte-identical results (`tests/rsa_backends.rs`);
//! everything else, and the whole wasm32 build, stays on the pure-Rust crate.
//!
//! Two layers:
//!
//! - the token layer ([`blind`], [`finalize`], [`Token::verify`]) fixes the signed
//!   message to [`token_message`], so protocol code cannot sign or verify anything
//!   else by mistake;
//! - the RFC 9474 layer (`*_message` methods of [`IssuerPublicKey`]) takes an
//!   arbitrary message. It exists for conformance tests against published
//!   vectors; protocol code uses the token layer.

use crate::codec::{Decode, DecodeError, Reader, Writer, read_exactly};
use crate::hash::{CampaignId, Nullifier, sha256};
use crate::pledge::PledgePublicKey;
use crate::secret::SecretBytes;
use blind_rsa_signatures as brsa;
use rand::rngs::{StdRng, SysRng};
use rand::{CryptoRng, SeedableRng};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Domain tag opening every token message. SPEC R-TOKEN-2.
pub const TOKEN_MESSAGE_TAG: &[u8] = b"pledge/v1/token";

/// Most campaigns one token request may name (SPEC R-API-9): the issuer's
/// limit and the client's batch size, one constant for both.
pub const MAX_TOKEN_REQUESTS: usize = 64;
/// Domain tag of the nullifier hash. SPEC R-TOKEN-3.
pub const NULLIFIER_TAG: &[u8] = b"pledge/v1/nullifier";
/// RSA modulus size of v1 issuer keys, in bytes (RSA-2048). SPEC R-TOKEN-1.
pub const RSA_MODULUS_BYTES: usize = 256;
/// RSA modulus size of v1 issuer keys, in bits. SPEC R-TOKEN-1.
pub const RSA_MODULUS_BITS: usize = 2048;
/// The only public exponent v1 accepts. SPEC R-TOKEN-5.
pub const RSA_PUBLIC_EXPONENT: u64 = 65537;
/// Length of the RFC 9474 message randomizer.
pub const RANDOMIZER_BYTES: usize = 32;
/// Length of the canonical issuer public key encoding (SPKI, R-TOKEN-5).
pub const ISSUER_KEY_BYTES: usize = 342;
/// Largest issuer key encoding a decoder looks at before rejecting it; the same
/// bound as the CampaignOpened `issuer_key` field (R-ENTRY-1).
pub const ISSUER_KEY_MAX_BYTES: usize = 800;
/// Length of an encoded [`BlindingState`]. SPEC R-TOKEN-12.
pub const BLINDING_STATE_BYTES: usize = 1 + RANDOMIZER_BYTES + 2 * RSA_MODULUS_BYTES;
/// Version byte of the [`BlindingState`] encoding. SPEC R-TOKEN-12.
pub const BLINDING_STATE_VERSION: u8 = 1;

/// Largest issuer secret key DER accepted by [`IssuerSecretKey::from_der`]
/// (an RSA-2048 PKCS#8 key is about 1,220 bytes).
const SECRET_KEY_MAX_BYTES: usize = 4096;

/// DER `AlgorithmIdentifier` for id-RSASSA-PSS with SHA-384, MGF1-SHA-384 and a
/// 48-byte salt, hash parameters absent (RFC 4055 §2.1, RFC 9578 §6.5).
/// SPEC R-TOKEN-5.
const PSS_SHA384_ALGORITHM_ID: [u8; 63] = [
    0x30, 0x3d, // SEQUENCE, 61 bytes
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a, // id-RSASSA-PSS
    0x30, 0x30, // RSASSA-PSS-params
    0xa0, 0x0d, 0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
    0x02, // [0] hashAlgorithm: id-sha384
    0xa1, 0x1a, 0x30, 0x18, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01,
    0x08, // [1] maskGenAlgorithm: id-mgf1 …
    0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
    0x02, // … with id-sha384
    0xa2, 0x03, 0x02, 0x01, 0x30, // [2] saltLength: 48
];

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
    Nullifier(sha256(&[
        NULLIFIER_TAG,
        &token_message(campaign, pledge_pk),
    ]))
}

/// Why a token operation failed. Each variant says what the caller should fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The issuer public key is not the canonical id-RSASSA-PSS
    /// SubjectPublicKeyInfo of R-TOKEN-5.
    #[error("issuer public key is malformed: {0}")]
    KeyEncoding(&'static str),
    /// The issuer key's modulus does not have exactly 2048 bits. SPEC R-TOKEN-5.
    #[error("issuer key modulus has {0} bits; v1 issuer keys have exactly 2048")]
    ModulusBits(usize),
    /// The issuer key's modulus is even (not an RSA modulus). SPEC R-TOKEN-5.
    #[error("issuer key modulus is even")]
    EvenModulus,
    /// The issuer key's public exponent is not 65537. SPEC R-TOKEN-5.
    #[error("issuer key public exponent must be 65537")]
    PublicExponent,
    /// The issuer secret key could not be loaded. SPEC R-TOKEN-13.
    #[error("issuer secret key rejected: {0}")]
    SecretKey(&'static str),
    /// RSA key generation failed.
    #[error("issuer key generation failed")]
    KeyGeneration,
    /// A blinded message must be exactly 256 bytes. SPEC R-TOKEN-8.
    #[error("blinded message must be exactly 256 bytes, got {0}")]
    BlindedMessageLength(usize),
    /// A blinded message has a value the issuer refuses to sign. SPEC R-TOKEN-8.
    #[error("blinded message value refused: {0}")]
    BlindedMessageValue(ForbiddenValue),
    /// The RSA private operation failed, including its self-check `s^e = m`
    /// (fault attack defence). Nothing was released. An issuer-side fault.
    /// SPEC R-TOKEN-9.
    #[error("blind signing failed its self-check; nothing was released")]
    SigningFailed,
    /// Client-side blinding failed (the message representative was not
    /// invertible modulo n, which a valid key makes practically impossible).
    #[error("blinding failed")]
    BlindingFailed,
    /// A blind signature must be exactly 256 bytes. SPEC R-TOKEN-10.
    #[error("blind signature must be exactly 256 bytes, got {0}")]
    BlindSignatureLength(usize),
    /// The issuer's response does not unblind to a valid signature over our
    /// message under this key: wrong key, wrong message or corrupted response.
    /// SPEC R-TOKEN-10.
    #[error("blind signature does not finalise to a valid signature under this key")]
    FinalizeFailed,
    /// The token's signature does not verify under this issuer key for this
    /// campaign. SPEC R-TOKEN-6.
    #[error("token signature does not verify under this issuer key and campaign")]
    InvalidSignature,
    /// The operating system's random number generator failed.
    #[error("operating system randomness unavailable")]
    Randomness,
}

impl TokenError {
    /// A short static reason, for mapping into [`DecodeError::Malformed`].
    fn reason(&self) -> &'static str {
        match self {
            Self::KeyEncoding(r) | Self::SecretKey(r) => r,
            Self::ModulusBits(_) => "modulus is not 2048 bits",
            Self::EvenModulus => "modulus is even",
            Self::PublicExponent => "public exponent is not 65537",
            _ => "rejected",
        }
    }
}

/// Blinded-message values an issuer refuses to sign (RELIABILITY.md, hostile input 1).
/// SPEC R-TOKEN-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForbiddenValue {
    /// 0, a fixed point of RSA.
    Zero,
    /// 1, a fixed point of RSA.
    One,
    /// n − 1, a fixed point of RSA for odd d.
    ModulusMinusOne,
    /// n or more: not a residue modulo n (an alternative encoding of a smaller value).
    NotBelowModulus,
}

impl std::fmt::Display for ForbiddenValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Zero => "0",
            Self::One => "1",
            Self::ModulusMinusOne => "n - 1",
            Self::NotBelowModulus => "not below the modulus n",
        })
    }
}

/// SHA-256 of an issuer key's canonical encoding (R-TOKEN-7). Equal to the
/// Privacy Pass `token_key_id` (RFC 9578 §6.5) of the same key. For display and
/// for the P5 key check; never a substitute for comparing the key itself.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IssuerKeyId(pub [u8; 32]);

impl IssuerKeyId {
    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hexadecimal, 64 characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl std::fmt::Debug for IssuerKeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IssuerKeyId({})", self.to_hex())
    }
}

impl std::fmt::Display for IssuerKeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// A campaign's issuer public key: RSA-2048, e = 65537, for
/// RSABSSA-SHA384-PSS-Randomized. Only constructed from a canonical encoding that
/// passed every R-TOKEN-5 check, so every value that exists is valid.
#[derive(Clone)]
pub struct IssuerPublicKey {
    spki: [u8; ISSUER_KEY_BYTES],
    key_id: IssuerKeyId,
    inner: brsa::PublicKeySha384PSSRandomized,
    /// Shared, so that cloning a key (and the size of the entries holding
    /// one) stays small.
    #[cfg(feature = "fast-rsa")]
    fast: std::sync::Arc<crate::rsa_fast::FastVerifier>,
}

impl PartialEq for IssuerPublicKey {
    fn eq(&self, other: &Self) -> bool {
        // The encoding is canonical, so equal keys have equal bytes.
        self.spki == other.spki
    }
}

impl Eq for IssuerPublicKey {}

impl std::hash::Hash for IssuerPublicKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.spki.hash(state);
    }
}

impl std::fmt::Debug for IssuerPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IssuerPublicKey({})", self.key_id.to_hex())
    }
}

impl IssuerPublicKey {
    /// Decodes the canonical encoding of R-TOKEN-5: a DER SubjectPublicKeyInfo with
    /// the id-RSASSA-PSS algorithm (SHA-384, MGF1-SHA-384, salt 48) around a PKCS#1
    /// RSAPublicKey with a 2048-bit odd modulus and e = 65537.
    ///
    /// Strict: the input must be byte-for-byte what [`IssuerPublicKey::as_spki`]
    /// would produce for the key it contains.
    ///
    /// # Errors
    /// [`TokenError::ModulusBits`], [`TokenError::EvenModulus`],
    /// [`TokenError::PublicExponent`] for bad parameters (RELIABILITY.md, hostile input 5);
    /// [`TokenError::KeyEncoding`] for anything else.
    pub fn from_spki(bytes: &[u8]) -> Result<Self, TokenError> {
        // SPEC R-TOKEN-5: bound the input before parsing.
        if bytes.len() > ISSUER_KEY_MAX_BYTES {
            return Err(TokenError::KeyEncoding("longer than 800 bytes"));
        }
        let (spki, rest) = der_tlv(bytes, 0x30)?;
        if !rest.is_empty() {
            return Err(TokenError::KeyEncoding("trailing bytes"));
        }
        let (alg, rest) = der_split(spki)?;
        if alg != PSS_SHA384_ALGORITHM_ID {
            return Err(TokenError::KeyEncoding(
                "algorithm is not id-RSASSA-PSS with SHA-384, MGF1-SHA-384, salt 48",
            ));
        }
        let (bits, rest) = der_tlv(rest, 0x03)?;
        if !rest.is_empty() {
            return Err(TokenError::KeyEncoding("trailing bytes"));
        }
        let Some((&0, rsa_key)) = bits.split_first() else {
            return Err(TokenError::KeyEncoding("bit string has unused bits"));
        };
        #[cfg(feature = "fast-rsa")]
        let pkcs1 = rsa_key;
        let (rsa_key, rest) = der_tlv(rsa_key, 0x30)?;
        if !rest.is_empty() {
            return Err(TokenError::KeyEncoding("trailing bytes"));
        }
        let (n, rest) = der_tlv(rsa_key, 0x02)?;
        let (e, rest) = der_tlv(rest, 0x02)?;
        if !rest.is_empty() {
            return Err(TokenError::KeyEncoding("trailing bytes"));
        }
        let n = der_unsigned(n)?;
        let e = der_unsigned(e)?;

        // SPEC R-TOKEN-5: parameter checks, each with its own error.
        let n_bits = bit_length(n);
        if n_bits != RSA_MODULUS_BITS {
            return Err(TokenError::ModulusBits(n_bits));
        }
        if n.last().is_none_or(|b| b & 1 == 0) {
            return Err(TokenError::EvenModulus);
        }
        if e.len() > 8
            || e.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)) != RSA_PUBLIC_EXPONENT
        {
            return Err(TokenError::PublicExponent);
        }
        if n.len() != RSA_MODULUS_BYTES {
            return Err(TokenError::KeyEncoding("modulus length"));
        }

        let inner = brsa::PublicKeySha384PSSRandomized::from_spki(bytes)
            .map_err(|_| TokenError::KeyEncoding("rejected by the RSA backend"))?;
        // SPEC R-TOKEN-5: one encoding per key (DER lengths, integer padding…).
        let canonical = inner
            .to_spki()
            .map_err(|_| TokenError::KeyEncoding("cannot be re-encoded"))?;
        if canonical.as_slice() != bytes {
            return Err(TokenError::KeyEncoding("not the canonical DER encoding"));
        }
        let spki: [u8; ISSUER_KEY_BYTES] = canonical
            .as_slice()
            .try_into()
            .map_err(|_| TokenError::KeyEncoding("not 342 bytes"))?;
        let key = Self {
            key_id: IssuerKeyId(sha256(&[&spki])),
            spki,
            inner,
            #[cfg(feature = "fast-rsa")]
            fast: std::sync::Arc::new(crate::rsa_fast::FastVerifier::from_pkcs1(pkcs1)?),
        };
        // The layout `modulus()` relies on.
        if key.modulus() != n {
            return Err(TokenError::KeyEncoding(
                "modulus not where R-TOKEN-5 puts it",
            ));
        }
        Ok(key)
    }

    /// The modulus n, 256 big-endian bytes: in the canonical encoding it is
    /// followed only by the exponent's 5 bytes `02 03 01 00 01` (R-TOKEN-5).
    /// Read from there rather than stored, which keeps entries small.
    fn modulus(&self) -> &[u8] {
        const END: usize = ISSUER_KEY_BYTES - 5;
        // Always in range for a 342-byte array; an empty slice would make
        // every "below n" check fail closed.
        self.spki.get(END - RSA_MODULUS_BYTES..END).unwrap_or(&[])
    }

    /// The canonical encoding (R-TOKEN-5), 342 bytes.
    pub fn as_spki(&self) -> &[u8; ISSUER_KEY_BYTES] {
        &self.spki
    }

    /// `SHA-256(canonical encoding)`. SPEC R-TOKEN-7.
    pub fn key_id(&self) -> IssuerKeyId {
        self.key_id
    }

    /// Appends the key as the CampaignOpened `issuer_key` field: `bytes16` of the
    /// canonical encoding (R-ENTRY-1, R-TOKEN-5).
    pub fn encode_into(&self, w: &mut Writer) {
        w.bytes16(&self.spki);
    }

    /// RFC 9474 randomized `Blind` of an arbitrary message, with the caller's
    /// CSPRNG. The generator supplies, in order, the 32-byte message randomizer,
    /// the 48-byte PSS salt and the blinding factor `r` (rejection-sampled below
    /// n). Protocol code uses [`blind`]; this exists for conformance tests.
    ///
    /// # Errors
    /// [`TokenError::BlindingFailed`] (practically unreachable with a valid key).
    pub fn blind_message_with_rng<R: CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        msg: &[u8],
    ) -> Result<(BlindedMessage, BlindingState), TokenError> {
        let mut result = self
            .inner
            .blind(rng, msg)
            .map_err(|_| TokenError::BlindingFailed)?;
        let state = BlindingState::from_result(&result);
        result.secret.0.zeroize();
        let state = state?;
        Ok((BlindedMessage(state.blinded), state))
    }

    /// RFC 9474 `Finalize` of an arbitrary message: unblinds the issuer's blind
    /// signature and verifies the result (R-TOKEN-10). Returns the 256-byte
    /// RSASSA-PSS signature over `randomizer ‖ msg`. Protocol code uses
    /// [`finalize`].
    ///
    /// # Errors
    /// [`TokenError::BlindSignatureLength`] unless exactly 256 bytes;
    /// [`TokenError::FinalizeFailed`] if the value is not below n or the unblinded
    /// signature does not verify.
    pub fn finalize_message(
        &self,
        state: &BlindingState,
        blind_sig: &[u8],
        msg: &[u8],
    ) -> Result<[u8; RSA_MODULUS_BYTES], TokenError> {
        let blind_sig: &[u8; RSA_MODULUS_BYTES] = blind_sig
            .try_into()
            .map_err(|_| TokenError::BlindSignatureLength(blind_sig.len()))?;
        // SPEC R-TOKEN-10: a value ≥ n is an alternative encoding; refuse it.
        if blind_sig.as_slice() >= self.modulus() {
            return Err(TokenError::FinalizeFailed);
        }
        let mut result = brsa::BlindingResult {
            blind_message: brsa::BlindMessage(state.blinded.to_vec()),
            secret: brsa::Secret(state.inverse.to_vec()),
            msg_randomizer: Some(brsa::MessageRandomizer(state.randomizer)),
        };
        // The backend verifies the unblinded signature before returning it.
        let outcome = self
            .inner
            .finalize(&brsa::BlindSignature(blind_sig.to_vec()), &result, msg);
        result.secret.0.zeroize();
        let sig = outcome.map_err(|_| TokenError::FinalizeFailed)?;
        sig.0
            .as_slice()
            .try_into()
            .map_err(|_| TokenError::FinalizeFailed)
    }

    /// RFC 9474 `Verify` (randomized variant): RSASSA-PSS-VERIFY with SHA-384,
    /// MGF1-SHA-384 and a 48-byte salt over `randomizer ‖ msg`, after checking the
    /// signature is below n. Protocol code uses [`Token::verify`].
    ///
    /// # Errors
    /// [`TokenError::InvalidSignature`].
    pub fn verify_message(
        &self,
        randomizer: &[u8; RANDOMIZER_BYTES],
        msg: &[u8],
        signature: &[u8; RSA_MODULUS_BYTES],
    ) -> Result<(), TokenError> {
        // SPEC R-TOKEN-6: the signature representative must be below n.
        if signature.as_slice() >= self.modulus() {
            return Err(TokenError::InvalidSignature);
        }
        #[cfg(feature = "fast-rsa")]
        return self.fast.verify(randomizer, msg, signature);
        #[cfg(not(feature = "fast-rsa"))]
        self.verify_message_portable(randomizer, msg, signature)
    }

    /// [`IssuerPublicKey::verify_message`] on the pure-Rust backend, whatever the
    /// features: for the `fast-rsa` cross-test. Protocol code uses
    /// [`Token::verify`].
    ///
    /// # Errors
    /// [`TokenError::InvalidSignature`].
    #[doc(hidden)]
    pub fn verify_message_portable(
        &self,
        randomizer: &[u8; RANDOMIZER_BYTES],
        msg: &[u8],
        signature: &[u8; RSA_MODULUS_BYTES],
    ) -> Result<(), TokenError> {
        // SPEC R-TOKEN-6: the signature representative must be below n.
        if signature.as_slice() >= self.modulus() {
            return Err(TokenError::InvalidSignature);
        }
        self.inner
            .verify(
                &brsa::Signature(signature.to_vec()),
                Some(brsa::MessageRandomizer(*randomizer)),
                msg,
            )
            .map_err(|_| TokenError::InvalidSignature)
    }

    /// SPEC R-TOKEN-8: the blinded-message checks an issuer makes before signing.
    fn check_blinded(&self, m: &[u8; RSA_MODULUS_BYTES]) -> Result<(), TokenError> {
        let (last, head) = m.split_last().unwrap_or((&0, &[]));
        let head_zero = head.iter().all(|&b| b == 0);
        if head_zero && *last == 0 {
            return Err(TokenError::BlindedMessageValue(ForbiddenValue::Zero));
        }
        if head_zero && *last == 1 {
            return Err(TokenError::BlindedMessageValue(ForbiddenValue::One));
        }
        // Big-endian arrays of equal length compare like the integers they encode.
        if m.as_slice() >= self.modulus() {
            return Err(TokenError::BlindedMessageValue(
                ForbiddenValue::NotBelowModulus,
            ));
        }
        // n is odd (R-TOKEN-5), so n − 1 differs from n only in the last byte.
        let (n_last, n_head) = self.modulus().split_last().unwrap_or((&0, &[]));
        if head == n_head && *last == n_last.wrapping_sub(1) {
            return Err(TokenError::BlindedMessageValue(
                ForbiddenValue::ModulusMinusOne,
            ));
        }
        Ok(())
    }
}

crate::codec::inherent_decode!(IssuerPublicKey);

impl Decode for IssuerPublicKey {
    /// Reads the layout of [`IssuerPublicKey::encode_into`].
    ///
    /// # Errors
    /// Truncation, a length over 800, or any [`IssuerPublicKey::from_spki`]
    /// failure as [`DecodeError::Malformed`].
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let raw = r.bytes16(ISSUER_KEY_MAX_BYTES, "issuer_key")?;
        Self::from_spki(raw).map_err(|e| DecodeError::Malformed {
            field: "issuer_key",
            reason: e.reason(),
        })
    }
}

/// A campaign's issuer secret key (RSA-2048). Zeroized on drop, no `Clone`, no
/// serialisation except the explicit [`IssuerSecretKey::to_der`], `Debug` shows
/// only the public key id. SPEC R-TOKEN-13.
///
/// # Security
/// Zeroization is delegated to the `rsa` crate's `RsaPrivateKey`, whose `Drop`
/// clears `d`, the primes and the CRT exponents `dp`, `dq`. As of
/// `rsa 0.10.0-rc.18` it does **not** clear `qinv` nor the Montgomery parameters
/// of `p` and `q` (which contain the primes): upstream leaves a TODO for them.
/// Temporaries inside the RSA arithmetic are not zeroized either.
///
/// With the `fast-rsa` feature the key is held a second time by OpenSSL (for
/// [`IssuerSecretKey::blind_sign`]); dropping it runs `RSA_free`, which clears
/// `d`, `p`, `q` and the CRT values with `BN_clear_free` but frees the cached
/// Montgomery contexts of `p` and `q` without clearing them (`rsa_fast.rs`).
pub struct IssuerSecretKey {
    inner: brsa::SecretKeySha384PSSRandomized,
    public: IssuerPublicKey,
    #[cfg(feature = "fast-rsa")]
    fast: crate::rsa_fast::FastSigner,
}

// The secret fields are `inner`, whose `RsaPrivateKey` implements
// `ZeroizeOnDrop`, and with `fast-rsa` the OpenSSL key, cleared by `RSA_free`
// (with the gaps listed on the type).
impl ZeroizeOnDrop for IssuerSecretKey {}

impl std::fmt::Debug for IssuerSecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuerSecretKey")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl IssuerSecretKey {
    /// A fresh RSA-2048 key (e = 65537) from a ChaCha12 generator seeded by the
    /// operating system. Takes roughly 0.1–1 s.
    ///
    /// # Errors
    /// [`TokenError::Randomness`] if the OS has no randomness to give;
    /// [`TokenError::KeyGeneration`] if the backend fails.
    pub fn generate() -> Result<Self, TokenError> {
        let mut rng = os_rng()?;
        let kp = brsa::KeyPairSha384PSSRandomized::generate(&mut rng, RSA_MODULUS_BITS)
            .map_err(|_| TokenError::KeyGeneration)?;
        Self::from_backend(kp.sk)
    }

    /// Loads a key from PKCS#8 DER (the form [`IssuerSecretKey::to_der`] writes;
    /// the backend also accepts PKCS#1 `RSAPrivateKey`). The key is validated and
    /// its public half must satisfy R-TOKEN-5.
    ///
    /// # Errors
    /// [`TokenError::SecretKey`] if it does not parse or is inconsistent; the
    /// R-TOKEN-5 errors if its public half is not a v1 issuer key.
    pub fn from_der(der: &[u8]) -> Result<Self, TokenError> {
        if der.len() > SECRET_KEY_MAX_BYTES {
            return Err(TokenError::SecretKey("longer than 4096 bytes"));
        }
        let inner = brsa::SecretKeySha384PSSRandomized::from_der(der).map_err(|e| {
            TokenError::SecretKey(match e {
                brsa::Error::InvalidKey => "inconsistent RSA key",
                brsa::Error::UnsupportedParameters => "unsupported RSA parameters",
                _ => "not PKCS#8 or PKCS#1 DER",
            })
        })?;
        Self::from_backend(inner)
    }

    fn from_backend(inner: brsa::SecretKeySha384PSSRandomized) -> Result<Self, TokenError> {
        let spki = inner
            .public_key()
            .and_then(|pk| pk.to_spki())
            .map_err(|_| TokenError::SecretKey("unsupported RSA parameters"))?;
        let public = IssuerPublicKey::from_spki(&spki)?;
        #[cfg(feature = "fast-rsa")]
        let fast = {
            let der = inner
                .to_der()
                .map(SecretBytes::new)
                .map_err(|_| TokenError::SecretKey("cannot be encoded"))?;
            crate::rsa_fast::FastSigner::from_der(der.expose())?
        };
        Ok(Self {
            inner,
            public,
            #[cfg(feature = "fast-rsa")]
            fast,
        })
    }

    /// The key as PKCS#8 DER, for the issuer's key store (R-TOKEN-13).
    ///
    /// # Errors
    /// [`TokenError::SecretKey`] if the backend cannot encode it.
    pub fn to_der(&self) -> Result<SecretBytes, TokenError> {
        self.inner
            .to_der()
            .map(SecretBytes::new)
            .map_err(|_| TokenError::SecretKey("cannot be encoded"))
    }

    /// The public half.
    pub fn public_key(&self) -> &IssuerPublicKey {
        &self.public
    }

    /// RFC 9474 `BlindSign`: the raw RSA private operation on a client's blinded
    /// message, after the R-TOKEN-8 checks. The backend verifies `s^e = m` before
    /// returning (R-TOKEN-9: `rsa::hazmat::rsa_decrypt_and_check`, or with
    /// `fast-rsa` an explicit public operation after OpenSSL's) and blinds the
    /// private operation with fresh randomness.
    ///
    /// # Errors
    /// [`TokenError::BlindedMessageLength`] unless exactly 256 bytes;
    /// [`TokenError::BlindedMessageValue`] for 0, 1, n − 1 and values ≥ n;
    /// [`TokenError::SigningFailed`] if the private operation or its self-check
    /// failed (an issuer-side fault: report as a server error).
    ///
    /// # Security
    /// The `rsa` crate's private operation is not constant-time
    /// (RUSTSEC-2023-0071, Marvin); the OpenSSL path of `fast-rsa` is.
    pub fn blind_sign(&self, blinded: &[u8]) -> Result<BlindSignature, TokenError> {
        // SPEC R-TOKEN-8
        let m: &[u8; RSA_MODULUS_BYTES] = blinded
            .try_into()
            .map_err(|_| TokenError::BlindedMessageLength(blinded.len()))?;
        self.public.check_blinded(m)?;
        #[cfg(feature = "fast-rsa")]
        return self.fast.sign_raw(m).map(BlindSignature);
        #[cfg(not(feature = "fast-rsa"))]
        self.blind_sign_portable(m)
    }

    /// [`IssuerSecretKey::blind_sign`] on the pure-Rust backend, whatever the
    /// features: for the `fast-rsa` cross-test. Skips the R-TOKEN-8 value checks;
    /// protocol code calls `blind_sign`.
    ///
    /// # Errors
    /// [`TokenError::SigningFailed`].
    #[doc(hidden)]
    pub fn blind_sign_portable(
        &self,
        m: &[u8; RSA_MODULUS_BYTES],
    ) -> Result<BlindSignature, TokenError> {
        // SPEC R-TOKEN-9: blind_sign_with_rng calls rsa_decrypt_and_check, which
        // re-encrypts the result and compares it with the input.
        let s = self
            .inner
            .blind_sign_with_rng(&mut SysRng, m)
            .map_err(|_| TokenError::SigningFailed)?;
        let s: [u8; RSA_MODULUS_BYTES] =
            s.0.as_slice()
                .try_into()
                .map_err(|_| TokenError::SigningFailed)?;
        Ok(BlindSignature(s))
    }
}

/// A blinded token message, as the client sends it to the issuer: 256 bytes,
/// uniformly distributed modulo n and unlinkable to the token.
#[derive(Clone, PartialEq, Eq)]
pub struct BlindedMessage([u8; RSA_MODULUS_BYTES]);

impl BlindedMessage {
    /// The 256 bytes.
    pub fn as_bytes(&self) -> &[u8; RSA_MODULUS_BYTES] {
        &self.0
    }
}

impl std::fmt::Debug for BlindedMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlindedMessage(..)")
    }
}

/// The issuer's answer to a [`BlindedMessage`]: 256 bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct BlindSignature([u8; RSA_MODULUS_BYTES]);

impl BlindSignature {
    /// The 256 bytes.
    pub fn as_bytes(&self) -> &[u8; RSA_MODULUS_BYTES] {
        &self.0
    }
}

impl std::fmt::Debug for BlindSignature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlindSignature(..)")
    }
}

/// What a client keeps between sending a blinded message and finalising the
/// issuer's answer: the message randomizer, the unblinding factor `inv = r⁻¹ mod n`
/// and the blinded message itself (so an interrupted request can be resent
/// unchanged). Secret: whoever holds it and saw the issuance can link the token
/// to the request. Zeroized on drop, no `Clone`, `Debug` prints nothing secret.
///
/// It may be persisted (R-TOKEN-12): the issuer signs one token per person per
/// campaign, so a wallet that crashes between request and response and cannot
/// finalise has lost that token for good. Store [`BlindingState::to_secret_bytes`]
/// encrypted, before sending the request, and delete it once the token is
/// finalised.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct BlindingState {
    randomizer: [u8; RANDOMIZER_BYTES],
    inverse: [u8; RSA_MODULUS_BYTES],
    blinded: [u8; RSA_MODULUS_BYTES],
}

impl std::fmt::Debug for BlindingState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlindingState").finish_non_exhaustive()
    }
}

impl BlindingState {
    fn from_result(result: &brsa::BlindingResult) -> Result<Self, TokenError> {
        let randomizer = result.msg_randomizer.ok_or(TokenError::BlindingFailed)?.0;
        let mut state = Self {
            randomizer,
            inverse: [0; RSA_MODULUS_BYTES],
            blinded: [0; RSA_MODULUS_BYTES],
        };
        if result.secret.0.len() != RSA_MODULUS_BYTES
            || result.blind_message.0.len() != RSA_MODULUS_BYTES
        {
            return Err(TokenError::BlindingFailed);
        }
        // Lengths checked just above.
        state.inverse.copy_from_slice(&result.secret.0);
        state.blinded.copy_from_slice(&result.blind_message.0);
        Ok(state)
    }

    /// The blinded message this state belongs to (to resend the same request).
    pub fn blinded_message(&self) -> BlindedMessage {
        BlindedMessage(self.blinded)
    }

    /// `version(0x01) ‖ randomizer [32] ‖ inv [256] ‖ blinded_msg [256]`, 545
    /// bytes. SPEC R-TOKEN-12. Secret: store only encrypted.
    pub fn to_secret_bytes(&self) -> SecretBytes {
        // Allocated once at full size so no reallocation leaves a copy behind.
        let mut out = Vec::with_capacity(BLINDING_STATE_BYTES);
        out.push(BLINDING_STATE_VERSION);
        out.extend_from_slice(&self.randomizer);
        out.extend_from_slice(&self.inverse);
        out.extend_from_slice(&self.blinded);
        SecretBytes::new(out)
    }

    /// Reads the layout of [`BlindingState::to_secret_bytes`].
    ///
    /// # Errors
    /// [`DecodeError::UnsupportedVersion`], truncation or trailing bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        read_exactly(bytes, Self::read)
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let version = r.u8("blinding_state.version")?;
        if version != BLINDING_STATE_VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let mut state = Self {
            randomizer: [0; RANDOMIZER_BYTES],
            inverse: [0; RSA_MODULUS_BYTES],
            blinded: [0; RSA_MODULUS_BYTES],
        };
        state
            .randomizer
            .copy_from_slice(r.take(RANDOMIZER_BYTES, "blinding_state.randomizer")?);
        state
            .inverse
            .copy_from_slice(r.take(RSA_MODULUS_BYTES, "blinding_state.inverse")?);
        state
            .blinded
            .copy_from_slice(r.take(RSA_MODULUS_BYTES, "blinding_state.blinded")?);
        Ok(state)
    }
}

/// Client side of issuance: blinds the token message for `campaign` and
/// `pledge_pk` under the campaign's issuer key, with OS randomness.
///
/// The caller MUST first check that `pk` equals the key of the campaign's
/// CampaignOpened log entry, proven by inclusion (R-TOKEN-11, DESIGN P5).
///
/// # Errors
/// [`TokenError::Randomness`]; [`TokenError::BlindingFailed`].
pub fn blind(
    pk: &IssuerPublicKey,
    campaign: &CampaignId,
    pledge_pk: &PledgePublicKey,
) -> Result<(BlindedMessage, BlindingState), TokenError> {
    blind_with_rng(&mut os_rng()?, pk, campaign, pledge_pk)
}

/// [`blind`] with the caller's CSPRNG (deterministic tests, WebAssembly).
///
/// # Errors
/// [`TokenError::BlindingFailed`].
pub fn blind_with_rng<R: CryptoRng + ?Sized>(
    rng: &mut R,
    pk: &IssuerPublicKey,
    campaign: &CampaignId,
    pledge_pk: &PledgePublicKey,
) -> Result<(BlindedMessage, BlindingState), TokenError> {
    pk.blind_message_with_rng(rng, &token_message(campaign, pledge_pk))
}

/// Client side of issuance: unblinds the issuer's answer into a [`Token`] and
/// verifies it (R-TOKEN-10). The state is borrowed so a failed attempt (say, a
/// corrupted response) can be retried.
///
/// # Errors
/// [`TokenError::BlindSignatureLength`]; [`TokenError::FinalizeFailed`] if the
/// answer does not produce a valid token for this key, campaign and pledge key.
pub fn finalize(
    pk: &IssuerPublicKey,
    state: &BlindingState,
    blind_sig: &[u8],
    campaign: &CampaignId,
    pledge_pk: &PledgePublicKey,
) -> Result<Token, TokenError> {
    let signature = pk.finalize_message(state, blind_sig, &token_message(campaign, pledge_pk))?;
    Ok(Token {
        pledge_pk: *pledge_pk,
        randomizer: state.randomizer,
        signature,
    })
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

    /// Checks the issuer signature: RSASSA-PSS (SHA-384, MGF1-SHA-384, salt 48)
    /// over `randomizer ‖ token_message(campaign, pledge_pk)` under `pk`, with the
    /// signature below n. `pk` must be the key of the campaign's CampaignOpened
    /// entry. SPEC R-TOKEN-6.
    ///
    /// # Errors
    /// [`TokenError::InvalidSignature`].
    pub fn verify(&self, pk: &IssuerPublicKey, campaign: &CampaignId) -> Result<(), TokenError> {
        pk.verify_message(
            &self.randomizer,
            &token_message(campaign, &self.pledge_pk),
            &self.signature,
        )
    }

    /// Appends `pledge_pk(32) ‖ randomizer(32) ‖ signature(256)`. SPEC R-TOKEN-4.
    pub fn encode_into(&self, w: &mut Writer) {
        w.raw(self.pledge_pk.as_bytes())
            .raw(&self.randomizer)
            .raw(&self.signature);
    }
}

crate::codec::inherent_decode!(Token);

impl Decode for Token {
    /// Reads the layout of [`Token::encode_into`].
    ///
    /// # Errors
    /// Truncation, or a pledge key that is not a valid Ed25519 point.
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let pledge_pk = PledgePublicKey::from_bytes(r.array("token.pledge_pk")?)?;
        Ok(Self {
            pledge_pk,
            randomizer: r.array("token.randomizer")?,
            signature: r.array("token.signature")?,
        })
    }
}

/// A ChaCha12 generator seeded from the operating system, for one operation.
fn os_rng() -> Result<StdRng, TokenError> {
    StdRng::try_from_rng(&mut SysRng).map_err(|_| TokenError::Randomness)
}

/// Splits one DER TLV with tag `tag` off `input`: `(contents, rest)`. Accepts
/// definite lengths of up to two bytes; minimality is enforced by the caller's
/// re-encoding check.
fn der_tlv(input: &[u8], tag: u8) -> Result<(&[u8], &[u8]), TokenError> {
    let (&t, rest) = input
        .split_first()
        .ok_or(TokenError::KeyEncoding("truncated"))?;
    if t != tag {
        return Err(TokenError::KeyEncoding("unexpected DER tag"));
    }
    let (&l0, rest) = rest
        .split_first()
        .ok_or(TokenError::KeyEncoding("truncated"))?;
    let (len, rest) = if l0 < 0x80 {
        (usize::from(l0), rest)
    } else {
        let n = usize::from(l0 & 0x7f);
        if n == 0 || n > 2 || rest.len() < n {
            return Err(TokenError::KeyEncoding("bad DER length"));
        }
        let (len_bytes, rest) = rest.split_at(n);
        let len = len_bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, rest)
    };
    if rest.len() < len {
        return Err(TokenError::KeyEncoding("truncated"));
    }
    Ok(rest.split_at(len))
}

/// Splits one whole DER TLV (header included) off `input`: `(tlv, rest)`.
fn der_split(input: &[u8]) -> Result<(&[u8], &[u8]), TokenError> {
    let tag = *input.first().ok_or(TokenError::KeyEncoding("truncated"))?;
    let (contents, rest) = der_tlv(input, tag)?;
    let whole = input.len() - rest.len();
    debug_assert!(whole >= contents.len());
    Ok(input.split_at(whole))
}

/// The magnitude of a non-negative DER INTEGER, without its sign octet.
fn der_unsigned(contents: &[u8]) -> Result<&[u8], TokenError> {
    match contents {
        [] => Err(TokenError::KeyEncoding("empty integer")),
        [first, ..] if first & 0x80 != 0 => Err(TokenError::KeyEncoding("negative integer")),
        [0, next, ..] if next & 0x80 == 0 => Err(TokenError::KeyEncoding(
            "integer with redundant leading zero",
        )),
        [0, rest @ ..] => Ok(rest),
        _ => Ok(contents),
    }
}

/// Bit length of a big-endian magnitude (leading zero bytes allowed).
fn bit_length(be: &[u8]) -> usize {
    match be.iter().position(|&b| b != 0) {
        None => 0,
        Some(i) => {
            let first = be.get(i).copied().unwrap_or(0);
            (be.len() - i - 1) * 8 + (8 - first.leading_zeros() as usize)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_helpers_reject_malformed_integers_and_lengths() {
        assert_eq!(der_unsigned(&[0x00, 0x80]), Ok(&[0x80][..]));
        assert_eq!(der_unsigned(&[0x7f]), Ok(&[0x7f][..]));
        assert!(der_unsigned(&[0x80]).is_err());
        assert!(der_unsigned(&[0x00, 0x01]).is_err());
        assert!(der_unsigned(&[]).is_err());
        assert_eq!(
            der_tlv(&[0x02, 0x01, 0x05, 0xaa], 0x02),
            Ok((&[5][..], &[0xaa][..]))
        );
        assert!(der_tlv(&[0x02, 0x02, 0x05], 0x02).is_err());
        assert!(der_tlv(&[0x02, 0x83, 0, 0, 1, 0], 0x02).is_err());
        assert!(der_tlv(&[0x03, 0x01, 0x05], 0x02).is_err());
        assert_eq!(bit_length(&[0, 0x01, 0]), 9);
        assert_eq!(bit_length(&[0x80, 0]), 16);
        assert_eq!(bit_length(&[0, 0]), 0);
    }

    #[test]
    fn blinding_state_round_trip_and_strict_decoding() {
        let state = BlindingState {
            randomizer: [1; 32],
            inverse: [2; 256],
            blinded: [3; 256],
        };
        let bytes = state.to_secret_bytes();
        assert_eq!(bytes.len(), BLINDING_STATE_BYTES);
        let back = BlindingState::from_bytes(bytes.expose()).unwrap();
        assert_eq!(back.to_secret_bytes(), bytes);
        let mut wrong_version = bytes.expose().to_vec();
        wrong_version[0] = 2;
        assert_eq!(
            BlindingState::from_bytes(&wrong_version).err(),
            Some(DecodeError::UnsupportedVersion(2))
        );
        let mut trailing = bytes.expose().to_vec();
        trailing.push(0);
        assert_eq!(
            BlindingState::from_bytes(&trailing).err(),
            Some(DecodeError::TrailingBytes(1))
        );
        assert!(matches!(
            BlindingState::from_bytes(&bytes.expose()[..544]),
            Err(DecodeError::Truncated { .. })
        ));
        let d = format!("{state:?}");
        assert!(!d.contains('2') && !d.contains('3'), "{d}");
    }
}
