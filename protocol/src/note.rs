//! C2SP signed notes (<https://c2sp.org/signed-note>): key names, key ids, Ed25519
//! note keys, verifier keys, signature lines, signing and opening notes.
//! SPEC R-NOTE-1…R-NOTE-12.
//!
//! A signed note is a UTF-8 text ending in a newline, a blank line, then one or
//! more signature lines `— <key name> base64(key id ‖ signature)`:
//!
//! ```text
//! If you think cryptography is the answer to your problem,
//! then you don't know what your problem is.
//!
//! — PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=
//! ```
//!
//! Parsing is strict (one byte string per note: canonical padded base64, no
//! control characters, bounded size and signature count); opening verifies every
//! signature that names a known key and keeps the others (witness cosignatures,
//! rotated keys) without trusting them.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use std::fmt;
use std::marker::PhantomData;
use zeroize::{ZeroizeOnDrop, Zeroizing};

use crate::hash::sha256;

/// Largest signed note, in bytes, that [`SignedNote::parse`] accepts and that
/// [`SignedNote::add_signature`] will produce. SPEC R-NOTE-9.
///
/// Room for 16 ML-DSA-44 cosignatures (the signed-note minimum of 16 signatures
/// with post-quantum sizes) and for 100 Ed25519 signatures with long key names.
pub const MAX_NOTE_BYTES: usize = 128 * 1024;

/// Most signature lines a note may carry. SPEC R-NOTE-9.
pub const MAX_SIGNATURES: usize = 100;

/// Signature type byte of plain Ed25519 note signatures (signed-note).
pub const SIG_TYPE_ED25519: u8 = 0x01;

/// Signature type byte of timestamped Ed25519 witness cosignatures
/// (tlog-cosignature).
pub const SIG_TYPE_COSIGNATURE_V1: u8 = 0x04;

/// The em dash (U+2014) and space that open every signature line.
pub const SIGNATURE_LINE_PREFIX: &str = "\u{2014} ";

/// Prefix of the private key text Go's `golang.org/x/mod/sumdb/note` writes.
const PRIVATE_KEY_PREFIX: &str = "PRIVATE+KEY+";

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Why a key name, a verifier key or a private key text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key name is empty, or contains a Unicode space, a `+`, or a control
    /// character. SPEC R-NOTE-1.
    #[error(
        "invalid key name: it must be non-empty and contain no spaces, no '+' and no control characters"
    )]
    InvalidName,
    /// The text is not `<name>+<8 lowercase hex>+<base64>` (or the private form
    /// with `PRIVATE+KEY+` in front). SPEC R-NOTE-4.
    #[error("malformed key text: {0}")]
    Malformed(&'static str),
    /// The key data names a signature type this key kind does not use.
    #[error("key has signature type {found:#04x}, expected {expected:#04x}")]
    WrongType {
        /// The type byte in the key text.
        found: u8,
        /// The type byte this key kind requires.
        expected: u8,
    },
    /// The key id in the text is not the one derived from the name and key.
    /// SPEC R-NOTE-2.
    #[error("key id {found} does not match the key (expected {expected})")]
    KeyIdMismatch {
        /// Key id written in the text.
        found: KeyId,
        /// Key id derived from the name and public key.
        expected: KeyId,
    },
    /// The 32 bytes are not a canonical Ed25519 point, or the point has small
    /// order. SPEC R-NOTE-3.
    #[error("not a usable Ed25519 public key (non-canonical or small order)")]
    BadPublicKey,
}

