//! Builds the browser bundle `pledged` serves at `/app/`: the `pledge-web`
//! crate compiled for `wasm32-unknown-unknown` (release) by a nested
//! `cargo build`, then wasm-bindgen's `--target web` step run in-process
//! (`wasm-bindgen-cli-support`), writing `$OUT_DIR/web/pledge_web.js` and
//! `$OUT_DIR/web/pledge_web_bg.wasm` for `src/web_bundle.rs` to embed.
//!
//! Without the `web-bundle` feature, or with `PLEDGE_WEB_BUNDLE=skip`, it
//! writes placeholders whose `init()` throws "browser pledging not built into
//! this server" (README "Browser build").

use std::path::{Path, PathBuf};

/// The placeholder module: same exports as the real one, every use throws.
const PLACEHOLDER_JS: &str = "// Placeholder: this pledged was built without the browser bundle \
(cargo feature `web-bundle` off, or PLEDGE_WEB_BUNDLE=skip).\n\
const message = \"browser pledging not built into this server\";\n\
export default async function init() { throw new Error(message); }\n\
export class PledgeApp {\n\
  static hasWallet() { return false; }\n\
  static async open() { throw new Error(message); }\n\
  static async importWallet() { throw new Error(message); }\n\
  static forgetWallet() { throw new Error(message); }\n\
}\n";

/// An empty but valid WebAssembly module (magic number and version).
const PLACEHOLDER_WASM: &[u8] = b"\0asm\x01\0\0\0";

fn main() {
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    let web_out = out_dir.join("web");
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let root = manifest_dir
        .parent()
        .map_or_else(|| PathBuf::from(".."), Path::to_path_buf);

    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=PLEDGE_WEB_BUNDLE");
    for p in [
        "web",
        "client-lib/src",
        "client-lib/Cargo.toml",
        "protocol/src",
        "protocol/Cargo.toml",
        "Cargo.lock",
        "Cargo.toml",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(p).display());
    }

    if let Err(e) = std::fs::create_dir_all(&web_out) {
        fail(&format!("cannot create {}: {e}", web_out.display()));
    }
    let wanted = std::env::var_os("CARGO_FEATURE_WEB_BUNDLE").is_some();
    let skip = std::env::var("PLEDGE_WEB_BUNDLE").is_ok_and(|v| v == "skip");
    if !wanted || skip {
        let why = if skip {
            "PLEDGE_WEB_BUNDLE=skip"
        } else {
            "the `web-bundle` feature is off"
        };
        println!(
            "cargo:warning=browser bundle not built ({why}): /app/pledge_web.js is a placeholder \
             and in-browser pledging is unavailable"
        );
        write(&web_out.join("pledge_web.js"), PLACEHOLDER_JS.as_bytes());
        write(&web_out.join("pledge_web_bg.wasm"), PLACEHOLDER_WASM);
        return;
    }
    #[cfg(feature = "web-bundle")]
    bundle(&root, &out_dir, &web_out);
}

fn write(path: &Path, bytes: &[u8]) {
    // Rewrite only on change, so dependants do not rebuild needlessly.
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return;
    }
    if let Err(e) = std::fs::write(path, bytes) {
        fail(&format!("cannot write {}: {e}", path.display()));
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(1);
}

/// Where the nested build keeps its artefacts: next to the outer build's
/// profile folders (`<target>/pledge-web-wasm`), shared by debug, release
/// and test builds and kept across `OUT_DIR` changes, but never the outer
/// target folder itself (its lock is held by the outer cargo).
#[cfg(feature = "web-bundle")]
fn nested_target_dir(out_dir: &Path) -> PathBuf {
    // OUT_DIR = <target>[/<triple>]/<profile>/build/<pkg>-<hash>/out
    let profile_dir = out_dir
        .parent()
        .and_then(Path::parent)
        .filter(|b| b.file_name().is_some_and(|n| n == "build"))
        .and_then(Path::parent);
    match profile_dir.and_then(Path::parent) {
        Some(t) => t.join("pledge-web-wasm"),
        None => out_dir.join("pledge-web-wasm"),
    }
}

#[cfg(feature = "web-bundle")]
fn bundle(root: &Path, out_dir: &Path, web_out: &Path) {
    use std::process::Command;
    const TARGET: &str = "wasm32-unknown-unknown";
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target_dir = nested_target_dir(out_dir);
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(root)
        .args([
            "build",
            "--release",
            "--locked",
            "-p",
            "pledge-web",
            "--lib",
        ])
        .args(["--target", TARGET])
        .arg("--target-dir")
        .arg(&target_dir)
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        // The bundle needs no debug info (wasm-bindgen strips it anyway).
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false");
    // The outer build's flags are for the host (sanitizers, coverage,
    // clippy's wrapper, a forced target or target folder): none of them
    // belongs in the browser build.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET_DIR",
        "RUSTC_WORKSPACE_WRAPPER",
        "CLIPPY_ARGS",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
        "MFLAGS",
        "ASAN_OPTIONS",
        "TSAN_OPTIONS",
        "MSAN_OPTIONS",
        "LSAN_OPTIONS",
        "UBSAN_OPTIONS",
    ] {
        cmd.env_remove(var);
    }
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k.starts_with("CARGO_TARGET_") && k.ends_with("_RUSTFLAGS") {
            cmd.env_remove(k.as_ref());
        }
    }
    let status = match cmd.status() {
        Ok(s) => s,
        Err(e) => fail(&format!(
            "cannot run {} for the browser bundle: {e}",
            Path::new(&cargo).display()
        )),
    };
    if !status.success() {
        fail(&format!(
            "building the browser bundle (pledge-web for {TARGET}) failed; see the output \
             above. If the target is missing: `rustup target add {TARGET}`. To build pledged \
             without in-browser pledging: PLEDGE_WEB_BUNDLE=skip, or \
             --no-default-features"
        ));
    }
    let wasm = target_dir
        .join(TARGET)
        .join("release")
        .join("pledge_web.wasm");
    let mut bindgen = wasm_bindgen_cli_support::Bindgen::new();
    bindgen
        .input_path(&wasm)
        .out_name("pledge_web")
        .typescript(false)
        // As the CLI: `init()` without an argument fetches
        // new URL("pledge_web_bg.wasm", import.meta.url) = /app/pledge_web_bg.wasm.
        .omit_default_module_path(false);
    let generated = bindgen
        .web(true)
        .and_then(|b| b.generate(web_out))
        .map_err(|e| e.to_string());
    if let Err(e) = generated {
        fail(&format!("wasm-bindgen on {} failed: {e}", wasm.display()));
    }
}
