//! `pledge trustee`: a sealed campaign's trustee (SPEC R-SEAL-38), on top of
//! the library's [`trustee`] module: key files, and rounds of "audit the
//! log, then post what this trustee owes it".

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use pledge_client::client::Client;
use pledge_client::trustee::{self, Action};
use pledge_protocol::hash::CampaignId;
use rand::SeedableRng;

use crate::audit::LogArgs;

/// `pledge trustee` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum TrusteeCommand {
    /// Create a key file for one campaign (use a fresh key per campaign)
    /// and print its public key for the organisers.
    Keygen {
        /// The key file to create (never overwritten; mode 0600).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
    },
    /// Print the public key of a key file.
    Show {
        /// The key file.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
    },
    /// Audit the log, then post what this trustee owes the campaign: its
    /// dealing, complaints, its ready message, decryption shares of each
    /// snapshot.
    Step(StepArgs),
    /// `step` again every --poll seconds until stopped.
    Serve {
        #[command(flatten)]
        step: StepArgs,
        /// Seconds between rounds.
        #[arg(long, value_name = "SECONDS", default_value_t = 30)]
        poll: u64,
    },
}

/// What a round needs.
#[derive(Debug, clap::Args)]
pub(crate) struct StepArgs {
    /// The trustee's key file for this campaign.
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// The sealed campaign's id (hex).
    #[arg(long, value_name = "ID")]
    campaign: String,
    #[command(flatten)]
    log: LogArgs,
}

fn describe(a: &Action) -> String {
    match a {
        Action::Dealt => "posted its dealing".into(),
        Action::Complained { dealer } => format!("complained against dealer {dealer}"),
        Action::Ready => "posted its ready message".into(),
        Action::Shared { snapshot } => format!("shared the snapshot at log index {snapshot}"),
    }
}

/// Runs a trustee command against `server`; the exit code is 0 on success,
/// 1 if a round failed (an audit that did not pass included), 2 on usage
/// errors.
pub(crate) async fn run(command: TrusteeCommand, server: String) -> ExitCode {
    match command {
        TrusteeCommand::Keygen { key } => {
            let mut rng = match rand::rngs::StdRng::try_from_rng(&mut rand::rngs::SysRng) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("pledge trustee keygen: no randomness from the system: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match trustee::generate_key_file(&key, &mut rng) {
                Ok(public) => {
                    println!("{}", hex::encode(public.to_bytes()));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("pledge trustee keygen: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        TrusteeCommand::Show { key } => match trustee::load_key_file(&key) {
            Ok(kp) => {
                println!("{}", hex::encode(kp.public_key().to_bytes()));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("pledge trustee show: {e}");
                ExitCode::FAILURE
            }
        },
        TrusteeCommand::Step(args) => round(&args, &server).await,
        TrusteeCommand::Serve { step, poll } => loop {
            // A failed round is reported and retried: the trustee waits for
            // a log that audits, it never acts on one that does not.
            let _ = round(&step, &server).await;
            tokio::time::sleep(Duration::from_secs(poll.max(1))).await;
        },
    }
}

async fn round(args: &StepArgs, server: &str) -> ExitCode {
    let fail = |e: String| {
        eprintln!("pledge trustee: {e}");
        ExitCode::FAILURE
    };
    let Ok(campaign) = CampaignId::from_hex(args.campaign.trim()) else {
        eprintln!(
            "pledge trustee: --campaign {:?} is not a campaign id",
            args.campaign
        );
        return ExitCode::from(2);
    };
    let opts = match args.log.options(server.to_owned()) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("pledge trustee: {e}");
            return ExitCode::from(2);
        }
    };
    let kp = match trustee::load_key_file(&args.key) {
        Ok(k) => k,
        Err(e) => return fail(e.to_string()),
    };
    let client = match Client::new(server) {
        Ok(c) => c,
        Err(e) => return fail(e.to_string()),
    };
    match trustee::step(&opts, &client, &campaign, &kp).await {
        Ok(done) if done.is_empty() => {
            println!("nothing to post");
            ExitCode::SUCCESS
        }
        Ok(done) => {
            for a in &done {
                println!("{}", describe(a));
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(e.to_string()),
    }
}
