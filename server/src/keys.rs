//! The server's own secrets, kept as files in the data folder with mode 0600
//! and created on first start:
//!
//! - `log.key`: the log's Ed25519 note key, in Go's
//!   `PRIVATE+KEY+<name>+<key id>+<base64>` text (SPEC R-NOTE-8); its name is
//!   the log origin.
//! - `admin.token`: the bearer token of the admin API (64 hex digits).
//! - `issuer.hmac`: the 32-byte key `k` of the issuer's keyed hashes
//!   `HMAC(k, person ‖ campaign)` (DESIGN P2), as 64 hex digits.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use pledge_protocol::note::{KeyName, NoteSigner};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// File name of the log key.
pub const LOG_KEY_FILE: &str = "log.key";
/// File name of the admin token.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";
/// File name of the issuer's HMAC key.
pub const HMAC_KEY_FILE: &str = "issuer.hmac";

/// Why the keys could not be loaded or created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// Reading or writing a key file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file's content is not what this server writes.
    #[error("{}: {reason}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The origin is not a valid key name.
    #[error(
        "origin {0:?} is not a valid log name (no spaces, no '+', not empty, at most 1024 bytes)"
    )]
    BadOrigin(String),
    /// No randomness.
    #[error("the operating system gave no randomness")]
    Randomness,
    /// The data folder (or something in it) is open to other users and this
    /// process cannot make it private.
    #[error(
        "{} has mode {mode:o}, open to other users, and cannot be made private ({source}); \
         it holds the issuer's secret keys: run `chmod -R go-rwx` on the data folder \
         as its owner",
        path.display()
    )]
    NotPrivate {
        /// The file or folder.
        path: PathBuf,
        /// Its mode.
        mode: u32,
        /// Why `chmod` failed.
        source: std::io::Error,
    },
}

/// Sets the process umask to `077`, so that every file the store creates is
/// private to this user (SPEC R-STORE-4). For the `pledged` binary: the umask
/// is process-wide, so a library user decides for itself.
pub fn private_umask() {
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

/// Makes the data folder private (SPEC §14 "Privacy of stored data"): the
/// group and other permission bits of the folder and of everything in it are
/// cleared (0755 becomes 0700, 0644 becomes 0600), whatever the umask or a
/// pre-created folder said. The store holds issuer secret
/// keys, so a world-readable file would let any local user mint tokens.
/// Symbolic links are not followed. Returns the paths whose mode changed.
///
/// # Errors
/// [`KeyFileError::NotPrivate`] when an open mode cannot be changed (another
/// owner), [`KeyFileError::Io`] when the folder cannot be read.
#[cfg(unix)]
pub fn make_private(dir: &Path) -> Result<Vec<PathBuf>, KeyFileError> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut changed = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = fs::symlink_metadata(&path).map_err(|source| KeyFileError::Io {
            path: path.clone(),
            source,
        })?;
        let ft = meta.file_type();
        if ft.is_symlink() {
            continue;
        }
        // Only take rights away (group, other, set-id bits): a folder made
        // read-only by its owner stays read-only.
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o7077 != 0 {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode & 0o700)).map_err(
                |source| KeyFileError::NotPrivate {
                    path: path.clone(),
                    mode,
                    source,
                },
            )?;
            changed.push(path.clone());
        }
        if ft.is_dir() {
            for e in fs::read_dir(&path).map_err(|source| KeyFileError::Io {
                path: path.clone(),
                source,
            })? {
                let e = e.map_err(|source| KeyFileError::Io {
                    path: path.clone(),
                    source,
                })?;
                stack.push(e.path());
            }
        }
    }
    Ok(changed)
}

/// Non-Unix systems: nothing to do (no mode bits).
#[cfg(not(unix))]
pub fn make_private(_dir: &Path) -> Result<Vec<PathBuf>, KeyFileError> {
    Ok(Vec::new())
}

/// The admin bearer token, compared in constant time.
pub struct AdminToken(Zeroizing<String>);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(..)")
    }
}

impl AdminToken {
    /// Wraps a token.
    pub fn new(token: String) -> Self {
        Self(Zeroizing::new(token))
    }

    /// The token text (to hand to the operator once).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison with a presented token.
    pub fn matches(&self, presented: &str) -> bool {
        self.0.as_bytes().ct_eq(presented.as_bytes()).into()
    }
}

/// The secrets the server runs with.
pub struct ServerKeys {
    /// The log key.
    pub log: NoteSigner,
    /// The admin token.
    pub admin: AdminToken,
    /// The issuer's HMAC key.
    pub hmac: Zeroizing<[u8; 32]>,
    /// Files created by this call (first start).
    pub created: Vec<PathBuf>,
}

impl std::fmt::Debug for ServerKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerKeys")
            .field("log", &self.log)
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