/// Why a signed note was refused. Every variant names what the sender got wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoteError {
    /// The note is longer than [`MAX_NOTE_BYTES`]. SPEC R-NOTE-9.
    #[error("note is {len} bytes, more than the {max} allowed")]
    TooLarge {
        /// Length seen.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The note is not valid UTF-8. SPEC R-NOTE-5.
    #[error("note is not valid UTF-8")]
    NotUtf8,
    /// The note contains an ASCII control character other than newline (a
    /// carriage return, a tab, a NUL…). SPEC R-NOTE-5.
    #[error("note contains a control character other than newline at byte {offset}")]
    ControlCharacter {
        /// Byte offset of the character.
        offset: usize,
    },
    /// The body (note text) is empty or does not end in a newline. SPEC R-NOTE-6.
    #[error("note text must be non-empty and end in a newline")]
    BodyMissingFinalNewline,
    /// No blank line separates the text from a signature block. SPEC R-NOTE-6.
    #[error("note has no blank line followed by signature lines")]
    MissingSignatureBlock,
    /// The last signature line does not end in a newline. SPEC R-NOTE-6.
    #[error("note does not end in a newline")]
    MissingFinalNewline,
    /// A signature line is malformed. SPEC R-NOTE-7.
    #[error("signature line {line} is malformed: {reason}")]
    MalformedSignatureLine {
        /// 1-based index of the signature line in the signature block.
        line: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// More than [`MAX_SIGNATURES`] signature lines. SPEC R-NOTE-9.
    #[error("note has more than {max} signatures")]
    TooManySignatures {
        /// The limit.
        max: usize,
    },
    /// A signature names a known key (name and key id) but does not verify.
    /// SPEC R-NOTE-10.
    #[error("invalid signature for key {name}+{key_id}")]
    InvalidSignature {
        /// Key name on the line.
        name: KeyName,
        /// Key id on the line.
        key_id: KeyId,
    },
    /// Two configured verifiers share a name and key id, and a signature names
    /// them: the configuration is wrong. SPEC R-NOTE-10.
    #[error("ambiguous key {name}+{key_id}: two configured verifiers share it")]
    AmbiguousKey {
        /// Key name.
        name: KeyName,
        /// Key id.
        key_id: KeyId,
    },
    /// No signature from a known key verified. SPEC R-NOTE-11.
    #[error("note has no valid signature from a known key")]
    NoVerifiedSignature,
    /// `sign_note` was called without signers.
    #[error("at least one signer is needed")]
    NoSigners,
}

// ---------------------------------------------------------------------------
// Key names and key ids
// ---------------------------------------------------------------------------

/// A key name: non-empty, no Unicode white space, no `+`, no control
/// characters. SPEC R-NOTE-1. (The signed-note rule is "non-empty, no Unicode
/// spaces, no `+`"; control characters are excluded too because a note may not
/// contain them.)
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyName(String);

impl KeyName {
    /// Validates `name`.
    ///
    /// # Errors
    /// [`KeyError::InvalidName`].
    pub fn new(name: impl Into<String>) -> Result<Self, KeyError> {
        let name = name.into();
        if is_valid_key_name(&name) {
            Ok(Self(name))
        } else {
            Err(KeyError::InvalidName)
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// True if `name` is a valid key name (SPEC R-NOTE-1). Rust's
/// `char::is_whitespace` is the Unicode `White_Space` property, the same set as
/// Go's `unicode.IsSpace`.
pub fn is_valid_key_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c == '+' || c.is_control())
}

impl fmt::Debug for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyName({:?})", self.0)
    }
}

impl fmt::Display for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for KeyName {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        Self::new(s)
    }
}

impl AsRef<str> for KeyName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A 32-bit key id: the first four bytes of
/// `SHA-256(name ‖ 0x0A ‖ type ‖ public key)`, big-endian. Displayed as 8
/// lower-case hex digits. SPEC R-NOTE-2.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub u32);

