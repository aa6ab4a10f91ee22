//! The witness (`pledge witness serve`) over a real socket on 127.0.0.1:0:
//! C2SP tlog-witness `add-checkpoint` status codes, cosignatures that verify,
//! state that survives a restart, and concurrent forks of which exactly one
//! is cosigned.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::Arc;

use pledge_client::witness::{
    KeyFileError, ServeOptions, StartError, Witness, WitnessError, generate_key_file,
    parse_log_arg, read_key_file,
};
use pledge_protocol::checkpoint::Checkpoint;
use pledge_protocol::cosignature::{
    AddCheckpointRequest, TLOG_SIZE_CONTENT_TYPE, WitnessSigner, WitnessVerifier, WitnessedTree,
    parse_cosignature_lines, parse_size_body, verify_cosignatures,
};
use pledge_protocol::hash::Hash;
use pledge_protocol::merkle::{MemoryHashes, consistency_proof, leaf_hash, tree_root};
use pledge_protocol::note::{KeyName, NoteSigner, NoteVerifier, SignedNote};
use pledge_tests::witness::WitnessServer;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const ORIGIN: &str = "log.example/pledge";
const WITNESS: &str = "witness.example/w1";

fn witness_signer() -> WitnessSigner {
    WitnessSigner::from_seed(KeyName::new(WITNESS).unwrap(), &[7; 32])
}

/// A log: its key and every leaf hash, so it can sign any past size and
/// prove consistency between any two sizes.
struct Log {
    key: NoteSigner,
    tree: MemoryHashes,
}

impl Log {
    fn new(seed: u8) -> Self {
        Self::with_name(ORIGIN, seed)
    }

    fn with_name(name: &str, seed: u8) -> Self {
        Self {
            key: NoteSigner::from_seed(KeyName::new(name).unwrap(), &[seed; 32]),
            tree: MemoryHashes::new(),
        }
    }

    /// Appends `n` leaves whose contents start with `tag` (different tags
    /// give different trees, i.e. forks).
    fn grow(&mut self, n: u64, tag: &str) {
        for _ in 0..n {
            let i = self.tree.size();
            self.tree
                .push(leaf_hash(format!("{tag}-{i}").as_bytes()))
                .unwrap();
        }
    }

    fn root(&self, size: u64) -> Hash {
        tree_root(size, &self.tree).unwrap()
    }

    fn checkpoint(&self, size: u64) -> SignedNote {
        Checkpoint::new(self.key.name().clone(), size, self.root(size))
            .sign(&self.key)
            .unwrap()
    }

    fn proof(&self, old: u64, new: u64) -> Vec<Hash> {
        consistency_proof(old, new, &self.tree).unwrap()
    }

    /// A well-formed request from `old` to `new`.
    fn request(&self, old: u64, new: u64) -> String {
        let proof = if old == 0 {
            Vec::new()
        } else {
            self.proof(old, new)
        };
        AddCheckpointRequest::new(old, proof, self.checkpoint(new))
            .unwrap()
            .to_text()
    }
}

async fn start(dir: &Path, logs: Vec<NoteVerifier>) -> WitnessServer {
    WitnessServer::start(Witness::open(witness_signer(), logs, dir).unwrap()).await
}

struct Answer {
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

/// `add-checkpoint` requests to the harness's witness.
trait Post {
    async fn post(&self, body: impl Into<Vec<u8>>) -> Answer;
}

impl Post for WitnessServer {
    async fn post(&self, body: impl Into<Vec<u8>>) -> Answer {
        post(&self.http, &self.add_checkpoint_url(), body.into()).await
    }
}

async fn post(http: &reqwest::Client, url: &str, body: Vec<u8>) -> Answer {
    let r = http.post(url).body(body).send().await.unwrap();
    let status = r.status().as_u16();
    let content_type = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    Answer {
        status,
        content_type,
        body: r.bytes().await.unwrap().to_vec(),
    }
}

/// Checks a 200 answer: one or more cosignature lines by our witness that
/// verify on `note` (R-WIT-7, R-COSIG-5); returns the cosigned note.
fn assert_cosigned(a: &Answer, note: &SignedNote) -> SignedNote {
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let lines = parse_cosignature_lines(&a.body).unwrap();
    assert!(!lines.is_empty());
    let mut cosigned = note.clone();
    for l in lines {
        cosigned.add_signature(l).unwrap();
    }
    let verifier: WitnessVerifier = witness_signer().verifier();
    let found = verify_cosignatures(&cosigned, &[verifier], 1).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].witness.as_str(), WITNESS);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(found[0].timestamp.abs_diff(now) < 60, "timestamp is now");
    cosigned
}

