//! The store conformance suite through its public API, as a backend outside
//! `pledge-server` runs it (`store::conformance`, the `conformance`
//! feature): redb through the ready-made fixture, sled through a fixture of
//! its own whose stores live in numbered folders of one temporary folder.
//! Built only with the feature (this crate's unit tests already run the suite
//! on both backends):
//!
//! ```text
//! cargo test -p pledge-server --features conformance --test store_conformance
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use pledge_server::store::conformance::{Embedded, Fixture};
use pledge_server::store::{Backend, Store, StoreError, open_store};

/// Sled stores in `root/0`, `root/1`, …: a place is a folder name.
struct Numbered {
    root: tempfile::TempDir,
    next: AtomicUsize,
}

impl Numbered {
    fn new() -> Self {
        Self {
            root: tempfile::tempdir().unwrap(),
            next: AtomicUsize::new(0),
        }
    }
}

impl Fixture for Numbered {
    type Place = PathBuf;

    fn place(&self) -> PathBuf {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        self.root.path().join(n.to_string())
    }

    fn open(&self, place: &PathBuf) -> Result<Arc<dyn Store>, StoreError> {
        open_store(Backend::Sled, place)
    }
}

pledge_server::store_conformance!(redb, Embedded(Backend::Redb));
pledge_server::store_conformance!(sled_in_numbered_folders, Numbered::new());
