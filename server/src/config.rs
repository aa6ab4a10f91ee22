//! Configuration of `pledged`: command line, an optional TOML file and
//! `PLEDGED_*` environment variables. Precedence: command line, then
//! environment, then the file, then the defaults.
//!
//! ```toml
//! data = "./pledge-data"
//! listen = "127.0.0.1:8080"
//! backend = "redb"            # or "sled", or "postgres" with database_url
//! database_url = "host=/run/postgresql dbname=pledge" # or PLEDGED_DATABASE_URL
//! advertise_url = "http://10.0.0.5:8080" # postgres: where other front ends reach this one
//! origin = "localhost/pledge" # the log's name; fixed at first start
//! batch_interval_ms = 500
//! batch_size = 256
//! queue_capacity = 4096
//! open_rate_per_minute = 30   # open attester, per address; 0 = no limit
//! close_check_interval_ms = 1000
//! demo = false
//! demo_funding = true         # with demo: also the conditional-funding demo campaign
//! header_read_timeout_ms = 10000 # request head must arrive within this
//! idle_timeout_ms = 5000      # keep-alive: close a connection idle this long
//! max_connections = 1024      # open at once; more are closed at accept
//! max_connections_per_address = 256 # per IPv4 address or IPv6 /64
//! max_event_streams = 256     # GET /v1/events subscribers; more get 503
//! shutdown_grace_ms = 10000   # in-flight requests' time after SIGTERM
//! trusted_proxies = ["127.0.0.1"] # believe X-Forwarded-For / Forwarded from these
//! metrics_listen = "127.0.0.1:9100" # GET /metrics here only (default: admin token)
//! publish_min_pledges = 3     # default publication policy of new campaigns (SPEC R-PUB-1)
//! publish_max_delay_ms = 10000
//! publish_max_hold_ms = 40000 # an entry held longer gets 503 held_back
//!
//! smtp_host = "smtp.union.example" # the e-mail attester's relay (SPEC R-API-29)
//! smtp_port = 587             # default: 587 starttls, 465 tls, 25 none
//! smtp_tls = "starttls"       # or "tls" (SMTPS) or "none" (loopback relays only)
//! smtp_username = "pledge"    # AUTH, if the relay wants it
//! smtp_password = "..."       # better: PLEDGED_SMTP_PASSWORD; never logged
//! smtp_ca_file = "/etc/pledge/relay-ca.pem" # trust only this CA for the relay
//! mail_from = "Pledges <pledge@union.example>"
//! email_code_ttl_s = 900      # a code's lifetime
//! email_max_attempts = 5      # wrong codes before a code is void
//! email_rate_per_address_per_hour = 5
//! email_rate_per_domain_per_hour = 1000 # 0 = no limit (either)
//!
//! activitypub = false         # announce campaigns over ActivityPub (SPEC R-API-40)
//! public_url = "https://pledge.example" # the instance's public origin (needed by activitypub)
//! activitypub_allow_private = false # fetch/deliver to loopback and private addresses (tests)
//!
//! witness_quorum = 1          # cosignatures clients must require (default 1 with witnesses)
//! [[witness]]                 # any number; PLEDGED_WITNESSES="URL|KEY;URL|KEY"
//! url = "http://127.0.0.1:9090"
//! key = "witness.example+1234abcd+BASE64..."
//! ```

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

use crate::issuer::email::{EmailSettings, SmtpRelay, SmtpTls};
use crate::ledger::Publication;
use crate::serve::ConnLimits;

/// Largest publication group a campaign may ask for, and longest random
/// publication delay (ms): with the hold, a client's request must still be
/// answered within its 60 s timeout (SPEC R-PUB-1; the wire API's limits).
pub use pledge_protocol::api::{MAX_PUBLISH_DELAY_MS, MAX_PUBLISH_MIN};
/// Longest hold (ms), for the same reason.
pub const MAX_PUBLISH_HOLD_MS: u64 = 40_000;
use crate::store::Backend;
use crate::witness::Witness;

