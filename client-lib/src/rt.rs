//! The one runtime service the flows need besides HTTP: sleeping. Natively a
//! tokio timer; in a browser (wasm32-unknown-unknown) a `setTimeout` promise,
//! so the random delay (DESIGN P4) runs inside the page.

use std::time::Duration;

/// No timer to wait on (a JavaScript environment without `setTimeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("this environment has no timer (setTimeout), so the random delay cannot run")]
pub struct NoTimer;

/// Waits `d` without blocking the thread (the async runtime keeps running).
///
/// # Errors
/// Never natively.
#[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
pub async fn sleep(d: Duration) -> Result<(), NoTimer> {
    #[cfg(feature = "native")]
    tokio::time::sleep(d).await;
    // Without the tokio runtime (a host build of `pledge-web` for its unit
    // tests) block the thread: slower, but the wait still happens.
    #[cfg(not(feature = "native"))]
    std::thread::sleep(d);
    Ok(())
}

/// Waits `d` without blocking the page: a promise resolved by `setTimeout`
/// on the global object (window or worker).
///
/// # Errors
/// [`NoTimer`] when the global object has no working `setTimeout`.
#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
pub async fn sleep(d: Duration) -> Result<(), NoTimer> {
    use js_sys::{Function, Promise, Reflect};
    use wasm_bindgen::JsCast as _;
    // setTimeout takes a 32-bit signed delay; longer waits are chained.
    let mut left = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    while left > 0 {
        let step = left.min(i32::MAX as u64);
        left -= step;
        let promise = Promise::new(&mut |resolve, reject| {
            let global = js_sys::global();
            let set_timeout = Reflect::get(&global, &"setTimeout".into())
                .ok()
                .and_then(|f| f.dyn_into::<Function>().ok());
            let started = match set_timeout {
                Some(f) => f.call2(&global, &resolve, &(step as f64).into()).is_ok(),
                None => false,
            };
            if !started {
                let _ = reject.call1(&global, &"setTimeout is not available".into());
            }
        });
        wasm_bindgen_futures::JsFuture::from(promise)
            .await
            .map_err(|_| NoTimer)?;
    }
    Ok(())
}