impl KeyId {
    /// The four bytes as they open a signature.
    pub fn to_bytes(self) -> [u8; 4] {
        self.0.to_be_bytes()
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({:08x})", self.0)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

/// `SHA-256(name ‖ 0x0A ‖ signature_type ‖ public_key)[:4]` as a big-endian
/// integer. SPEC R-NOTE-2.
pub fn key_id(name: &KeyName, signature_type: u8, public_key: &[u8]) -> KeyId {
    let d = sha256(&[
        name.as_str().as_bytes(),
        b"\n",
        &[signature_type],
        public_key,
    ]);
    KeyId(u32::from_be_bytes([d[0], d[1], d[2], d[3]]))
}

// ---------------------------------------------------------------------------
// Key text (shared with cosignature.rs)
// ---------------------------------------------------------------------------

/// Parses a checked Ed25519 public key. SPEC R-NOTE-3.
pub(crate) fn ed25519_public_key(bytes: &[u8; 32]) -> Result<VerifyingKey, KeyError> {
    let k = VerifyingKey::from_bytes(bytes).map_err(|_| KeyError::BadPublicKey)?;
    // `from_bytes` accepts y ≥ p; re-compressing gives the canonical encoding.
    if k.is_weak() || k.to_edwards().compress().as_bytes() != bytes {
        return Err(KeyError::BadPublicKey);
    }
    Ok(k)
}

/// Parses exactly 8 lower-case hex digits. SPEC R-NOTE-4.
fn parse_key_id_hex(s: &str) -> Result<KeyId, KeyError> {
    if s.len() != 8
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(KeyError::Malformed(
            "key id must be 8 lower-case hex digits",
        ));
    }
    u32::from_str_radix(s, 16)
        .map(KeyId)
        .map_err(|_| KeyError::Malformed("key id must be 8 lower-case hex digits"))
}

/// Splits `<name>+<keyid>+<base64>` (the base64 may itself contain `+`).
fn split_key_text(s: &str) -> Result<(KeyName, KeyId, &str), KeyError> {
    let (name, rest) = s
        .split_once('+')
        .ok_or(KeyError::Malformed("expected <name>+<key id>+<key>"))?;
    let (id, b64) = rest
        .split_once('+')
        .ok_or(KeyError::Malformed("expected <name>+<key id>+<key>"))?;
    let name = KeyName::new(name)?;
    let id = parse_key_id_hex(id)?;
    Ok((name, id, b64))
}

/// Parses a verifier key `<name>+<hex key id>+<base64(type ‖ 32-byte key)>` of
/// the given type and checks its key id. SPEC R-NOTE-4.
pub(crate) fn parse_vkey(
    s: &str,
    expected_type: u8,
) -> Result<(KeyName, KeyId, VerifyingKey), KeyError> {
    let (name, id, b64) = split_key_text(s)?;
    let raw = B64
        .decode(b64)
        .map_err(|_| KeyError::Malformed("key data is not canonical padded base64"))?;
    let (&ty, key) = raw
        .split_first()
        .ok_or(KeyError::Malformed("empty key data"))?;
    if ty != expected_type {
        return Err(KeyError::WrongType {
            found: ty,
            expected: expected_type,
        });
    }
    let key: [u8; 32] = key
        .try_into()
        .map_err(|_| KeyError::Malformed("an Ed25519 key is 32 bytes"))?;
    let expected = key_id(&name, expected_type, &key);
    if id != expected {
        return Err(KeyError::KeyIdMismatch {
            found: id,
            expected,
        });
    }
    let vk = ed25519_public_key(&key)?;
    Ok((name, id, vk))
}

/// Formats a verifier key. SPEC R-NOTE-4.
pub(crate) fn format_vkey(name: &KeyName, id: KeyId, ty: u8, key: &VerifyingKey) -> String {
    let mut data = [0u8; 33];
    data[0] = ty;
    data[1..].copy_from_slice(key.as_bytes());
    format!("{name}+{id}+{}", B64.encode(data))
}

/// Parses `PRIVATE+KEY+<name>+<hex key id>+<base64(type ‖ 32-byte seed)>` and
/// checks the key id against the derived public key. SPEC R-NOTE-8.
pub(crate) fn parse_private_key_text(
    s: &str,
    ty: u8,
) -> Result<(KeyName, KeyId, SigningKey), KeyError> {
    let rest = s
        .strip_prefix(PRIVATE_KEY_PREFIX)
        .ok_or(KeyError::Malformed(
            "private key text must start with PRIVATE+KEY+",
        ))?;
    let (name, id, b64) = split_key_text(rest)?;
    let raw = Zeroizing::new(
        B64.decode(b64)
            .map_err(|_| KeyError::Malformed("key data is not canonical padded base64"))?,
    );
    let (&found, seed) = raw
        .split_first()
        .ok_or(KeyError::Malformed("empty key data"))?;
    if found != ty {
        return Err(KeyError::WrongType {
            found,
            expected: ty,
        });
    }
    let mut seed_arr = Zeroizing::new([0u8; 32]);
    if seed.len() != 32 {
        return Err(KeyError::Malformed("an Ed25519 seed is 32 bytes"));
    }
    seed_arr.copy_from_slice(seed);
    let sk = SigningKey::from_bytes(&seed_arr);
    let expected = key_id(&name, ty, sk.verifying_key().as_bytes());
    if id != expected {
        return Err(KeyError::KeyIdMismatch {
            found: id,
            expected,
        });
    }
    Ok((name, id, sk))
}

/// Formats the private key text. The result is secret.
pub(crate) fn format_private_key_text(
    name: &KeyName,
    id: KeyId,
    ty: u8,
    sk: &SigningKey,
) -> Zeroizing<String> {
    let mut data = Zeroizing::new([0u8; 33]);
    data[0] = ty;
    data[1..].copy_from_slice(sk.as_bytes());
    let b64 = Zeroizing::new(B64.encode(data.as_ref()));
    Zeroizing::new(format!("{PRIVATE_KEY_PREFIX}{name}+{id}+{}", b64.as_str()))
}

/// A fresh 32-byte seed from the operating system's CSPRNG.
pub(crate) fn random_seed() -> Result<Zeroizing<[u8; 32]>, getrandom::Error> {
    let mut seed = Zeroizing::new([0u8; 32]);
    getrandom::fill(seed.as_mut())?;
    Ok(seed)
}

// ---------------------------------------------------------------------------
// Verifiers and signers
// ---------------------------------------------------------------------------

/// Something that can check signatures of one key in a note: a log key
/// ([`NoteVerifier`]) or a witness key (`cosignature::WitnessVerifier`).
pub trait Verifier {
    /// The key name signature lines carry.
    fn name(&self) -> &KeyName;
    /// The key id signature lines carry.
    fn key_id(&self) -> KeyId;
    /// True if `signature` (the bytes after the key id) is valid for the note
    /// text `body` under this key's signature algorithm.
    fn verify(&self, body: &[u8], signature: &[u8]) -> bool;
}

/// What an Ed25519 note key signs, named by its signature type byte (SPEC
/// R-NOTE-2): [`PlainNote`] (0x01, log keys) or
/// [`CosignatureV1`](crate::cosignature::CosignatureV1) (0x04, witness keys).
/// Everything else about the key (seeds, key ids, key texts) is the same,
/// so [`Ed25519Signer`] and [`Ed25519Verifier`] are written once for both.
/// Sealed: the protocol has exactly these two kinds.
pub trait KeyKind: sealed::Sealed + Clone + Copy + PartialEq + Eq + 'static {
    /// The signature type byte in key ids and key texts.
    const SIG_TYPE: u8;
    /// The signer's name in `Debug` output.
    const SIGNER: &'static str;
    /// The verifier's name in `Debug` output.
    const VERIFIER: &'static str;
    /// True if `signature` (the bytes after the key id) is valid for the
    /// note text `body` under `key`.
    fn verify(key: &Ed25519Verifier<Self>, body: &[u8], signature: &[u8]) -> bool;
}