/// Command line of `pledged`.
#[derive(Debug, Parser)]
#[command(
    name = "pledged",
    version,
    about = "Issuer and ledger of anonymous conditional pledges"
)]
pub struct Cli {
    /// Data folder (store and key files). Default `./pledge-data`.
    #[arg(long, env = "PLEDGED_DATA")]
    pub data: Option<PathBuf>,
    /// Address to listen on, `HOST:PORT` (a name such as `localhost:8080`
    /// is resolved, IPv4 first). Default `127.0.0.1:8080`.
    #[arg(long, env = "PLEDGED_LISTEN")]
    pub listen: Option<String>,
    /// Open a demo campaign (open attester) if no campaign exists.
    #[arg(long)]
    pub demo: bool,
    /// TOML configuration file.
    #[arg(long, env = "PLEDGED_CONFIG")]
    pub config: Option<PathBuf>,
    /// Storage backend: `redb` (default), `sled` or `postgres` (with
    /// `database_url` in the file or `PLEDGED_DATABASE_URL`: not on the
    /// command line, where other users could read a password).
    #[arg(long, env = "PLEDGED_BACKEND")]
    pub backend: Option<Backend>,
}

/// The PostgreSQL connection string (a libpq URL or `key=value` list). It
/// may carry a password: `Debug` prints none of it.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(pub String);

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DatabaseUrl(..)")
    }
}

/// The TOML file; every field optional. `Debug` prints nothing of it (it
/// may hold the SMTP password).
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    data: Option<PathBuf>,
    listen: Option<String>,
    backend: Option<String>,
    database_url: Option<String>,
    advertise_url: Option<String>,
    origin: Option<String>,
    batch_interval_ms: Option<u64>,
    batch_size: Option<usize>,
    queue_capacity: Option<usize>,
    open_rate_per_minute: Option<u32>,
    close_check_interval_ms: Option<u64>,
    demo: Option<bool>,
    demo_funding: Option<bool>,
    header_read_timeout_ms: Option<u64>,
    idle_timeout_ms: Option<u64>,
    max_connections: Option<usize>,
    max_connections_per_address: Option<usize>,
    max_event_streams: Option<usize>,
    shutdown_grace_ms: Option<u64>,
    trusted_proxies: Option<Vec<IpAddr>>,
    metrics_listen: Option<String>,
    publish_min_pledges: Option<u32>,
    publish_max_delay_ms: Option<u64>,
    publish_max_hold_ms: Option<u64>,
    witness_quorum: Option<u64>,
    witness: Option<Vec<WitnessToml>>,
    smtp_host: Option<String>,
    smtp_port: Option<u16>,
    smtp_tls: Option<String>,
    smtp_username: Option<String>,
    smtp_password: Option<String>,
    smtp_ca_file: Option<PathBuf>,
    mail_from: Option<String>,
    email_code_ttl_s: Option<u64>,
    email_max_attempts: Option<u32>,
    email_rate_per_address_per_hour: Option<u32>,
    email_rate_per_domain_per_hour: Option<u32>,
    activitypub: Option<bool>,
    public_url: Option<String>,
    activitypub_allow_private: Option<bool>,
}

impl std::fmt::Debug for FileConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileConfig(..)")
    }
}

