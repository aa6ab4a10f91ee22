//! The independent auditor (placeholder until the auditor work lands).

use std::process::ExitCode;

/// `pledge audit` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct AuditArgs {
    /// Base URL of the ledger (its tlog-tiles read API lives under `/log/`).
    #[arg(long)]
    pub server: String,
}

/// Runs the audit from the command line and returns the process exit code.
pub async fn cli(args: AuditArgs) -> ExitCode {
    eprintln!("pledge audit {}: not built yet", args.server);
    ExitCode::from(2)
}
