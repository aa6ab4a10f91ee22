//! Starting a witness server: its private key file, the logs it witnesses,
//! its state folder and its listening socket. `pledge witness serve` is these
//! steps plus the command line (SPEC R-WITSRV-1, R-WITSRV-9); a program
//! embedding a witness calls [`start`] and then [`BoundWitness::serve`].

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use pledge_protocol::cosignature::{WitnessSigner, WitnessVerifier};
use pledge_protocol::note::{KeyError, KeyName, NoteVerifier};

use super::{Witness, WitnessError, serve};

/// Why an `ORIGIN=VKEY` log argument is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogArgError {
    /// No `=` is followed by a key named like the text before it.
    #[error("expected ORIGIN=VKEY where VKEY is the log's verifier key <ORIGIN>+<key id>+<base64>")]
    Syntax,
    /// The key text is not a log (type 0x01) verifier key.
    #[error("log verifier key: {source}")]
    Key {
        /// Why the key does not parse.
        #[source]
        source: KeyError,
    },
}

/// Parses `ORIGIN=VKEY`: the verifier key text must be a type-0x01 note key
/// whose name is `ORIGIN` (origins may contain `=`, so the split is the first
/// `=` followed by `ORIGIN+`). SPEC R-WITSRV-1.
///
/// # Errors
/// [`LogArgError`] saying what is wrong with the argument.
pub fn parse_log_arg(s: &str) -> Result<NoteVerifier, LogArgError> {
    let split = s.char_indices().filter(|&(_, c)| c == '=').find(|&(i, _)| {
        let (origin, rest) = (s.get(..i), s.get(i + 1..));
        match (origin, rest) {
            (Some(o), Some(r)) => {
                !o.is_empty()
                    && r.starts_with(o)
                    && r.get(o.len()..).is_some_and(|t| t.starts_with('+'))
            }
            _ => false,
        }
    });
    let Some((i, _)) = split else {
        return Err(LogArgError::Syntax);
    };
    let vkey = s.get(i + 1..).unwrap_or_default();
    NoteVerifier::from_text(vkey).map_err(|source| LogArgError::Key { source })
}

/// The default state folder: `witness/` in the user's data folder (`None`
/// when the user has no home folder).
pub fn default_state_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "pledge").map(|d| d.data_dir().join("witness"))
}

/// Why a witness private key file could not be created or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// The operating system gave no randomness for a new key.
    #[error("no randomness available: {source}")]
    Randomness {
        /// The error of the random source.
        #[source]
        source: getrandom::Error,
    },
    /// The new key file could not be created (it may already exist: an
    /// existing key is never overwritten).
    #[error("{}: {source} (an existing key is never overwritten)", path.display())]
    Create {
        /// The key file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Reading or writing the key file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The key file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The file does not hold a witness private key.
    #[error("{}: not a witness private key: {source}", path.display())]
    Malformed {
        /// The key file.
        path: PathBuf,
        /// Why the key does not parse.
        #[source]
        source: KeyError,
    },
}

/// Creates a new witness private key named `name` in a new file at `path`
/// (mode 0600 on Unix, never overwriting an existing file) and returns its
/// verifier key. The file holds one line, `PRIVATE+KEY+<name>+<key id>+<base64>`
/// (C2SP tlog-cosignature key, Go note format).
///
/// # Errors
/// [`KeyFileError::Randomness`], [`KeyFileError::Create`] (also when the
/// file exists) or [`KeyFileError::Io`].
pub fn generate_key_file(path: &Path, name: KeyName) -> Result<WitnessVerifier, KeyFileError> {
    let signer =
        WitnessSigner::generate(name).map_err(|source| KeyFileError::Randomness { source })?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|source| KeyFileError::Create {
        path: path.to_path_buf(),
        source,
    })?;
    let text = signer.to_private_key_text();
    f.write_all(text.as_bytes())
        .and_then(|()| f.write_all(b"\n"))
        .and_then(|()| f.sync_all())
        .map_err(|source| KeyFileError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(signer.verifier())
}

/// Reads the witness private key in `path` (as [`generate_key_file`] writes it).
///
/// # Errors
/// [`KeyFileError::Io`] or [`KeyFileError::Malformed`].
pub fn read_key_file(path: &Path) -> Result<WitnessSigner, KeyFileError> {
    let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|source| {
        KeyFileError::Io {
            path: path.to_path_buf(),
            source,
        }
    })?);
    WitnessSigner::from_private_key_text(text.trim_end_matches('\n')).map_err(|source| {
        KeyFileError::Malformed {
            path: path.to_path_buf(),
            source,
        }
    })
}

/// True if the key file at `path` exists and other users may read or write
/// it (any group or other permission bit on Unix; never elsewhere).
pub fn key_file_open_to_others(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::metadata(path).is_ok_and(|meta| meta.permissions().mode() & 0o077 != 0)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        false
    }
}

/// How to start a witness server.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The witness's private key file ([`read_key_file`]).
    pub key: PathBuf,
    /// Address to listen on (`host:port`).
    pub listen: String,
    /// The verifier keys of the logs to witness (a log may have several).
    pub logs: Vec<NoteVerifier>,
    /// The state folder; `None` for [`default_state_dir`].
    pub state: Option<PathBuf>,
}

impl ServeOptions {
    /// Options for the key file `key`, listening on `127.0.0.1:8081`, with no
    /// log yet and the default state folder.
    pub fn new(key: impl Into<PathBuf>) -> Self {
        Self {
            key: key.into(),
            listen: "127.0.0.1:8081".to_owned(),
            logs: Vec::new(),
            state: None,
        }
    }
}

/// Why a witness server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The private key file.
    #[error(transparent)]
    Key(#[from] KeyFileError),
    /// No state folder was given and the user has no data folder.
    #[error("no data folder found; give --state DIR")]
    NoStateDir,
    /// The witness could not be opened (no log, a key twice, the state
    /// folder locked, unreadable or corrupt).
    #[error(transparent)]
    Open(#[from] WitnessError),
    /// The listening socket could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

/// Reads the key, opens the witness (locking its state folder) and binds its
/// socket: everything that can fail before serving.
///
/// # Errors
/// [`StartError`], in that order: key file, state folder, witness, socket.
pub async fn start(opts: &ServeOptions) -> Result<BoundWitness, StartError> {
    let signer = read_key_file(&opts.key)?;
    let state_dir = opts
        .state
        .clone()
        .or_else(default_state_dir)
        .ok_or(StartError::NoStateDir)?;
    let witness = Witness::open(signer, opts.logs.iter().cloned(), &state_dir)?;
    let listener = tokio::net::TcpListener::bind(&opts.listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: opts.listen.clone(),
            source,
        })?;
    Ok(BoundWitness { witness, listener })
}

/// A witness with its socket bound, ready to [`serve`](BoundWitness::serve).
#[derive(Debug)]
pub struct BoundWitness {
    witness: Witness,
    listener: tokio::net::TcpListener,
}

impl BoundWitness {
    /// The witness.
    pub fn witness(&self) -> &Witness {
        &self.witness
    }

    /// The address the socket is bound to (the port chosen for `:0`).
    ///
    /// # Errors
    /// The operating system's error.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes ([`serve`](super::serve)).
    ///
    /// # Errors
    /// The listener's I/O error.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        serve(self.listener, self.witness, shutdown).await
    }
}