pub(crate) mod sealed {
    /// Keeps [`super::KeyKind`] to this crate's kinds.
    pub trait Sealed {}
}

/// Plain Ed25519 note signatures (signature type 0x01): the log's checkpoint
/// and tally-statement key. SPEC R-NOTE-3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlainNote {}

impl sealed::Sealed for PlainNote {}

impl KeyKind for PlainNote {
    const SIG_TYPE: u8 = SIG_TYPE_ED25519;
    const SIGNER: &'static str = "NoteSigner";
    const VERIFIER: &'static str = "NoteVerifier";
    /// Strict RFC 8032 verification (canonical S, no small-order R or A).
    fn verify(key: &Ed25519Verifier<Self>, body: &[u8], signature: &[u8]) -> bool {
        key.verify_strict(body, signature)
    }
}

/// An Ed25519 note verifier key of kind `K`: a log key ([`NoteVerifier`]) or
/// a witness key ([`WitnessVerifier`](crate::cosignature::WitnessVerifier)).
/// SPEC R-NOTE-3, R-NOTE-4, R-COSIG-1, R-COSIG-4.
#[derive(Clone, PartialEq, Eq)]
pub struct Ed25519Verifier<K: KeyKind> {
    name: KeyName,
    key_id: KeyId,
    key: VerifyingKey,
    kind: PhantomData<K>,
}

/// An Ed25519 note verifier key (signature type 0x01). SPEC R-NOTE-3, R-NOTE-4.
pub type NoteVerifier = Ed25519Verifier<PlainNote>;

impl<K: KeyKind> Ed25519Verifier<K> {
    fn from_parts(name: KeyName, key_id: KeyId, key: VerifyingKey) -> Self {
        Self {
            name,
            key_id,
            key,
            kind: PhantomData,
        }
    }

    /// Builds a verifier from a name and a 32-byte Ed25519 public key.
    ///
    /// # Errors
    /// [`KeyError::BadPublicKey`] for a non-canonical or small-order point.
    pub fn new(name: KeyName, public_key: &[u8; 32]) -> Result<Self, KeyError> {
        let key = ed25519_public_key(public_key)?;
        let key_id = key_id(&name, K::SIG_TYPE, public_key);
        Ok(Self::from_parts(name, key_id, key))
    }

    /// Parses the verifier key text `<name>+<hex key id>+<base64(type ‖ key)>`,
    /// strictly: lower-case hex, canonical padded base64, this kind's type
    /// byte (a key of the other kind is refused: convert explicitly with
    /// [`Ed25519Verifier::new`] if you must), 32-byte canonical point, key id
    /// equal to the derived one. SPEC R-NOTE-4, R-COSIG-4.
    ///
    /// # Errors
    /// [`KeyError`] saying which part is wrong.
    pub fn from_text(s: &str) -> Result<Self, KeyError> {
        let (name, key_id, key) = parse_vkey(s, K::SIG_TYPE)?;
        Ok(Self::from_parts(name, key_id, key))
    }

    /// The verifier key text (what [`Ed25519Verifier::from_text`] parses).
    pub fn to_text(&self) -> String {
        format_vkey(&self.name, self.key_id, K::SIG_TYPE, &self.key)
    }

    /// The key name.
    pub fn name(&self) -> &KeyName {
        &self.name
    }

    /// The key id (of this kind's type byte).
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The raw Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// Strict RFC 8032 verification of a 64-byte signature on `msg`.
    pub(crate) fn verify_strict(&self, msg: &[u8], signature: &[u8]) -> bool {
        let Ok(sig) = <[u8; 64]>::try_from(signature) else {
            return false;
        };
        self.key
            .verify_strict(msg, &ed25519_dalek::Signature::from_bytes(&sig))
            .is_ok()
    }
}

impl<K: KeyKind> Verifier for Ed25519Verifier<K> {
    fn name(&self) -> &KeyName {
        &self.name
    }
    fn key_id(&self) -> KeyId {
        self.key_id
    }
    fn verify(&self, body: &[u8], signature: &[u8]) -> bool {
        K::verify(self, body, signature)
    }
}

impl<K: KeyKind> fmt::Debug for Ed25519Verifier<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", K::VERIFIER, self.to_text())
    }
}

