//! `pledge` command-line entry point: pledger commands (campaigns, tokens,
//! commit, amend, withdraw, status, watch, receipts), operator commands
//! (`pledge admin …`), `pledge demo`, `pledge audit` and `pledge witness serve`.
//!
//! Exit codes: 0 success, 1 failure, 2 usage error.
//!
//! All command-line glue (argument parsing, printing, exit codes, the
//! operator log of the witness) lives here; the `pledge-client` library only
//! takes plain options and returns typed results.

mod audit;
mod trustee;
mod witness;

use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use clap::{Parser, Subcommand};
use pledge_client::client::{
    AttesterKind, AttesterSpec, CampaignInfo, Client, ClientError, ErrorCode, NewCampaign,
    PublicationSpec,
};
use pledge_client::demo::{self, DemoOptions};
use pledge_client::flows::{self, AttestKind, FlowError, WatchNews};
use pledge_client::wallet::{self, Protection, Wallet};
use pledge_protocol::campaign::Funding;
use pledge_protocol::funding::Outcome as FundingOutcome;
use pledge_protocol::hash::CampaignId;
use pledge_protocol::note::NoteVerifier;
use pledge_protocol::pledge::Terms;
use zeroize::Zeroizing;

/// `println!` that does not panic when standard output is closed (`pledge
/// campaigns | head -1`): the output is lost, the command still finishes its
/// work (a pledge being sent is never abandoned for a closed pipe).
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

/// `print!` likewise.
macro_rules! out_raw {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($t)*);
    }};
}

#[derive(Parser, Debug)]
#[command(
    name = "pledge",
    version,
    about = "Anonymous conditional pledges: pledger, operator, auditor and witness tools"
)]
struct Cli {
    /// Ledger server URL.
    #[arg(
        long,
        global = true,
        default_value = "http://127.0.0.1:8080",
        env = "PLEDGE_SERVER"
    )]
    server: String,
    /// Wallet file (default: the user's data folder, e.g. ~/.local/share/pledge/wallet.pledge).
    #[arg(long, global = true, env = "PLEDGE_WALLET")]
    wallet: Option<PathBuf>,
    /// Keep the wallet without a passphrase (tests and demos only: anyone with the file reads it).
    #[arg(long, global = true)]
    insecure_no_passphrase: bool,
    /// Witness verifier key (`name+keyid+base64`) whose cosignature checkpoints
    /// need; repeat for several. Replaces the witness list pinned in the wallet
    /// (by default the server's, pinned at first use).
    #[arg(
        long = "witness",
        value_name = "VKEY",
        global = true,
        env = "PLEDGE_WITNESSES",
        value_delimiter = ','
    )]
    witnesses: Vec<String>,
    /// How many of the --witness keys must have cosigned (default: all of them).
    #[arg(long, value_name = "K", global = true, requires = "witnesses")]
    witness_quorum: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
