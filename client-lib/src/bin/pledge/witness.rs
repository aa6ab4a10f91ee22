//! `pledge witness serve`: reads or generates the witness key, opens the
//! state folder and serves until SIGINT/SIGTERM (the library's
//! [`witness::start`] and [`witness::BoundWitness::serve`]), with the
//! operator log on stderr. SPEC R-WITSRV-1, R-WITSRV-9.

use std::path::PathBuf;
use std::process::ExitCode;

use pledge_client::witness::{self, ServeOptions};
use pledge_protocol::note::{KeyName, NoteVerifier};

/// `pledge witness serve` arguments.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ServeArgs {
    /// The witness's private key file: one line
    /// `PRIVATE+KEY+<name>+<key id>+<base64(0x04 ‖ seed)>` (C2SP
    /// tlog-cosignature key, Go note format).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,

    /// Create a new key in --key (mode 0600; refused if the file exists),
    /// print its verifier key on stdout and exit.
    #[arg(long, requires = "name")]
    generate_key: bool,

    /// The witness's key name for --generate-key (a schema-less URL such as
    /// `witness.example.org/w1`).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,

    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8081")]
    listen: String,

    /// A log to witness: its origin and its checkpoint verifier key
    /// (`<origin>+<key id>+<base64(0x01 ‖ key)>`, whose name must be the
    /// origin). Repeat for several logs, or several keys of one log.
    #[arg(long = "log", value_name = "ORIGIN=VKEY", value_parser = witness::parse_log_arg)]
    logs: Vec<NoteVerifier>,

    /// Folder for the witness state (the latest cosigned checkpoint of each
    /// log). Default: `witness/` in the user's data folder.
    #[arg(long, value_name = "DIR")]
    state: Option<PathBuf>,
}

/// Runs the witness and returns the process exit code: 0 after a clean
/// shutdown (SIGINT/SIGTERM) or a generated key, 2 for a usage or
/// configuration error, 1 if serving failed.
pub(crate) async fn serve(args: ServeArgs) -> ExitCode {
    if args.generate_key {
        let Some(name) = args.name.as_deref() else {
            eprintln!("pledge witness: --generate-key needs --name NAME");
            return ExitCode::from(2);
        };
        let name = match KeyName::new(name) {
            Ok(n) => n,
            Err(e) => {
                eprintln!("pledge witness: --name: {e}");
                return ExitCode::from(2);
            }
        };
        return match witness::generate_key_file(&args.key, name) {
            Ok(vkey) => {
                println!("{}", vkey.to_text());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("pledge witness: {e}");
                ExitCode::from(2)
            }
        };
    }
    init_tracing();
    if witness::key_file_open_to_others(&args.key) {
        eprintln!(
            "pledge witness: warning: {} is readable by other users; chmod 600 it",
            args.key.display()
        );
    }
    let n_logs = args.logs.len();
    let opts = ServeOptions {
        key: args.key,
        listen: args.listen,
        logs: args.logs,
        state: args.state,
    };
    let bound = match witness::start(&opts).await {
        Ok(b) => b,
        Err(e) => {
            eprintln!("pledge witness: {e}");
            return ExitCode::from(2);
        }
    };
    let addr = bound
        .local_addr()
        .map_or_else(|_| opts.listen.clone(), |a| a.to_string());
    println!("{}", bound.witness().verifier().to_text());
    eprintln!(
        "pledge witness: witnessing {n_logs} log key(s), state in {}, listening on http://{addr}/add-checkpoint",
        bound.witness().state_dir().display()
    );
    match bound.serve(shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pledge witness: {e}");
            ExitCode::from(1)
        }
    }
}

/// The operator log on stderr: what was cosigned or kept as evidence, never
/// request bodies or addresses (R-WITSRV-9). `RUST_LOG` overrides.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("pledge_client::witness=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Completes on SIGINT or (on Unix) SIGTERM.
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