/// One `[[witness]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WitnessToml {
    url: String,
    key: String,
}

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Data folder.
    pub data_dir: PathBuf,
    /// Listen address.
    pub listen: SocketAddr,
    /// Storage backend.
    pub backend: Backend,
    /// Where the PostgreSQL backend connects.
    pub database_url: Option<DatabaseUrl>,
    /// Where the other front ends of a PostgreSQL cluster reach this one
    /// (SPEC R-STORE-11); default `http://` and the listen address.
    pub advertise_url: Option<String>,
    /// The log's origin (checkpoint first line and key name).
    pub origin: String,
    /// Longest wait of a submission for its batch.
    pub batch_interval: Duration,
    /// Most entries per batch.
    pub batch_size: usize,
    /// Submissions queued before 503.
    pub queue_capacity: usize,
    /// Open attester: requests per minute per address (0 = unlimited).
    pub open_rate_per_minute: u32,
    /// How often campaign deadlines are checked.
    pub close_check_interval: Duration,
    /// Open a demo campaign if none exists.
    pub demo: bool,
    /// With `demo`, open its conditional-funding twin beside it (`pledge
    /// demo --funding`). Default true.
    pub demo_funding: bool,
    /// Witnesses to push checkpoints to.
    pub witnesses: Vec<Witness>,
    /// How many of them clients must see cosign (published at
    /// `/v1/log/witnesses`, SPEC R-API-22); `None`: 1 when there are witnesses.
    pub witness_quorum: Option<usize>,
    /// Connection limits and timeouts (SPEC §12 "Connections").
    pub conn_limits: ConnLimits,
    /// `GET /v1/events` subscribers at once; more are answered 503.
    pub max_event_streams: usize,
    /// A second listener serving only `GET /metrics`. Without it, `/metrics`
    /// on the main listener needs the admin token.
    pub metrics_listen: Option<SocketAddr>,
    /// Publication policy of campaigns created without one (SPEC R-PUB-1).
    pub publication: Publication,
    /// Longest time a pledge entry is held for its publication group.
    pub publish_max_hold: Duration,
    /// The e-mail attester: relay and limits (SPEC R-API-29).
    pub email: EmailSettings,
    /// ActivityPub announcements (SPEC R-API-40): `None` when off (the
    /// default).
    pub activitypub: Option<crate::activitypub::Settings>,
}

