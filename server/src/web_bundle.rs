//! The browser bundle built by `build.rs` (the `pledge-web` crate for
//! wasm32 plus wasm-bindgen's `--target web` glue), embedded in the binary.
//! `http` serves it at `/app/pledge_web.js` and `/app/pledge_web_bg.wasm`.
//! Without the `web-bundle` feature (or with `PLEDGE_WEB_BUNDLE=skip` at build
//! time) both are placeholders and [`BUILT`] is false.

/// The ES module (`text/javascript`); `init()` fetches the wasm file from the
/// same folder.
pub const PLEDGE_WEB_JS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/web/pledge_web.js"));

/// The WebAssembly module (`application/wasm`).
pub const PLEDGE_WEB_WASM: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/web/pledge_web_bg.wasm"));

/// Whether the real bundle is embedded (the placeholder wasm module is 8
/// bytes: no code).
pub const BUILT: bool = PLEDGE_WEB_WASM.len() > 8;
