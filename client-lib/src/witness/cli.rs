//! `pledge witness serve`: reads or generates the witness key, opens the
//! state folder and serves until SIGINT/SIGTERM. SPEC R-WITSRV-1, R-WITSRV-9.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use pledge_protocol::cosignature::WitnessSigner;
use pledge_protocol::note::{KeyName, NoteVerifier};

use super::{Witness, serve};

/// `pledge witness serve` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// The witness's private key file: one line
    /// `PRIVATE+KEY+<name>+<key id>+<base64(0x04 ‖ seed)>` (C2SP
    /// tlog-cosignature key, Go note format).
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,

    /// Create a new key in --key (mode 0600; refused if the file exists),
    /// print its verifier key on stdout and exit.
    #[arg(long, requires = "name")]
    pub generate_key: bool,

    /// The witness's key name for --generate-key (a schema-less URL such as
    /// `witness.example.org/w1`).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub listen: String,

    /// A log to witness: its origin and its checkpoint verifier key
    /// (`<origin>+<key id>+<base64(0x01 ‖ key)>`, whose name must be the
    /// origin). Repeat for several logs, or several keys of one log.
    #[arg(long = "log", value_name = "ORIGIN=VKEY", value_parser = parse_log_arg)]
    pub logs: Vec<NoteVerifier>,

    /// Folder for the witness state (the latest cosigned checkpoint of each
    /// log). Default: `witness/` in the user's data folder.
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
}

/// Parses `ORIGIN=VKEY`: the verifier key text must be a type-0x01 note key
/// whose name is `ORIGIN` (origins may contain `=`, so the split is the first
/// `=` followed by `ORIGIN+`). SPEC R-WITSRV-1.
///
/// # Errors
/// A message saying what is wrong with the argument.
pub fn parse_log_arg(s: &str) -> Result<NoteVerifier, String> {
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
        return Err(
            "expected ORIGIN=VKEY where VKEY is the log's verifier key <ORIGIN>+<key id>+<base64>"
                .to_owned(),
        );
    };
    let vkey = s.get(i + 1..).unwrap_or_default();
    NoteVerifier::from_text(vkey).map_err(|e| format!("log verifier key: {e}"))
}

fn default_state_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "pledge").map(|d| d.data_dir().join("witness"))
}

/// Creates a new witness key file (0600, never overwriting) and returns the
/// verifier key text.
fn generate_key(path: &Path, name: &str) -> Result<String, String> {
    let name = KeyName::new(name).map_err(|e| format!("--name: {e}"))?;
    let signer =
        WitnessSigner::generate(name).map_err(|e| format!("no randomness available: {e}"))?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| {
        format!(
            "{}: {e} (an existing key is never overwritten)",
            path.display()
        )
    })?;
    let text = signer.to_private_key_text();
    f.write_all(text.as_bytes())
        .and_then(|()| f.write_all(b"\n"))
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(signer.verifier().to_text())
}

fn read_key(path: &Path) -> Result<WitnessSigner, String> {
    #[cfg(unix)]
    if let Ok(meta) = std::fs::metadata(path) {
        use std::os::unix::fs::PermissionsExt as _;
        if meta.permissions().mode() & 0o077 != 0 {
            eprintln!(
                "pledge witness: warning: {} is readable by other users; chmod 600 it",
                path.display()
            );
        }
    }
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?,
    );
    WitnessSigner::from_private_key_text(text.trim_end_matches('\n'))
        .map_err(|e| format!("{}: not a witness private key: {e}", path.display()))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// Runs the witness from the command line and returns the process exit code:
/// 0 after a clean shutdown (SIGINT/SIGTERM) or a generated key, 2 for a usage
/// or configuration error, 1 if serving failed.
pub async fn cli_serve(args: ServeArgs) -> ExitCode {
    if args.generate_key {
        let Some(name) = args.name.as_deref() else {
            eprintln!("pledge witness: --generate-key needs --name NAME");
            return ExitCode::from(2);
        };
        return match generate_key(&args.key, name) {
            Ok(vkey) => {
                println!("{vkey}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("pledge witness: {e}");
                ExitCode::from(2)
            }
        };
    }
    // Operator log on stderr: what was cosigned or kept as evidence, never
    // request bodies or addresses (R-WITSRV-9). `RUST_LOG` overrides.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("pledge_client::witness=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    let signer = match read_key(&args.key) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("pledge witness: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(state_dir) = args.state.clone().or_else(default_state_dir) else {
        eprintln!("pledge witness: no data folder found; give --state DIR");
        return ExitCode::from(2);
    };
    let vkey = signer.verifier().to_text();
    let n_logs = args.logs.len();
    let witness = match Witness::open(signer, args.logs, &state_dir) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("pledge witness: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(&args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("pledge witness: cannot listen on {}: {e}", args.listen);
            return ExitCode::from(2);
        }
    };
    let addr = listener
        .local_addr()
        .map_or_else(|_| args.listen.clone(), |a| a.to_string());
    println!("{vkey}");
    eprintln!(
        "pledge witness: witnessing {n_logs} log key(s), state in {}, listening on http://{addr}/add-checkpoint",
        state_dir.display()
    );
    match serve(listener, witness, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pledge witness: {e}");
            ExitCode::from(1)
        }
    }
}