impl Config {
    /// Defaults for a data folder (used by tests and as the base of [`Config::load`]).
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            backend: Backend::Redb,
            database_url: None,
            advertise_url: None,
            origin: "localhost/pledge".into(),
            batch_interval: Duration::from_millis(500),
            batch_size: 256,
            queue_capacity: 4096,
            open_rate_per_minute: 30,
            close_check_interval: Duration::from_secs(1),
            demo: false,
            demo_funding: true,
            witnesses: Vec::new(),
            witness_quorum: None,
            conn_limits: ConnLimits::default(),
            max_event_streams: 256,
            metrics_listen: None,
            publication: Publication {
                min_pledges: 3,
                max_delay_ms: 10_000,
            },
            publish_max_hold: Duration::from_secs(40),
            email: EmailSettings::default(),
            activitypub: None,
        }
    }

    /// Builds the configuration from the command line, the environment and
    /// the file the command line names.
    ///
    /// # Errors
    /// A message naming the setting that is wrong.
    pub fn load(cli: Cli) -> Result<Self, String> {
        let file = match &cli.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let mut email = EmailSettings::default();
        load_email(&mut email, &file)?;
        let activitypub = load_activitypub(&file)?;
        let mut c = Config::new(
            cli.data
                .clone()
                .or(file.data)
                .unwrap_or_else(|| PathBuf::from("./pledge-data")),
        );
        if let Some(l) = cli.listen.as_deref().or(file.listen.as_deref()) {
            c.listen = resolve_listen("listen", l)?;
        }
        if let Some(b) = cli.backend {
            c.backend = b;
        } else if let Some(b) = file.backend {
            c.backend = b.parse().map_err(|e| format!("config backend: {e}"))?;
        }
        c.database_url = env("PLEDGED_DATABASE_URL")
            .or(file.database_url)
            .map(DatabaseUrl);
        if c.backend == Backend::Postgres && c.database_url.is_none() {
            return Err("backend postgres needs database_url in the config file or \
                        PLEDGED_DATABASE_URL"
                .into());
        }
        c.advertise_url = env("PLEDGED_ADVERTISE_URL").or(file.advertise_url);
        if let Some(u) = &c.advertise_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            return Err(format!(
                "advertise_url {u:?} must be an http:// or https:// URL (no trailing path)"
            ));
        }
        if let Some(u) = &mut c.advertise_url {
            while u.ends_with('/') {
                u.pop();
            }
        }
        if c.backend == Backend::Postgres
            && c.advertise_url.is_none()
            && c.listen.ip().is_unspecified()
        {
            return Err(format!(
                "listen {} is every address: with backend postgres, set advertise_url (or \
                 PLEDGED_ADVERTISE_URL) to the URL the other front ends reach this one at",
                c.listen
            ));
        }
        c.origin = env("PLEDGED_ORIGIN").or(file.origin).unwrap_or(c.origin);
        if let Some(ms) = env_num("PLEDGED_BATCH_INTERVAL_MS")?.or(file.batch_interval_ms) {
            c.batch_interval = Duration::from_millis(ms.max(1));
        }
        if let Some(n) = env_num("PLEDGED_BATCH_SIZE")?.or(file.batch_size.map(|n| n as u64)) {
            c.batch_size = usize::try_from(n.clamp(1, 65_536)).unwrap_or(256);
        }
        if let Some(n) =
            env_num("PLEDGED_QUEUE_CAPACITY")?.or(file.queue_capacity.map(|n| n as u64))
        {
            c.queue_capacity = usize::try_from(n.clamp(1, 1 << 20)).unwrap_or(4096);
        }
        if let Some(n) =
            env_num("PLEDGED_OPEN_RATE_PER_MINUTE")?.or(file.open_rate_per_minute.map(u64::from))
        {
            c.open_rate_per_minute = u32::try_from(n).unwrap_or(u32::MAX);
        }
        if let Some(ms) =
            env_num("PLEDGED_CLOSE_CHECK_INTERVAL_MS")?.or(file.close_check_interval_ms)
        {
            c.close_check_interval = Duration::from_millis(ms.max(10));
        }
        c.demo = cli.demo || file.demo.unwrap_or(false);
        c.demo_funding = env_bool("PLEDGED_DEMO_FUNDING")?
            .or(file.demo_funding)
            .unwrap_or(true);
        let l = &mut c.conn_limits;
        if let Some(ms) = env_num("PLEDGED_HEADER_READ_TIMEOUT_MS")?.or(file.header_read_timeout_ms)
        {
            l.header_read_timeout = Duration::from_millis(ms.clamp(100, 600_000));
        }
        if let Some(ms) = env_num("PLEDGED_IDLE_TIMEOUT_MS")?.or(file.idle_timeout_ms) {
            l.idle_timeout = Duration::from_millis(ms.clamp(100, 600_000));
        }
        if let Some(n) =
            env_num("PLEDGED_MAX_CONNECTIONS")?.or(file.max_connections.map(|n| n as u64))
        {
            l.max_connections = usize::try_from(n.max(1)).unwrap_or(usize::MAX);
        }
        if let Some(n) = env_num("PLEDGED_MAX_CONNECTIONS_PER_ADDRESS")?
            .or(file.max_connections_per_address.map(|n| n as u64))
        {
            l.max_per_address = usize::try_from(n.max(1)).unwrap_or(usize::MAX);
        }
        if let Some(ms) = env_num("PLEDGED_SHUTDOWN_GRACE_MS")?.or(file.shutdown_grace_ms) {
            l.shutdown_grace = Duration::from_millis(ms.min(600_000));
        }
        if let Some(list) = env("PLEDGED_TRUSTED_PROXIES") {
            l.trusted_proxies = list
                .split(',')
                .map(|a| {
                    a.trim()
                        .parse::<IpAddr>()
                        .map_err(|_| format!("PLEDGED_TRUSTED_PROXIES: {a:?} is not an IP address"))
                })
                .collect::<Result<_, _>>()?;
        } else if let Some(list) = file.trusted_proxies {
            l.trusted_proxies = list;
        }
        if let Some(n) =
            env_num("PLEDGED_MAX_EVENT_STREAMS")?.or(file.max_event_streams.map(|n| n as u64))
        {
            c.max_event_streams = usize::try_from(n).unwrap_or(usize::MAX);
        }
        if let Some(n) =
            env_num("PLEDGED_PUBLISH_MIN_PLEDGES")?.or(file.publish_min_pledges.map(u64::from))
        {
            c.publication.min_pledges = u32::try_from(n)
                .ok()
                .filter(|n| (1..=MAX_PUBLISH_MIN).contains(n))
                .ok_or(format!(
                    "publish_min_pledges must be between 1 and {MAX_PUBLISH_MIN}, got {n}"
                ))?;
        }
        if let Some(ms) = env_num("PLEDGED_PUBLISH_MAX_DELAY_MS")?.or(file.publish_max_delay_ms) {
            if ms > MAX_PUBLISH_DELAY_MS {
                return Err(format!(
                    "publish_max_delay_ms must be at most {MAX_PUBLISH_DELAY_MS}, got {ms}"
                ));
            }
            c.publication.max_delay_ms = ms;
        }
        if let Some(ms) = env_num("PLEDGED_PUBLISH_MAX_HOLD_MS")?.or(file.publish_max_hold_ms) {
            if !(1_000..=MAX_PUBLISH_HOLD_MS).contains(&ms) {
                return Err(format!(
                    "publish_max_hold_ms must be between 1000 and {MAX_PUBLISH_HOLD_MS}, got {ms}"
                ));
            }
            c.publish_max_hold = Duration::from_millis(ms);
        }
        if let Some(v) = env("PLEDGED_METRICS_LISTEN") {
            c.metrics_listen = Some(resolve_listen("PLEDGED_METRICS_LISTEN", &v)?);
        } else if let Some(a) = file.metrics_listen {
            c.metrics_listen = Some(resolve_listen("metrics_listen", &a)?);
        }
        if let Some(list) = env("PLEDGED_WITNESSES") {
            c.witnesses = crate::witness::parse_list(&list)?;
        } else if let Some(ws) = file.witness {
            c.witnesses = ws
                .iter()
                .map(|w| crate::witness::parse_one(&w.url, &w.key))
                .collect::<Result<_, _>>()?;
        }
        if let Some(k) = env_num("PLEDGED_WITNESS_QUORUM")?.or(file.witness_quorum) {
            let k = usize::try_from(k).unwrap_or(usize::MAX);
            if k > c.witnesses.len() {
                return Err(format!(
                    "witness_quorum {k} is more than the {} configured witnesses",
                    c.witnesses.len()
                ));
            }
            c.witness_quorum = Some(k);
        }
        c.email = email;
        c.activitypub = activitypub;
        Ok(c)
    }
}

