// The browser wallet: a thin layer over the WebAssembly client (the same
// Rust code as the `pledge` CLI, served by this server at /app/). Loaded only
// when needed, so the chart works even where WebAssembly is unavailable.

let modPromise = null;
let app = null;

/** Loads and initialises the WebAssembly client once. */
export async function client() {
  if (!modPromise) {
    modPromise = (async () => {
      const mod = await import("/app/pledge_web.js");
      // The wasm file's URL is given explicitly: the generated glue may not
      // default it from import.meta.url.
      await mod.default({ module_or_path: "/app/pledge_web_bg.wasm" });
      return mod;
    })();
    modPromise.catch(() => { modPromise = null; });
  }
  return modPromise;
}

/** Whether this browser's storage holds a wallet (no WebAssembly needed). */
export function hasWallet() {
  try { return localStorage.getItem("pledge.wallet.v1") !== null; } catch (_) { return false; }
}

/** The open wallet, or null while locked. */
export function current() { return app; }

/** Opens (or creates) the wallet with `passphrase`. */
export async function unlock(passphrase) {
  if (app) return app;
  const { PledgeApp } = await client();
  app = await PledgeApp.open(location.origin, passphrase);
  return app;
}

/** Closes the open wallet (the passphrase leaves the page's memory). */
export function lock() {
  if (app) {
    try { app.close(); } catch (_) { /* already freed */ }
  }
  app = null;
}

/** Replaces the stored wallet with `bytes` if they open with `passphrase`. */
export async function importWallet(bytes, passphrase) {
  const { PledgeApp } = await client();
  lock();
  await PledgeApp.importWallet(bytes, passphrase);
  return unlock(passphrase);
}

/** Removes the stored wallet. */
export async function forget() {
  lock();
  try {
    const { PledgeApp } = await client();
    PledgeApp.forgetWallet();
  } catch (_) {
    localStorage.removeItem("pledge.wallet.v1");
  }
}

/** Saves the encrypted wallet as a file download. */
export function exportWallet() {
  if (!app) throw Object.assign(new Error("unlock the wallet first"), { code: "locked" });
  const bytes = app.exportWallet();
  const blob = new Blob([bytes], { type: "application/octet-stream" });
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = "wallet.pledge";
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
