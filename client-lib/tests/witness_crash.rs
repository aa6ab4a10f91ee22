//! `pledge witness serve` as a real process, killed with SIGKILL while a log
//! streams checkpoints at it: after every restart the witness's state is at
//! least the last checkpoint it answered 200 for (state stored before the
//! answer, SPEC R-WIT-7, R-WITSRV-3) and it starts cleanly (lock released,
//! no corrupt state, R-WITSRV-4, R-WITSRV-5).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use pledge_protocol::checkpoint::Checkpoint;
use pledge_protocol::cosignature::{
    AddCheckpointRequest, WitnessSigner, parse_cosignature_lines, parse_size_body,
    verify_cosignatures,
};
use pledge_protocol::merkle::{MemoryHashes, consistency_proof, leaf_hash, tree_root};
use pledge_protocol::note::{KeyName, NoteSigner};

const ORIGIN: &str = "log.example/crash";

struct Log {
    key: NoteSigner,
    tree: MemoryHashes,
}

impl Log {
    fn request(&self, old: u64, new: u64) -> String {
        let proof = if old == 0 {
            Vec::new()
        } else {
            consistency_proof(old, new, &self.tree).unwrap()
        };
        let root = tree_root(new, &self.tree).unwrap();
        let note = Checkpoint::new(self.key.name().clone(), new, root)
            .sign(&self.key)
            .unwrap();
        AddCheckpointRequest::new(old, proof, note)
            .unwrap()
            .to_text()
    }
}

/// A witness process, killed (SIGKILL) and reaped when dropped, so a failing
/// assertion leaves no process behind.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the witness binary and returns it with its add-checkpoint URL,
/// read from its start-up line on stderr.
fn spawn(key: &Path, state: &Path, vkey: &str) -> (Proc, String) {
    let mut child = Proc(
        Command::new(env!("CARGO_BIN_EXE_pledge"))
            .args(["witness", "serve", "--listen", "127.0.0.1:0", "--key"])
            .arg(key)
            .arg("--state")
            .arg(state)
            .arg("--log")
            .arg(format!("{ORIGIN}={vkey}"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut stderr = BufReader::new(child.0.stderr.take().unwrap());
    let mut line = String::new();
    let url = loop {
        line.clear();
        if stderr.read_line(&mut line).unwrap_or(0) == 0 {
            break None;
        }
        if let Some(i) = line.find("http://") {
            break Some(line[i..].trim().to_owned());
        }
    };
    let Some(url) = url else {
        drop(child);
        panic!("witness exited before listening");
    };
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut sink = String::new();
        while stderr.read_line(&mut sink).unwrap_or(0) > 0 {
            sink.clear();
        }
    });
    (child, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_never_loses_an_acknowledged_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("witness.key");
    let state = dir.path().join("state");
    let signer = WitnessSigner::from_seed(KeyName::new("witness.example/w").unwrap(), &[3; 32]);
    std::fs::write(
        &key_path,
        format!("{}\n", signer.to_private_key_text().as_str()),
    )
    .unwrap();
    let witness = signer.verifier();
    let mut log = Log {
        key: NoteSigner::from_seed(KeyName::new(ORIGIN).unwrap(), &[1; 32]),
        tree: MemoryHashes::new(),
    };
    for i in 0..4000u64 {
        log.tree.push(leaf_hash(&i.to_be_bytes())).unwrap();
    }
    let log = std::sync::Arc::new(log);
    let vkey = log.key.verifier().to_text();
    let http = reqwest::Client::new();

    let mut acked = 0u64; // largest size answered 200
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut total_acked = 0usize;
    let mut ahead = 0usize;
    for round in 0..8 {
        let (child, url) = spawn(&key_path, &state, &vkey);
        // What the restarted witness holds: at least `acked`.
        let r = http
            .post(&url)
            .body(log.request(0, acked.max(1)))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let held = if status == 200 {
            assert_eq!(acked, 0, "round {round}: witness forgot size {acked}");
            1
        } else {
            assert_eq!(status, 409, "round {round}");
            parse_size_body(&r.bytes().await.unwrap()).unwrap()
        };
        assert!(
            held >= acked,
            "round {round}: witness holds {held}, but answered 200 for {acked}"
        );
        if held > acked {
            ahead += 1; // killed after the store, before the answer arrived
        }

        // Stream extensions until the process is killed under us.
        let (l, h, u) = (log.clone(), http.clone(), url.clone());
        let w = witness.clone();
        let stream = tokio::spawn(async move {
            let mut acked = held;
            let mut n = 0usize;
            let mut step = 1;
            while acked + step < 4000 {
                let new = acked + step;
                let Ok(r) = h.post(&u).body(l.request(acked, new)).send().await else {
                    break;
                };
                let status = r.status().as_u16();
                let Ok(body) = r.bytes().await else { break };
                assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
                let mut note = pledge_protocol::note::SignedNote::parse(
                    l.request(acked, new)
                        .split_once("\n\n")
                        .unwrap()
                        .1
                        .as_bytes(),
                )
                .unwrap();
                for sig in parse_cosignature_lines(&body).unwrap() {
                    note.add_signature(sig).unwrap();
                }
                verify_cosignatures(&note, std::slice::from_ref(&w), 1).unwrap();
                acked = new;
                n += 1;
                step = step % 3 + 1;
            }
            (acked, n)
        });
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        tokio::time::sleep(Duration::from_millis(40 + seed % 120)).await;
        drop(child); // SIGKILL, then reap
        let (a, n) = stream.await.unwrap();
        acked = a;
        total_acked += n;
    }
    assert!(
        total_acked > 8,
        "the log made progress ({total_acked} cosigned)"
    );

    // Final check: the state is exactly a checkpoint of this log, at least
    // the last acknowledged one, and the witness starts once more.
    let (child, url) = spawn(&key_path, &state, &vkey);
    let r = http
        .post(&url)
        .body(log.request(0, acked))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 409);
    let held = parse_size_body(&r.bytes().await.unwrap()).unwrap();
    assert!(held >= acked);
    let r = http
        .post(&url)
        .body(log.request(held, held))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "stored root is the log's root");
    drop(child);
    eprintln!(
        "{total_acked} checkpoints cosigned across 8 SIGKILLs; final size {held}; \
         {ahead} restart(s) found a stored but unanswered checkpoint"
    );
}