/// The ActivityPub settings (SPEC R-API-40): off unless `activitypub =
/// true` (or `PLEDGED_ACTIVITYPUB=true`), which needs `public_url`.
fn load_activitypub(file: &FileConfig) -> Result<Option<crate::activitypub::Settings>, String> {
    let on = env_bool("PLEDGED_ACTIVITYPUB")?
        .or(file.activitypub)
        .unwrap_or(false);
    if !on {
        return Ok(None);
    }
    let url = env("PLEDGED_PUBLIC_URL")
        .or(file.public_url.clone())
        .ok_or(
            "activitypub needs public_url (PLEDGED_PUBLIC_URL), the https:// origin the \
                instance is reached at, e.g. https://pledge.example",
        )?;
    let base = crate::activitypub::documents::Base::parse(&url)?;
    let mut s = crate::activitypub::Settings::new(base);
    s.allow_private = env_bool("PLEDGED_ACTIVITYPUB_ALLOW_PRIVATE")?
        .or(file.activitypub_allow_private)
        .unwrap_or(false);
    Ok(Some(s))
}

/// The e-mail attester's settings from the environment and the file.
fn load_email(e: &mut EmailSettings, file: &FileConfig) -> Result<(), String> {
    if let Some(s) = env_num("PLEDGED_EMAIL_CODE_TTL_S")?.or(file.email_code_ttl_s) {
        if !(60..=3600).contains(&s) {
            return Err(format!(
                "email_code_ttl_s must be between 60 and 3600, got {s}"
            ));
        }
        e.code_ttl = Duration::from_secs(s);
    }
    if let Some(n) =
        env_num("PLEDGED_EMAIL_MAX_ATTEMPTS")?.or(file.email_max_attempts.map(u64::from))
    {
        e.max_attempts = u32::try_from(n.clamp(1, 100)).unwrap_or(5);
    }
    if let Some(n) = env_num("PLEDGED_EMAIL_RATE_PER_ADDRESS_PER_HOUR")?
        .or(file.email_rate_per_address_per_hour.map(u64::from))
    {
        e.per_address_per_hour = u32::try_from(n).unwrap_or(u32::MAX);
    }
    if let Some(n) = env_num("PLEDGED_EMAIL_RATE_PER_DOMAIN_PER_HOUR")?
        .or(file.email_rate_per_domain_per_hour.map(u64::from))
    {
        e.per_domain_per_hour = u32::try_from(n).unwrap_or(u32::MAX);
    }
    let Some(host) = env("PLEDGED_SMTP_HOST").or(file.smtp_host.clone()) else {
        return Ok(());
    };
    let port = match env_num("PLEDGED_SMTP_PORT")? {
        Some(p) => Some(
            u16::try_from(p).map_err(|_| format!("PLEDGED_SMTP_PORT must be a port, got {p}"))?,
        ),
        None => file.smtp_port,
    };
    let tls: SmtpTls = match env("PLEDGED_SMTP_TLS").or(file.smtp_tls.clone()) {
        Some(t) => t.parse()?,
        None => SmtpTls::default(),
    };
    let user = env("PLEDGED_SMTP_USERNAME").or(file.smtp_username.clone());
    let password = env("PLEDGED_SMTP_PASSWORD").or(file.smtp_password.clone());
    let credentials = match (user, password) {
        (Some(u), Some(p)) => Some((u, zeroize::Zeroizing::new(p))),
        (None, None) => None,
        _ => return Err("smtp_username and smtp_password go together".into()),
    };
    let from = env("PLEDGED_MAIL_FROM")
        .or(file.mail_from.clone())
        .ok_or("smtp_host needs mail_from (the From: of the code mails)")?;
    let ca_file = env("PLEDGED_SMTP_CA_FILE")
        .map(PathBuf::from)
        .or(file.smtp_ca_file.clone());
    e.relay = Some(SmtpRelay {
        host,
        port,
        tls,
        credentials,
        from,
        ca_file,
    });
    Ok(())
}