impl<K: KeyKind> fmt::Display for Ed25519Verifier<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

impl<K: KeyKind> std::str::FromStr for Ed25519Verifier<K> {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        Self::from_text(s)
    }
}

/// An Ed25519 note signing key of kind `K`: the log's checkpoint key
/// ([`NoteSigner`]) or a witness's cosigning key
/// ([`WitnessSigner`](crate::cosignature::WitnessSigner)). Zeroized on drop,
/// no `Clone`, `Debug` shows only the name and key id. SPEC R-NOTE-8,
/// R-COSIG-1.
#[derive(ZeroizeOnDrop)]
pub struct Ed25519Signer<K: KeyKind> {
    #[zeroize(skip)]
    name: KeyName,
    #[zeroize(skip)]
    key_id: KeyId,
    key: SigningKey,
    #[zeroize(skip)]
    kind: PhantomData<K>,
}

/// An Ed25519 note signing key (the log's checkpoint key, type 0x01).
/// SPEC R-NOTE-8.
pub type NoteSigner = Ed25519Signer<PlainNote>;

impl<K: KeyKind> Ed25519Signer<K> {
    fn from_parts(name: KeyName, key_id: KeyId, key: SigningKey) -> Self {
        Self {
            name,
            key_id,
            key,
            kind: PhantomData,
        }
    }

    /// Rebuilds a signer from its name and 32-byte Ed25519 seed.
    pub fn from_seed(name: KeyName, seed: &[u8; 32]) -> Self {
        let key = SigningKey::from_bytes(seed);
        let key_id = key_id(&name, K::SIG_TYPE, key.verifying_key().as_bytes());
        Self::from_parts(name, key_id, key)
    }

    /// A fresh key from the operating system's CSPRNG.
    ///
    /// # Errors
    /// [`getrandom::Error`] if the OS has no randomness to give.
    pub fn generate(name: KeyName) -> Result<Self, getrandom::Error> {
        let seed = random_seed()?;
        Ok(Self::from_seed(name, &seed))
    }

    /// Parses Go's private key text
    /// `PRIVATE+KEY+<name>+<hex key id>+<base64(type ‖ seed)>` (the file an
    /// operator stores; for a witness key, the form transparency-dev's
    /// `NewSignerForCosignatureV1` reads), checking this kind's type byte and
    /// the key id. SPEC R-NOTE-8, R-COSIG-1.
    ///
    /// # Errors
    /// [`KeyError`] saying which part is wrong (never echoing key material).
    pub fn from_private_key_text(s: &str) -> Result<Self, KeyError> {
        let (name, key_id, key) =
            parse_private_key_text(s.strip_suffix('\n').unwrap_or(s), K::SIG_TYPE)?;
        Ok(Self::from_parts(name, key_id, key))
    }

    /// The private key text, in a zeroizing string. Store it as a secret.
    pub fn to_private_key_text(&self) -> Zeroizing<String> {
        format_private_key_text(&self.name, self.key_id, K::SIG_TYPE, &self.key)
    }

    /// The matching verifier.
    pub fn verifier(&self) -> Ed25519Verifier<K> {
        Ed25519Verifier::from_parts(self.name.clone(), self.key_id, self.key.verifying_key())
    }

    /// The key name.
    pub fn name(&self) -> &KeyName {
        &self.name
    }

    /// The key id (of this kind's type byte).
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The signature line carrying `signature` under this key's name and id.
    pub(crate) fn signature_line(&self, signature: Vec<u8>) -> NoteSignature {
        NoteSignature::from_parts(self.name.clone(), self.key_id, signature)
    }

    /// The Ed25519 signature of `msg`.
    pub(crate) fn sign_raw(&self, msg: &[u8]) -> [u8; 64] {
        self.key.sign(msg).to_bytes()
    }
}

impl NoteSigner {
    /// Signs `body` (a note text) and returns the signature line. Callers
    /// normally use [`sign_note`] or [`SignedNote::sign`], which check the body.
    pub fn sign(&self, body: &[u8]) -> NoteSignature {
        self.signature_line(self.sign_raw(body).to_vec())
    }
}

impl<K: KeyKind> fmt::Debug for Ed25519Signer<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(K::SIGNER)
            .field("name", &self.name)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

// ---------------------------------------------------------------------------
// Signature lines
// ---------------------------------------------------------------------------

/// One signature line: `— <name> base64(key id ‖ signature)`. SPEC R-NOTE-7.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct NoteSignature {
    name: KeyName,
    key_id: KeyId,
    signature: Vec<u8>,
}

impl NoteSignature {
    /// Assembles a signature line from its parts.
    ///
    /// # Errors
    /// [`NoteError::MalformedSignatureLine`] if `signature` is empty.
    pub fn new(name: KeyName, key_id: KeyId, signature: Vec<u8>) -> Result<Self, NoteError> {
        if signature.is_empty() {
            return Err(NoteError::MalformedSignatureLine {
                line: 1,
                reason: "empty signature",
            });
        }
        Ok(Self {
            name,
            key_id,
            signature,
        })
    }

