//! A throwaway PostgreSQL cluster for the tests: started once per test
//! process from the machine's PostgreSQL server binaries (`initdb` in a
//! temporary folder, listening only on a Unix socket there), one fresh
//! database per [`TestDatabase`], and removed with its folder when the test
//! process exits (a watchdog process waits for it: a panicking or killed
//! test leaves nothing behind).
//!
//! As root, the cluster runs as the `postgres` user (or `nobody`), since
//! PostgreSQL refuses to run as root. The binaries are found in
//! `PLEDGE_PG_BINDIR`, else the newest `/usr/lib/postgresql/*/bin`, else on
//! `PATH`; without them the test fails with the install step (`./test`
//! installs them).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What to run when the binaries are missing.
const INSTALL: &str = "apt-get install postgresql (./test installs it)";

/// The cluster of this test process.
#[derive(Debug)]
pub struct Cluster {
    root: PathBuf,
    bin: PathBuf,
    user: Option<(String, u32, u32)>,
    next: AtomicUsize,
}

/// A fresh database of the [`Cluster`], dropped (forcibly, connections and
/// all) when this value is.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    url: String,
}

impl TestDatabase {
    /// The database's size on disk (`pg_database_size`), in bytes.
    pub fn size_bytes(&self) -> u64 {
        off_runtime(|| {
            let size: i64 = cluster()
                .admin()
                .unwrap()
                .query_one("SELECT pg_database_size($1)", &[&self.name])
                .unwrap()
                .get(0);
            u64::try_from(size).unwrap()
        })
    }

    /// `pg_dump` of the whole database (schema and rows), as SQL text.
    pub fn dump(&self) -> Vec<u8> {
        let c = cluster();
        let out = pg_command(&c.bin, "pg_dump", c.user.as_ref())
            .arg("--no-owner")
            .arg(&self.url)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_dump: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }
}

impl TestDatabase {
    /// The connection string of this database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        off_runtime(|| {
            if let Ok(mut c) = cluster().admin() {
                let _ = c.batch_execute(&sql);
            }
        });
    }
}

/// Runs `f` on a thread of its own: the synchronous client starts a runtime,
/// which tokio refuses inside an async test.
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| s.spawn(f).join().unwrap())
}

/// The cluster, started on first use.
pub fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| off_runtime(Cluster::start))
}

fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PLEDGE_PG_BINDIR") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    // On PATH (another distribution's layout).
    let found = Command::new("sh")
        .args(["-c", "command -v postgres"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok());
    match found {
        Some(p) => Path::new(p.trim()).parent().unwrap().to_path_buf(),
        None => panic!("PostgreSQL server binaries (initdb, postgres) not found: {INSTALL}"),
    }
}

/// The user the cluster runs as when the tests run as root: `(name, uid,
/// gid)`.
fn run_as() -> Option<(String, u32, u32)> {
    let root = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&root.stdout).trim() != "0" {
        return None;
    }
    for user in ["postgres", "nobody"] {
        let id = |flag: &str| {
            Command::new("id")
                .args([flag, user])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .and_then(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .trim()
                        .parse::<u32>()
                        .ok()
                })
        };
        if let (Some(uid), Some(gid)) = (id("-u"), id("-g")) {
            return Some((user.to_owned(), uid, gid));
        }
    }
    panic!("running as root and neither the postgres nor the nobody user exists");
}

/// `program` from the PostgreSQL binaries, as the cluster's user.
fn pg_command(bin: &Path, program: &str, user: Option<&(String, u32, u32)>) -> Command {
    let path = bin.join(program);
    match user {
        None => Command::new(path),
        Some((name, _, _)) => {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={name}"))
                .arg(format!("--regid={name}"))
                .arg("--clear-groups")
                .arg(path);
            c
        }
    }
}

/// Starts the PostgreSQL server of the cluster in `root` (its log appended
/// to `root/postgres.log`).
fn spawn_server(bin: &Path, user: Option<&(String, u32, u32)>, root: &Path) -> std::process::Child {
    let data = root.join("data");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(root.join("postgres.log"))
        .unwrap();
    if let Some((_, uid, gid)) = user {
        std::os::unix::fs::chown(root.join("postgres.log"), Some(*uid), Some(*gid)).unwrap();
    }
    // Durable as in production (fsync and synchronous_commit on, the
    // store refuses otherwise); no TCP, no logging of connections.
    pg_command(bin, "postgres", user)
        .arg("-D")
        .arg(&data)
        .arg("-k")
        .arg(root)
        .args([
            "-c",
            "listen_addresses=",
            "-c",
            "max_connections=300",
            "-c",
            "log_connections=off",
            "-c",
            "shared_buffers=32MB",
        ])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start postgres: {e}: {INSTALL}"))
}