/// The socket address of `HOST:PORT` (an IP address, or a name resolved by
/// the system, its first IPv4 address preferred: `localhost` often names
/// `::1` first, which a host without IPv6 cannot bind).
fn resolve_listen(what: &str, text: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs as _;
    if let Ok(a) = text.parse::<SocketAddr>() {
        return Ok(a);
    }
    let bad = |why: String| {
        format!(
            "{what}: cannot use {text:?} ({why}); give HOST:PORT, e.g. 127.0.0.1:8080 or localhost:8080"
        )
    };
    let addrs: Vec<SocketAddr> = text
        .to_socket_addrs()
        .map_err(|e| bad(e.to_string()))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| bad("the name has no address".into()))
}

fn read_file(path: &Path) -> Result<FileConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("config file {}: {e}", path.display()))
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn env_bool(name: &str) -> Result<Option<bool>, String> {
    env(name)
        .map(|v| match v.as_str() {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => Err(format!("{name} must be true or false, got {v:?}")),
        })
        .transpose()
}

fn env_num(name: &str) -> Result<Option<u64>, String> {
    env(name)
        .map(|v| {
            v.parse::<u64>()
                .map_err(|_| format!("{name} must be a non-negative integer, got {v:?}"))
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn file_values_apply_and_unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pledged.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9999\"\nbackend = \"sled\"\nbatch_size = 7\ndemo = true\n",
        )
        .unwrap();
        let cli = Cli::parse_from(["pledged", "--config", path.to_str().unwrap()]);
        let c = Config::load(cli).unwrap();
        assert_eq!(c.listen.port(), 9999);
        assert_eq!(c.backend, Backend::Sled);
        assert_eq!(c.batch_size, 7);
        assert!(c.demo);
        assert_eq!(c.data_dir, PathBuf::from("./pledge-data"));

        std::fs::write(&path, "listn = \"x\"\n").unwrap();
        let cli = Cli::parse_from(["pledged", "--config", path.to_str().unwrap()]);
        let e = Config::load(cli).unwrap_err();
        assert!(e.contains("listn"), "{e}");
    }

    /// Writes `text` as the config file at `path` and loads it.
    fn load_file(path: &Path, text: &str) -> Result<Config, String> {
        std::fs::write(path, text).unwrap();
        Config::load(Cli::parse_from([
            "pledged",
            "--config",
            path.to_str().unwrap(),
        ]))
    }

    #[test]
    fn mail_relay_settings_load_and_hide_the_password() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pledged.toml");
        let load = |text: &str| load_file(&path, text);
        let c = load("").unwrap();
        assert_eq!(c.email, EmailSettings::default());
        assert!(c.email.relay.is_none());
        let c = load(
            "smtp_host = \"smtp.union.example\"\nsmtp_tls = \"tls\"\n\
             smtp_username = \"pledge\"\nsmtp_password = \"s3cret-pw\"\n\
             mail_from = \"Pledges <pledge@union.example>\"\n\
             email_code_ttl_s = 600\nemail_rate_per_domain_per_hour = 0\n",
        )
        .unwrap();
        let r = c.email.relay.as_ref().unwrap();
        assert_eq!(
            (r.host.as_str(), r.port, r.tls),
            ("smtp.union.example", None, SmtpTls::Tls)
        );
        assert_eq!(r.credentials.as_ref().unwrap().1.as_str(), "s3cret-pw");
        assert_eq!(c.email.code_ttl, Duration::from_secs(600));
        assert_eq!(c.email.per_domain_per_hour, 0);
        assert!(!format!("{c:?}").contains("s3cret-pw"));
        for (text, says) in [
            ("smtp_host = \"h\"\n", "mail_from"),
            (
                "smtp_host = \"h\"\nmail_from = \"a@b.c\"\nsmtp_tls = \"ssl\"\n",
                "smtp_tls",
            ),
            (
                "smtp_host = \"h\"\nmail_from = \"a@b.c\"\nsmtp_username = \"u\"\n",
                "smtp_password",
            ),
            ("email_code_ttl_s = 5\n", "email_code_ttl_s"),
        ] {
            let e = load(text).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn connection_and_publication_settings_load_and_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pledged.toml");
        let load = |text: &str| load_file(&path, text);
        let c = load(
            "idle_timeout_ms = 2000\nmax_connections_per_address = 8\n\
             trusted_proxies = [\"127.0.0.1\", \"::1\"]\n\
             publish_min_pledges = 5\npublish_max_delay_ms = 0\n",
        )
        .unwrap();
        assert_eq!(c.conn_limits.idle_timeout, Duration::from_secs(2));
        assert_eq!(c.conn_limits.max_per_address, 8);
        assert_eq!(c.conn_limits.trusted_proxies.len(), 2);
        assert_eq!(c.publication.min_pledges, 5);
        assert_eq!(c.publication.max_delay_ms, 0);
        for bad in [
            "publish_min_pledges = 0\n",
            "publish_min_pledges = 101\n",
            "publish_max_delay_ms = 15001\n",
            "publish_max_hold_ms = 60000\n",
        ] {
            let e = load(bad).unwrap_err();
            assert!(e.contains("publish_"), "{bad}: {e}");
        }
        // Defaults: a group of 3, caps on.
        let c = Config::new(dir.path());
        assert_eq!(c.publication.min_pledges, 3);
        assert!(c.conn_limits.max_connections > c.conn_limits.max_per_address);
    }

    #[test]
    fn witness_quorum_is_bounded_by_the_witness_list() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pledged.toml");
        let w = pledge_protocol::cosignature::WitnessSigner::from_seed(
            pledge_protocol::note::KeyName::new("w.example/1").unwrap(),
            &[7; 32],
        )
        .verifier()
        .to_text();
        let load = |text: &str| load_file(&path, text);
        let one = format!("[[witness]]\nurl = \"http://127.0.0.1:1\"\nkey = \"{w}\"\n");
        assert_eq!(load(&one).unwrap().witness_quorum, None);
        let c = load(&format!("witness_quorum = 1\n{one}")).unwrap();
        assert_eq!(c.witness_quorum, Some(1));
        let e = load(&format!("witness_quorum = 2\n{one}")).unwrap_err();
        assert!(e.contains("witness_quorum 2"), "{e}");
        assert!(load("witness_quorum = 1\n").is_err());
    }

    #[test]
    fn command_line_wins_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pledged.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:9999\"\nbackend = \"sled\"\n").unwrap();
        let cli = Cli::parse_from([
            "pledged",
            "--config",
            path.to_str().unwrap(),
            "--listen",
            "127.0.0.1:1234",
            "--backend",
            "redb",
        ]);
        let c = Config::load(cli).unwrap();
        assert_eq!(c.listen.port(), 1234);
        assert_eq!(c.backend, Backend::Redb);
    }

    #[test]
    fn witnesses_need_http_urls_and_valid_keys() {
        let w = pledge_protocol::cosignature::WitnessSigner::from_seed(
            pledge_protocol::note::KeyName::new("w.example").unwrap(),
            &[1; 32],
        )
        .verifier()
        .to_text();
        let list = crate::witness::parse_list(&format!("http://127.0.0.1:1|{w}; http://h:2/p|{w}"))
            .unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[1].url, "http://h:2/p");
        let e = crate::witness::parse_list(&format!("https://h|{w}")).unwrap_err();
        assert!(e.contains("http://"), "{e}");
        assert!(crate::witness::parse_list("http://h|not-a-key").is_err());
        assert!(crate::witness::parse_list("http://h").is_err());
    }

    /// SPEC R-API-40: ActivityPub is off by default and needs an https://
    /// public origin when on.
    #[test]
    fn activitypub_is_off_by_default_and_needs_a_public_url() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pledged.toml");
        let load = |text: &str| load_file(&path, text);
        assert!(load("").unwrap().activitypub.is_none());
        assert!(
            load("activitypub = false\npublic_url = \"https://p.example\"\n")
                .unwrap()
                .activitypub
                .is_none()
        );
        let e = load("activitypub = true\n").unwrap_err();
        assert!(e.contains("public_url"), "{e}");
        let e = load("activitypub = true\npublic_url = \"http://p.example\"\n").unwrap_err();
        assert!(e.contains("https://"), "{e}");
        let s = load("activitypub = true\npublic_url = \"https://p.example/\"\n")
            .unwrap()
            .activitypub
            .unwrap();
        assert_eq!(s.base.actor(), "https://p.example/ap/actor");
        assert!(!s.allow_private);
    }

    /// `--listen localhost:PORT` works (it was refused: the option took only
    /// an IP address); a name that resolves nowhere says what to give.
    #[test]
    fn listen_takes_a_host_name() {
        let a = resolve_listen("listen", "localhost:8088").unwrap();
        assert_eq!(a, "127.0.0.1:8088".parse().unwrap());
        assert_eq!(
            resolve_listen("listen", "[::1]:9").unwrap(),
            "[::1]:9".parse().unwrap()
        );
        let e = resolve_listen("listen", "no-port").unwrap_err();
        assert!(e.contains("HOST:PORT"), "{e}");
    }
}
