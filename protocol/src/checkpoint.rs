//! C2SP checkpoints (<https://c2sp.org/tlog-checkpoint>): the signed tree head of
//! the ledger's log, as the body of a signed note. SPEC R-CKPT-1…R-CKPT-7.
//!
//! ```text
//! example.org/pledge/v1
//! 20852163
//! CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=
//! ```
//!
//! Origin line, decimal tree size, base64 root hash, then optional extension
//! lines (the ledger writes none), each ending in a newline.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use std::fmt;

use crate::hash::Hash;
use crate::note::{
    KeyError, KeyName, NoteError, NoteSigner, NoteVerifier, SignedNote, VerifiedNote, Verifier,
    sign_note,
};

/// Why a checkpoint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The enclosing signed note was refused.
    #[error("checkpoint note: {0}")]
    Note(#[from] NoteError),
    /// The body does not end in a newline. SPEC R-CKPT-1.
    #[error("checkpoint body must end in a newline")]
    MissingFinalNewline,
    /// Fewer than three lines. SPEC R-CKPT-1.
    #[error("checkpoint body needs an origin, a size and a root hash line")]
    TooFewLines,
    /// The origin line is not a valid key name. SPEC R-CKPT-2.
    #[error("origin line is not a valid key name: {0}")]
    BadOrigin(KeyError),
    /// The size line is not a canonical decimal u64. SPEC R-CKPT-3.
    #[error("size line must be a decimal number with no sign, spaces or leading zeros")]
    BadSize,
    /// The root line is not canonical padded base64 of 32 bytes. SPEC R-CKPT-4.
    #[error("root hash line must be the padded base64 of 32 bytes")]
    BadRoot,
    /// An extension line is empty or contains a control character. SPEC R-CKPT-5.
    #[error("extension line {0} is empty or contains a control character")]
    BadExtension(usize),
    /// The note was signed by a key whose name differs from the origin, or the
    /// signer/verifier key name does not match the origin. SPEC R-CKPT-6.
    #[error("log key name {key_name} does not match checkpoint origin {origin}")]
    OriginMismatch {
        /// Checkpoint origin.
        origin: KeyName,
        /// Log key name.
        key_name: KeyName,
    },
}

/// A checkpoint: origin, tree size, root hash, extension lines. Every value of
/// this type has a valid encoding.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Checkpoint {
    origin: KeyName,
    size: u64,
    root: Hash,
    extensions: Vec<String>,
}

impl Checkpoint {
    /// A checkpoint without extension lines (what the ledger signs, SPEC R-CKPT-5).
    pub fn new(origin: KeyName, size: u64, root: Hash) -> Self {
        Self {
            origin,
            size,
            root,
            extensions: Vec::new(),
        }
    }

    /// A checkpoint with extension lines.
    ///
    /// # Errors
    /// [`CheckpointError::BadExtension`] if a line is empty or contains a
    /// newline or another control character.
    pub fn with_extensions(
        origin: KeyName,
        size: u64,
        root: Hash,
        extensions: Vec<String>,
    ) -> Result<Self, CheckpointError> {
        for (i, e) in extensions.iter().enumerate() {
            check_extension(e, i + 1)?;
        }
        Ok(Self {
            origin,
            size,
            root,
            extensions,
        })
    }

    /// The log's origin (its identity; also its key name, SPEC R-CKPT-6).
    pub fn origin(&self) -> &KeyName {
        &self.origin
    }

    /// Number of leaves in the tree.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// RFC 6962 root hash of the tree at `size`.
    pub fn root(&self) -> &Hash {
        &self.root
    }

    /// Extension lines, without their newlines.
    pub fn extensions(&self) -> &[String] {
        &self.extensions
    }

    /// The note text: `origin\nsize\nbase64(root)\n` then `extension\n` lines.
    /// SPEC R-CKPT-1.
    pub fn to_body(&self) -> String {
        let mut out = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root.as_bytes())
        );
        for e in &self.extensions {
            out.push_str(e);
            out.push('\n');
        }
        out
    }

    /// Parses a note text strictly (SPEC R-CKPT-1…R-CKPT-5): lines end in `\n`
    /// (no CR), the origin is a valid key name, the size is canonical decimal,
    /// the root is the canonical padded base64 of 32 bytes, extension lines are
    /// non-empty, and nothing else follows.
    ///
    /// # Errors
    /// [`CheckpointError`] naming the first line at fault.
    pub fn from_body(body: &str) -> Result<Self, CheckpointError> {
        let body = body
            .strip_suffix('\n')
            .ok_or(CheckpointError::MissingFinalNewline)?;
        let mut lines = body.split('\n');
        let origin = lines.next().ok_or(CheckpointError::TooFewLines)?;
        let size = lines.next().ok_or(CheckpointError::TooFewLines)?;
        let root = lines.next().ok_or(CheckpointError::TooFewLines)?;
        let origin = KeyName::new(origin).map_err(CheckpointError::BadOrigin)?;
        let size = parse_decimal(size).ok_or(CheckpointError::BadSize)?;
        let root = parse_hash_b64(root).ok_or(CheckpointError::BadRoot)?;
        let mut extensions = Vec::new();
        for (i, e) in lines.enumerate() {
            check_extension(e, i + 1)?;
            extensions.push(e.to_owned());
        }
        Ok(Self {
            origin,
            size,
            root,
            extensions,
        })
    }

    /// Signs the checkpoint with the log key. The key name must equal the
    /// origin. SPEC R-CKPT-6.
    ///
    /// # Errors
    /// [`CheckpointError::OriginMismatch`], or note size limits.
    pub fn sign(&self, log: &NoteSigner) -> Result<SignedNote, CheckpointError> {
        if log.name() != &self.origin {
            return Err(CheckpointError::OriginMismatch {
                origin: self.origin.clone(),
                key_name: log.name().clone(),
            });
        }
        Ok(sign_note(&self.to_body(), &[log])?)
    }
}