impl Cluster {
    // The server and the watchdog outlive this function on purpose: the
    // watchdog stops the one and removes the folder after this process.
    #[allow(clippy::zombie_processes)]
    fn start() -> Self {
        let bin = bin_dir();
        let user = run_as();
        let root = tempfile::Builder::new()
            .prefix("pledge-pg-")
            .tempdir()
            .unwrap()
            .keep();
        if let Some((_, uid, gid)) = &user {
            std::os::unix::fs::chown(&root, Some(*uid), Some(*gid)).unwrap();
        }
        let data = root.join("data");
        let out = pg_command(&bin, "initdb", user.as_ref())
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .output()
            .unwrap_or_else(|e| panic!("cannot run initdb from {}: {e}: {INSTALL}", bin.display()));
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let server = spawn_server(&bin, user.as_ref(), &root);
        // The watchdog: once this test process is gone, stop the cluster and
        // remove its folder. In its own process group, so that a Ctrl-C of
        // the tests does not stop it before it cleans up.
        let script = "while kill -0 \"$1\" 2>/dev/null; do sleep 0.5; done; \
                      p=$(head -1 \"$3/data/postmaster.pid\" 2>/dev/null); set -- \"$1\" \"${p:-$2}\" \"$3\"; \
                      kill -INT \"$2\" 2>/dev/null; \
                      for i in $(seq 100); do kill -0 \"$2\" 2>/dev/null || break; sleep 0.1; done; \
                      kill -KILL \"$2\" 2>/dev/null; rm -rf \"$3\"";
        std::os::unix::process::CommandExt::process_group(
            Command::new("sh")
                .args(["-c", script, "pledge-pg-watchdog"])
                .arg(std::process::id().to_string())
                .arg(server.id().to_string())
                .arg(&root)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
            0,
        )
        .spawn()
        .unwrap();
        let cluster = Self {
            root,
            bin,
            user,
            next: AtomicUsize::new(0),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match cluster.admin() {
                Ok(_) => break,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!(
                    "postgres did not start: {e}; its log: {}",
                    std::fs::read_to_string(cluster.root.join("postgres.log")).unwrap_or_default()
                ),
            }
        }
        cluster
    }

    /// Restarts the server as its service manager would after a failure:
    /// fast shutdown (every connection cut, open transactions rolled back),
    /// then a new server on the same data; returns once it accepts
    /// connections. Every test of the process shares the cluster: a suite
    /// that restarts it runs its tests one at a time.
    #[allow(clippy::zombie_processes)]
    pub fn restart(&self) {
        let pid_file = self.root.join("data").join("postmaster.pid");
        let pid = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|t| t.lines().next().map(str::to_owned))
            .expect("the cluster's postmaster.pid");
        let sent = Command::new("kill").args(["-INT", &pid]).status().unwrap();
        assert!(sent.success(), "cannot signal postgres {pid}");
        // The server is this process's child: once stopped it stays a
        // zombie (`kill -0` still succeeds), but its pid file is gone.
        let deadline = Instant::now() + Duration::from_secs(60);
        while pid_file.exists() {
            assert!(Instant::now() < deadline, "postgres {pid} did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
        // Reaped by nobody: the watchdog stops it after the tests.
        let _server = spawn_server(&self.bin, self.user.as_ref(), &self.root);
        let deadline = Instant::now() + Duration::from_secs(60);
        while off_runtime(|| self.admin().is_err()) {
            assert!(
                Instant::now() < deadline,
                "postgres did not come back; its log: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// What the PostgreSQL server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("postgres.log")).unwrap_or_default()
    }

    /// The connection string of database `db`.
    pub fn url(&self, db: &str) -> String {
        format!("host={} user=postgres dbname={db}", self.root.display())
    }

    /// A connection to the `postgres` database, for administration (not
    /// from inside a tokio runtime).
    ///
    /// # Errors
    /// The connection's.
    pub fn admin(&self) -> Result<postgres::Client, postgres::Error> {
        postgres::Client::connect(&self.url("postgres"), postgres::NoTls)
    }

    /// A new, empty database.
    pub fn database(&self) -> TestDatabase {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        let name = format!("pledge_test_{n}");
        off_runtime(|| {
            self.admin()
                .unwrap()
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .unwrap();
        });
        TestDatabase {
            url: self.url(&name),
            name,
        }
    }
}
