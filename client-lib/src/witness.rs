//! A C2SP tlog-witness (placeholder until the witness work lands).

use std::process::ExitCode;

/// `pledge witness serve` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub listen: String,
}

/// Runs the witness from the command line and returns the process exit code.
pub async fn cli_serve(args: ServeArgs) -> ExitCode {
    eprintln!("pledge witness serve on {}: not built yet", args.listen);
    ExitCode::from(2)
}