fn assert_size_conflict(a: &Answer, size: u64) {
    assert_eq!(a.status, 409, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.content_type, TLOG_SIZE_CONTENT_TYPE);
    assert_eq!(parse_size_body(&a.body).unwrap(), size);
}

/// Reads the witness state from disk through a fresh `Witness` (the running
/// one must be stopped first: the folder is locked). The stopped server's
/// last connection task may drop its handle on the witness, and with it the
/// folder's lock, a moment after the server's task returned (seen once on a
/// loaded machine: `StateLocked`), so a locked folder is retried for up to
/// 10 s; any other error fails at once.
async fn stored_state(dir: &Path, log: &NoteVerifier) -> Option<WitnessedTree> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let w = loop {
        match Witness::open(witness_signer(), vec![log.clone()], dir) {
            Ok(w) => break w,
            Err(pledge_client::witness::WitnessError::StateLocked { .. })
                if std::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => panic!("opening the witness state: {e}"),
        }
    };
    w.latest(log.name()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_checkpoint_extension_and_repeat_are_cosigned() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::new(1);
    log.grow(5, "a");
    let w = start(dir.path(), vec![log.key.verifier()]).await;

    // old 0, empty proof: the first checkpoint.
    let cosigned = assert_cosigned(&w.post(log.request(0, 5)).await, &log.checkpoint(5));
    // The log's own signature is still there and still verifies.
    pledge_protocol::checkpoint::verify_checkpoint(cosigned, &log.key.verifier()).unwrap();

    // An extension with a consistency proof.
    log.grow(7, "a");
    assert_cosigned(&w.post(log.request(5, 12)).await, &log.checkpoint(12));
    // The same checkpoint again (old == size, same root, empty proof).
    assert_cosigned(&w.post(log.request(12, 12)).await, &log.checkpoint(12));
    // A checkpoint that carries other signatures (e.g. another witness's)
    // is still accepted: unknown signatures are ignored.
    let mut note = log.checkpoint(12);
    let other = WitnessSigner::from_seed(KeyName::new("other.example/w").unwrap(), &[9; 32]);
    note.add_signature(
        other
            .cosign(&Checkpoint::from_body(note.body()).unwrap(), 1)
            .unwrap(),
    )
    .unwrap();
    let body = AddCheckpointRequest::new(12, vec![], note.clone())
        .unwrap()
        .to_text();
    assert_cosigned(&w.post(body).await, &note);
    w.shutdown().await;

    assert_eq!(
        stored_state(dir.path(), &log.key.verifier()).await,
        Some(WitnessedTree {
            size: 12,
            root: log.root(12)
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_carry_the_tlog_witness_status_codes() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::new(1);
    log.grow(8, "a");
    let w = start(dir.path(), vec![log.key.verifier()]).await;
    assert_cosigned(&w.post(log.request(0, 8)).await, &log.checkpoint(8));
    log.grow(8, "a");

    // Stale old size: 409, text/x.tlog.size, the witness's size.
    assert_size_conflict(&w.post(log.request(4, 16)).await, 8);
    assert_size_conflict(&w.post(log.request(0, 16)).await, 8);

    // Old larger than the checkpoint size: 400.
    let body = AddCheckpointRequest::new(17, vec![], log.checkpoint(16))
        .unwrap()
        .to_text();
    assert_eq!(w.post(body).await.status, 400);

    // A consistency proof with one flipped bit: 422; a missing proof: 422;
    // a proof with an extra hash: 422.
    let mut proof = log.proof(8, 16);
    proof[0].0[3] ^= 0x10;
    let body = AddCheckpointRequest::new(8, proof, log.checkpoint(16))
        .unwrap()
        .to_text();
    let a = w.post(body).await;
    assert_eq!(a.status, 422, "{}", String::from_utf8_lossy(&a.body));
    let body = AddCheckpointRequest::new(8, vec![], log.checkpoint(16))
        .unwrap()
        .to_text();
    assert_eq!(w.post(body).await.status, 422);
    let mut proof = log.proof(8, 16);
    proof.push(log.root(3));
    let body = AddCheckpointRequest::new(8, proof, log.checkpoint(16))
        .unwrap()
        .to_text();
    assert_eq!(w.post(body).await.status, 422);

    // Same origin, signed by another key: 403.
    let mut impostor = Log::new(2);
    impostor.grow(16, "a");
    let a = w.post(impostor.request(8, 16)).await;
    assert_eq!(a.status, 403, "{}", String::from_utf8_lossy(&a.body));
    // A signature line claiming the log's key id with a bad signature: 403.
    let good = log.checkpoint(16);
    let forged_line = good.to_text().replace(
        good.signatures()[0].to_line().trim_end(),
        pledge_protocol::note::NoteSignature::new(
            log.key.name().clone(),
            log.key.key_id(),
            vec![0x55; 64],
        )
        .unwrap()
        .to_line()
        .trim_end(),
    );
    let body = format!(
        "old 8\n{}\n\n{forged_line}",
        log.proof(8, 16)
            .iter()
            .map(base64_hash)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(w.post(body).await.status, 403);

    // Unknown origin: 404.
    let mut stranger = Log::with_name("other.example/log", 3);
    stranger.grow(3, "s");
    assert_eq!(w.post(stranger.request(0, 3)).await.status, 404);

    // Same size, different root (a fork): 409 without a size body.
    let mut fork = Log::new(1);
    fork.grow(8, "fork");
    let a = w.post(fork.request(8, 8)).await;
    assert_eq!(a.status, 409);
    assert_ne!(a.content_type, TLOG_SIZE_CONTENT_TYPE);

    // Malformed bodies: 400; an oversized one: 413.
    for bad in [
        "".to_owned(),
        "old 08\n\n".to_owned() + &log.checkpoint(16).to_text(),
        "old 8\nnot base64\n\n".to_owned() + &log.checkpoint(16).to_text(),
        "old 8\n".to_owned() + &log.checkpoint(16).to_text(),
        "old 8\r\n\n".to_owned() + &log.checkpoint(16).to_text(),
    ] {
        assert_eq!(w.post(bad.clone()).await.status, 400, "{bad:?}");
    }
    // An announced 1 MiB body is refused before it is read (raw socket: a
    // client that keeps writing would see the connection close instead).
    let mut s = tokio::net::TcpStream::connect(w.addr).await.unwrap();
    s.write_all(
        b"POST /add-checkpoint HTTP/1.1\r\nHost: w\r\nContent-Length: 1048576\r\n\r\nold 0\n",
    )
    .await
    .unwrap();
    let mut head = [0u8; 12];
    s.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 413");

    // Nothing above moved the witness: the honest extension still works.
    assert_cosigned(&w.post(log.request(8, 16)).await, &log.checkpoint(16));
    w.shutdown().await;

    // The fork and the bad proofs the log signed were kept as evidence.
    let evidence = std::fs::read_dir(dir.path().join("evidence"))
        .unwrap()
        .count();
    assert!(evidence >= 2, "{evidence} evidence files");
}

fn base64_hash(h: &Hash) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(h.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_on_the_same_state_remembers_the_latest_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::new(1);
    log.grow(20, "a");
    let w = start(dir.path(), vec![log.key.verifier()]).await;
    assert_cosigned(&w.post(log.request(0, 10)).await, &log.checkpoint(10));
    assert_cosigned(&w.post(log.request(10, 20)).await, &log.checkpoint(20));

    // A second witness on the same folder is refused while this one runs.
    match Witness::open(witness_signer(), vec![log.key.verifier()], dir.path()) {
        Err(WitnessError::StateLocked { .. }) => {}
        other => panic!("expected StateLocked, got {other:?}"),
    }
    w.shutdown().await;

    let w = start(dir.path(), vec![log.key.verifier()]).await;
    // It remembers size 20: older `old` values are stale, a fork of size 20
    // is refused, and the honest extension from 20 is cosigned.
    assert_size_conflict(&w.post(log.request(10, 20)).await, 20);
    assert_size_conflict(&w.post(log.request(0, 20)).await, 20);
    let mut fork = Log::new(1);
    fork.grow(20, "fork");
    assert_eq!(w.post(fork.request(20, 20)).await.status, 409);
    log.grow(5, "a");
    assert_cosigned(&w.post(log.request(20, 25)).await, &log.checkpoint(25));
    w.shutdown().await;

    // A corrupt state file stops the witness from starting (it never falls
    // back to "never cosigned").
    let state_file = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "checkpoint"))
        .unwrap();
    let text = std::fs::read_to_string(&state_file).unwrap();
    assert!(text.starts_with(&format!("{ORIGIN}\n25\n")), "{text}");
    std::fs::write(&state_file, &text[..text.len() / 2]).unwrap();
    match Witness::open(witness_signer(), vec![log.key.verifier()], dir.path()) {
        Err(WitnessError::CorruptState { .. }) => {}
        other => panic!("expected CorruptState, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_forks_only_one_is_cosigned() {
    let dir = tempfile::tempdir().unwrap();
    let mut base = Log::new(1);
    base.grow(10, "base");
    let w = start(dir.path(), vec![base.key.verifier()]).await;
    assert_cosigned(&w.post(base.request(0, 10)).await, &base.checkpoint(10));

    // 20 forks sharing the first 10 leaves, each a valid extension of the
    // cosigned size 10 on its own; half of them the same size.
    let forks: Vec<(SignedNote, String)> = (0..20u64)
        .map(|i| {
            let mut f = Log::new(1);
            f.grow(10, "base");
            let size = if i % 2 == 0 { 16 } else { 11 + i };
            f.grow(size - 10, &format!("fork{i}"));
            (f.checkpoint(size), f.request(10, size))
        })
        .collect();
    let http = reqwest::Client::new();
    let url = Arc::new(w.add_checkpoint_url());
    let mut tasks = Vec::new();
    for (_, body) in &forks {
        let (http, url, body) = (http.clone(), Arc::clone(&url), body.clone());
        tasks.push(tokio::spawn(async move {
            post(&http, &url, body.into_bytes()).await
        }));
    }
    let mut winners = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        let a = t.await.unwrap();
        match a.status {
            200 => winners.push((i, a)),
            409 => {
                // Every loser is told the witness moved past size 10.
                assert_eq!(a.content_type, TLOG_SIZE_CONTENT_TYPE);
                assert!(parse_size_body(&a.body).unwrap() > 10);
            }
            s => panic!("fork {i}: unexpected status {s}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one fork cosigned");
    let (i, a) = &winners[0];
    let note = &forks[*i].0;
    assert_cosigned(a, note);
    let cp = Checkpoint::from_body(note.body()).unwrap();
    w.shutdown().await;

    // The durable state is the fork that was cosigned.
    assert_eq!(
        stored_state(dir.path(), &base.key.verifier()).await,
        Some(WitnessedTree {
            size: cp.size(),
            root: *cp.root()
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_file_start_up_and_log_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("witness.key");
    let name = || KeyName::new(WITNESS).unwrap();
    let vkey = generate_key_file(&key, name()).unwrap();
    let text = std::fs::read_to_string(&key).unwrap();
    let signer = WitnessSigner::from_private_key_text(text.trim_end()).unwrap();
    assert_eq!(signer.name().as_str(), WITNESS);
    assert_eq!(signer.verifier(), vkey);
    assert_eq!(read_key_file(&key).unwrap().verifier(), vkey);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Never overwrites an existing key.
    let err = generate_key_file(&key, name()).unwrap_err();
    assert!(matches!(err, KeyFileError::Create { .. }), "{err}");
    assert_eq!(std::fs::read_to_string(&key).unwrap(), text);
    // Serving without any log is a configuration error.
    let mut opts = ServeOptions::new(&key);
    opts.listen = "127.0.0.1:0".to_owned();
    opts.state = Some(dir.path().join("state"));
    let err = pledge_client::witness::start(&opts).await.unwrap_err();
    assert!(
        matches!(err, StartError::Open(WitnessError::NoLogs)),
        "{err}"
    );

    // ORIGIN=VKEY, with an origin that itself contains '='.
    let log = NoteSigner::from_seed(KeyName::new("log.example/a=b").unwrap(), &[4; 32]);
    let vkey = log.verifier().to_text();
    assert_eq!(
        parse_log_arg(&format!("log.example/a=b={vkey}")).unwrap(),
        log.verifier()
    );
    assert!(parse_log_arg(&format!("other.example={vkey}")).is_err());
    assert!(parse_log_arg(&vkey).is_err());
    // A witness (type 0x04) key is not a log key.
    let wvkey = witness_signer().verifier().to_text();
    assert!(parse_log_arg(&format!("{WITNESS}={wvkey}")).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_store_cosigns_nothing_and_suspends_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::new(1);
    log.grow(8, "a");
    let w = start(dir.path(), vec![log.key.verifier()]).await;
    assert_cosigned(&w.post(log.request(0, 5)).await, &log.checkpoint(5));

    // Fault injection: a folder where the temporary state file goes makes the
    // next store fail (this works even as root, unlike a read-only folder).
    let state_file = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "checkpoint"))
        .unwrap();
    let tmp = state_file.with_extension("checkpoint.tmp");
    std::fs::create_dir(&tmp).unwrap();
    let a = w.post(log.request(5, 8)).await;
    assert_eq!(a.status, 500, "{}", String::from_utf8_lossy(&a.body));
    assert!(parse_cosignature_lines(&a.body).is_err(), "no cosignature");
    // The log is suspended, even for requests that need no store.
    let a = w.post(log.request(5, 5)).await;
    assert_eq!(a.status, 503);
    assert!(a.content_type.starts_with("text/plain"));
    w.shutdown().await;

    // After a restart the state is the last checkpoint actually cosigned.
    std::fs::remove_dir(&tmp).unwrap();
    assert_eq!(
        stored_state(dir.path(), &log.key.verifier()).await,
        Some(WitnessedTree {
            size: 5,
            root: log.root(5)
        })
    );
    let w = start(dir.path(), vec![log.key.verifier()]).await;
    assert_cosigned(&w.post(log.request(5, 8)).await, &log.checkpoint(8));
    w.shutdown().await;
}

/// Sequential cosigning rate with a durable store per checkpoint (one fsync
/// of the file and one of the folder each). Run with `--ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "timing figure, not a test"]
async fn witness_throughput() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::new(1);
    let n = 500u64;
    log.grow(n + 1, "a");
    let bodies: Vec<String> = (1..=n)
        .map(|s| log.request(if s == 1 { 0 } else { s - 1 }, s))
        .collect();
    let w = start(dir.path(), vec![log.key.verifier()]).await;
    let t = std::time::Instant::now();
    for b in bodies {
        assert_eq!(w.post(b).await.status, 200);
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "witness: {n} sequential add-checkpoint (durable) in {secs:.2} s = {:.0}/s",
        n as f64 / secs
    );
    w.shutdown().await;
}

/// Hostile bodies: every single-byte corruption of a valid extension request
/// (at 400 positions, random values) gets a 4xx, never a 5xx or a
/// cosignature, and leaves the witness where it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_requests_get_4xx_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::new(1);
    log.grow(40, "a");
    let w = start(dir.path(), vec![log.key.verifier()]).await;
    assert_cosigned(&w.post(log.request(0, 17)).await, &log.checkpoint(17));
    let good = log.request(17, 40).into_bytes();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for n in 0..400usize {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut bad = good.clone();
        let pos = n % bad.len();
        let old = bad[pos];
        bad[pos] = if (x as u8) == old { old ^ 1 } else { x as u8 };
        let a = w.post(bad.clone()).await;
        assert!(
            (400..500).contains(&a.status),
            "byte {pos} {old:#04x} -> {:#04x}: status {} {}",
            bad[pos],
            a.status,
            String::from_utf8_lossy(&a.body)
        );
    }
    // Truncations at every line boundary.
    for (i, _) in good.iter().enumerate().filter(|&(_, b)| *b == b'\n') {
        let a = w.post(good[..i].to_vec()).await;
        assert!((400..500).contains(&a.status), "cut at {i}: {}", a.status);
    }
    // Still at 17: the honest extension is cosigned.
    assert_cosigned(&w.post(good).await, &log.checkpoint(40));
    w.shutdown().await;
}

/// The value of the line of `/metrics` that starts with `series ` (the
/// metric and its labels), if any.
fn metric(text: &str, series: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Issue 19: a witness outage logged only `error sending request for url`,
/// nothing when it ended, and nothing in `/metrics`. Now the real `pledged`
/// logs the outage's start with its cause, exports the witness's health, and
/// logs the recovery once the witness answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_witness_outage_and_its_end_are_logged_and_exported() {
    use pledge_tests::pledged::{Launch, start_within};
    use std::time::Duration;
    const PLEDGED: &str = env!("CARGO_BIN_EXE_pledged-under-test");
    const SERIES: &str = "pledged_witness_up{witness=\"witness.test\"}";

    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // The log key first, so that the witness knows it.
    let keys = pledge_server::keys::load_or_create(&data, "localhost/pledge").unwrap();
    let log_key = keys.log.verifier();
    drop(keys);
    let signer = WitnessSigner::generate(KeyName::new("witness.test").unwrap()).unwrap();
    let wkey = signer.verifier();
    // A port nobody listens on yet: the witness is down when pledged starts.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let launch = Launch::new(PLEDGED, &data)
        .env("PLEDGED_WITNESSES", format!("{url}|{}", wkey.to_text()))
        .env("PLEDGED_BATCH_INTERVAL_MS", "20")
        .env("PLEDGED_LOG", "info");
    let stderr = tmp.path().join("stderr.txt");
    let (server, base) = start_within(&launch, &stderr, Duration::from_secs(60));
    let admin = std::fs::read_to_string(data.join("admin.token")).unwrap();
    let http = reqwest::Client::new();
    let metrics = || async {
        http.get(format!("{base}/metrics"))
            .bearer_auth(admin.trim())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let wait_for = |want: u64, what: &'static str| {
        let metrics = &metrics;
        async move {
            for _ in 0..900 {
                if metric(&metrics().await, SERIES) == Some(want) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("{what}: /metrics never showed {SERIES} {want}");
        }
    };

    // Down: exported, and logged once with its cause.
    wait_for(0, "the outage").await;
    let text = metrics().await;
    assert!(
        metric(
            &text,
            "pledged_witness_failures_total{witness=\"witness.test\"}"
        )
        .is_some_and(|n| n >= 1),
        "{text}"
    );
    let log = server.stderr_text();
    let start = format!("witness witness.test at {url} is unreachable: ");
    assert!(log.contains(&start), "{log}");
    assert!(
        log.to_lowercase().contains("connection refused"),
        "the cause, not only \"error sending request\": {log}"
    );
    assert_eq!(log.matches(&start).count(), 1, "logged once: {log}");

    // The witness comes up on that port: cosignatures resume, and the end of
    // the outage is logged.
    let state = tempfile::tempdir().unwrap();
    let witness = Witness::open(signer, [log_key], state.path()).unwrap();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(pledge_client::witness::serve(listener, witness, async {
        let _ = stopped.await;
    }));
    wait_for(1, "the recovery").await;
    let text = metrics().await;
    assert!(
        metric(
            &text,
            "pledged_witness_cosigned_size{witness=\"witness.test\"}"
        )
        .is_some_and(|n| n >= 1),
        "{text}"
    );
    let log = server.stderr_text();
    assert!(
        log.contains("witness witness.test cosigns again (checkpoint "),
        "{log}"
    );
    let checkpoint = http
        .get(format!("{base}/log/checkpoint"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        checkpoint.contains("\u{2014} witness.test "),
        "{checkpoint}"
    );
    let _ = stop.send(());
    serving.await.unwrap().unwrap();
    drop(server);
}
