//! Timing of sealed terms in the browser (issue 16: a client proof within
//! 25 ms at `B = 32` in Chromium): `benchSeal(B, n)` seals `n` times at `B`
//! buckets, each time a random bucket or a null pledge, under a fresh random
//! key and context, and returns each seal's time in milliseconds. A
//! measurement tool (BENCHMARKS.md "Session 12" and
//! `tests/browser/seal-bench.mjs`), not part of pledging: it touches no
//! wallet and sends nothing.

use pledge_protocol::sealed::{
    JointPublicKey, MAX_BUCKETS, SealContext, SealedTerms, TrusteeSecretShare,
};
use rand::rngs::{StdRng, SysRng};
use rand::{Rng, SeedableRng};
use wasm_bindgen::prelude::*;

/// Most seals one call may time (a bound on the page's wait).
pub const MAX_ITERATIONS: u32 = 10_000;

/// Seals `iterations` times at `buckets` buckets and returns each seal's
/// duration in milliseconds, measured with `now` (milliseconds, monotonic).
/// The bucket is drawn for each seal among `B` buckets and the null pledge.
///
/// # Errors
/// A message for `buckets` outside `1..=64`, `iterations` outside
/// `1..=10000`, or no randomness from the system.
pub fn seal_timings(
    buckets: u32,
    iterations: u32,
    mut now: impl FnMut() -> f64,
) -> Result<Vec<f64>, String> {
    let b = usize::try_from(buckets).map_err(|e| e.to_string())?;
    if !(1..=MAX_BUCKETS).contains(&b) {
        return Err(format!("buckets must be 1..={MAX_BUCKETS}"));
    }
    if !(1..=MAX_ITERATIONS).contains(&iterations) {
        return Err(format!("iterations must be 1..={MAX_ITERATIONS}"));
    }
    let mut rng = StdRng::try_from_rng(&mut SysRng).map_err(|e| e.to_string())?;
    let mut secret = [0u8; 32];
    rng.fill_bytes(&mut secret);
    // Below 2^252 < ℓ: a canonical scalar.
    secret[31] &= 0x0f;
    secret[0] |= 1;
    let trustee = TrusteeSecretShare::from_bytes(1, &secret).map_err(|e| e.to_string())?;
    let key =
        JointPublicKey::from_bytes(trustee.public_share().to_bytes()).map_err(|e| e.to_string())?;
    let mut context = SealContext {
        campaign: [0; 32],
        nullifier: [0; 32],
        seq: 0,
        pledge_key: [0; 32],
    };
    rng.fill_bytes(&mut context.campaign);
    let mut times = Vec::with_capacity(usize::try_from(iterations).unwrap_or(0));
    for _ in 0..iterations {
        rng.fill_bytes(&mut context.nullifier);
        rng.fill_bytes(&mut context.pledge_key);
        let pick = usize::try_from(rng.next_u32() % (buckets + 1)).unwrap_or(0);
        let bucket = (pick < b).then_some(pick);
        let t0 = now();
        let terms =
            SealedTerms::seal(&context, &key, b, bucket, &mut rng).map_err(|e| e.to_string())?;
        let t1 = now();
        std::hint::black_box(&terms);
        times.push(t1 - t0);
    }
    Ok(times)
}

/// `performance.now()` of the global scope (page or worker), in ms.
fn performance_now() -> f64 {
    let performance = js_sys::Reflect::get(&js_sys::global(), &"performance".into())
        .ok()
        .filter(|p| !p.is_undefined());
    performance
        .and_then(|p| {
            let now = js_sys::Reflect::get(&p, &"now".into()).ok()?;
            let now: js_sys::Function = now.dyn_into().ok()?;
            now.call0(&p).ok()?.as_f64()
        })
        .unwrap_or_else(js_sys::Date::now)
}

/// JavaScript: `benchSeal(buckets, iterations) → Float64Array` of each
/// seal's time in milliseconds (`performance.now()`), see [`seal_timings`].
///
/// # Errors
/// An `Error` for out-of-range arguments.
#[wasm_bindgen(js_name = benchSeal)]
pub fn bench_seal(buckets: u32, iterations: u32) -> Result<Vec<f64>, JsValue> {
    seal_timings(buckets, iterations, performance_now).map_err(|e| js_sys::Error::new(&e).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timings_are_one_positive_number_per_seal() {
        let t0 = std::time::Instant::now();
        let now = || t0.elapsed().as_secs_f64() * 1000.0;
        let times = seal_timings(4, 3, now).unwrap();
        assert_eq!(times.len(), 3);
        assert!(times.iter().all(|&t| t > 0.0 && t < 10_000.0), "{times:?}");
        for (b, n) in [(0, 1), (65, 1), (4, 0), (4, MAX_ITERATIONS + 1)] {
            assert!(seal_timings(b, n, now).is_err(), "{b} {n}");
        }
    }
}
