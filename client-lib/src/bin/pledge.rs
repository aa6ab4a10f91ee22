//! `pledge` command-line entry point: pledger commands (campaigns, tokens,
//! commit, amend, withdraw, status, watch, receipts), operator commands
//! (`pledge admin …`), `pledge demo`, `pledge audit` and `pledge witness serve`.
//!
//! Exit codes: 0 success, 1 failure, 2 usage error.

use std::io::{BufRead as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use clap::{Parser, Subcommand};
use pledge_client::client::{AttesterSpec, Client, NewCampaign, PublicationSpec};
use pledge_client::demo::{self, DemoOptions};
use pledge_client::flows::{self, AttestKind, WatchNews};
use pledge_client::wallet::{self, Protection, Wallet};
use pledge_client::{audit, witness};
use pledge_protocol::hash::CampaignId;
use pledge_protocol::note::NoteVerifier;
use zeroize::Zeroizing;

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
enum Command {
    /// List campaigns with their current tally.
    Campaigns,
    /// Obtain tokens for every open campaign of an attester (cover issuance).
    Tokens {
        /// `open`, or `invite:CODE` (`invite:-` reads the code from standard input).
        #[arg(long)]
        attest: String,
        /// Invite group, when open invite campaigns belong to several groups.
        #[arg(long)]
        group: Option<String>,
    },
    /// Pledge to a campaign: "I act if at least N people act, me included".
    Commit {
        /// Campaign id (64 hex digits).
        campaign: String,
        /// Threshold N.
        #[arg(long)]
        threshold: u32,
        /// Send at once instead of after a random delay (costs privacy).
        #[arg(long)]
        now: bool,
        /// Largest random delay, in seconds.
        #[arg(long, default_value_t = 600)]
        delay_max: u64,
    },
    /// Change the threshold of my pledge.
    Amend {
        /// Campaign id.
        campaign: String,
        /// New threshold.
        #[arg(long)]
        threshold: u32,
    },
    /// Withdraw my pledge (final).
    Withdraw {
        /// Campaign id.
        campaign: String,
    },
    /// For each of my pledges: included?, A, activated?, deadline.
    Status,
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
    /// Operator commands (need the server's admin token).
    Admin {
        /// Admin token (the server's data folder has it in admin.token).
        #[arg(long, env = "PLEDGE_ADMIN_TOKEN", hide_env_values = true)]
        admin_token: String,
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
    },
    /// Audit the log (independent auditor).
    Audit(audit::AuditArgs),
    /// Run a witness.
    Witness {
        #[command(subcommand)]
        command: WitnessCommand,
    },
}

#[derive(Subcommand, Debug)]
enum AdminCommand {
    /// Open a campaign (a fresh issuer key is logged with it).
    CreateCampaign {
        /// Title.
        #[arg(long)]
        title: String,
        /// The action pledged.
        #[arg(long)]
        action: String,
        /// Text.
        #[arg(long, default_value = "")]
        text: String,
        /// Deadline: Unix seconds, or `+Nd` / `+Nh` / `+Nm` from now.
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
        /// `open`, or `invite:GROUP`.
        #[arg(long)]
        attester: String,
        /// Publish pledges only in groups of at least N (SPEC R-PUB-1);
        /// default: the server's (3).
        #[arg(long, value_name = "N")]
        publish_min: Option<u32>,
        /// Random publication delay of up to MS milliseconds once a group is
        /// complete (with --publish-min; default 10000).
        #[arg(long, value_name = "MS", requires = "publish_min")]
        publish_max_delay_ms: Option<u64>,
    },
    /// Mint single-use invite codes for a group (shown once).
    MintInvites {
        /// Invite group.
        #[arg(long)]
        group: String,
        /// How many.
        #[arg(long)]
        count: u32,
    },
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
            Command::Audit(args) => return audit::cli(args).await,
            Command::Witness {
                command: WitnessCommand::Serve(args),
            } => return witness::cli_serve(args).await,
            _ => {}
        }
        match run(cli).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                let text = format!("{e:#}");
                eprintln!("pledge: {text}");
                if text.contains("held_back") {
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

fn campaign_id(s: &str) -> anyhow::Result<CampaignId> {
    CampaignId::from_hex(s).map_err(|_| anyhow!("{s:?} is not a campaign id (64 hex digits)"))
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
        return Ok(Protection::passphrase(p));
    }
    let p = prompt("wallet passphrase: ")?;
    if confirm {
        let again = prompt("again: ")?;
        if *again != *p {
            bail!("the two passphrases differ");
        }
        if p.len() < 8 {
            bail!("choose a passphrase of at least 8 characters");
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
        println!("new wallet: {} (mode 0600)", path.display());
        if w.is_insecure() {
            println!(
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
        println!(
            "pinned the log key at first use (check it with the operator out of band):\n  {}",
            v.to_text()
        );
    }
    let mut changed = new;
    if !cli.witnesses.is_empty() {
        let k = cli.witness_quorum.unwrap_or(cli.witnesses.len());
        let policy = flows::WitnessPolicy::parse(&cli.witnesses, k)
            .map_err(|e| anyhow!("--witness: {e}"))?;
        if flows::WitnessPolicy::pinned(w)?.as_ref() != Some(&policy) {
            flows::pin_witnesses(w, &policy);
            changed = true;
        }
    }
    if changed {
        match flows::WitnessPolicy::pinned(w)? {
            Some(p) if p.quorum > 0 => {
                println!(
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
                    println!("  {}", k.to_text());
                }
            }
            _ => println!(
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

fn when(unix: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if unix > now {
        let s = unix - now;
        format!("{unix} (in {}d {}h)", s / 86400, (s % 86400) / 3600)
    } else {
        format!("{unix} (passed)")
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let client = Client::new(&cli.server)?;
    match &cli.command {
        Command::Campaigns => {
            let list = client.campaigns().await?;
            if list.is_empty() {
                println!("no campaigns");
            }
            for c in list {
                let (live, a) = c.tally.map_or((0, 0), |t| (t.live, t.active));
                println!("{}  [{}]  {}", c.campaign_id, c.state, c.title);
                println!(
                    "    action: {}; goal {}; thresholds {}..={}; deadline {}",
                    c.action,
                    c.goal,
                    c.threshold_min,
                    c.threshold_max,
                    when(c.deadline)
                );
                let who = match (c.attester.as_deref(), c.invite_group.as_deref()) {
                    (Some("invite"), Some(g)) => format!("invite codes of group {g}"),
                    (Some(a), _) => a.to_owned(),
                    (None, _) => "nobody (closed)".into(),
                };
                println!(
                    "    tokens from: {who}; live pledges {live}, active count A = {a}{}",
                    if a >= u64::from(c.goal) {
                        " — GOAL REACHED"
                    } else {
                        ""
                    }
                );
            }
        }
        Command::Tokens { attest, group } => {
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
            } else {
                bail!("--attest takes `open` or `invite:CODE`");
            };
            let mut w = open_wallet(&cli, true)?;
            let log = pinned(&cli, &client, &mut w).await?;
            let r = flows::obtain_tokens(&client, &mut w, &log, &kind).await?;
            println!(
                "issuer keys checked against the log (inclusion proofs): {}",
                r.keys_checked
            );
            for c in &r.obtained {
                println!("token obtained for {c}");
            }
            for c in &r.already_held {
                println!("already holding a token for {c}");
            }
            if r.obtained.is_empty() && r.already_held.is_empty() {
                println!("no open campaign for this attester");
            } else {
                println!(
                    "tokens are requested for every open campaign of this attester, so the \
                     issuer cannot tell which one you care about"
                );
            }
        }
        Command::Commit {
            campaign,
            threshold,
            now,
            delay_max,
        } => {
            let id = campaign_id(campaign)?;
            let mut w = open_wallet(&cli, false)?;
            let log = pinned(&cli, &client, &mut w).await?;
            let delay = if *now {
                println!(
                    "--now: sending at once. Privacy cost: the issuer saw your token request a \
                     moment ago, and a pledge arriving right after it (in the same or next batch) \
                     narrows down who made it; the random delay exists to break that link."
                );
                Duration::ZERO
            } else {
                let d = flows::random_delay(Duration::from_secs(*delay_max))?;
                println!(
                    "waiting a random {} s (of at most {delay_max} s) before sending, so the \
                     pledge cannot be linked to your token request by timing (--now skips this); \
                     the signed pledge is already in the wallet, pending (`pledge status` shows \
                     it; if this command is interrupted, the same `pledge commit` sends it)",
                    d.as_secs()
                );
                d
            };
            let s = flows::commit(&client, &mut w, &log, &id, *threshold, delay).await?;
            println!(
                "pledged to {id} with threshold {threshold}: entry {} in the log, receipt \
                 verified against checkpoint {} and stored in the wallet",
                s.index, s.checkpoint_size
            );
        }
        Command::Amend {
            campaign,
            threshold,
        } => {
            let id = campaign_id(campaign)?;
            let mut w = open_wallet(&cli, false)?;
            let log = pinned(&cli, &client, &mut w).await?;
            let s = flows::change(&client, &mut w, &log, &id, Some(*threshold)).await?;
            println!(
                "amended: threshold now {threshold}; entry {}, receipt verified",
                s.index
            );
        }
        Command::Withdraw { campaign } => {
            let id = campaign_id(campaign)?;
            let mut w = open_wallet(&cli, false)?;
            let log = pinned(&cli, &client, &mut w).await?;
            let s = flows::change(&client, &mut w, &log, &id, None).await?;
            println!("withdrawn: entry {}, receipt verified", s.index);
        }
        Command::Status => {
            let mut w = open_wallet(&cli, false)?;
            let log = pinned(&cli, &client, &mut w).await?;
            let list = flows::status(&client, &mut w, &log).await?;
            if list.is_empty() {
                println!("no pledges in this wallet ({} tokens)", w.data.tokens.len());
            }
            for s in list {
                println!("{}  {}", s.campaign, s.title);
                println!(
                    "    my threshold {}{}; included: {}; A = {} (live {}, goal {}); {}; deadline {} [{}]",
                    s.threshold,
                    if s.withdrawn { " (withdrawn)" } else { "" },
                    if s.included {
                        "yes, receipts verified"
                    } else if s.unacknowledged > 0 {
                        "not yet: pending, signed and in the wallet but not sent or not answered \
                         (a `pledge commit` waiting out its delay sends it; if none is running, \
                         run the same command again)"
                    } else {
                        "NO: a receipt does not verify"
                    },
                    s.active,
                    s.live,
                    s.goal,
                    if s.withdrawn {
                        "not counted"
                    } else if s.activated {
                        "ACTIVATED (t <= A)"
                    } else {
                        "waiting (t > A)"
                    },
                    when(s.deadline),
                    s.state
                );
                println!("    {}", tally_age(&s));
                if let Some(text) = s.outcome_text() {
                    println!("    {text}");
                }
            }
        }
        Command::Watch { poll, duration } => {
            let mut w = open_wallet(&cli, false)?;
            let log = pinned(&cli, &client, &mut w).await?;
            println!(
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
                    } => println!(
                        "ACTIVATED: {campaign}: A = {active} reached your threshold {threshold}"
                    ),
                    WatchNews::Deactivated {
                        campaign,
                        threshold,
                        active,
                    } => println!(
                        "no longer activated: {campaign}: A = {active} < your threshold {threshold}"
                    ),
                    WatchNews::GoalReached {
                        campaign,
                        active,
                        goal,
                    } => println!(
                        "GOAL REACHED (for now; success is judged at the deadline): {campaign}: \
                         A = {active} >= goal {goal}"
                    ),
                    WatchNews::GoalLost {
                        campaign,
                        active,
                        goal,
                    } => println!("below the goal again: {campaign}: A = {active} < goal {goal}"),
                    WatchNews::Following {
                        campaign,
                        threshold,
                        active,
                        activated,
                    } => println!(
                        "following {campaign}: your threshold is {threshold}, A = {active}: {}",
                        if activated { "ACTIVATED" } else { "waiting" }
                    ),
                    WatchNews::Withdrawn { campaign } => {
                        println!("withdrawn: {campaign} is no longer watched")
                    }
                    WatchNews::Outcome(s) => {
                        if let Some(text) = s.outcome_text() {
                            println!("{}: {text}", s.campaign);
                        }
                    }
                    WatchNews::Checkpoint(_) => {}
                    _ => {}
                },
            )
            .await?;
        }
        Command::Receipt { campaign, out } => {
            let id = campaign_id(campaign)?;
            let w = open_wallet(&cli, false)?;
            let text = flows::export_receipt(&w, &id)?;
            match out {
                Some(p) => {
                    std::fs::write(p, &text).with_context(|| format!("writing {}", p.display()))?;
                    println!("receipt written to {}", p.display());
                }
                None => print!("{text}"),
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
            println!(
                "receipt OK: entry {} is in the log {} at checkpoint size {} (root {})",
                r.index, r.origin, r.checkpoint_size, r.root
            );
            if let Some(e) = r.entry {
                println!("entry: {e}");
            }
        }
        Command::Admin {
            admin_token,
            command,
        } => admin(&client, admin_token, command).await?,
        Command::Demo {
            pledgers,
            admin_token,
        } => {
            let opts = DemoOptions {
                pledgers: *pledgers,
                admin_token: admin_token.clone(),
                ..DemoOptions::default()
            };
            let mut say = |s: String| println!("{s}");
            let r = demo::run(&client, &opts, &mut say).await?;
            println!(
                "{} pledgers: {} pledged, {} amended, {} withdrew; {} receipts verified offline",
                r.pledged, r.pledged, r.amended, r.withdrawn, r.receipts_verified
            );
            println!(
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
            println!("histogram: {}", r.histogram_summary());
            println!(
                "checked: the tally equals the log rebuilt from entry bundles (root matches the \
                 signed checkpoint) and the demo's own view"
            );
        }
        Command::Audit(_) | Command::Witness { .. } => {}
    }
    Ok(())
}

fn parse_deadline(s: &str) -> anyhow::Result<u64> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if let Some(rel) = s.strip_prefix('+') {
        let (num, unit) = rel.split_at(rel.len().saturating_sub(1));
        let n: u64 = num
            .parse()
            .map_err(|_| anyhow!("--deadline {s:?}: use +7d, +12h, +30m or Unix seconds"))?;
        let mul = match unit {
            "d" => 86400,
            "h" => 3600,
            "m" => 60,
            _ => bail!("--deadline {s:?}: use +7d, +12h, +30m or Unix seconds"),
        };
        return Ok(now + n * mul);
    }
    s.parse()
        .map_err(|_| anyhow!("--deadline {s:?}: use +7d, +12h, +30m or Unix seconds"))
}

async fn admin(client: &Client, token: &str, cmd: &AdminCommand) -> anyhow::Result<()> {
    match cmd {
        AdminCommand::CreateCampaign {
            title,
            action,
            text,
            deadline,
            goal,
            threshold_min,
            threshold_max,
            attester,
            publish_min,
            publish_max_delay_ms,
        } => {
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
            } else {
                bail!("--attester takes `open` or `invite:GROUP`");
            };
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
                    },
                )
                .await?;
            println!(
                "campaign {} opened: CampaignOpened entry {} (checkpoint {})",
                c.campaign_id, c.index, c.checkpoint_size
            );
        }
        AdminCommand::MintInvites { group, count } => {
            let codes = client.mint_invites(token, group, *count).await?;
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
