//! The browser wallet's home: `localStorage["pledge.wallet.v1"]` holds the
//! encrypted wallet file bytes (the CLI's format) as standard base64. Nothing
//! else of the wallet is kept anywhere in the browser.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::shape::ErrorInfo;

/// The `localStorage` key of the wallet (web/API.md).
pub const KEY: &str = "pledge.wallet.v1";

fn storage() -> Result<web_sys::Storage, String> {
    let window =
        web_sys::window().ok_or_else(|| "no browser window here, so no localStorage".to_owned())?;
    window
        .local_storage()
        .map_err(|_| {
            "localStorage is not accessible (blocked by the browser settings?)".to_owned()
        })?
        .ok_or_else(|| "this browser has no localStorage".to_owned())
}

/// The stored wallet bytes, if any.
///
/// # Errors
/// `storage` when `localStorage` is unavailable; `wallet_corrupt` when the
/// stored text is not base64.
pub fn load() -> Result<Option<Vec<u8>>, ErrorInfo> {
    let s = storage().map_err(|e| ErrorInfo::new("storage", e))?;
    let Some(text) = s
        .get_item(KEY)
        .map_err(|_| ErrorInfo::new("storage", "reading localStorage failed"))?
    else {
        return Ok(None);
    };
    B64.decode(text.trim()).map(Some).map_err(|_| {
        ErrorInfo::new(
            "wallet_corrupt",
            format!("localStorage[\"{KEY}\"] is not a stored wallet (not base64)"),
        )
    })
}

/// Whether a wallet is stored (false when `localStorage` is unavailable).
pub fn exists() -> bool {
    storage()
        .ok()
        .and_then(|s| s.get_item(KEY).ok().flatten())
        .is_some()
}

/// Stores the wallet bytes, replacing what was there.
///
/// # Errors
/// A message when `localStorage` is unavailable or full.
pub fn save(bytes: &[u8]) -> Result<(), String> {
    storage()?
        .set_item(KEY, &B64.encode(bytes))
        .map_err(|_| "localStorage refused the wallet (storage full or blocked)".to_owned())
}

/// Removes the stored wallet.
///
/// # Errors
/// `storage` when `localStorage` is unavailable.
pub fn remove() -> Result<(), ErrorInfo> {
    storage()
        .map_err(|e| ErrorInfo::new("storage", e))?
        .remove_item(KEY)
        .map_err(|_| ErrorInfo::new("storage", "removing the wallet from localStorage failed"))
}