impl fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checkpoint")
            .field("origin", &self.origin.as_str())
            .field("size", &self.size)
            .field("root", &self.root)
            .field("extensions", &self.extensions)
            .finish()
    }
}

fn check_extension(e: &str, i: usize) -> Result<(), CheckpointError> {
    if e.is_empty() || e.chars().any(|c| (c as u32) < 0x20) {
        return Err(CheckpointError::BadExtension(i));
    }
    Ok(())
}

/// Canonical ASCII decimal u64: digits only, no leading zero unless the value
/// is 0. The one decimal parser of the protocol's text: checkpoint sizes,
/// `old N` and `index N` lines, tally statements, tile paths.
pub(crate) fn parse_decimal(s: &str) -> Option<u64> {
    parse_canonical(s)
}

/// The same canonical decimal as [`parse_decimal`], as a u128 (funding sums).
pub(crate) fn parse_decimal_u128(s: &str) -> Option<u128> {
    parse_canonical(s)
}

/// Digits only, no leading zero unless the value is 0, within `T`'s range.
fn parse_canonical<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

/// One to 20 ASCII digits as a u64, leading zeros allowed (a tile path's
/// three-digit index groups); no sign, space or other digit.
pub(crate) fn parse_digits(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Canonical padded standard base64 of exactly 32 bytes (44 characters).
pub(crate) fn parse_hash_b64(s: &str) -> Option<Hash> {
    if s.len() != 44 {
        return None;
    }
    let raw = B64.decode(s).ok()?;
    let arr: [u8; 32] = raw.try_into().ok()?;
    Some(Hash(arr))
}

/// Base64 of a hash, as in checkpoints and proof lines.
pub(crate) fn hash_b64(h: &Hash) -> String {
    B64.encode(h.as_bytes())
}

/// A checkpoint whose note carries a valid signature by the log key.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    checkpoint: Checkpoint,
    note: VerifiedNote,
}

impl SignedCheckpoint {
    /// The checkpoint.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// The verified note, with every other signature line (witness
    /// cosignatures) kept.
    pub fn note(&self) -> &VerifiedNote {
        &self.note
    }

    /// The note, to add cosignatures or re-encode.
    pub fn into_note(self) -> SignedNote {
        self.note.into_note()
    }
}

impl fmt::Debug for SignedCheckpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedCheckpoint")
            .field("checkpoint", &self.checkpoint)
            .field("note", &self.note)
            .finish()
    }
}

/// Verifies an already parsed note as a checkpoint of the log `log`: the log
/// key's name must equal the origin, its signature must verify, and the body
/// must be a valid checkpoint. Other signature lines are kept unverified.
/// SPEC R-CKPT-6, R-CKPT-7.
///
/// # Errors
/// [`CheckpointError`].
pub fn verify_checkpoint(
    note: SignedNote,
    log: &NoteVerifier,
) -> Result<SignedCheckpoint, CheckpointError> {
    let checkpoint = Checkpoint::from_body(note.body())?;
    if checkpoint.origin() != log.name() {
        return Err(CheckpointError::OriginMismatch {
            origin: checkpoint.origin.clone(),
            key_name: log.name().clone(),
        });
    }
    let verifiers: [&dyn Verifier; 1] = [log];
    let note = note.verify(&verifiers)?;
    Ok(SignedCheckpoint { checkpoint, note })
}

/// Parses a signed checkpoint note and verifies it with the log key
/// ([`SignedNote::parse`] then [`verify_checkpoint`]).
///
/// # Errors
/// [`CheckpointError`].
pub fn open_checkpoint(
    text: &[u8],
    log: &NoteVerifier,
) -> Result<SignedCheckpoint, CheckpointError> {
    verify_checkpoint(SignedNote::parse(text)?, log)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_round_trip_and_strictness() {
        let b =
            "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
        let c = Checkpoint::from_body(b).unwrap();
        assert_eq!(c.size(), 20_852_163);
        assert_eq!(c.to_body(), b);
        assert_eq!(
            Checkpoint::from_body(&b.replace("20852163", "020852163")),
            Err(CheckpointError::BadSize)
        );
        assert_eq!(
            Checkpoint::from_body(&b.replace("20852163", "+20852163")),
            Err(CheckpointError::BadSize)
        );
        assert_eq!(
            Checkpoint::from_body(&format!("{b}\n")),
            Err(CheckpointError::BadExtension(1))
        );
    }

    #[test]
    fn decimal_rules() {
        assert_eq!(parse_decimal("0"), Some(0));
        assert_eq!(parse_decimal("18446744073709551615"), Some(u64::MAX));
        for bad in [
            "",
            "00",
            "01",
            "+1",
            "-1",
            " 1",
            "1 ",
            "18446744073709551616",
            "1e3",
            "\u{661}",
        ] {
            assert_eq!(parse_decimal(bad), None, "{bad:?}");
        }
        // Tile index groups keep their leading zeros.
        assert_eq!(parse_digits("007"), Some(7));
        assert_eq!(parse_digits("000"), Some(0));
        for bad in ["", "+07", "0x7", "18446744073709551616"] {
            assert_eq!(parse_digits(bad), None, "{bad:?}");
        }
    }
}
