//! Sealed tally statements (SPEC R-SEAL-80 … R-SEAL-83): what a log signs
//! about a sealed campaign before its reveal. A sealed campaign has no live
//! histogram and no active count to show (its terms are encrypted), so it
//! does not get a tally statement (R-TALLY-7) that would claim "live 0":
//! it gets this one, which states only how many sealed entries (pledges
//! and amendments, `SealedState::entries` of the rules) the log holds for
//! it at a checkpoint size.
//!
//! ```text
//! <origin>/sealed-tally/v1
//! <campaign id, 64 lower-case hex digits>
//! <checkpoint size>
//! entries <n>
//! ```
//!
//! The body of a signed note (C2SP signed-note), signed by the log's key
//! like a checkpoint or a tally statement.

use crate::checkpoint::parse_decimal;
use crate::hash::CampaignId;
use crate::note::{NoteError, Verifier, open_note};

/// Suffix appended to the log origin to form a sealed statement's first
/// line. SPEC R-SEAL-80.
pub const SEALED_STATEMENT_SUFFIX: &str = "/sealed-tally/v1";

/// Why a sealed tally statement was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealedTallyError {
    /// The origin is empty, longer than 1,024 bytes or has a control
    /// character (as R-TALLY-7's).
    #[error("bad origin: {0}")]
    BadOrigin(&'static str),
    /// The body is not exactly what [`SealedTallyStatement::to_note_body`]
    /// writes (SPEC R-SEAL-81).
    #[error("malformed sealed tally statement, line {line}: {reason}")]
    Malformed {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// The note does not verify under the log's key.
    #[error("the statement's note does not verify: {0}")]
    Note(#[from] NoteError),
    /// The statement's origin is not the name of the key that signed it.
    #[error("the statement names another log")]
    WrongOrigin,
}

/// "At checkpoint size `N` of log `origin`, sealed campaign `C` has `n`
/// sealed entries". SPEC R-SEAL-80.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedTallyStatement {
    origin: String,
    checkpoint_size: u64,
    campaign: CampaignId,
    entries: u64,
}

fn check_origin(origin: &str) -> Result<(), SealedTallyError> {
    crate::tally::origin_problem(origin).map_or(Ok(()), |why| Err(SealedTallyError::BadOrigin(why)))
}

impl SealedTallyStatement {
    /// A statement for `campaign` at `checkpoint_size` of log `origin`.
    ///
    /// # Errors
    /// [`SealedTallyError::BadOrigin`].
    pub fn new(
        origin: &str,
        checkpoint_size: u64,
        campaign: CampaignId,
        entries: u64,
    ) -> Result<Self, SealedTallyError> {
        check_origin(origin)?;
        Ok(Self {
            origin: origin.to_owned(),
            checkpoint_size,
            campaign,
            entries,
        })
    }

    /// The log origin (without the suffix).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The checkpoint size the count was taken at: entries `0..size` count.
    pub fn checkpoint_size(&self) -> u64 {
        self.checkpoint_size
    }

    /// The campaign.
    pub fn campaign(&self) -> &CampaignId {
        &self.campaign
    }

    /// Sealed pledges and amendments of the campaign in the log's first
    /// `checkpoint_size` entries.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// The note body, every line ending in `\n`. SPEC R-SEAL-80.
    pub fn to_note_body(&self) -> String {
        format!(
            "{}{SEALED_STATEMENT_SUFFIX}\n{}\n{}\nentries {}\n",
            self.origin,
            self.campaign.to_hex(),
            self.checkpoint_size,
            self.entries
        )
    }

    /// Parses a body strictly: exactly what [`Self::to_note_body`] writes
    /// for some statement (SPEC R-SEAL-81). The caller still checks the
    /// note's signature and origin ([`Self::open`] does both).
    ///
    /// # Errors
    /// [`SealedTallyError::Malformed`] naming the line, or
    /// [`SealedTallyError::BadOrigin`].
    pub fn parse_note_body(body: &str) -> Result<Self, SealedTallyError> {
        let malformed =
            |line: usize, reason: &'static str| SealedTallyError::Malformed { line, reason };
        let content = body.strip_suffix('\n').ok_or_else(|| {
            malformed(body.split('\n').count(), "the body must end with a newline")
        })?;
        let lines: Vec<&str> = content.split('\n').collect();
        if lines.len() != 4 {
            return Err(malformed(
                lines.len().min(5),
                "a sealed tally statement has exactly four lines",
            ));
        }
        let origin = lines[0]
            .strip_suffix(SEALED_STATEMENT_SUFFIX)
            .ok_or_else(|| malformed(1, "first line must be <origin>/sealed-tally/v1"))?;
        check_origin(origin)?;
        let id = lines[1];
        if id.len() != 64 || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(malformed(2, "campaign id must be 64 lower-case hex digits"));
        }
        let campaign = CampaignId::from_hex(id)
            .map_err(|_| malformed(2, "campaign id must be 64 lower-case hex digits"))?;
        let checkpoint_size = parse_decimal(lines[2])
            .ok_or_else(|| malformed(3, "checkpoint size must be a canonical decimal"))?;
        let entries = lines[3]
            .strip_prefix("entries ")
            .and_then(parse_decimal)
            .ok_or_else(|| malformed(4, "expected `entries <canonical decimal>`"))?;
        Ok(Self {
            origin: origin.to_owned(),
            checkpoint_size,
            campaign,
            entries,
        })
    }

    /// Verifies a signed note of a sealed statement under the log's key and
    /// parses its body: the signature verifies under `log_key`, the body
    /// parses, and its origin is the key's name (SPEC R-SEAL-82).
    ///
    /// # Errors
    /// [`SealedTallyError::Note`], [`SealedTallyError::Malformed`],
    /// [`SealedTallyError::BadOrigin`], [`SealedTallyError::WrongOrigin`].
    pub fn open(note: &[u8], log_key: &dyn Verifier) -> Result<Self, SealedTallyError> {
        let verified = open_note(note, &[log_key])?;
        let s = Self::parse_note_body(verified.body())?;
        if s.origin != log_key.name().as_str() {
            return Err(SealedTallyError::WrongOrigin);
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::note::{KeyName, NoteSigner, sign_note};

    fn id() -> CampaignId {
        CampaignId::from_hex(&"ab".repeat(32)).unwrap()
    }

    #[test]
    fn a_statement_round_trips_through_its_body_and_a_signed_note() {
        let s = SealedTallyStatement::new("log.example", 17, id(), 2).unwrap();
        let body = s.to_note_body();
        assert_eq!(
            body,
            format!(
                "log.example/sealed-tally/v1\n{}\n17\nentries 2\n",
                "ab".repeat(32)
            )
        );
        assert_eq!(SealedTallyStatement::parse_note_body(&body).unwrap(), s);
        let signer = NoteSigner::from_seed(KeyName::new("log.example").unwrap(), &[3; 32]);
        let note = sign_note(&body, &[&signer]).unwrap().to_text();
        let opened = SealedTallyStatement::open(note.as_bytes(), &signer.verifier()).unwrap();
        assert_eq!((opened.entries(), opened.checkpoint_size()), (2, 17));
        assert_eq!(opened.campaign(), &id());
    }

    #[test]
    fn malformed_bodies_foreign_origins_and_other_keys_are_refused() {
        let good = SealedTallyStatement::new("log.example", 17, id(), 2)
            .unwrap()
            .to_note_body();
        let bad = [
            good.trim_end().to_owned(),
            good.replace("entries 2", "entries 02"),
            good.replace("entries 2", "live 2"),
            good.replace("\n17\n", "\n+17\n"),
            good.replace("/sealed-tally/v1", "/tally/v1"),
            good.replace(&"ab".repeat(32), &"AB".repeat(32)),
            format!("{good}active 0\n"),
            good.replace("\n17\n", "\n\n"),
        ];
        for b in &bad {
            assert!(
                matches!(
                    SealedTallyStatement::parse_note_body(b),
                    Err(SealedTallyError::Malformed { .. })
                ),
                "{b:?}"
            );
        }
        // Signed by another key, or naming another log: refused.
        let signer = NoteSigner::from_seed(KeyName::new("log.example").unwrap(), &[3; 32]);
        let other = NoteSigner::from_seed(KeyName::new("log.example").unwrap(), &[4; 32]);
        let note = sign_note(&good, &[&other]).unwrap().to_text();
        assert!(matches!(
            SealedTallyStatement::open(note.as_bytes(), &signer.verifier()),
            Err(SealedTallyError::Note(_))
        ));
        let elsewhere = NoteSigner::from_seed(KeyName::new("other.example").unwrap(), &[3; 32]);
        let note = sign_note(&good, &[&elsewhere]).unwrap().to_text();
        assert_eq!(
            SealedTallyStatement::open(note.as_bytes(), &elsewhere.verifier()),
            Err(SealedTallyError::WrongOrigin)
        );
    }
}