    /// Crate-internal constructor for signatures made here (never empty).
    pub(crate) fn from_parts(name: KeyName, key_id: KeyId, signature: Vec<u8>) -> Self {
        Self {
            name,
            key_id,
            signature,
        }
    }

    /// Parses one line without its final newline. `line` is the 1-based position
    /// used in errors.
    fn parse_line(text: &str, line: usize) -> Result<Self, NoteError> {
        let bad = |reason| NoteError::MalformedSignatureLine { line, reason };
        let rest = text
            .strip_prefix(SIGNATURE_LINE_PREFIX)
            .ok_or(bad("does not start with an em dash (U+2014) and a space"))?;
        let (name, b64) = rest
            .split_once(' ')
            .ok_or(bad("expected a key name, a space and a base64 signature"))?;
        let name = KeyName::new(name).map_err(|_| bad("invalid key name"))?;
        if b64.is_empty() {
            return Err(bad("empty signature"));
        }
        let raw = B64
            .decode(b64)
            .map_err(|_| bad("signature is not canonical padded base64"))?;
        if raw.len() < 5 {
            return Err(bad("signature shorter than a key id and one byte"));
        }
        let (id, sig) = raw.split_at(4);
        let key_id = KeyId(u32::from_be_bytes([id[0], id[1], id[2], id[3]]));
        Ok(Self {
            name,
            key_id,
            signature: sig.to_vec(),
        })
    }

    /// Parses one signature line; a final newline is optional.
    ///
    /// # Errors
    /// [`NoteError::MalformedSignatureLine`] or [`NoteError::ControlCharacter`].
    pub fn from_line(line: &str) -> Result<Self, NoteError> {
        let line = line.strip_suffix('\n').unwrap_or(line);
        check_note_chars(line)?;
        Self::parse_line(line, 1)
    }

    /// The line, with its final newline.
    pub fn to_line(&self) -> String {
        let mut raw = Vec::with_capacity(4 + self.signature.len());
        raw.extend_from_slice(&self.key_id.to_bytes());
        raw.extend_from_slice(&self.signature);
        format!("{SIGNATURE_LINE_PREFIX}{} {}\n", self.name, B64.encode(raw))
    }

    /// Key name on the line.
    pub fn name(&self) -> &KeyName {
        &self.name
    }

    /// Key id on the line.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// Signature bytes after the key id.
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }

    fn same_key(&self, name: &KeyName, key_id: KeyId) -> bool {
        self.key_id == key_id && &self.name == name
    }
}

impl fmt::Debug for NoteSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.to_line().trim_end())
    }
}

// ---------------------------------------------------------------------------
// Notes
// ---------------------------------------------------------------------------

/// Signed-note text rules: no ASCII control character other than newline.
/// SPEC R-NOTE-5.
fn check_note_chars(s: &str) -> Result<(), NoteError> {
    match s.bytes().position(|b| b < 0x20 && b != b'\n') {
        Some(offset) => Err(NoteError::ControlCharacter { offset }),
        None => Ok(()),
    }
}

/// Checks a note text (body): non-empty, ends in newline, no control characters,
/// leaves room for at least one signature. SPEC R-NOTE-5, R-NOTE-6.
fn check_body(body: &str) -> Result<(), NoteError> {
    if !body.ends_with('\n') {
        return Err(NoteError::BodyMissingFinalNewline);
    }
    check_note_chars(body)?;
    if body.len() >= MAX_NOTE_BYTES {
        return Err(NoteError::TooLarge {
            len: body.len(),
            max: MAX_NOTE_BYTES,
        });
    }
    Ok(())
}

/// A parsed signed note: its text and every signature line, in order, none of
/// them verified yet. `parse(x).to_text() == x` for every accepted `x`.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedNote {
    body: String,
    signatures: Vec<NoteSignature>,
}

impl SignedNote {
    /// Parses a signed note strictly (SPEC R-NOTE-5…R-NOTE-9): at most
    /// [`MAX_NOTE_BYTES`], UTF-8, no control characters but newline, text and
    /// signatures split at the last blank line, the text ends in newline, each
    /// signature line well formed with canonical padded base64, at most
    /// [`MAX_SIGNATURES`] lines, a final newline. Signatures are not verified.
    ///
    /// # Errors
    /// [`NoteError`] naming the first rule broken.
    pub fn parse(text: &[u8]) -> Result<Self, NoteError> {
        if text.len() > MAX_NOTE_BYTES {
            return Err(NoteError::TooLarge {
                len: text.len(),
                max: MAX_NOTE_BYTES,
            });
        }
        // SPEC R-NOTE-5
        let text = std::str::from_utf8(text).map_err(|_| NoteError::NotUtf8)?;
        check_note_chars(text)?;
        // SPEC R-NOTE-6: the text ends at the last blank line.
        let split = text.rfind("\n\n").ok_or(NoteError::MissingSignatureBlock)?;
        let (body, sigs) = text.split_at(split + 1);
        let sigs = sigs.get(1..).unwrap_or("");
        if sigs.is_empty() {
            return Err(NoteError::MissingSignatureBlock);
        }
        let sigs = sigs
            .strip_suffix('\n')
            .ok_or(NoteError::MissingFinalNewline)?;
        let mut signatures = Vec::new();
        for (i, line) in sigs.split('\n').enumerate() {
            if i >= MAX_SIGNATURES {
                return Err(NoteError::TooManySignatures {
                    max: MAX_SIGNATURES,
                });
            }
            signatures.push(NoteSignature::parse_line(line, i + 1)?);
        }
        Ok(Self {
            body: body.to_owned(),
            signatures,
        })
    }

