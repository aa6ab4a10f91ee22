//! `pledged` binary entry point: parses the configuration, starts the service
//! and serves until SIGTERM or ctrl-c.

use anyhow::Context as _;
use clap::Parser as _;
use pledge_server::config::{Cli, Config};
use pledge_server::keys::{ADMIN_TOKEN_FILE, LOG_KEY_FILE};
use pledge_server::{AppState, run};

/// Targets whose events can carry a peer address or request metadata:
/// always off (appended after PLEDGED_LOG, so they win).
const QUIET_TARGETS: &str = "hyper=off,hyper_util=off,h2=off,axum=off,tower=off,tower_http=off,\
                             reqwest=off,rustls=off,tokio=off,runtime=off,mio=off";

fn main() -> std::process::ExitCode {
    // Before any other thread exists: glibc fixes its arena limit when the
    // first thread beyond the main one allocates.
    pledge_server::malloc::limit_arenas();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pledged: error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Each cause once, on stderr, and no backtrace: an operator
            // reads what to fix, not where in the code it was found.
            eprintln!("pledged: error: {}", report(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, skipping a cause whose text the
/// message before it already contains (errors that print their source).
fn report(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

async fn serve() -> anyhow::Result<()> {
    // Files this process creates (the store's) are private to its user
    // (SPEC §14); start-up also clears open modes left by an earlier run.
    pledge_server::keys::private_umask();
    // Only our own messages; never request metadata (DESIGN P6): whatever
    // PLEDGED_LOG asks, the HTTP stack's own traces (which print peer
    // addresses at debug and trace level) stay off. On stderr, coloured
    // only on a terminal: stdout carries the start-up lines scripts read.
    // Times to the minute only (log_time.rs).
    let filter = std::env::var("PLEDGED_LOG").unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(format!(
            "{filter},{QUIET_TARGETS}"
        )))
        .with_target(false)
        .with_timer(pledge_server::log_time::Minutes)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let config = Config::load(Cli::parse()).map_err(anyhow::Error::msg)?;
    // Listen first: a start that cannot listen creates nothing (no data
    // folder, no log origin fixed, no keys).
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let state = AppState::start(&config).await.with_context(|| {
        format!(
            "cannot start with data folder {}",
            config.data_dir.display()
        )
    })?;
    let addr = listener.local_addr()?;
    let data = config.data_dir.display();
    for f in state.created_files() {
        println!("created {} (mode 0600)", f.display());
    }
    println!("pledged: data folder {data} ({} store)", config.backend);
    println!(
        "log {} verifier key: {}",
        config.origin,
        state.ledger().verifier().to_text()
    );
    if state
        .created_files()
        .iter()
        .any(|f| f.ends_with(LOG_KEY_FILE))
    {
        // First start: the origin is now part of every checkpoint, tile
        // path and pinned key; say so while it can still be changed.
        println!(
            "new log: its origin \"{}\" is now fixed for this data folder (it names every \
             checkpoint and the key clients pin); to serve under another name, start again \
             with an empty folder and PLEDGED_ORIGIN=NAME (or origin = in the configuration)",
            config.origin
        );
    }
    println!("admin token: in {data}/{ADMIN_TOKEN_FILE}");
    if let Some(id) = state.demo_campaign() {
        println!("demo campaign {id} is open (open attester, anyone can get tokens)");
    }
    if let Some(id) = state.demo_funding_campaign() {
        println!(
            "funding demo campaign {id} is open (conditional funding in EUR; try `pledge demo \
             --funding`)"
        );
    }
    let stop = shutdown_signal();
    println!("listening on http://{addr}; next: curl http://{addr}/v1/campaigns");
    run(listener, state, stop).await?;
    println!("pledged: stopped cleanly");
    Ok(())
}

/// The shutdown signal: SIGTERM or SIGINT (ctrl-c). The handlers are
/// installed when this is called, not when the future is first polled, so
/// that a signal sent as soon as the "listening" line is printed stops the
/// server cleanly instead of killing it (the default action).
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate()).ok();
        let int = signal(SignalKind::interrupt()).ok();
        async move {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(term) => {}
                () = wait(int) => {}
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
