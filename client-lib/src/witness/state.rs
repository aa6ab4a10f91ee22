//! The witness's durable state: one file per log holding the latest checkpoint
//! it cosigned, written atomically (temporary file, fsync, rename, fsync of
//! the folder), and an exclusive lock on the state folder. SPEC R-WITSRV-3,
//! R-WITSRV-4, R-WITSRV-5.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use pledge_protocol::checkpoint::Checkpoint;
use pledge_protocol::cosignature::WitnessedTree;
use pledge_protocol::hash::sha256;
use pledge_protocol::note::{KeyName, MAX_NOTE_BYTES, SignedNote};

use super::WitnessError;

/// Name of the lock file inside the state folder.
const LOCK_FILE: &str = "lock";
/// Extension of a log's state file.
const STATE_EXT: &str = "checkpoint";
/// Extension of a state file being written.
const TMP_EXT: &str = "checkpoint.tmp";
/// Sub-folder where refused but log-signed checkpoints are kept as evidence.
const EVIDENCE_DIR: &str = "evidence";
/// Most evidence files kept per state folder: a misbehaving log cannot fill
/// the disk.
const MAX_EVIDENCE_FILES: usize = 1000;

/// The state folder, locked for the lifetime of this value.
#[derive(Debug)]
pub(crate) struct StateDir {
    dir: PathBuf,
    /// Holds the exclusive `flock` on `dir/lock`; released when dropped.
    _lock: File,
}

fn io_err(path: &Path, source: io::Error) -> WitnessError {
    WitnessError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl StateDir {
    /// Creates the folder if needed (mode 0700 on Unix) and takes an exclusive
    /// lock on it, so two witness processes never share one state. SPEC
    /// R-WITSRV-5.
    pub(crate) fn open(dir: &Path) -> Result<Self, WitnessError> {
        create_private_dir(dir)?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| io_err(&lock_path, e))?;
        fs2::FileExt::try_lock_exclusive(&lock).map_err(|e| {
            if e.kind() == io::ErrorKind::WouldBlock
                || e.raw_os_error() == fs2::lock_contended_error().raw_os_error()
            {
                WitnessError::StateLocked {
                    path: dir.to_path_buf(),
                }
            } else {
                io_err(&lock_path, e)
            }
        })?;
        // Leftovers of a write interrupted by a crash: the rename never
        // happened, so the previous state file is still the truth.
        if let Ok(entries) = fs::read_dir(dir) {
            for entry in entries.flatten() {
                let p = entry.path();
                if p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.ends_with(TMP_EXT))
                {
                    let _ = fs::remove_file(&p);
                }
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            _lock: lock,
        })
    }

    /// The folder.
    pub(crate) fn path(&self) -> &Path {
        &self.dir
    }

    /// `<dir>/<hex(SHA-256(origin))>.checkpoint`: origins contain `/` and
    /// other characters a file name cannot hold. SPEC R-WITSRV-3.
    pub(crate) fn state_path(&self, origin: &KeyName) -> PathBuf {
        let name = hex::encode(sha256(&[origin.as_str().as_bytes()]));
        self.dir.join(format!("{name}.{STATE_EXT}"))
    }

    /// Reads the latest cosigned checkpoint of `origin`: `None` if the file
    /// does not exist (never cosigned). A file that exists but cannot be read
    /// or parsed, or names another origin, is an error: starting from zero
    /// would let the witness cosign a fork. SPEC R-WITSRV-4.
    pub(crate) fn load(&self, origin: &KeyName) -> Result<Option<WitnessedTree>, WitnessError> {
        let path = self.state_path(origin);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path, e)),
        };
        let corrupt = |reason: String| WitnessError::CorruptState {
            path: path.clone(),
            reason,
        };
        if bytes.len() > MAX_NOTE_BYTES {
            return Err(corrupt(format!("larger than {MAX_NOTE_BYTES} bytes")));
        }
        let note = SignedNote::parse(&bytes).map_err(|e| corrupt(e.to_string()))?;
        let cp = Checkpoint::from_body(note.body()).map_err(|e| corrupt(e.to_string()))?;
        if cp.origin() != origin {
            return Err(corrupt(format!(
                "holds a checkpoint of {} instead of {origin}",
                cp.origin()
            )));
        }
        Ok(Some(WitnessedTree {
            size: cp.size(),
            root: *cp.root(),
        }))
    }

    /// Replaces the state of `origin` with `note`, durably: when this returns
    /// `Ok`, a crash at any later moment leaves `note` as the state; when it
    /// returns `Err`, the state is either the old or the new note. SPEC
    /// R-WITSRV-3.
    pub(crate) fn store(&self, origin: &KeyName, note: &str) -> Result<(), WitnessError> {
        let path = self.state_path(origin);
        let tmp = path.with_extension(TMP_EXT);
        write_durably(&self.dir, &tmp, &path, note.as_bytes())
    }

    /// Keeps a refused request that the log did sign (a fork or a bad proof:
    /// evidence of log misbehaviour), named by the hash of its bytes so
    /// repeats are stored once. Best effort: failures are returned for the
    /// caller to log, never to the client.
    pub(crate) fn keep_evidence(&self, origin: &KeyName, body: &[u8]) -> Result<(), WitnessError> {
        let dir = self.dir.join(EVIDENCE_DIR);
        create_private_dir(&dir)?;
        let count = fs::read_dir(&dir).map_err(|e| io_err(&dir, e))?.count();
        if count >= MAX_EVIDENCE_FILES {
            return Err(WitnessError::EvidenceFull { path: dir });
        }
        let origin_tag = hex::encode(sha256(&[origin.as_str().as_bytes()]));
        let body_tag = hex::encode(sha256(&[body]));
        let path = dir.join(format!(
            "{}-{}.add-checkpoint",
            origin_tag.get(..16).unwrap_or(&origin_tag),
            body_tag.get(..32).unwrap_or(&body_tag)
        ));
        if path.exists() {
            return Ok(());
        }
        let tmp = path.with_extension("tmp");
        write_durably(&dir, &tmp, &path, body)
    }
}

/// Creates `dir` (and parents) with mode 0700 on Unix.
fn create_private_dir(dir: &Path) -> Result<(), WitnessError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|e| io_err(dir, e))
}

/// Writes `bytes` to `tmp`, fsyncs it, renames it over `dest` and fsyncs the
/// folder, so the rename itself is durable.
fn write_durably(dir: &Path, tmp: &Path, dest: &Path, bytes: &[u8]) -> Result<(), WitnessError> {
    let mut opts = OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(tmp).map_err(|e| io_err(tmp, e))?;
    f.write_all(bytes).map_err(|e| io_err(tmp, e))?;
    f.sync_all().map_err(|e| io_err(tmp, e))?;
    drop(f);
    fs::rename(tmp, dest).map_err(|e| io_err(dest, e))?;
    sync_dir(dir)
}

/// fsyncs a folder so a rename or a new entry in it survives a crash.
fn sync_dir(dir: &Path) -> Result<(), WitnessError> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_err(dir, e))
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}