// Parsed once per run: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
enum Command {
    /// List campaigns with their current tally.
    Campaigns,
    /// Obtain tokens for every open campaign of an attester (cover issuance).
    Tokens {
        /// `open`, `invite:CODE` (`invite:-` reads the code from standard
        /// input), or `email:ADDRESS` (the server mails a one-time code to
        /// ADDRESS, then the code is read from standard input).
        #[arg(long)]
        attest: String,
        /// Invite group, when open invite campaigns belong to several groups.
        #[arg(long)]
        group: Option<String>,
        /// With `email:ADDRESS`: the code already received (no new mail is
        /// asked for); `-` reads it from standard input.
        #[arg(long, value_name = "CODE")]
        email_code: Option<String>,
    },
    /// Pledge to a campaign: "I act if at least N people act, me included"
    /// (`--threshold N`); in a campaign with conditional funding also "… and
    /// I receive Y" (`--support Y`) or "I give up to X if N act" (`--fund X
    /// --if N`). Amounts in the campaign's currency (`200`, `12.50`).
    Commit {
        /// Campaign id (64 hex digits, or a unique prefix of at least 4).
        campaign: String,
        #[command(flatten)]
        terms: TermsArgs,
        /// Send at once instead of after a random delay (costs privacy).
        #[arg(long, conflicts_with = "background")]
        now: bool,
        /// Largest random delay, in seconds.
        #[arg(long, default_value_t = 600)]
        delay_max: u64,
        /// Sign and save the pledge now, send it later: any `pledge
        /// send-pending` (or `pledge watch`) run after its random delay sends it.
        #[arg(long)]
        background: bool,
    },
    /// Send what the wallet holds signed but unsent (a `commit --background`
    /// whose delay is over, or an interrupted command), unchanged.
    SendPending {
        /// Also send pledges whose random delay is not over (costs privacy).
        #[arg(long)]
        now: bool,
    },
    /// Change my pledge: its threshold, the support it asks, or the money
    /// it offers (what is not given is kept).
    Amend {
        /// Campaign id (or a unique prefix).
        campaign: String,
        #[command(flatten)]
        terms: AmendArgs,
    },
    /// Conditional funding: who acts and who owes what at the close.
    Funding {
        #[command(subcommand)]
        command: FundingCommand,
    },
    /// Withdraw my pledge (final).
    Withdraw {
        /// Campaign id (or a unique prefix).
        campaign: String,
    },
    /// For each of my pledges: included?, A, activated?, deadline.
    Status,
    /// Sealed campaigns' cover traffic: send the null pledges (tokens you
    /// did not pledge with) and re-encryptions of your pledges that are due.
    Cover {
        /// Only this campaign (default: every sealed campaign you hold a
        /// token for).
        campaign: Option<String>,
        /// Send everything still to send now, due or not (costs privacy:
        /// cover sent together is easier to tell apart).
        #[arg(long)]
        now: bool,
        /// Turn cover traffic off for this wallet (nothing is sent).
        #[arg(long, conflicts_with_all = ["on", "now"])]
        off: bool,
        /// Turn cover traffic back on (the default).
        #[arg(long)]
        on: bool,
    },
    /// Follow the public event stream and report when my pledges activate.
    Watch {
        /// Polling interval when the event stream is unavailable, seconds.
        #[arg(long, default_value_t = 30)]
        poll: u64,
        /// Stop after this many seconds (default: run until interrupted).
        #[arg(long)]
        duration: Option<u64>,
    },
    /// Write the receipt of my latest entry on a campaign (entry included).
    Receipt {
        /// Campaign id.
        campaign: String,
        /// Output file (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Check a receipt offline (C2SP tlog-proof).
    VerifyReceipt {
        /// Receipt file.
        file: PathBuf,
        /// Log verifier key text (default: the key pinned in the wallet).
        #[arg(long)]
        key: Option<String>,
        /// The entry, base64 (default: the receipt's `extra` line).
        #[arg(long)]
        entry: Option<String>,
    },
    /// Operator commands (need the server's admin token: from
    /// --admin-token-file, PLEDGE_ADMIN_TOKEN_FILE or PLEDGE_ADMIN_TOKEN).
    Admin {
        /// File holding the admin token (the server's data folder has it in
        /// admin.token).
        #[arg(long, env = "PLEDGE_ADMIN_TOKEN_FILE", value_name = "FILE")]
        admin_token_file: Option<PathBuf>,
        /// The token itself. Discouraged: a command line is visible to other
        /// users of the machine (`ps`); use --admin-token-file or the
        /// PLEDGE_ADMIN_TOKEN environment variable.
        #[arg(long, hide = true)]
        admin_token: Option<String>,
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Simulate N pledgers against a `pledged --demo` server.
    Demo {
        /// Number of pledgers.
        #[arg(long, default_value_t = 20)]
        pledgers: usize,
        /// With the admin token, create a fresh campaign first.
        #[arg(long, env = "PLEDGE_ADMIN_TOKEN", hide_env_values = true)]
        admin_token: Option<String>,
        /// Use a campaign with conditional funding: pledgers mix "act",
        /// "act if supported" and "fund".
        #[arg(long)]
        funding: bool,
        /// A sealed campaign: the demo creates it (needs the admin token)
        /// with three trustees it runs (k = 2), and takes it through key
        /// generation, sealed pledges, amendments, cover and two reveals.
        #[arg(long, conflicts_with = "funding")]
        sealed: bool,
        /// File holding the admin token (the server's data folder has it in
        /// admin.token).
        #[arg(long, env = "PLEDGE_ADMIN_TOKEN_FILE", value_name = "FILE")]
        admin_token_file: Option<PathBuf>,
        /// With --sealed: seconds from the campaign's creation to its early
        /// reveal.
        #[arg(long, default_value_t = 20, value_name = "SECONDS")]
        early_reveal: u64,
    },
    /// Audit the log (independent auditor).
    Audit(audit::AuditArgs),
    /// Run a witness.
    Witness {
        #[command(subcommand)]
        command: WitnessCommand,
    },
    /// A sealed campaign's trustee: key files, key generation and
    /// decryption shares through the log.
    Trustee {
        #[command(subcommand)]
        command: trustee::TrusteeCommand,
    },
}

#[derive(Subcommand, Debug)]
enum AdminCommand {
    /// Campaigns: create, list, show.
    #[command(subcommand)]
    Campaign(CampaignCommand),
    /// Invite codes: mint, revoke.
    #[command(subcommand)]
    Invites(InvitesCommand),
    /// Same as `admin campaign create` (older spelling).
    #[command(hide = true)]
    CreateCampaign(CreateCampaign),
    /// Same as `admin invites mint` (older spelling).
    #[command(hide = true)]
    MintInvites(MintInvites),
}

#[derive(Subcommand, Debug)]
// Parsed once per run: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
enum CampaignCommand {
    /// Open a campaign (a fresh issuer key is logged with it).
    Create(CreateCampaign),
    /// Every campaign, as `pledge campaigns` shows them.
    List,
    /// One campaign (64 hex digits or a unique prefix).
    Show {
        /// Campaign id or unique prefix.
        id: String,
    },
    /// Close an open campaign now, before its deadline: no more tokens or
    /// pledges; the final tally is logged and every pledger's outcome is
    /// fixed as at a deadline. Final: a closed campaign cannot reopen.
    Close {
        /// Campaign id or unique prefix.
        id: String,
        /// Confirm (the close is final).
        #[arg(long)]
        yes: bool,
    },
    /// Move an open campaign's deadline later (never earlier; at most 90
    /// days after the original). Logged as a CampaignUpdated entry: final,
    /// and public with the deadline it replaces.
    Extend {
        /// Campaign id or unique prefix.
        id: String,
        /// The new deadline: a date and time with its offset
        /// (`2027-03-22T18:00+01:00`, or `Z` for UTC), `+Nd` / `+Nh` / `+Nm`
        /// from now, or Unix seconds.
        #[arg(long)]
        deadline: String,
        /// Confirm (a deadline cannot be moved back).
        #[arg(long)]
        yes: bool,
    },
    /// Give an open campaign's title and text in another language (the
    /// page shows it to visitors of that language, as the organiser's
    /// translation; the original stays). Replaces that language's earlier
    /// text. Logged as a CampaignUpdated entry.
    Text {
        /// Campaign id or unique prefix.
        id: String,
        /// Language tag, e.g. `fr` or `pt-br` (lower-cased).
        #[arg(long)]
        lang: String,
        /// The title in that language (one line).
        #[arg(long)]
        title: String,
        /// A UTF-8 file holding the text in that language (line feeds kept,
        /// CR LF read as LF, trailing line feeds dropped).
        #[arg(long, value_name = "PATH", conflicts_with = "text")]
        text_file: Option<PathBuf>,
        /// The text in that language, given inline.
        #[arg(long)]
        text: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum InvitesCommand {
    /// Mint single-use invite codes for a group (shown once; each code names
    /// its group).
    Mint(MintInvites),
    /// Per invite group: how many codes are still unused and how many open
    /// campaigns take them (counts only: no code is shown again).
    List,
    /// Delete every unused code of a group (used ones are already gone).
    Revoke {
        /// Invite group.
        #[arg(long)]
        group: String,
    },
}

/// The terms of `pledge commit`.
#[derive(clap::Args, Debug)]
struct TermsArgs {
    /// Threshold N: act if at least N people act, me included.
    #[arg(long, required_unless_present = "fund", conflicts_with = "fund")]
    threshold: Option<u32>,
    /// Support I need to act, one of the campaign's support levels (e.g.
    /// `200`): act if N act and I receive it.
    #[arg(long, value_name = "AMOUNT", requires = "threshold")]
    support: Option<String>,
    /// Money I give (at most), if enough people act (`--if`).
    #[arg(long, value_name = "AMOUNT", requires = "if_n")]
    fund: Option<String>,
    /// With --fund: how many people must act.
    #[arg(long = "if", value_name = "N", requires = "fund")]
    if_n: Option<u32>,
}

/// The changes of `pledge amend` (what is not given is kept).
#[derive(clap::Args, Debug)]
struct AmendArgs {
    /// New threshold (for a funding pledge: the number of people who must act).
    #[arg(long, alias = "if")]
    threshold: Option<u32>,
    /// New support asked, one of the campaign's levels.
    #[arg(long, value_name = "AMOUNT", conflicts_with_all = ["no_support", "fund"])]
    support: Option<String>,
    /// Ask no support any more (a plain pledge to act).
    #[arg(long, conflicts_with = "fund")]
    no_support: bool,
    /// New amount offered (turns the pledge into a funding pledge).
    #[arg(long, value_name = "AMOUNT")]
    fund: Option<String>,
}

#[derive(Subcommand, Debug)]
enum FundingCommand {
    /// Every live pledge's outcome in a closed funding campaign, recomputed
    /// from the log (anyone can run it): acts and with what support, waits
    /// for funds, not activated, or owes what. Tab-separated, one line per
    /// pledge, by anonymous pledge key: the export an organiser uses to
    /// settle payments elsewhere.
    Dues {
        /// Campaign id (or a unique prefix).
        campaign: String,
    },
}

/// `pledge admin campaign create`.
#[derive(clap::Args, Debug)]
struct CreateCampaign {
    /// Title.
    #[arg(long)]
    title: String,
    /// The action pledged.
    #[arg(long)]
    action: String,
    /// Text.
    #[arg(long, default_value = "")]
    text: String,
    /// Deadline: a date and time with its offset (`2027-03-08T11:00+01:00`,
    /// or `Z` for UTC), `+Nd` / `+Nh` / `+Nm` from now, or Unix seconds.
    #[arg(long)]
    deadline: String,
    /// Success goal.
    #[arg(long)]
    goal: u32,
    /// Smallest threshold.
    #[arg(long, default_value_t = 1)]
    threshold_min: u32,
    /// Largest threshold.
    #[arg(long, default_value_t = 1000)]
    threshold_max: u32,
    /// `open`, `invite:GROUP`, or `email` (one-time codes sent by e-mail;
    /// needs a mail relay in the server's configuration).
    #[arg(long)]
    attester: String,
    /// With `--attester email`: take only addresses of this domain (exactly;
    /// repeat for several). Default: any domain.
    #[arg(long = "email-domain", value_name = "DOMAIN")]
    email_domains: Vec<String>,
    /// Publish pledges only in groups of at least N (SPEC R-PUB-1);
    /// default: the server's (3).
    #[arg(long, value_name = "N")]
    publish_min: Option<u32>,
    /// Random publication delay of up to MS milliseconds once a group is
    /// complete (with --publish-min; default 10000).
    #[arg(long, value_name = "MS", requires = "publish_min")]
    publish_max_delay_ms: Option<u64>,
    /// Take conditional funding in this currency (ISO 4217, e.g. `EUR`):
    /// pledgers may ask support to act, supporters may pledge money.
    #[arg(long, value_name = "CODE")]
    currency: Option<String>,
    /// Decimal digits of the currency's minor unit (2 for EUR).
    #[arg(long, default_value_t = 2, requires = "currency")]
    minor_digits: u8,
    /// The support menu, comma-separated amounts (`50,100,200`), at most 8;
    /// empty: funders only.
    #[arg(long, value_name = "AMOUNTS", requires = "currency")]
    support_levels: Option<String>,
    /// Activated funders give their whole amount (the surplus goes to the
    /// fund) instead of their pro-rata share of the cost.
    #[arg(long, requires = "currency")]
    surplus_to_fund: bool,
    /// A sealed campaign (SPEC §17): the thresholds pledgers may choose,
    /// comma-separated, strictly ascending (`1,10,100`); they stay
    /// encrypted until a reveal. Needs --trustee and --trustees-needed.
    #[arg(long, value_name = "THRESHOLDS", requires_all = ["trustees", "trustees_needed"],
          conflicts_with = "currency")]
    sealed_buckets: Option<String>,
    /// A sealed campaign's trustee: its public key for this campaign (64
    /// hex digits, `pledge trustee keygen`), trustee 1 first; repeat for
    /// each.
    #[arg(long = "trustee", value_name = "KEY", requires = "sealed_buckets")]
    trustees: Vec<String>,
    /// Trustees a reveal needs (k of the n given).
    #[arg(long, value_name = "K", requires = "sealed_buckets")]
    trustees_needed: Option<u8>,
    /// An early reveal of a sealed campaign, as --deadline takes it;
    /// repeat for several (there is always one at the deadline).
    #[arg(long = "reveal", value_name = "WHEN", requires = "sealed_buckets")]
    reveals: Vec<String>,
}

/// `pledge admin invites mint`.
#[derive(clap::Args, Debug)]
struct MintInvites {
    /// Invite group.
    #[arg(long)]
    group: String,
    /// How many.
    #[arg(long)]
    count: u32,
}

#[derive(Subcommand, Debug)]
enum WitnessCommand {
    /// Serve the C2SP tlog-witness add-checkpoint endpoint.
    Serve(witness::ServeArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pledge: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        match cli.command {
            Command::Audit(args) => {
                // `pledge --server URL audit` and PLEDGE_SERVER, like every command.
                return audit::run(args, cli.server).await;
            }
            Command::Witness {
                command: WitnessCommand::Serve(args),
            } => return witness::serve(args).await,
            Command::Trustee { command } => return trustee::run(command, cli.server).await,
            _ => {}
        }
        match run(cli).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) if e.downcast_ref::<Usage>().is_some() => {
                eprintln!("pledge: {e:#}");
                ExitCode::from(2)
            }
            Err(e) => {
                eprintln!("pledge: {e:#}");
                if held_back(&e) {
                    // SPEC R-PUB-1: nothing was recorded; the wallet keeps
                    // the signed entry and resends it unchanged.
                    eprintln!(
                        "pledge: your signed entry stays in the wallet, unsent; run the same \
                         command again later and it is sent unchanged"
                    );
                }
                ExitCode::FAILURE
            }
        }
    })
}

