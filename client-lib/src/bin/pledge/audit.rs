//! `pledge audit`: the command line of the library's auditor
//! ([`audit::audit`]), its report on stdout and its exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use pledge_client::audit::{self, AuditOptions};
use pledge_protocol::cosignature::WitnessVerifier;
use pledge_protocol::note::NoteVerifier;

/// `pledge audit` arguments.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct AuditArgs {
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    log: LogArgs,
}

/// How to audit a log: what `pledge audit` and `pledge trustee` share.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct LogArgs {
    /// Directory keeping the pinned log key, the last checkpoint verified and a
    /// cache of entry bundles, so later runs check consistency and fetch only
    /// what is new.
    #[arg(long, value_name = "DIR")]
    state: Option<PathBuf>,
    /// Verification threads (0: one per core).
    #[arg(long, value_name = "N", default_value_t = 0)]
    threads: usize,
    /// A witness verifier key (`name+keyid+base64`); repeat for several.
    #[arg(long = "witness", value_name = "VKEY")]
    witnesses: Vec<String>,
    /// Cosignatures required among the given witnesses (default: all of them).
    #[arg(long, value_name = "K")]
    quorum: Option<usize>,
    /// The log's verifier key (`origin+keyid+base64`). Without it the key
    /// pinned in --state is used, else the server's own `/v1/log/key` is
    /// trusted on first use.
    #[arg(long, value_name = "VKEY")]
    log_key: Option<String>,
}

impl LogArgs {
    /// The library's options for auditing `server`.
    pub(crate) fn options(&self, server: String) -> Result<AuditOptions, String> {
        let witnesses = self
            .witnesses
            .iter()
            .map(|w| {
                WitnessVerifier::from_text(w.trim()).map_err(|e| format!("--witness {w:?}: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        // Checked before the log key is parsed, as always; `audit` checks it too.
        if let Some(quorum) = self.quorum
            && quorum > witnesses.len()
        {
            let e = audit::AuditError::QuorumTooLarge {
                quorum,
                witnesses: witnesses.len(),
            };
            return Err(e.to_string());
        }
        let log_key = self
            .log_key
            .as_deref()
            .map(|k| NoteVerifier::from_text(k.trim()).map_err(|e| format!("--log-key {k:?}: {e}")))
            .transpose()?;
        let mut opts = AuditOptions::new(server);
        opts.state_dir = self.state.clone();
        opts.threads = self.threads;
        opts.witnesses = witnesses;
        opts.quorum = self.quorum;
        opts.log_key = log_key;
        Ok(opts)
    }
}

/// Runs the audit of `server` (the global `--server` / `PLEDGE_SERVER`) and
/// returns the process exit code: 0 if every check holds, 1 if any failed,
/// 2 on usage or network errors.
pub(crate) async fn run(args: AuditArgs, server: String) -> ExitCode {
    let opts = match args.log.options(server) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("pledge audit: {e}");
            return ExitCode::from(2);
        }
    };
    match audit::audit(&opts).await {
        Ok(report) => {
            if args.json {
                match serde_json::to_string_pretty(&report) {
                    Ok(s) => println!("{s}"),
                    Err(e) => {
                        eprintln!("pledge audit: cannot encode the report: {e}");
                        return ExitCode::from(2);
                    }
                }
            } else {
                print!("{report}");
            }
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("pledge audit: {e}");
            ExitCode::from(2)
        }
    }
}