/// Loads the key files from `dir`, creating any that are missing (mode 0600).
/// An existing `log.key` must be named `origin`.
///
/// # Errors
/// [`KeyFileError`] naming the file at fault.
pub fn load_or_create(dir: &Path, origin: &str) -> Result<ServerKeys, KeyFileError> {
    // SPEC R-CKPT-2: at most 1024 bytes, so that tally statements can name it
    // (R-TALLY-7); a longer origin would give checkpoints but no statement.
    if origin.len() > pledge_protocol::tally::MAX_ORIGIN_LEN {
        return Err(KeyFileError::BadOrigin(origin.to_owned()));
    }
    let name = KeyName::new(origin).map_err(|_| KeyFileError::BadOrigin(origin.to_owned()))?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| KeyFileError::Io { path, source }
    };
    // The folder holds secrets: create it private (the store keeps it so).
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(io(dir))?;
    // A folder that existed before keeps its mode: fix it (and its files).
    for path in make_private(dir)? {
        tracing::warn!(
            "{} was open to other users: made it private",
            path.display()
        );
    }
    let mut created = Vec::new();

    let log_path = dir.join(LOG_KEY_FILE);
    let log = match read_secret(&log_path)? {
        Some(text) => {
            let signer = NoteSigner::from_private_key_text(text.trim_end()).map_err(|e| {
                KeyFileError::Malformed {
                    path: log_path.clone(),
                    reason: e.to_string(),
                }
            })?;
            if signer.name() != &name {
                return Err(KeyFileError::Malformed {
                    path: log_path,
                    reason: format!(
                        "the key is named {:?} but the configured origin is {origin:?}; \
                         a log cannot change its origin",
                        signer.name().as_str()
                    ),
                });
            }
            signer
        }
        None => {
            let signer = NoteSigner::generate(name).map_err(|_| KeyFileError::Randomness)?;
            let mut text = signer.to_private_key_text();
            text.push('\n');
            write_secret(&log_path, text.as_bytes())?;
            created.push(log_path);
            signer
        }
    };

    let admin_path = dir.join(ADMIN_TOKEN_FILE);
    let admin = match read_secret(&admin_path)? {
        Some(text) => {
            let t = text.trim_end();
            if t.len() < 32 || t.chars().any(|c| c.is_whitespace()) {
                return Err(KeyFileError::Malformed {
                    path: admin_path,
                    reason: "the admin token must be at least 32 characters, no spaces".into(),
                });
            }
            AdminToken::new(t.to_owned())
        }
        None => {
            let t = random_hex()?;
            write_secret(&admin_path, format!("{}\n", t.as_str()).as_bytes())?;
            created.push(admin_path);
            AdminToken::new(t.to_string())
        }
    };

    let hmac_path = dir.join(HMAC_KEY_FILE);
    let hmac_hex = match read_secret(&hmac_path)? {
        Some(text) => text,
        None => {
            let t = random_hex()?;
            write_secret(&hmac_path, format!("{}\n", t.as_str()).as_bytes())?;
            created.push(hmac_path.clone());
            t
        }
    };
    let mut hmac = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(hmac_hex.trim_end(), hmac.as_mut_slice()).map_err(|_| {
        KeyFileError::Malformed {
            path: hmac_path,
            reason: "expected 64 hexadecimal digits".into(),
        }
    })?;
    Ok(ServerKeys {
        log,
        admin,
        hmac,
        created,
    })
}

fn random_hex() -> Result<Zeroizing<String>, KeyFileError> {
    let mut raw = Zeroizing::new([0u8; 32]);
    getrandom::fill(raw.as_mut_slice()).map_err(|_| KeyFileError::Randomness)?;
    Ok(Zeroizing::new(hex::encode(raw.as_slice())))
}

fn read_secret(path: &Path) -> Result<Option<Zeroizing<String>>, KeyFileError> {
    match fs::read(path) {
        Ok(bytes) => String::from_utf8(bytes)
            .map(|s| Some(Zeroizing::new(s)))
            .map_err(|_| KeyFileError::Malformed {
                path: path.to_path_buf(),
                reason: "not UTF-8 text".into(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(KeyFileError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Creates `path` (it must not exist) with mode 0600, writes, syncs the file
/// and its folder.
fn write_secret(path: &Path, bytes: &[u8]) -> Result<(), KeyFileError> {
    let err = |source| KeyFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_all().map_err(err)?;
    if let Some(parent) = path.parent() {
        fs::File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn creates_once_then_loads_the_same_keys_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create(dir.path(), "example.com/log").unwrap();
        assert_eq!(a.created.len(), 3);
        let b = load_or_create(dir.path(), "example.com/log").unwrap();
        assert!(b.created.is_empty());
        assert_eq!(a.log.verifier(), b.log.verifier());
        assert!(b.admin.matches(a.admin.expose()));
        assert!(!b.admin.matches("wrong"));
        assert_eq!(*a.hmac, *b.hmac);
        #[cfg(unix)]
        for f in [LOG_KEY_FILE, ADMIN_TOKEN_FILE, HMAC_KEY_FILE] {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
        // A log cannot change its origin.
        let e = load_or_create(dir.path(), "other.example/log").unwrap_err();
        assert!(e.to_string().contains("origin"), "{e}");
    }

    #[test]
    fn an_origin_too_long_for_a_tally_statement_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let longest = format!("{}/pledge", "a".repeat(1024 - 7));
        assert_eq!(longest.len(), 1024);
        load_or_create(&dir.path().join("ok"), &longest).unwrap();
        let e = load_or_create(&dir.path().join("long"), &format!("{longest}x")).unwrap_err();
        assert!(matches!(e, KeyFileError::BadOrigin(_)), "{e}");
        assert!(!dir.path().join("long").join(LOG_KEY_FILE).exists());
    }
}