    /// The note text (body), including its final newline.
    pub fn body(&self) -> &str {
        &self.body
    }

    /// Every signature line, in order.
    pub fn signatures(&self) -> &[NoteSignature] {
        &self.signatures
    }

    /// The encoded note: body, blank line, signature lines.
    pub fn to_text(&self) -> String {
        let mut out = String::with_capacity(self.encoded_len());
        out.push_str(&self.body);
        out.push('\n');
        for s in &self.signatures {
            out.push_str(&s.to_line());
        }
        out
    }

    fn encoded_len(&self) -> usize {
        self.body.len()
            + 1
            + self
                .signatures
                .iter()
                .map(|s| signature_line_len(s.name.as_str(), 4 + s.signature.len()))
                .sum::<usize>()
    }

    /// Adds a signature line, replacing an existing one with the same key name
    /// and key id (a witness re-cosigning, a log re-signing). This is how
    /// witness cosignatures are appended to a checkpoint. The signature is not
    /// verified here. SPEC R-NOTE-12.
    ///
    /// # Errors
    /// [`NoteError::TooManySignatures`] or [`NoteError::TooLarge`] if the note
    /// would exceed the limits a verifier accepts (SPEC R-NOTE-9).
    pub fn add_signature(&mut self, sig: NoteSignature) -> Result<(), NoteError> {
        let mut next: Vec<NoteSignature> = self
            .signatures
            .iter()
            .filter(|s| !s.same_key(&sig.name, sig.key_id))
            .cloned()
            .collect();
        next.push(sig);
        if next.len() > MAX_SIGNATURES {
            return Err(NoteError::TooManySignatures {
                max: MAX_SIGNATURES,
            });
        }
        let candidate = Self {
            body: self.body.clone(),
            signatures: next,
        };
        let len = candidate.encoded_len();
        if len > MAX_NOTE_BYTES {
            return Err(NoteError::TooLarge {
                len,
                max: MAX_NOTE_BYTES,
            });
        }
        *self = candidate;
        Ok(())
    }

    /// Signs the body with `signer` and adds the signature (replacing an older
    /// one by the same key).
    ///
    /// # Errors
    /// As [`SignedNote::add_signature`].
    pub fn sign(&mut self, signer: &NoteSigner) -> Result<(), NoteError> {
        let sig = signer.sign(self.body.as_bytes());
        self.add_signature(sig)
    }

    /// Verifies the note against `verifiers`. SPEC R-NOTE-10, R-NOTE-11:
    ///
    /// - a signature whose key name and key id both match a verifier is
    ///   verified, every time it appears; one failure rejects the whole note;
    /// - a signature matching no verifier (even if it shares the name or the id,
    ///   but not both) is kept but not trusted;
    /// - at least one signature from a known key must verify.
    ///
    /// # Errors
    /// [`NoteError::InvalidSignature`], [`NoteError::AmbiguousKey`] or
    /// [`NoteError::NoVerifiedSignature`].
    pub fn verify(self, verifiers: &[&dyn Verifier]) -> Result<VerifiedNote, NoteError> {
        let mut verified: Vec<usize> = Vec::new();
        for (i, sig) in self.signatures.iter().enumerate() {
            let mut matching = verifiers
                .iter()
                .filter(|v| sig.same_key(v.name(), v.key_id()));
            let Some(v) = matching.next() else {
                continue;
            };
            if matching.next().is_some() {
                return Err(NoteError::AmbiguousKey {
                    name: sig.name.clone(),
                    key_id: sig.key_id,
                });
            }
            // SPEC R-NOTE-10: every line naming a known key is checked.
            if !v.verify(self.body.as_bytes(), &sig.signature) {
                return Err(NoteError::InvalidSignature {
                    name: sig.name.clone(),
                    key_id: sig.key_id,
                });
            }
            // Report each key once, even if it signed twice.
            let seen = verified.iter().any(|&j| {
                self.signatures
                    .get(j)
                    .is_some_and(|s| s.same_key(&sig.name, sig.key_id))
            });
            if !seen {
                verified.push(i);
            }
        }
        // SPEC R-NOTE-11
        if verified.is_empty() {
            return Err(NoteError::NoVerifiedSignature);
        }
        Ok(VerifiedNote {
            note: self,
            verified,
        })
    }
}