/// A usage error: the command line asks for something impossible (exit 2).
#[derive(Debug)]
struct Usage(String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Usage(msg.into()))
}

/// Whether `e` is the server's 503 `held_back` (SPEC R-PUB-1).
fn held_back(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        let client = c.downcast_ref::<ClientError>().or_else(|| {
            if let Some(FlowError::Client(ce)) = c.downcast_ref::<FlowError>() {
                Some(ce)
            } else {
                None
            }
        });
        client.is_some_and(|ce| ce.is(&ErrorCode::HeldBack))
    })
}

/// A campaign id: 64 hex digits, or (like git) a unique prefix of at least
/// 4, resolved against the whole campaign list (the server learns nothing
/// from it that `commit` does not already read).
/// A campaign's object, read from the whole list (SPEC R-CLIENT-5: the
/// server does not learn which campaign a pledger is about to pledge to).
async fn campaign_from_list(client: &Client, id: &CampaignId) -> anyhow::Result<CampaignInfo> {
    client
        .campaigns()
        .await?
        .into_iter()
        .find(|c| c.campaign_id == *id)
        .ok_or_else(|| anyhow!("no campaign {id} on this server"))
}

async fn campaign_id(client: &Client, s: &str) -> anyhow::Result<CampaignId> {
    let s = s.trim().to_ascii_lowercase();
    if s.len() == 64 {
        return CampaignId::from_hex(&s)
            .map_err(|_| usage(format!("{s:?} is not a campaign id (64 hex digits)")));
    }
    if s.len() < 4 || s.len() > 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(usage(format!(
            "{s:?} is not a campaign id: give its 64 hex digits or a unique prefix of at least 4"
        )));
    }
    let list = client.campaigns().await?;
    let found: Vec<_> = list
        .iter()
        .filter(|c| c.campaign_id.to_hex().starts_with(&s))
        .collect();
    match found.as_slice() {
        [one] => Ok(one.campaign_id),
        [] => Err(usage(format!("no campaign id starts with {s}"))),
        many => Err(usage(format!(
            "{s} is the start of {} campaign ids ({}): give more digits",
            many.len(),
            many.iter()
                .map(|c| short(&c.campaign_id.to_hex()).to_owned())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The first 12 hex digits of an id, enough to name it in commands.
fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

fn wallet_path(cli: &Cli) -> anyhow::Result<PathBuf> {
    match &cli.wallet {
        Some(p) => Ok(p.clone()),
        None => wallet::default_path()
            .ok_or_else(|| anyhow!("no home folder to keep the wallet in; pass --wallet PATH")),
    }
}

/// The passphrase from `PLEDGE_PASSPHRASE`, or asked on the terminal without echo.
fn protection(cli: &Cli, confirm: bool) -> anyhow::Result<Protection> {
    if cli.insecure_no_passphrase {
        return Ok(Protection::InsecureNoPassphrase);
    }
    if let Ok(p) = std::env::var("PLEDGE_PASSPHRASE") {
        // A new wallet gets the same minimum whatever the source.
        if confirm && p.chars().count() < 8 {
            return Err(usage(
                "PLEDGE_PASSPHRASE: choose a passphrase of at least 8 characters for a new wallet",
            ));
        }
        return Ok(Protection::passphrase(p));
    }
    let p = prompt("wallet passphrase: ")?;
    if confirm {
        if p.chars().count() < 8 {
            return Err(usage("choose a passphrase of at least 8 characters"));
        }
        let again = prompt("again: ")?;
        if *again != *p {
            return Err(usage("the two passphrases differ"));
        }
    }
    Ok(Protection::Passphrase {
        passphrase: p,
        params: wallet::KdfParams::DEFAULT,
    })
}

/// Reads a line from /dev/tty with echo off (`stty -echo`).
fn prompt(msg: &str) -> anyhow::Result<Zeroizing<String>> {
    let mut tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .context("no terminal to ask the wallet passphrase on: set PLEDGE_PASSPHRASE")?;
    let _ = tty.write_all(msg.as_bytes());
    let _ = tty.flush();
    let stty = |arg: &str| {
        std::fs::File::open("/dev/tty").ok().map(|f| {
            std::process::Command::new("stty")
                .arg(arg)
                .stdin(f)
                .status()
        })
    };
    let _ = stty("-echo");
    let mut line = Zeroizing::new(String::new());
    let read = std::io::BufReader::new(&tty).read_line(&mut line);
    let _ = stty("echo");
    let _ = tty.write_all(b"\n");
    read.context("reading the passphrase")?;
    let trimmed = Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_owned());
    Ok(trimmed)
}

/// Opens the wallet (creating it if `create`), prints what a new one is.
fn open_wallet(cli: &Cli, create: bool) -> anyhow::Result<Wallet> {
    let path = wallet_path(cli)?;
    if !path.exists() {
        if !create {
            bail!(
                "no wallet at {}: run `pledge tokens --attest …` first",
                path.display()
            );
        }
        let w = Wallet::create(&path, protection(cli, true)?)?;
        out!("new wallet: {} (mode 0600)", path.display());
        if w.is_insecure() {
            out!(
                "WARNING: --insecure-no-passphrase: this wallet is NOT protected by a passphrase; \
                 anyone with the file can read your tokens and pledges"
            );
        }
        return Ok(w);
    }
    let w = Wallet::open(&path, protection(cli, false)?)?;
    if w.is_insecure() {
        eprintln!("note: this wallet has no passphrase (--insecure-no-passphrase)");
    }
    Ok(w)
}

async fn pinned(cli: &Cli, client: &Client, w: &mut Wallet) -> anyhow::Result<NoteVerifier> {
    let first_key = w.data.log.is_none();
    let (v, new) = flows::pin_log(client, w).await?;
    if first_key {
        out!(
            "pinned the log key at first use (check it with the operator out of band):\n  {}",
            v.to_text()
        );
    }
    let mut changed = new;
    if !cli.witnesses.is_empty() {
        let k = cli.witness_quorum.unwrap_or(cli.witnesses.len());
        let policy = flows::WitnessPolicy::parse(&cli.witnesses, k)
            .map_err(|e| usage(format!("--witness: {e}")))?;
        if flows::WitnessPolicy::pinned(w)?.as_ref() != Some(&policy) {
            flows::pin_witnesses(w, &policy);
            changed = true;
        }
    }
    if changed {
        match flows::WitnessPolicy::pinned(w)? {
            Some(p) if p.quorum > 0 => {
                out!(
                    "witness policy pinned: every checkpoint needs {} of these {} witnesses' \
                     cosignatures{}:",
                    p.quorum,
                    p.witnesses.len(),
                    if cli.witnesses.is_empty() {
                        " (as the server lists them; --witness overrides)"
                    } else {
                        ""
                    }
                );
                for k in &p.witnesses {
                    out!("  {}", k.to_text());
                }
            }
            _ => out!(
                "WARNING: no witness policy: the server lists no witnesses, so nothing but the \
                 log key vouches that everyone sees the same log (pass --witness VKEY)"
            ),
        }
        w.save()?;
    }
    Ok(v)
}

/// Which log size the tally of a status line comes from.
fn tally_age(s: &flows::PledgeStatus) -> String {
    let behind = s.checkpoint_size.saturating_sub(s.statement_size);
    format!(
        "tally signed at log size {} (verified checkpoint {}{}); never older than a tally this \
         wallet saw before",
        s.statement_size,
        s.checkpoint_size,
        if behind == 0 {
            String::new()
        } else {
            format!(", {behind} later entries of any campaign")
        }
    )
}

/// Waits out `delay`, showing a countdown on a terminal; ctrl-c stops the
/// command and says the pledge stays in the wallet, unsent.
async fn countdown(delay: Duration) -> anyhow::Result<()> {
    use std::io::IsTerminal as _;
    let tty = std::io::stdout().is_terminal();
    let end = tokio::time::Instant::now() + delay;
    loop {
        let left = end.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            break;
        }
        if tty {
            out_raw!(
                "\r  sending in {} ",
                mmss(left.as_secs() + u64::from(left.subsec_nanos() > 0))
            );
            let _ = std::io::stdout().flush();
        }
        let step = left.min(Duration::from_secs(1));
        tokio::select! {
            () = tokio::time::sleep(step) => {}
            _ = tokio::signal::ctrl_c() => {
                if tty {
                    out!();
                }
                bail!(
                    "interrupted: your signed pledge was NOT sent. It stays in the wallet, \
                     pending; `pledge send-pending` (or the same `pledge commit`) sends it"
                );
            }
        }
    }
    if tty {
        out!("\r  sending now            ");
    }
    Ok(())
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A moment in UTC: `2027-03-08 10:00:00 UTC`.
fn utc(unix: u64) -> String {
    i64::try_from(unix)
        .ok()
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .map_or_else(
            || format!("Unix time {unix}"),
            |t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
        )
}

/// After an entry of mine in a sealed campaign: the cover re-encryption
/// scheduled next (SPEC R-SEAL-44), said in words.
fn say_cover(w: &mut Wallet, info: &CampaignInfo) -> anyhow::Result<()> {
    match flows::sealed::after_my_entry(w, info, unix_now())? {
        Some(at) => out!(
            "cover: a re-encryption of your sealed pledge (same vector, new randomness) is \
             scheduled from {}, so that amendments in the log do not show changes of mind; \
             `pledge cover` or `pledge watch` sends it",
            utc(at)
        ),
        None if w.data.cover.off => {
            out!("cover traffic is off in this wallet (`pledge cover --on`)")
        }
        None => {}
    }
    Ok(())
}

/// A moment in the user's time zone, with how far it is:
/// `2027-03-08 11:00 CET (+01:00), in 92 days 3 h`.
fn when(unix: u64) -> String {
    let local = i64::try_from(unix)
        .ok()
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .map(|t| t.to_zoned(jiff::tz::TimeZone::system()));
    let date = match local {
        Some(z) => z.strftime("%Y-%m-%d %H:%M %Z (%:z)").to_string(),
        None => format!("Unix time {unix}"),
    };
    let now = unix_now();
    let span = |s: u64| {
        if s >= 86_400 {
            format!("{} days {} h", s / 86_400, (s % 86_400) / 3600)
        } else if s >= 3600 {
            format!("{} h {} min", s / 3600, (s % 3600) / 60)
        } else {
            format!("{} min {} s", s / 60, s % 60)
        }
    };
    if unix > now {
        format!("{date}, in {}", span(unix - now))
    } else {
        format!("{date}, passed {} ago", span(now - unix))
    }
}

/// `pledge campaigns` and `pledge admin campaign list`.
async fn list_campaigns(client: &Client) -> anyhow::Result<()> {
    let list = client.campaigns().await?;
    if list.is_empty() {
        out!("no campaigns");
    }
    for c in &list {
        print_campaign(c);
    }
    Ok(())
}

/// The campaign's funding block, checked against its id.
fn funding_of(info: &CampaignInfo) -> anyhow::Result<Option<Funding>> {
    Ok(flows::definition_of(info)?.funding().cloned())
}

/// An amount flag (`--support`, `--fund`) in minor units of the campaign's
/// currency; a usage error without funding or for a malformed amount.
fn amount_arg(
    info: &CampaignInfo,
    funding: Option<&Funding>,
    text: &str,
    flag: &str,
) -> anyhow::Result<u64> {
    let f = funding.ok_or_else(|| {
        usage(format!(
            "{flag}: campaign {} takes no conditional funding; pledge with --threshold alone",
            info.campaign_id
        ))
    })?;
    flows::parse_amount(text, f.minor_digits()).map_err(|e| usage(format!("{flag}: {e}")))
}

/// The terms of `pledge commit` in this campaign's currency.
fn commit_terms(info: &CampaignInfo, a: &TermsArgs) -> anyhow::Result<(Terms, Option<Funding>)> {
    let funding = funding_of(info)?;
    let amount = |text: &str, flag: &str| amount_arg(info, funding.as_ref(), text, flag);
    let terms = match (a.threshold, &a.support, &a.fund, a.if_n) {
        (Some(t), None, None, _) => Terms::Threshold { t },
        (Some(t), Some(y), None, _) => Terms::SupportedThreshold {
            t,
            support: amount(y, "--support")?,
        },
        (None, None, Some(x), Some(n)) => Terms::Fund {
            n,
            amount: amount(x, "--fund")?,
        },
        _ => bail!(usage(
            "give --threshold N (and --support AMOUNT to ask support), or --fund AMOUNT --if N"
        )),
    };
    // The campaign's own check (menu, range) runs in `sign_pledge`, before
    // anything is signed.
    Ok((terms, funding))
}

/// `pledge amend`'s new terms: the current ones with the changes given.
fn amended_terms(
    info: &CampaignInfo,
    current: Terms,
    a: &AmendArgs,
) -> anyhow::Result<(Terms, Option<Funding>)> {
    let funding = funding_of(info)?;
    let amount = |text: &str, flag: &str| amount_arg(info, funding.as_ref(), text, flag);
    let t = a.threshold.unwrap_or(current.threshold_value());
    let new = if let Some(x) = &a.fund {
        Terms::Fund {
            n: t,
            amount: amount(x, "--fund")?,
        }
    } else if let Some(y) = &a.support {
        Terms::SupportedThreshold {
            t,
            support: amount(y, "--support")?,
        }
    } else {
        match current {
            Terms::Fund { amount, .. } => Terms::Fund { n: t, amount },
            Terms::SupportedThreshold { support, .. } if !a.no_support => {
                Terms::SupportedThreshold { t, support }
            }
            _ => Terms::Threshold { t },
        }
    };
    if a.threshold.is_none() && a.support.is_none() && a.fund.is_none() && !a.no_support {
        bail!(usage(
            "nothing to change: give --threshold, --support, --no-support or --fund"
        ));
    }
    // Checked against the campaign by `flows::change` before signing.
    Ok((new, funding))
}

/// `pledge status`'s standing line for a pledge of a funding campaign.
fn funding_standing(s: &flows::PledgeStatus) -> Option<String> {
    let f = s.funding.as_ref()?;
    let money = |y: u64| flows::format_amount(y, &f.block);
    let a = s.active;
    Some(match (s.terms, s.standing()) {
        (Terms::Fund { n, amount }, _) => {
            let due = s.due().unwrap_or(0);
            if u64::from(n) <= a {
                format!(
                    "CALLED: A = {a} reached your {n}; on this tally you would owe {} of the {} \
                     you offered (final at the close)",
                    money(due),
                    money(amount)
                )
            } else {
                format!(
                    "waiting: A = {a} is below your {n}; you would owe nothing (of {})",
                    money(amount)
                )
            }
        }
        (_, Some(flows::Standing::NotActivated)) => match s.terms.support() {
            Some(y) if y > 0 => format!(
                "waiting: A = {a}: fewer than your {} people can act with the money pledged so \
                 far (your support of {} included)",
                s.threshold,
                money(y)
            ),
            _ => format!("waiting: your threshold {} is above A = {a}", s.threshold),
        },
        (_, Some(flows::Standing::Activated)) => {
            let y = s.terms.support().unwrap_or(0);
            if y == 0 {
                format!(
                    "ACTIVATED: your threshold {} is at most A = {a}",
                    s.threshold
                )
            } else {
                format!(
                    "ACTIVATED AND FUNDED: your threshold {} is at most A = {a} and the money \
                     pledged covers your support of {}",
                    s.threshold,
                    money(y)
                )
            }
        }
        (_, Some(flows::Standing::WaitingForFunds)) => format!(
            "ELIGIBLE, NOT FUNDED: your threshold {} is at most A = {a}, but the money pledged \
             does not reach your support of {}",
            s.threshold,
            money(s.terms.support().unwrap_or(0))
        ),
        (_, Some(flows::Standing::TieBreak { slots, eligible })) => format!(
            "ELIGIBLE, PARTLY FUNDED: your threshold {} is at most A = {a}, and {slots} of the \
             {eligible} pledges asking {} are funded; which ones is fixed at the close by a \
             public order nobody can choose",
            s.threshold,
            money(s.terms.support().unwrap_or(0))
        ),
        _ => return None,
    })
}

/// `pledge status` for a pledge of a sealed campaign (SPEC R-SEAL-46):
/// "sealed until <next reveal>" before a reveal, the revealed figures
/// (checked against the log) after one.
fn print_sealed_status(
    s: &flows::PledgeStatus,
    sv: &flows::SealedView,
    included: &str,
    extended: &str,
) {
    let mine = if s.threshold == 0 {
        "your sealed pledge is the null vector (a cover pledge, or withdrawn): it counts nowhere"
            .to_owned()
    } else {
        format!(
            "your sealed threshold: {} (encrypted in the log)",
            s.threshold
        )
    };
    out!("    {mine}");
    let now = unix_now();
    match &sv.revealed {
        None => out!(
            "    sealed until {}: {} sealed entries so far, no count is known to anyone before \
             then",
            utc(sv.next_reveal(now, s.deadline)),
            sv.entries
        ),
        Some(r) => {
            let standing = if s.threshold == 0 {
                String::new()
            } else if s.activated {
                format!("; ACTIVATED: your threshold {} is at most A", s.threshold)
            } else {
                format!("; waiting: your threshold {} is above A", s.threshold)
            };
            out!(
                "    revealed at log index {} (read from the log): counts per bucket {} \
                 (buckets {}), live {}, active count A = {}{standing}; goal A >= {}",
                r.snapshot,
                r.counts
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                flows::sealed::list(sv.block.buckets()),
                r.live,
                r.active,
                s.goal
            );
            if s.outcome.is_none() {
                out!(
                    "    still sealed until {} for what came after that reveal ({} sealed \
                     entries now)",
                    utc(sv.next_reveal(now, s.deadline)),
                    sv.entries
                );
            }
        }
    }
    out!("    included: {included}");
    out!("    deadline {}{extended} [{}]", when(s.deadline), s.state);
    if s.threshold != 0
        && let Some(text) = s.outcome_text()
    {
        out!("    {text}");
    }
}

/// `pledge funding dues`: one line per live pledge.
fn print_allocation(a: &flows::Allocation) {
    let f = &a.block;
    let money = |y: u64| flows::format_amount(y, f);
    out!(
        "# campaign {} closed at entry {}: A = {}; funds called {} for a cost of {}; tie-break \
         root {}",
        a.campaign,
        a.closed_index,
        a.joint.active,
        money(u64::try_from(a.joint.funds).unwrap_or(u64::MAX)),
        money(u64::try_from(a.joint.cost).unwrap_or(u64::MAX)),
        a.final_root.to_hex()
    );
    out!("# pledge_key\tnullifier\tterms\toutcome\tamount_minor_units");
    for r in &a.rows {
        let (outcome, amount) = match r.outcome {
            FundingOutcome::Acts { support } => ("acts", support),
            FundingOutcome::WaitingForFunds => ("eligible_not_funded", 0),
            FundingOutcome::NotActivated => ("not_activated", 0),
            FundingOutcome::Owes { due } => ("owes", due),
        };
        out!(
            "{}\t{}\t{}\t{outcome}\t{amount}",
            hex::encode(r.pledge_key),
            r.nullifier.to_hex(),
            flows::describe_terms(&r.terms, Some(f)),
        );
    }
}

/// One campaign, as `pledge campaigns` lists it.
/// `pledge admin invites list`: one line per group, columns aligned.
fn print_invite_groups(groups: &[pledge_protocol::api::InviteGroup]) {
    const HEAD: [&str; 3] = ["GROUP", "UNUSED CODES", "OPEN CAMPAIGNS"];
    let width = groups
        .iter()
        .map(|g| g.group.len())
        .chain([HEAD[0].len()])
        .max()
        .unwrap_or(0);
    out!("{:<width$}  {:>12}  {:>14}", HEAD[0], HEAD[1], HEAD[2]);
    for g in groups {
        let note = if g.campaigns == 0 {
            "  (no open campaign takes these codes yet)"
        } else if g.unused == 0 {
            "  (mint more with `pledge admin invites mint`)"
        } else {
            ""
        };
        out!(
            "{:<width$}  {:>12}  {:>14}{note}",
            g.group,
            g.unused,
            g.campaigns
        );
    }
}

/// SPEC R-CLIENT-7: the deadline a later one replaced, as ` (extended from
/// …)`, or nothing.
fn extended_from(c: &CampaignInfo) -> String {
    match c.original_deadline {
        Some(o) if o != c.deadline => format!(" (extended from {})", when(o)),
        _ => String::new(),
    }
}

fn print_campaign(c: &CampaignInfo) {
    let (live, a) = c.tally.as_ref().map_or((0, 0), |t| (t.live, t.active));
    out!("{}  [{}]  {}", c.campaign_id, c.state, c.title);
    let extended = extended_from(c);
    out!(
        "    action: {}; goal {}; thresholds {}..={}; deadline {}{extended}",
        c.action,
        c.goal,
        c.threshold_min,
        c.threshold_max,
        when(c.deadline)
    );
    if !c.texts.is_empty() {
        let langs: Vec<&str> = c.texts.iter().map(|t| t.lang.as_str()).collect();
        out!(
            "    also in: {} (the organiser's translations; the title above is the original)",
            langs.join(", ")
        );
    }
    let who = match (c.attester, c.invite_group.as_deref()) {
        (Some(AttesterKind::Invite), Some(g)) => format!("invite codes of group {g}"),
        (Some(AttesterKind::Email), _) => match &c.email_domains {
            Some(d) => format!("e-mail codes to addresses at {}", d.join(", ")),
            None => "e-mail codes".into(),
        },
        (Some(a), _) => a.to_string(),
        (None, _) => "nobody (closed)".into(),
    };
    if let Some(sealed) = &c.sealed {
        // SPEC R-SEAL-46: the buckets and the reveal times; no live
        // numbers before a reveal.
        let entries = c.tally.as_ref().and_then(|t| t.entries).unwrap_or(0);
        out!(
            "    tokens from: {who}; SEALED: thresholds are encrypted until a reveal; {entries} \
             sealed entries so far"
        );
        out!(
            "    buckets (the thresholds you may choose): {}",
            flows::sealed::list(&sealed.buckets)
        );
        let mut times: Vec<String> = sealed.reveals.iter().map(|&t| when(t)).collect();
        times.push(format!("{} (the deadline)", when(c.deadline)));
        out!("    reveals: {}", times.join(", "));
        out!(
            "    trustees: {} of {} needed to reveal; joint key {}",
            sealed.k,
            sealed.trustees.len(),
            if sealed.joint_key.is_some() {
                "ready (pledges open)"
            } else {
                "not ready yet (key generation running: no pledge can be sealed)"
            }
        );
        for r in &sealed.revealed {
            out!(
                "    revealed at log index {}: counts per bucket {:?}, live {}, active count A = \
                 {}{} (the server's figures; `pledge status` and `pledge audit` check them \
                 against the log)",
                r.snapshot,
                r.counts,
                r.live,
                r.active,
                if r.active >= u64::from(c.goal) {
                    " — GOAL REACHED"
                } else {
                    ""
                }
            );
        }
        return;
    }
    out!(
        "    tokens from: {who}; live pledges {live}, active count A = {a}{}",
        if a >= u64::from(c.goal) {
            " — GOAL REACHED"
        } else {
            ""
        }
    );
}

/// Seconds as `4 min 05 s`.
fn mmss(s: u64) -> String {
    format!("{} min {:02} s", s / 60, s % 60)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let client = Client::new(&cli.server)?;
    match &cli.command {
        Command::Campaigns => list_campaigns(&client).await?,
        Command::Tokens {
            attest,
            group,
            email_code,
        } => {
            if email_code.is_some() && !attest.starts_with("email:") {
                return Err(usage("--email-code goes with --attest email:ADDRESS"));
            }
            let kind = if attest == "open" {
                AttestKind::Open
            } else if let Some(code) = attest.strip_prefix("invite:") {
                // `invite:-` reads the code from standard input, so it stays out
                // of the process list and the shell history.
                let code = if code == "-" {
                    let mut line = Zeroizing::new(String::new());
                    std::io::stdin()
                        .read_line(&mut line)
                        .context("reading the invite code from standard input")?;
                    Zeroizing::new(line.trim().to_owned())
                } else {
                    Zeroizing::new(code.to_owned())
                };
                AttestKind::Invite {
                    code,
                    group: group.clone(),
                }
            } else if let Some(address) = attest.strip_prefix("email:") {
                AttestKind::Email {
                    address: Zeroizing::new(address.trim().to_owned()),
                    code: Zeroizing::new(String::new()),
                }
            } else {
                return Err(usage(
                    "--attest takes `open`, `invite:CODE` or `email:ADDRESS`",
                ));
            };
            let path = wallet_path(&cli)?;
            let created = !path.exists();
            let mut w = open_wallet(&cli, true)?;
            let kind = match kind {
                AttestKind::Email { address, .. } => {
                    let code = match email_code.as_deref() {
                        Some("-") | None => {
                            if email_code.is_none() {
                                let (sent, n) =
                                    flows::request_email_code(&client, &w, &address).await?;
                                let Some(sent) = sent else {
                                    out!("no open e-mail campaign takes this address");
                                    return Ok(());
                                };
                                eprintln!(
                                    "a one-time code was mailed for {n} campaign(s); it is \
                                     valid for {} (at most {} wrong tries)",
                                    mmss(sent.expires_in),
                                    sent.attempts
                                );
                                // A prompt only for a person at a terminal:
                                // a script piping the code gets none.
                                if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                                    eprint!("code from the mail: ");
                                }
                            }
                            let mut line = Zeroizing::new(String::new());
                            std::io::stdin()
                                .read_line(&mut line)
                                .context("reading the e-mail code from standard input")?;
                            if line.trim().is_empty() {
                                bail!(
                                    "no e-mail code on standard input (give it with \
                                     `--email-code`, or type it at the prompt)"
                                );
                            }
                            Zeroizing::new(line.trim().to_owned())
                        }
                        Some(c) => Zeroizing::new(c.trim().to_owned()),
                    };
                    AttestKind::Email { address, code }
                }
                other => other,
            };
            let got: anyhow::Result<_> = async {
                let log = pinned(&cli, &client, &mut w).await?;
                Ok(flows::obtain_tokens(&client, &mut w, &log, &kind).await?)
            }
            .await;
            let r = match got {
                Ok(r) => r,
                Err(e) => {
                    // A first command that failed leaves no wallet behind,
                    // unless it holds something (a token request sent, whose
                    // answer can still be finalised).
                    if created && w.discard_if_empty().unwrap_or(false) {
                        eprintln!("pledge: no wallet was created ({} removed)", path.display());
                    }
                    return Err(e);
                }
            };
            out!(
                "issuer keys checked against the log (inclusion proofs): {}",
                r.keys_checked
            );
            for c in &r.obtained {
                out!("token obtained for {c}");
            }
            for c in &r.already_held {
                out!("already holding a token for {c}");
            }
            for (c, at) in &r.cover {
                out!(
                    "cover: {} is sealed; unless you pledge there first, this token will be spent \
                     as a null pledge (it counts nowhere) from {}, so that the number of entries \
                     measures clients, not intent. `pledge cover` sends what is due (`pledge \
                     watch` does too); `pledge cover --off` turns cover traffic off",
                    short(c),
                    utc(*at)
                );
            }
            if r.obtained.is_empty() && r.already_held.is_empty() {
                out!("no open campaign for this attester");
            } else {
                out!(
                    "tokens are requested for every open campaign of this attester, so the \
                     issuer cannot tell which one you care about"
                );
            }
        }
        Command::Commit {
            campaign,
            terms,
            now,
            delay_max,
            background,
        } => {
            let id = campaign_id(&client, campaign).await?;
            let info = campaign_from_list(&client, &id).await?;
            let (terms, funding) = commit_terms(&info, terms)?;
            let what = flows::describe_terms(&terms, funding.as_ref());
            let mut w = open_wallet(&cli, false)?;
            let log = pinned(&cli, &client, &mut w).await?;
            let sealed = flows::sealed::sealed_block(&info)?.is_some();
            if sealed
                && w.data.pledge_for(&id).is_some_and(|p| {
                    p.is_sealed() && p.threshold == 0 && p.unacknowledged().is_none()
                })
            {
                // SPEC R-SEAL-42: my null pledge (cover, or withdrawn) takes
                // the threshold by a sealed amendment.
                let s = flows::change(&client, &mut w, &log, &id, Some(terms)).await?;
                out!(
                    "your sealed null pledge on {id} (a cover pledge, or a withdrawal) now holds \
                     {what}, encrypted: amendment entry {}, receipt verified",
                    s.index
                );
                say_cover(&mut w, &info)?;
                return Ok(());
            }
            let delay = if *now {
                out!(
                    "--now: sending at once. Privacy cost: the issuer saw your token request a \
                     moment ago, and a pledge arriving right after it (in the same or next batch) \
                     narrows down who made it; the random delay exists to break that link."
                );
                Duration::ZERO
            } else {
                flows::random_delay(Duration::from_secs(*delay_max))?
            };
            let due = unix_now().saturating_add(delay.as_secs());
            // The due time is kept even in the foreground: if this command is
            // interrupted, `send-pending` and `watch` still wait it out.
            let signed = flows::sign_pledge(&client, &mut w, &id, terms, Some(due)).await?;
            if signed.resend {
                out!(
                    "an earlier attempt left this pledge signed but unanswered: resending it unchanged"
                );
            } else if *background {
                out!(
                    "signed and saved in the wallet, pending: it may be sent from {} (a random \
                     {} of at most {delay_max} s from now, so it cannot be linked to your token \
                     request by timing). Run `pledge send-pending` after that time, or keep \
                     `pledge watch` running (it sends it a minute later): either sends it \
                     unchanged",
                    when(due),
                    mmss(delay.as_secs())
                );
                return Ok(());
            } else if !delay.is_zero() {
                out!(
                    "waiting a random {} (of at most {delay_max} s) before sending, so the \
                     pledge cannot be linked to your token request by timing (--now skips this); \
                     the signed pledge is already in the wallet, pending (`pledge status` shows \
                     it; ctrl-c leaves it there, and `pledge send-pending` sends it)",
                    mmss(delay.as_secs())
                );
                countdown(delay).await?;
            }
            let sent = tokio::select! {
                r = flows::send_signed(&client, &mut w, &log, &signed) => r,
                _ = tokio::signal::ctrl_c() => {
                    bail!(
                        "interrupted while sending: the pledge may or may not have reached the \
                         server. It stays in the wallet; `pledge send-pending` sends the same \
                         entry again (the log counts it once)"
                    );
                }
            };
            let s = sent?;
            out!(
                "pledged to {id} ({what}{}): entry {} in the log, receipt verified against \
                 checkpoint {} and stored in the wallet",
                if sealed {
                    ", sealed: encrypted under the trustees' joint key checked against the log"
                } else {
                    ""
                },
                s.index,
                s.checkpoint_size
            );
            if sealed {
                say_cover(&mut w, &info)?;
            }
        }
        Command::SendPending { now } => {
            let mut w = open_wallet(&cli, false)?;
            let log = pinned(&cli, &client, &mut w).await?;
            let filter = if *now {
                flows::PendingFilter::All
            } else {
                flows::PendingFilter::DueBy(unix_now())
            };
            let r = flows::send_pending(&client, &mut w, &log, filter).await?;
            for (c, s) in &r.sent {
                out!(
                    "sent the pending entry on {}: entry {} in the log, receipt verified",
                    short(c),
                    s.index
                );
            }
            for (c, due) in &r.waiting {
                out!(
                    "not yet: the pledge on {} waits out its random delay until {} (--now sends it anyway, at a privacy cost)",
                    short(c),
                    when(*due)
                );
            }
            if r.sent.is_empty() && r.waiting.is_empty() {
                out!("nothing pending");
            }
        }
        Command::Amend { campaign, terms } => {
            let id = campaign_id(&client, campaign).await?;
            let mut w = open_wallet(&cli, false)?;
            let log = pinned(&cli, &client, &mut w).await?;
            let current = w
                .data
                .pledge_for(&id)
                .filter(|p| !p.withdrawn)
                .ok_or_else(|| anyhow!("no live pledge of yours on {id}"))?
                .terms()
                .ok_or_else(|| anyhow!("the wallet's record of your pledge on {id} is damaged"))?;
            let info = campaign_from_list(&client, &id).await?;
            let (new, funding) = amended_terms(&info, current, terms)?;
            let s = flows::change(&client, &mut w, &log, &id, Some(new)).await?;
            out!(
                "amended: now {}{}; entry {}, receipt verified",
                flows::describe_terms(&new, funding.as_ref()),
                if info.sealed.is_some() {
                    " (sealed)"
                } else {
                    ""
                },
                s.index
            );
            if info.sealed.is_some() {
                say_cover(&mut w, &info)?;
            }
        }
        Command::Funding {
            command: FundingCommand::Dues { campaign },
        } => {
            let id = campaign_id(&client, campaign).await?;
            // Anyone can recompute it: a wallet's pinned key when there is
            // one, else the key served now (as `pledge audit` without --state).
            let mut w = if wallet_path(&cli)?.exists() {
                open_wallet(&cli, false)?
            } else {
                eprintln!(
                    "note: no wallet: trusting the log key the server serves now (compare it with \
                     the operator's)"
                );
                Wallet::in_memory()
            };
            let log = pinned(&cli, &client, &mut w).await?;
            let a = flows::allocation(&client, &mut w, &log, &id).await?;
            print_allocation(&a);
        }
        Command::Withdraw { campaign } => {
            let id = campaign_id(&client, campaign).await?;
            let mut w = open_wallet(&cli, false)?;
            let log = pinned(&cli, &client, &mut w).await?;
            let s = flows::change(&client, &mut w, &log, &id, None).await?;
            let info = campaign_from_list(&client, &id).await?;
            if info.sealed.is_some() {
                out!(
                    "withdrawn: your sealed pledge now encrypts the null vector (an amendment, \
                     which the log cannot tell from a change of threshold or a cover \
                     re-encryption; `pledge commit` can seal a threshold into it again); entry \
                     {}, receipt verified",
                    s.index
                );
                say_cover(&mut w, &info)?;
            } else {
                out!("withdrawn: entry {}, receipt verified", s.index);
            }
        }
        Command::Cover {
            campaign,
            now,
            off,
            on,
        } => {
            let only = match campaign {
                Some(c) => Some(campaign_id(&client, c).await?),
                None => None,
            };
            let mut w = open_wallet(&cli, false)?;
            if *off || *on {
                w.data.cover.off = *off;
                w.save()?;
                out!(
                    "cover traffic is now {} for this wallet",
                    if *off {
                        "OFF: tokens you do not pledge with stay unspent, so the count of \
                         entries shows who pledged"
                    } else {
                        "on"
                    }
                );
                return Ok(());
            }
            let log = pinned(&cli, &client, &mut w).await?;
            let r =
                flows::sealed::send_cover(&client, &mut w, &log, only.as_ref(), *now, unix_now())
                    .await?;
            if r.off {
                out!("cover traffic is off in this wallet (`pledge cover --on` turns it on)");
            }
            for (c, kind, s) in &r.sent {
                out!(
                    "cover on {}: {} sent, entry {}, receipt verified",
                    short(c),
                    match kind {
                        flows::sealed::CoverKind::NullPledge =>
                            "a null pledge (your unused token, counting nowhere)",
                        flows::sealed::CoverKind::Reencryption =>
                            "a re-encryption of your sealed pledge (same vector)",
                    },
                    s.index
                );
            }
            for (c, at) in &r.waiting {
                out!("cover on {}: next due from {}", short(c), utc(*at));
            }
            for c in &r.no_key_yet {
                out!(
                    "cover on {}: due, but the trustees have not finished key generation; \
                     sent by a later run",
                    short(c)
                );
            }
            if !r.off && r.sent.is_empty() && r.waiting.is_empty() && r.no_key_yet.is_empty() {
                out!("no cover to send: no token of an open sealed campaign, or all sent");
            }
        }
        Command::Status => {
            let mut w = open_wallet(&cli, false)?;
            let log = pinned(&cli, &client, &mut w).await?;
            let (list, views) = flows::status_and_views(&client, &mut w, &log).await?;
            if list.is_empty() {
                out!("no pledges in this wallet ({} tokens)", w.data.tokens.len());
            } else {
                out!(
                    "A, the active count, is the largest number m such that at least m live \
                     pledges have a threshold of m or less: the biggest group in which everyone's \
                     condition holds. A pledge is activated when its threshold is at most A."
                );
            }
            for s in list {
                out!("{} ({})  {}", short(&s.campaign), s.campaign, s.title);
                let included = if s.included {
                    "yes, receipts verified".to_owned()
                } else if s.unacknowledged > 0 {
                    "not yet: signed and in the wallet but not sent or not answered \
                     (`pledge send-pending` sends it)"
                        .to_owned()
                } else {
                    "NO: a receipt does not verify".to_owned()
                };
                let view = views
                    .iter()
                    .find(|v| v.info.campaign_id.to_hex() == s.campaign);
                let extended = view.map(|v| extended_from(&v.info)).unwrap_or_default();
                if let Some(sv) = view.and_then(|v| v.sealed.as_ref()) {
                    print_sealed_status(&s, sv, &included, &extended);
                    continue;
                }
                let standing = if s.withdrawn {
                    format!("withdrawn (threshold was {}): not counted", s.threshold)
                } else if let Some(text) = funding_standing(&s) {
                    text
                } else if s.activated {
                    format!(
                        "ACTIVATED: your threshold {} is at most A = {}",
                        s.threshold, s.active
                    )
                } else {
                    format!(
                        "waiting: your threshold {} is above A = {}",
                        s.threshold, s.active
                    )
                };
                out!(
                    "    {standing}; {} live pledges, goal A >= {}",
                    s.live,
                    s.goal
                );
                out!("    included: {included}");
                out!("    deadline {}{extended} [{}]", when(s.deadline), s.state);
                out!("    {}", tally_age(&s));
                if let Some(text) = s.outcome_text() {
                    out!("    {text}");
                }
            }
        }
        Command::Watch { poll, duration } => {
            let mut w = open_wallet(&cli, false)?;
            let log = pinned(&cli, &client, &mut w).await?;
            out!(
                "watching the public event stream (the server cannot tell which campaigns you follow)"
            );
            flows::watch(
                &client,
                &mut w,
                &log,
                Duration::from_secs((*poll).max(1)),
                duration.map(Duration::from_secs),
                |n| match n {
                    WatchNews::Activated {
                        campaign,
                        threshold,
                        active,
                    } => out!(
                        "ACTIVATED: {campaign}: A = {active} reached your threshold {threshold}"
                    ),
                    WatchNews::Deactivated {
                        campaign,
                        threshold,
                        active,
                    } => out!(
                        "no longer activated: {campaign}: A = {active} < your threshold {threshold}"
                    ),
                    WatchNews::GoalReached {
                        campaign,
                        active,
                        goal,
                    } => out!(
                        "GOAL REACHED (for now; success is judged at the deadline): {campaign}: \
                         A = {active} >= goal {goal}"
                    ),
                    WatchNews::GoalLost {
                        campaign,
                        active,
                        goal,
                    } => out!("below the goal again: {campaign}: A = {active} < goal {goal}"),
                    WatchNews::Following {
                        campaign,
                        threshold,
                        active,
                        activated,
                    } => out!(
                        "following {campaign}: your threshold is {threshold}, A = {active}: {}",
                        if activated { "ACTIVATED" } else { "waiting" }
                    ),
                    WatchNews::Withdrawn { campaign } => {
                        out!("withdrawn: {campaign} is no longer watched")
                    }
                    WatchNews::Outcome(s) => {
                        if let Some(text) = s.outcome_text() {
                            out!("{}: {text}", s.campaign);
                        }
                    }
                    WatchNews::Sent { campaign, index } => out!(
                        "sent your pending entry (or cover that was due) on {}: entry {index} in the log, \
                         receipt verified",
                        short(&campaign)
                    ),
                    WatchNews::NotSent(why) => {
                        out!("could not send a pending entry (it stays pending): {why}")
                    }
                    WatchNews::Revealed {
                        campaign,
                        snapshot,
                        counts,
                        live,
                        active,
                        threshold,
                    } => {
                        out!(
                            "REVEALED: {campaign}: the trustees opened snapshot {snapshot}: \
                             {live} live pledges, A = {active}; per bucket {counts:?}"
                        );
                        match threshold {
                            Some(t) if u64::from(t) <= active => {
                                out!("    your threshold {t} is reached: ACTIVATED")
                            }
                            Some(t) => out!("    your threshold {t} is not reached (A = {active})"),
                            None => out!("    your entry there is a null pledge"),
                        }
                    }
                    WatchNews::Checkpoint(_) => {}
                    _ => {}
                },
            )
            .await?;
        }
        Command::Receipt { campaign, out } => {
            let id = campaign_id(&client, campaign).await?;
            let w = open_wallet(&cli, false)?;
            let text = flows::export_receipt(&w, &id)?;
            match out {
                Some(p) => {
                    std::fs::write(p, &text).with_context(|| format!("writing {}", p.display()))?;
                    out!("receipt written to {}", p.display());
                }
                None => out_raw!("{text}"),
            }
        }
        Command::VerifyReceipt { file, key, entry } => {
            let text =
                std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
            let log = match key {
                Some(k) => NoteVerifier::from_text(k.trim())
                    .map_err(|e| anyhow!("--key is not a verifier key: {e}"))?,
                None => {
                    let w = open_wallet(&cli, false).context(
                        "no --key given and the wallet (with the pinned key) cannot be opened",
                    )?;
                    let k =
                        w.data.log.as_ref().ok_or_else(|| {
                            anyhow!("the wallet has no pinned log key; pass --key")
                        })?;
                    NoteVerifier::from_text(&k.verifier_key)
                        .map_err(|e| anyhow!("pinned key: {e}"))?
                }
            };
            let entry = match entry {
                Some(b) => Some(
                    base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b)
                        .map_err(|_| anyhow!("--entry is not base64"))?,
                ),
                None => None,
            };
            let r = flows::verify_receipt(&text, &log, entry.as_deref())?;
            out!(
                "receipt OK: entry {} is in the log {} at checkpoint size {} (root {})",
                r.index,
                r.origin,
                r.checkpoint_size,
                r.root
            );
            if let Some(e) = r.entry {
                out!("entry: {e}");
            }
        }
        Command::Admin {
            admin_token_file,
            admin_token,
            command,
        } => {
            let token = admin_token_of(admin_token_file.as_deref(), admin_token.as_deref())?;
            admin(&client, &token, command).await?;
        }
        Command::Demo {
            pledgers,
            admin_token,
            funding,
            sealed,
            admin_token_file,
            early_reveal,
        } => {
            let admin_token = if admin_token_file.is_some() || (*sealed && admin_token.is_none()) {
                let t = admin_token_of(admin_token_file.as_deref(), admin_token.as_deref())?;
                Some(String::clone(&t))
            } else {
                admin_token.clone()
            };
            let opts = DemoOptions {
                pledgers: *pledgers,
                admin_token,
                funding: *funding,
                sealed: *sealed,
                early_reveal: Duration::from_secs(*early_reveal),
                ..DemoOptions::default()
            };
            let mut say = |s: String| out!("{s}");
            let r = demo::run(&client, &opts, &mut say).await?;
            out!(
                "{} pledgers: {} pledged, {} amended, {} withdrew; {} receipts verified offline",
                pledgers,
                r.pledged,
                r.amended,
                r.withdrawn,
                r.receipts_verified
            );
            out!(
                "signed tally at log size {}: live {}, active count A = {} (goal {}){}",
                r.checkpoint_size,
                r.live,
                r.active,
                r.goal,
                if r.active >= u64::from(r.goal) {
                    " — goal reached"
                } else {
                    ""
                }
            );
            match &r.funding {
                Some((f, j)) => {
                    let [act, sup, fund] = r.kinds;
                    out!(
                        "kinds pledged: {act} act, {sup} act if supported, {fund} fund; joint \
                         tally: funds called {} for a cost of {} (all eligible would take {})",
                        flows::format_amount(u64::try_from(j.funds).unwrap_or(u64::MAX), f),
                        flows::format_amount(u64::try_from(j.cost).unwrap_or(u64::MAX), f),
                        flows::format_amount(u64::try_from(j.demand).unwrap_or(u64::MAX), f),
                    );
                    for l in &j.levels {
                        out!(
                            "  support {}: {} eligible, {} funded",
                            flows::format_amount(l.support, f),
                            l.eligible,
                            l.funded
                        );
                    }
                }
                None => out!("histogram: {}", r.histogram_summary()),
            }
            if let Some(sd) = &r.sealed {
                out!(
                    "sealed: {} sealed entries in the log ({} null pledges and {} \
                     re-encryptions of cover among them); {} reveals by {} of {} trustees, each \
                     equal to what the demo pledged before its snapshot. Check it all: `pledge \
                     audit`",
                    sd.entries,
                    sd.null_pledges,
                    sd.cover_amendments,
                    sd.reveals.len(),
                    sd.k,
                    sd.n
                );
            }
            if r.sealed.is_none() {
                out!(
                    "checked: the tally equals the log rebuilt from entry bundles (root matches \
                     the signed checkpoint) and the demo's own view"
                );
            }
        }
        Command::Audit(_) | Command::Witness { .. } | Command::Trustee { .. } => {}
    }
    Ok(())
}

fn parse_deadline(s: &str) -> anyhow::Result<u64> {
    let bad = || {
        usage(format!(
            "--deadline {s:?}: use a date and time with its offset (2027-03-08T11:00+01:00, \
             or Z for UTC), +7d / +12h / +30m, or Unix seconds"
        ))
    };
    if let Some(rel) = s.strip_prefix('+') {
        let (num, unit) = rel.split_at(rel.len().saturating_sub(1));
        let n: u64 = num.parse().map_err(|_| bad())?;
        let mul = match unit {
            "d" => 86400,
            "h" => 3600,
            "m" => 60,
            _ => return Err(bad()),
        };
        return n
            .checked_mul(mul)
            .and_then(|d| unix_now().checked_add(d))
            .ok_or_else(bad);
    }
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().map_err(|_| bad());
    }
    let t: jiff::Timestamp = s.parse().map_err(|_| bad())?;
    u64::try_from(t.as_second()).map_err(|_| bad())
}

