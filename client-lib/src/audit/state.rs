//! The auditor's state directory (`--state DIR`, SPEC R-AUDIT-13): the pinned
//! log key, the last checkpoint verified, how far entry signatures were
//! verified, and a cache of full entry bundles so later runs fetch only what
//! is new.
//!
//! ```text
//! DIR/state.json          written atomically (temporary file, fsync, rename, fsync DIR)
//! DIR/bundles/<N>         full entry bundle N (256 entries), exactly as served
//! ```

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use pledge_protocol::hash::Hash;
use serde::{Deserialize, Serialize};

use super::{AuditError, StateError};

/// The format tag of `state.json`.
pub(crate) const FORMAT: &str = "pledge-audit-state/v1";
const STATE_FILE: &str = "state.json";
const BUNDLES: &str = "bundles";

/// `state.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StateFile {
    /// [`FORMAT`].
    pub format: String,
    /// The server audited (informational).
    pub server: String,
    /// The pinned log verifier key text.
    pub log_key: String,
    /// The last checkpoint verified: the full signed note.
    pub checkpoint: String,
    /// Its size.
    pub size: u64,
    /// Its root, standard base64.
    pub root: String,
    /// Entries `0..verified_entries` passed decoding and their token and
    /// pledge-key checks.
    pub verified_entries: u64,
    /// Bundles `0..cached_bundles` are in `bundles/`.
    pub cached_bundles: u64,
    /// Root (standard base64) of the tree of the first `cached_bundles × 256`
    /// entries: the cache is checked against it before it is trusted.
    pub cache_root: String,
}

impl StateFile {
    /// The root as a hash.
    pub(crate) fn root_hash(&self) -> Result<Hash, StateError> {
        decode_hash(&self.root).ok_or(StateError::BadHash("root"))
    }

    /// The cache root as a hash.
    pub(crate) fn cache_root_hash(&self) -> Result<Hash, StateError> {
        decode_hash(&self.cache_root).ok_or(StateError::BadHash("cache_root"))
    }
}

fn decode_hash(s: &str) -> Option<Hash> {
    let bytes = B64.decode(s).ok()?;
    Some(Hash(bytes.try_into().ok()?))
}

/// Standard base64 of a hash.
pub(crate) fn hash_b64(h: &Hash) -> String {
    B64.encode(h.as_bytes())
}

/// An opened state directory.
#[derive(Debug, Clone)]
pub(crate) struct StateDir {
    dir: PathBuf,
}

fn state_err(path: &Path, source: impl Into<StateError>) -> AuditError {
    AuditError::State {
        path: path.to_path_buf(),
        source: source.into(),
    }
}

impl StateDir {
    /// Opens (creating if needed) the directory.
    pub(crate) fn open(dir: &Path) -> Result<Self, AuditError> {
        fs::create_dir_all(dir.join(BUNDLES)).map_err(|e| state_err(dir, e))?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        &self.dir
    }

    /// The saved state, if any.
    pub(crate) fn load(&self) -> Result<Option<StateFile>, AuditError> {
        let path = self.dir.join(STATE_FILE);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(state_err(&path, e)),
        };
        let s: StateFile =
            serde_json::from_slice(&bytes).map_err(|e| state_err(&path, StateError::Parse(e)))?;
        if s.format != FORMAT {
            return Err(state_err(&path, StateError::UnknownFormat(s.format)));
        }
        s.root_hash().map_err(|e| state_err(&path, e))?;
        s.cache_root_hash().map_err(|e| state_err(&path, e))?;
        Ok(Some(s))
    }

    /// Replaces `state.json` atomically: a crash leaves the old or the new
    /// file, never a mix.
    pub(crate) fn save(&self, s: &StateFile) -> Result<(), AuditError> {
        let path = self.dir.join(STATE_FILE);
        let tmp = self.dir.join(format!("{STATE_FILE}.tmp"));
        let json =
            serde_json::to_vec_pretty(s).map_err(|e| state_err(&path, StateError::Encode(e)))?;
        write_synced(&tmp, &json).map_err(|e| state_err(&tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| state_err(&path, e))?;
        sync_dir(&self.dir).map_err(|e| state_err(&self.dir, e))
    }

    fn bundle_path(&self, index: u64) -> PathBuf {
        self.dir.join(BUNDLES).join(index.to_string())
    }

    /// Cached full bundle `index`, if present.
    pub(crate) fn read_bundle(&self, index: u64) -> Result<Option<Vec<u8>>, AuditError> {
        let path = self.bundle_path(index);
        match fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(state_err(&path, e)),
        }
    }

    /// Stores full bundle `index` (atomically, so a torn file never appears
    /// under its final name). It is trusted only once `state.json` counts it.
    pub(crate) fn write_bundle(&self, index: u64, data: &[u8]) -> Result<(), AuditError> {
        let path = self.bundle_path(index);
        let tmp = self.dir.join(BUNDLES).join(format!("{index}.tmp"));
        write_synced(&tmp, data).map_err(|e| state_err(&tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| state_err(&path, e))
    }

    /// Makes the renames of [`StateDir::write_bundle`] durable.
    pub(crate) fn sync_bundles(&self) -> Result<(), AuditError> {
        let dir = self.dir.join(BUNDLES);
        sync_dir(&dir).map_err(|e| state_err(&dir, e))
    }
}

fn write_synced(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut f = fs::File::create(path)?;
    f.write_all(data)?;
    f.sync_all()
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    fs::File::open(dir)?.sync_all()
}