fn signature_line_len(name: &str, raw_len: usize) -> usize {
    SIGNATURE_LINE_PREFIX.len() + name.len() + 1 + raw_len.div_ceil(3) * 4 + 1
}

impl fmt::Debug for SignedNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedNote")
            .field("body", &self.body)
            .field("signatures", &self.signatures)
            .finish()
    }
}

impl fmt::Display for SignedNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

/// A note with at least one signature from a known key verified. Only
/// [`SignedNote::verify`] (or [`open_note`]) makes one.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifiedNote {
    note: SignedNote,
    /// Indices into `note.signatures` of verified signatures, one per key.
    verified: Vec<usize>,
}

impl VerifiedNote {
    /// The verified note text.
    pub fn body(&self) -> &str {
        &self.note.body
    }

    /// The whole note, including signatures from unknown keys (to pass on,
    /// e.g. with witness cosignatures).
    pub fn note(&self) -> &SignedNote {
        &self.note
    }

    /// Gives the note back (to add cosignatures and re-encode it).
    pub fn into_note(self) -> SignedNote {
        self.note
    }

    /// Signatures that verified, one per key, in note order.
    pub fn verified_signatures(&self) -> impl Iterator<Item = &NoteSignature> {
        self.verified
            .iter()
            .filter_map(|&i| self.note.signatures.get(i))
    }

    /// Signatures from keys the caller did not configure: kept, not trusted.
    pub fn unverified_signatures(&self) -> impl Iterator<Item = &NoteSignature> {
        self.note.signatures.iter().filter(|s| {
            !self
                .verified_signatures()
                .any(|v| s.same_key(&v.name, v.key_id))
        })
    }

    /// True if the key `name`+`key_id` signed the note and its signature
    /// verified.
    pub fn is_verified_by(&self, name: &KeyName, key_id: KeyId) -> bool {
        self.verified_signatures().any(|s| s.same_key(name, key_id))
    }
}

impl fmt::Debug for VerifiedNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedNote")
            .field("note", &self.note)
            .field("verified", &self.verified)
            .finish()
    }
}

/// Signs `body` with every signer and returns the note. The body must be a
/// valid note text: non-empty, ending in newline, no control characters but
/// newline (SPEC R-NOTE-5, R-NOTE-6).
///
/// # Errors
/// [`NoteError::NoSigners`], [`NoteError::BodyMissingFinalNewline`],
/// [`NoteError::ControlCharacter`], or size limits.
pub fn sign_note(body: &str, signers: &[&NoteSigner]) -> Result<SignedNote, NoteError> {
    check_body(body)?;
    if signers.is_empty() {
        return Err(NoteError::NoSigners);
    }
    let mut note = SignedNote {
        body: body.to_owned(),
        signatures: Vec::new(),
    };
    for s in signers {
        note.sign(s)?;
    }
    Ok(note)
}

/// Parses and verifies a signed note: [`SignedNote::parse`] then
/// [`SignedNote::verify`].
///
/// # Errors
/// Any [`NoteError`].
pub fn open_note(text: &[u8], verifiers: &[&dyn Verifier]) -> Result<VerifiedNote, NoteError> {
    SignedNote::parse(text)?.verify(verifiers)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const PETER_SKEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";

    #[test]
    fn key_names() {
        assert!(KeyName::new("example.com/log").is_ok());
        for bad in [
            "",
            "a b",
            "a+b",
            "a\u{a0}b",
            "a\u{3000}b",
            "a\u{1}b",
            "a\tb",
        ] {
            assert_eq!(KeyName::new(bad), Err(KeyError::InvalidName), "{bad:?}");
        }
    }

    #[test]
    fn go_private_key_round_trips_and_matches_vkey() {
        let s = NoteSigner::from_private_key_text(PETER_SKEY).unwrap();
        assert_eq!(s.to_private_key_text().as_str(), PETER_SKEY);
        assert_eq!(s.verifier().to_text(), PETER_VKEY);
        assert_eq!(s.key_id(), KeyId(0xc74f20a3));
        let d = format!("{s:?}");
        assert!(!d.contains("AYEK") && d.contains("PeterNeumann"), "{d}");
    }

    #[test]
    fn add_signature_replaces_same_key() {
        let s = NoteSigner::from_seed(KeyName::new("k").unwrap(), &[7; 32]);
        let mut n = sign_note("hi\n", &[&s]).unwrap();
        n.sign(&s).unwrap();
        assert_eq!(n.signatures().len(), 1);
        let other = NoteSigner::from_seed(KeyName::new("j").unwrap(), &[8; 32]);
        n.sign(&other).unwrap();
        assert_eq!(n.signatures().len(), 2);
        assert_eq!(n.encoded_len(), n.to_text().len());
    }
}