/// The admin token: from a file (`--admin-token-file`,
/// `PLEDGE_ADMIN_TOKEN_FILE`), else `PLEDGE_ADMIN_TOKEN`, else (with a
/// warning) `--admin-token`.
fn admin_token_of(
    file: Option<&Path>,
    arg: Option<&str>,
) -> anyhow::Result<zeroize::Zeroizing<String>> {
    if let Some(f) = file {
        let text = zeroize::Zeroizing::new(
            std::fs::read_to_string(f)
                .with_context(|| format!("reading the admin token from {}", f.display()))?,
        );
        let token = text.trim();
        if token.is_empty() {
            bail!("{} holds no admin token", f.display());
        }
        return Ok(zeroize::Zeroizing::new(token.to_owned()));
    }
    if let Ok(t) = std::env::var("PLEDGE_ADMIN_TOKEN")
        && !t.trim().is_empty()
    {
        return Ok(zeroize::Zeroizing::new(t.trim().to_owned()));
    }
    if let Some(t) = arg {
        eprintln!(
            "warning: an admin token on the command line is visible to other users of this \
             machine (ps, shell history): use --admin-token-file FILE (the server's data folder \
             has admin.token) or PLEDGE_ADMIN_TOKEN"
        );
        return Ok(zeroize::Zeroizing::new(t.to_owned()));
    }
    Err(usage(
        "`pledge admin` needs the server's admin token: --admin-token-file \
         <data folder>/admin.token, or PLEDGE_ADMIN_TOKEN",
    ))
}

