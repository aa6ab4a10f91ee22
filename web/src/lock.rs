//! One writer of the browser wallet at a time, across tabs: a Web Lock
//! (`navigator.locks`, named [`NAME`]) held around each step that reads,
//! changes and saves the wallet. Every tab of the origin shares
//! `localStorage["pledge.wallet.v1"]`; without the lock, two tabs that each
//! hold the wallet in memory and save one after the other keep only the
//! last one's changes (issue 14, finding 3). Inside the lock a flow first
//! merges what the store holds (`Wallet::refresh`), and each save merges
//! again (`Wallet::save`), as the CLI does under its file lock.
//!
//! Lock order: a `PledgeApp`'s own flow mutex first, then this lock, so one
//! tab's flows cannot wait on each other through it. The random delay of a
//! pledge is waited outside both.
//!
//! Where the browser has no Web Locks (an insecure context, an old
//! browser), flows run without it; the merge on save still keeps what
//! another tab saved before, only not a save racing this one.

use std::future::Future;

use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::JsCast as _;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

/// The lock's name (one per origin, like the wallet's storage key).
pub const NAME: &str = "pledge.wallet.v1";

/// `navigator.locks` and its `request` method, if this browser has them.
fn lock_manager() -> Option<(JsValue, Function)> {
    let navigator = Reflect::get(&js_sys::global(), &"navigator".into()).ok()?;
    let locks = Reflect::get(&navigator, &"locks".into()).ok()?;
    if locks.is_undefined() || locks.is_null() {
        return None;
    }
    let request = Reflect::get(&locks, &"request".into())
        .ok()?
        .dyn_into::<Function>()
        .ok()?;
    Some((locks, request))
}

/// A promise and the function that resolves it.
fn deferred() -> (Promise, Option<Function>) {
    let mut resolve_fn = None;
    let promise = Promise::new(&mut |resolve, _reject| resolve_fn = Some(resolve));
    (promise, resolve_fn)
}

/// Runs `f` holding the wallet's Web Lock (exclusive, waiting for it).
pub async fn exclusive<F: Future>(f: F) -> F::Output {
    let Some((locks, request)) = lock_manager() else {
        return f.await;
    };
    let (acquired, on_acquired) = deferred();
    let (released, release) = deferred();
    // The lock is held until the promise the callback returns settles.
    let callback = Closure::once_into_js(move |_lock: JsValue| -> JsValue {
        if let Some(f) = on_acquired {
            let _ = f.call0(&JsValue::NULL);
        }
        released.into()
    });
    let held = match request
        .call2(&locks, &NAME.into(), &callback)
        .map(JsCast::dyn_into::<Promise>)
    {
        Ok(Ok(p)) => p,
        // A browser that refuses the request: as without Web Locks.
        _ => return f.await,
    };
    // `held` settles before `acquired` only when the request is rejected
    // (e.g. the document is being unloaded): then run as without the lock.
    let _ = JsFuture::from(Promise::race(&js_sys::Array::of2(&acquired, &held))).await;
    let out = f.await;
    if let Some(release) = release {
        let _ = release.call0(&JsValue::NULL);
    }
    let _ = JsFuture::from(held).await;
    out
}