async fn admin(client: &Client, token: &str, cmd: &AdminCommand) -> anyhow::Result<()> {
    match cmd {
        AdminCommand::Campaign(CampaignCommand::Create(c)) | AdminCommand::CreateCampaign(c) => {
            let CreateCampaign {
                title,
                action,
                text,
                deadline,
                goal,
                threshold_min,
                threshold_max,
                attester,
                email_domains,
                publish_min,
                publish_max_delay_ms,
                currency,
                minor_digits,
                support_levels,
                surplus_to_fund,
                sealed_buckets,
                trustees,
                trustees_needed,
                reveals,
            } = c;
            let sealed = match sealed_buckets {
                None => None,
                Some(list) => Some(pledge_protocol::api::SealedSpec {
                    buckets: list
                        .split(',')
                        .map(|b| b.trim().parse::<u32>())
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| usage(format!("--sealed-buckets: {e}")))?,
                    k: trustees_needed.unwrap_or(1),
                    trustees: trustees
                        .iter()
                        .map(|t| t.trim().to_ascii_lowercase())
                        .collect(),
                    reveals: reveals
                        .iter()
                        .map(|r| parse_deadline(r))
                        .collect::<anyhow::Result<Vec<_>>>()?,
                }),
            };
            let funding = match currency {
                None => None,
                Some(cur) => {
                    let levels = match support_levels.as_deref() {
                        None | Some("") => Vec::new(),
                        Some(list) => list
                            .split(',')
                            .map(|a| flows::parse_amount(a.trim(), *minor_digits))
                            .collect::<Result<Vec<_>, _>>()
                            .map_err(|e| usage(format!("--support-levels: {e}")))?,
                    };
                    Some(pledge_protocol::api::FundingSpec {
                        currency: cur.clone(),
                        minor_digits: *minor_digits,
                        support_levels: levels,
                        surplus_to_fund: *surplus_to_fund,
                    })
                }
            };
            let publication = publish_min.map(|min_pledges| PublicationSpec {
                min_pledges,
                max_delay_ms: publish_max_delay_ms.unwrap_or(10_000),
            });
            let attester = if attester == "open" {
                AttesterSpec::Open
            } else if let Some(g) = attester.strip_prefix("invite:") {
                AttesterSpec::Invite {
                    group: g.to_owned(),
                }
            } else if attester == "email" {
                AttesterSpec::Email {
                    domains: (!email_domains.is_empty()).then(|| {
                        email_domains
                            .iter()
                            .map(|d| d.trim().to_ascii_lowercase())
                            .collect()
                    }),
                }
            } else {
                bail!("--attester takes `open`, `invite:GROUP` or `email`");
            };
            if !email_domains.is_empty() && !matches!(attester, AttesterSpec::Email { .. }) {
                bail!("--email-domain goes with --attester email");
            }
            let c = client
                .create_campaign(
                    token,
                    &NewCampaign {
                        title: title.clone(),
                        text: text.clone(),
                        action: action.clone(),
                        deadline: parse_deadline(deadline)?,
                        goal: *goal,
                        threshold_min: *threshold_min,
                        threshold_max: *threshold_max,
                        attester,
                        publication,
                        funding,
                        sealed,
                    },
                )
                .await?;
            out!(
                "campaign {} opened: CampaignOpened entry {} (checkpoint {})",
                c.campaign_id,
                c.index,
                c.checkpoint_size
            );
            if sealed_buckets.is_some() {
                out!(
                    "sealed: it takes pledges once its trustees have generated the joint key \
                     through the log; each trustee runs `pledge trustee serve --key FILE \
                     --campaign {}` (or `step` now and then)",
                    c.campaign_id
                );
            }
        }
        AdminCommand::Campaign(CampaignCommand::List) => list_campaigns(client).await?,
        AdminCommand::Campaign(CampaignCommand::Close { id, yes }) => {
            let id = campaign_id(client, id).await?;
            if !yes {
                bail!(usage(format!(
                    "closing {id} is final (no more tokens or pledges; the outcome is fixed \
                     now instead of at the deadline): run again with --yes"
                )));
            }
            let index = client.close_campaign(token, &id).await?;
            out!(
                "campaign {id} closed: CampaignClosed entry {index}; the final tally is in the \
                 log and every pledger's outcome is fixed"
            );
        }
        AdminCommand::Campaign(CampaignCommand::Extend { id, deadline, yes }) => {
            let new = parse_deadline(deadline)?;
            let id = campaign_id(client, id).await?;
            if !yes {
                bail!(usage(format!(
                    "moving the deadline of {id} to {} is final (it can be moved later again, \
                     never back): run again with --yes",
                    when(new)
                )));
            }
            let before = client.campaign(&id).await?.deadline;
            let done = client
                .update_campaign(
                    token,
                    &id,
                    &pledge_protocol::api::CampaignUpdate {
                        deadline: Some(new),
                        texts: Vec::new(),
                    },
                )
                .await?;
            out!(
                "campaign {id}: deadline {} (extended from {}): CampaignUpdated entry {} \
                 (update {})",
                when(done.deadline),
                when(before),
                done.index,
                done.update
            );
        }
        AdminCommand::Campaign(CampaignCommand::Text {
            id,
            lang,
            title,
            text_file,
            text,
        }) => {
            let body = match (text_file, text) {
                (Some(path), _) => std::fs::read_to_string(path)
                    .with_context(|| format!("reading --text-file {}", path.display()))?
                    .replace("\r\n", "\n")
                    .trim_end_matches('\n')
                    .to_owned(),
                (None, Some(t)) => t.clone(),
                (None, None) => String::new(),
            };
            let lang = lang.to_ascii_lowercase();
            if !pledge_protocol::update::valid_lang(&lang) {
                bail!(usage(format!(
                    "--lang {lang:?}: use a language tag such as fr, pt-br or es-419"
                )));
            }
            let id = campaign_id(client, id).await?;
            let done = client
                .update_campaign(
                    token,
                    &id,
                    &pledge_protocol::api::CampaignUpdate {
                        deadline: None,
                        texts: vec![pledge_protocol::api::CampaignTextSpec {
                            lang: lang.clone(),
                            title: title.clone(),
                            text: body,
                        }],
                    },
                )
                .await?;
            out!(
                "campaign {id}: title and text in {lang} logged: CampaignUpdated entry {} \
                 (update {}); languages now: {}",
                done.index,
                done.update,
                done.languages.join(", ")
            );
        }
        AdminCommand::Campaign(CampaignCommand::Show { id }) => {
            let id = campaign_id(client, id).await?;
            let c = client.campaign(&id).await?;
            print_campaign(&c);
            let statement = client.tally_statement(&id).await?;
            out!("    signed tally statement:");
            for line in statement.lines() {
                out!("      {line}");
            }
        }
        AdminCommand::Invites(InvitesCommand::List) => {
            let groups = client.invite_groups(token).await?;
            if groups.is_empty() {
                out!("no invite group has unused codes or an open campaign");
            } else {
                print_invite_groups(&groups);
            }
        }
        AdminCommand::Invites(InvitesCommand::Revoke { group }) => {
            let deleted = client.revoke_invites(token, group).await?;
            out!("{deleted} unused invite codes of group {group} deleted");
        }
        AdminCommand::Invites(InvitesCommand::Mint(MintInvites { group, count }))
        | AdminCommand::MintInvites(MintInvites { group, count }) => {
            let minted = client.mint_invites(token, group, *count).await?;
            if minted.campaigns == 0 {
                eprintln!(
                    "warning: no open campaign takes invite codes of group {group:?}: these \
                     codes work once one does (check the group's spelling)"
                );
            }
            let codes = minted.codes;
            eprintln!(
                "{} single-use invite codes for group {group} (shown once; the server keeps only their hashes):",
                codes.len()
            );
            let mut out = std::io::stdout().lock();
            for c in codes {
                let _ = writeln!(out, "{}", c.as_str());
            }
        }
    }
    Ok(())
}
