//! `pledge-web`: the pledge client (`pledge-client` without its `native`
//! feature) compiled to WebAssembly, with the JavaScript API of `web/API.md`.
//! The page runs the same flows as the `pledge` CLI: cover issuance with the
//! key check against the log, blinding and finalisation, the random delay,
//! receipt verification; the server sees the same requests (SPEC R-WEB-1).
//!
//! # Layout
//!
//! - [`shape`]: argument parsing, prechecks, error codes and result shapes,
//!   free of JavaScript (unit-tested natively).
//! - [`storage`]: the wallet bytes in `localStorage["pledge.wallet.v1"]`.
//! - [`lock`]: the Web Lock that makes tabs save the wallet one at a time.
//! - [`bench`]: `benchSeal`, the timing of sealed terms (BENCHMARKS.md).
//! - [`sealed`]: sealed campaigns (the joint key checked against the log,
//!   sealed pledges and amendments, cover null pledges, SPEC §17.3).
//! - this file: the `PledgeApp` class exported to JavaScript.
//!
//! The crate also builds natively (it is a workspace member): the bindings
//! compile everywhere, but calling them outside a JavaScript host panics in
//! `wasm-bindgen`, so native tests only exercise [`shape`].

pub mod bench;
pub mod lock;
pub mod sealed;
pub mod shape;
pub mod storage;

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use futures_util::lock::Mutex;
use js_sys::{Function, Promise, Reflect};
use pledge_client::client::Client;
use pledge_client::flows::{self, FlowError};
use pledge_client::wallet::{Protection, Wallet, WalletError};
use pledge_protocol::hash::CampaignId;
use pledge_protocol::note::NoteVerifier;
use wasm_bindgen::prelude::*;

use crate::shape::{Change, DelayOptions, ErrorInfo};

/// What error messages call the browser's copy of the wallet.
const WALLET_LABEL: &str = "in this browser";

/// A JS `Error` with `message`, `code`, and `status` / `retryAfter` when the
/// server sent them.
fn js_error(info: &ErrorInfo) -> JsValue {
    let e = js_sys::Error::new(&info.message);
    let _ = Reflect::set(&e, &"code".into(), &info.code.as_str().into());
    if let Some(s) = info.status {
        let _ = Reflect::set(&e, &"status".into(), &s.into());
    }
    if let Some(r) = info.retry_after {
        // Seconds fit a JS number exactly far beyond any Retry-After.
        #[allow(clippy::cast_precision_loss)]
        let _ = Reflect::set(&e, &"retryAfter".into(), &(r as f64).into());
    }
    e.into()
}

fn flow_error(e: &FlowError) -> JsValue {
    js_error(&ErrorInfo::from(e))
}

fn wallet_error(e: &WalletError) -> JsValue {
    js_error(&ErrorInfo::from(e))
}

/// A JSON value as a plain JS value.
fn to_js(v: &serde_json::Value) -> Result<JsValue, JsValue> {
    js_sys::JSON::parse(&v.to_string())
}

/// A field of an options object: `None` when the object or field is absent.
fn field(obj: &JsValue, name: &str) -> Option<JsValue> {
    if obj.is_undefined() || obj.is_null() {
        return None;
    }
    Reflect::get(obj, &name.into())
        .ok()
        .filter(|v| !v.is_undefined() && !v.is_null())
}

fn string_field(obj: &JsValue, name: &str) -> Result<Option<String>, JsValue> {
    match field(obj, name) {
        None => Ok(None),
        Some(v) => v
            .as_string()
            .map(Some)
            .ok_or_else(|| js_error(&ErrorInfo::argument(format!("{name} must be a string")))),
    }
}

/// The `{maxDelaySeconds, now}` object; `default` when it is absent.
fn delay_options(opts: &JsValue, default: DelayOptions) -> Result<DelayOptions, JsValue> {
    if opts.is_undefined() || opts.is_null() {
        return Ok(default);
    }
    let max =
        match field(opts, "maxDelaySeconds") {
            None => None,
            Some(v) => Some(v.as_f64().ok_or_else(|| {
                js_error(&ErrorInfo::argument("maxDelaySeconds must be a number"))
            })?),
        };
    let now = match field(opts, "now") {
        None => None,
        Some(v) => Some(
            v.as_bool()
                .ok_or_else(|| js_error(&ErrorInfo::argument("now must be true or false")))?,
        ),
    };
    if max.is_none() && now.is_none() {
        // Options that only carry terms (`support`, `fund`) keep the default.
        return Ok(default);
    }
    DelayOptions::parse(max, now).map_err(|e| js_error(&e))
}

/// The terms of a pledge from `threshold` and `opts.support` / `opts.fund`
/// (numbers, minor units).
fn terms_of(threshold: f64, opts: &JsValue) -> Result<pledge_protocol::pledge::Terms, ErrorInfo> {
    // `field` answers None for an absent or null options object.
    let num = |name: &str| -> Result<Option<f64>, ErrorInfo> {
        match field(opts, name) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| ErrorInfo::argument(format!("{name} must be a number"))),
        }
    };
    shape::terms(threshold, num("support")?, num("fund")?)
}

/// Calls `onProgress(value)` if given; a throwing callback does not stop the
/// flow.
fn progress(cb: Option<&Function>, v: &serde_json::Value) {
    if let (Some(f), Ok(arg)) = (cb, to_js(v)) {
        let _ = f.call1(&JsValue::NULL, &arg);
    }
}

/// The open wallet, the client and the pinned log key of one `PledgeApp`.
struct Session {
    client: Client,
    wallet: Wallet,
    log: NoteVerifier,
}

/// The browser pledger: one wallet, one server (web/API.md).
#[wasm_bindgen]
pub struct PledgeApp {
    /// Flows run one at a time (the random wait is outside the lock).
    session: Rc<Mutex<Session>>,
    /// Campaigns with an unused token, refreshed after each flow, so
    /// `tokenCampaigns()` answers at once even while a flow runs.
    tokens: Rc<RefCell<Vec<String>>>,
}

impl std::fmt::Debug for PledgeApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PledgeApp").finish_non_exhaustive()
    }
}

/// The store a browser wallet saves through: `localStorage`, shared by
/// every tab of the origin (each save re-reads and merges it, see [`lock`]).
struct LocalStore;

impl pledge_client::wallet::WalletStore for LocalStore {
    fn load(&self) -> Result<Option<Vec<u8>>, String> {
        storage::load().map_err(|e| e.message)
    }
    fn save(&mut self, bytes: &[u8]) -> Result<(), String> {
        storage::save(bytes)
    }
}

fn local_store() -> Box<dyn pledge_client::wallet::WalletStore> {
    Box::new(LocalStore)
}

/// The current time, Unix seconds (the browser's clock).
fn unix_now() -> u64 {
    // Milliseconds since 1970 as a JS number: non-negative and far below
    // 2^53 for any real clock.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let secs = (js_sys::Date::now() / 1000.0).max(0.0) as u64;
    secs
}

/// Decrypts wallet bytes with `passphrase`.
fn decrypt(bytes: &[u8], passphrase: &str) -> Result<Wallet, JsValue> {
    if passphrase.is_empty() {
        return Err(js_error(&ErrorInfo::new(
            "wallet_passphrase",
            "the wallet needs a passphrase",
        )));
    }
    Wallet::from_bytes(
        bytes,
        Protection::passphrase(passphrase),
        Path::new(WALLET_LABEL),
    )
    .map_err(|e| wallet_error(&e))
}

#[wasm_bindgen]
impl PledgeApp {
    /// Opens (or creates and stores) the wallet in `localStorage`, then pins
    /// the server's log key on first use or checks it against the pinned one.
    ///
    /// # Errors
    /// Rejects with `wallet_passphrase`, `wallet_corrupt`, `storage`,
    /// `log_key_changed`, `bad_log`, `network`.
    pub async fn open(server_url: String, passphrase: String) -> Result<PledgeApp, JsValue> {
        let passphrase = zeroize::Zeroizing::new(passphrase);
        let client = Client::new(&server_url).map_err(|e| js_error(&ErrorInfo::from(&e)))?;
        let (wallet, log) = lock::exclusive(async {
            let mut wallet = match storage::load().map_err(|e| js_error(&e))? {
                Some(bytes) => {
                    let mut w = decrypt(&bytes, &passphrase)?;
                    w.set_store(local_store());
                    w
                }
                None => {
                    if passphrase.is_empty() {
                        return Err(js_error(&ErrorInfo::new(
                            "wallet_passphrase",
                            "choose a passphrase for the new wallet",
                        )));
                    }
                    let mut w = Wallet::with_store(
                        Protection::passphrase(passphrase.as_str()),
                        local_store(),
                    );
                    w.save().map_err(|e| wallet_error(&e))?;
                    w
                }
            };
            let (log, pinned_now) = flows::pin_log(&client, &mut wallet)
                .await
                .map_err(|e| flow_error(&e))?;
            if pinned_now {
                wallet.save().map_err(|e| wallet_error(&e))?;
            }
            Ok::<_, JsValue>((wallet, log))
        })
        .await?;
        let tokens = shape::token_campaigns(&wallet.data);
        Ok(Self {
            session: Rc::new(Mutex::new(Session {
                client,
                wallet,
                log,
            })),
            tokens: Rc::new(RefCell::new(tokens)),
        })
    }

    /// Whether `localStorage` holds a wallet.
    #[wasm_bindgen(js_name = hasWallet)]
    pub fn has_wallet_stored() -> bool {
        storage::exists()
    }

    // No instance `hasWallet()`: wasm-bindgen exports a static and an
    // instance method of one name under the same symbol (web/API.md).

    /// Cover issuance for every open campaign of the attestation, after the
    /// key check against the log. Resolves to `[{campaign, ok: true}, …]`.
    #[wasm_bindgen(js_name = obtainTokens)]
    pub fn obtain_tokens(&self, attestation: JsValue) -> Promise {
        let session = self.session.clone();
        let tokens = self.tokens.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let kind = shape::attestation(
                string_field(&attestation, "kind")?,
                string_field(&attestation, "code")?,
                string_field(&attestation, "group")?,
                string_field(&attestation, "address")?,
            )
            .map_err(|e| js_error(&e))?;
            let mut guard = session.lock().await;
            let s = &mut *guard;
            let r = lock::exclusive(async {
                s.wallet.refresh()?;
                flows::obtain_tokens(&s.client, &mut s.wallet, &s.log, &kind).await
            })
            .await;
            *tokens.borrow_mut() = shape::token_campaigns(&s.wallet.data);
            let report = r.map_err(|e| flow_error(&e))?;
            let mut out: Vec<serde_json::Value> = report
                .obtained
                .iter()
                .map(|c| serde_json::json!({"campaign": c, "ok": true}))
                .collect();
            out.extend(
                report
                    .already_held
                    .iter()
                    .map(|c| serde_json::json!({"campaign": c, "ok": true, "alreadyHeld": true})),
            );
            to_js(&serde_json::Value::Array(out))
        })
    }

    /// Has the server mail a one-time code to `address` (SPEC R-API-29,
    /// R-WEB-17) for every open `email` campaign taking its domain for which
    /// the wallet holds no token yet (the CLI's `pledge tokens --attest
    /// email:…` request). Resolves to `{campaigns, expiresIn, attempts}`;
    /// `campaigns: 0` means no such campaign, and no mail was asked for.
    /// The address is neither kept nor stored (R-WEB-19): `obtainTokens({kind:
    /// "email", address, code})` takes it again with the code.
    ///
    /// # Errors
    /// Rejects with the server's code: `bad_request` (an address the server
    /// does not take), `email_domain_not_allowed`, `rate_limited` (with
    /// `retryAfter`), `mail_unavailable`, `campaign_closed`, `network`.
    #[wasm_bindgen(js_name = requestEmailCode)]
    pub fn request_email_code(&self, address: String) -> Promise {
        let address = zeroize::Zeroizing::new(address);
        let session = self.session.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            if address.trim().is_empty() {
                return Err(js_error(&ErrorInfo::argument("the address is empty")));
            }
            let mut guard = session.lock().await;
            let s = &mut *guard;
            // The tokens of other tabs count: no code for campaigns they hold.
            lock::exclusive(async { s.wallet.refresh() })
                .await
                .map_err(|e| wallet_error(&e))?;
            let (sent, campaigns) = flows::request_email_code(&s.client, &s.wallet, &address)
                .await
                .map_err(|e| flow_error(&e))?;
            to_js(&serde_json::json!({
                "campaigns": campaigns,
                "expiresIn": sent.as_ref().map(|x| x.expires_in),
                "attempts": sent.as_ref().map(|x| x.attempts),
            }))
        })
    }

    /// Pledges `threshold` on a campaign after the random delay; resolves to
    /// `{index, checkpointSize, verified: true, delayedSeconds}`. In a
    /// funding campaign `opts.support` (minor units) asks support, or
    /// `opts.fund` offers money if `threshold` act.
    pub fn pledge(
        &self,
        campaign: String,
        threshold: f64,
        opts: JsValue,
        on_progress: Option<Function>,
    ) -> Promise {
        let change = terms_of(threshold, &opts).map(Change::Commit);
        let opts = delay_options(&opts, DelayOptions::DEFAULT);
        self.submit(campaign, change, opts, on_progress)
    }

    /// Changes my pledge to `threshold` (with `opts.support` or
    /// `opts.fund` as for [`PledgeApp::pledge`]; no delay unless `opts`
    /// asks).
    pub fn amend(
        &self,
        campaign: String,
        threshold: f64,
        opts: JsValue,
        on_progress: Option<Function>,
    ) -> Promise {
        let change = terms_of(threshold, &opts).map(Change::Amend);
        let opts = delay_options(&opts, DelayOptions::NOW);
        self.submit(campaign, change, opts, on_progress)
    }

    /// Withdraws my pledge (no delay unless `opts` asks); in a sealed
    /// campaign, amends it to the null vector (SPEC R-SEAL-33).
    pub fn withdraw(
        &self,
        campaign: String,
        opts: JsValue,
        on_progress: Option<Function>,
    ) -> Promise {
        let opts = delay_options(&opts, DelayOptions::NOW);
        self.submit(campaign, Ok(Change::Withdraw), opts, on_progress)
    }

    /// My pledges: inclusion (receipts verified offline), the campaign's
    /// signed tally, whether my condition holds.
    pub fn status(&self) -> Promise {
        let session = self.session.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let mut guard = session.lock().await;
            let Session {
                client,
                wallet,
                log,
            } = &mut *guard;
            // Refreshed first: what another tab pledged shows here too.
            let list = lock::exclusive(async {
                wallet.refresh()?;
                flows::status(client, wallet, log).await
            })
            .await
            .map_err(|e| flow_error(&e))?;
            to_js(&shape::status(&list, &guard.wallet.data))
        })
    }

    /// The encrypted wallet file bytes, as the CLI writes them.
    ///
    /// # Errors
    /// `storage` when nothing is stored (it was forgotten meanwhile).
    #[wasm_bindgen(js_name = exportWallet)]
    pub fn export_wallet(&self) -> Result<Vec<u8>, JsValue> {
        storage::load().map_err(|e| js_error(&e))?.ok_or_else(|| {
            js_error(&ErrorInfo::new(
                "storage",
                "no wallet is stored in this browser any more",
            ))
        })
    }

    /// Checks `bytes` decrypt with `passphrase`, then stores them, replacing
    /// the stored wallet.
    ///
    /// # Errors
    /// `wallet_passphrase`, `wallet_corrupt`, `storage`; nothing is stored then.
    #[wasm_bindgen(js_name = importWallet)]
    pub async fn import_wallet(bytes: Vec<u8>, passphrase: String) -> Result<(), JsValue> {
        let passphrase = zeroize::Zeroizing::new(passphrase);
        decrypt(&bytes, &passphrase)?;
        storage::save(&bytes).map_err(|e| js_error(&ErrorInfo::new("storage", e)))
    }

    /// Removes the wallet from `localStorage`.
    ///
    /// # Errors
    /// `storage` when `localStorage` is unavailable.
    #[wasm_bindgen(js_name = forgetWallet)]
    pub fn forget_wallet() -> Result<(), JsValue> {
        storage::remove().map_err(|e| js_error(&e))
    }

    /// Hex ids of the campaigns with an unused token in the wallet.
    #[wasm_bindgen(js_name = tokenCampaigns)]
    pub fn token_campaigns(&self) -> Vec<String> {
        self.tokens.borrow().clone()
    }

    /// Signs a pledge and saves it in the wallet, pending, with its due time
    /// (now plus a random delay, DESIGN P4), and returns at once:
    /// `{campaign, sendAfter, delaySeconds}` (`sendAfter` in Unix seconds,
    /// `null` when `opts.now`). The page counts down and then calls
    /// `sendPending({campaign})`; if it is closed first, the pledge stays
    /// pending in the wallet and the next `sendPending()` sends it.
    #[wasm_bindgen(js_name = preparePledge)]
    pub fn prepare_pledge(&self, campaign: String, threshold: f64, opts: JsValue) -> Promise {
        let change = terms_of(threshold, &opts).map(Change::Commit);
        let opts = delay_options(&opts, DelayOptions::DEFAULT);
        let session = self.session.clone();
        let tokens = self.tokens.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let change = change.map_err(|e| js_error(&e))?;
            let opts = opts?;
            let id: CampaignId = shape::campaign(&campaign).map_err(|e| js_error(&e))?;
            let mut guard = session.lock().await;
            let s = &mut *guard;
            let prepared = prepare(s, &id, change, opts).await;
            *tokens.borrow_mut() = shape::token_campaigns(&s.wallet.data);
            let p = prepared?;
            to_js(&serde_json::json!({
                "campaign": id.to_hex(),
                "sendAfter": p.due,
                "delaySeconds": shape::seconds_left(p.delay),
                "sealed": p.sealed,
            }))
        })
    }

    /// Sends pending entries of the wallet: with `{campaign}`, that
    /// campaign's (whatever its due time: the person's "send now"); with
    /// `{}`, those whose due time has passed (a pledge left by a closed
    /// page). Resolves to `{sent: [{campaign, index, checkpointSize}],
    /// waiting: [{campaign, sendAfter}]}`.
    #[wasm_bindgen(js_name = sendPending)]
    pub fn send_pending(&self, opts: JsValue) -> Promise {
        let session = self.session.clone();
        let tokens = self.tokens.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let filter = match string_field(&opts, "campaign")? {
                Some(c) => {
                    flows::PendingFilter::Campaign(shape::campaign(&c).map_err(|e| js_error(&e))?)
                }
                None => flows::PendingFilter::DeferredDueBy(unix_now()),
            };
            let mut guard = session.lock().await;
            let s = &mut *guard;
            let r = lock::exclusive(async {
                let report = flows::send_pending(&s.client, &mut s.wallet, &s.log, filter).await?;
                sealed::after_sent(&s.client, &mut s.wallet, &report.sent).await;
                Ok::<_, FlowError>(report)
            })
            .await;
            *tokens.borrow_mut() = shape::token_campaigns(&s.wallet.data);
            let report = r.map_err(|e| flow_error(&e))?;
            to_js(&serde_json::json!({
                "sent": report.sent.iter().map(|(c, d)| serde_json::json!({
                    "campaign": c, "index": d.index, "checkpointSize": d.checkpoint_size,
                })).collect::<Vec<_>>(),
                "waiting": report.waiting.iter().map(|(c, due)| serde_json::json!({
                    "campaign": c, "sendAfter": due,
                })).collect::<Vec<_>>(),
            }))
        })
    }

    /// What this wallet pinned at first use (SPEC R-CLIENT-1), for the page
    /// to show: `{logKey, witnesses: [...], quorum, checkpointSize}`.
    pub fn pins(&self) -> Promise {
        let session = self.session.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let guard = session.lock().await;
            to_js(&shape::pins(&guard.wallet.data))
        })
    }

    /// My sealed pledge on `campaign` from the wallet alone (SPEC
    /// R-SEAL-55): `{campaign, sealed: true, threshold, null, state,
    /// sendAfter, index, receiptVerified, entries}` (`threshold` 0 and
    /// `null: true` for the null vector), or `null` without one. Asks
    /// nothing of the server.
    #[wasm_bindgen(js_name = sealedStatus)]
    pub fn sealed_status(&self, campaign: String) -> Promise {
        let session = self.session.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let id = shape::campaign(&campaign).map_err(|e| js_error(&e))?;
            let mut guard = session.lock().await;
            let s = &mut *guard;
            lock::exclusive(async { s.wallet.refresh() })
                .await
                .map_err(|e| wallet_error(&e))?;
            to_js(&sealed::status(&s.wallet.data, &s.log, &id))
        })
    }

    /// Cover re-encryptions (SPEC R-SEAL-44, R-SEAL-54): sends what is due
    /// of the wallet's cover in sealed campaigns (`{now: true}`: due or not;
    /// `{campaign}`: that campaign only), as `pledge cover` does: a null
    /// pledge where a token is unused and nothing is signed yet, else a
    /// re-encryption of my current vector, at most 2 per pledge. Resolves
    /// to `{off, sent: [{campaign, kind: "null_pledge" | "reencryption",
    /// index}], waiting: [{campaign, sendAfter}], noKeyYet: [campaign]}`.
    ///
    /// # Errors
    /// Rejects with `joint_key_mismatch`, `bad_log`, `network`, `storage`,
    /// `argument`.
    #[wasm_bindgen(js_name = sendCover)]
    pub fn send_cover(&self, opts: JsValue) -> Promise {
        let session = self.session.clone();
        let tokens = self.tokens.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let only = match string_field(&opts, "campaign")? {
                Some(c) => Some(shape::campaign(&c).map_err(|e| js_error(&e))?),
                None => None,
            };
            let now_all = match field(&opts, "now") {
                None => false,
                Some(v) => v
                    .as_bool()
                    .ok_or_else(|| js_error(&ErrorInfo::argument("now must be true or false")))?,
            };
            let mut guard = session.lock().await;
            let s = &mut *guard;
            let r = lock::exclusive(flows::sealed::send_cover(
                &s.client,
                &mut s.wallet,
                &s.log,
                only.as_ref(),
                now_all,
                unix_now(),
            ))
            .await;
            *tokens.borrow_mut() = shape::token_campaigns(&s.wallet.data);
            let report = r.map_err(|e| flow_error(&e))?;
            to_js(&sealed::cover_report(&report))
        })
    }

    /// Cover (SPEC R-SEAL-54): signs a null sealed pledge, due at a random
    /// time before the deadline, for every open sealed campaign whose key
    /// is logged and for which the wallet holds an unused token and no
    /// pledge; `sendPending({})` sends each once due. Resolves to
    /// `[{campaign, sendAfter}]`.
    ///
    /// # Errors
    /// Rejects with `joint_key_mismatch`, `bad_log`, `network`, `storage`.
    #[wasm_bindgen(js_name = scheduleCover)]
    pub fn schedule_cover(&self) -> Promise {
        let session = self.session.clone();
        let tokens = self.tokens.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let mut guard = session.lock().await;
            let s = &mut *guard;
            let r = lock::exclusive(async {
                s.wallet.refresh().map_err(|e| ErrorInfo::from(&e))?;
                sealed::schedule_cover(&s.client, &mut s.wallet, &s.log, unix_now()).await
            })
            .await;
            *tokens.borrow_mut() = shape::token_campaigns(&s.wallet.data);
            to_js(&serde_json::Value::Array(r.map_err(|e| js_error(&e))?))
        })
    }

    /// Frees the Rust side (same as `free()`).
    pub fn close(self) {}
}

impl PledgeApp {
    /// The common path of pledge, amend and withdraw: under the locks, merge
    /// what other tabs saved, precheck, and for a pledge sign it and save it
    /// pending with its due time (before the wait, so a closed page loses
    /// nothing: the next `sendPending()` sends it); the random wait with
    /// progress outside the locks (so `status()` still answers); then the
    /// CLI's flow with no further delay.
    fn submit(
        &self,
        campaign: String,
        change: Result<Change, ErrorInfo>,
        opts: Result<DelayOptions, JsValue>,
        on_progress: Option<Function>,
    ) -> Promise {
        let session = self.session.clone();
        let tokens = self.tokens.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let change = change.map_err(|e| js_error(&e))?;
            let opts = opts?;
            let id: CampaignId = shape::campaign(&campaign).map_err(|e| js_error(&e))?;
            let (delay, sealed) = {
                let mut guard = session.lock().await;
                let s = &mut *guard;
                let prepared = prepare(s, &id, change, opts).await;
                *tokens.borrow_mut() = shape::token_campaigns(&s.wallet.data);
                let p = prepared?;
                (p.delay, p.sealed)
            };
            let cb = on_progress.as_ref();
            let mut left = delay;
            while !left.is_zero() {
                progress(
                    cb,
                    &serde_json::json!({"phase": "waiting", "secondsLeft": shape::seconds_left(left)}),
                );
                let step = left.min(Duration::from_secs(1));
                pledge_client::rt::sleep(step)
                    .await
                    .map_err(|e| js_error(&ErrorInfo::new("runtime", e.to_string())))?;
                left = left.saturating_sub(step);
            }
            progress(cb, &serde_json::json!({"phase": "sending"}));
            let mut guard = session.lock().await;
            let s = &mut *guard;
            let r = lock::exclusive(send(s, &id, change, sealed)).await;
            *tokens.borrow_mut() = shape::token_campaigns(&s.wallet.data);
            let done = r.map_err(|e| flow_error(&e))?;
            to_js(&shape::submitted(&done, delay))
        })
    }
}

/// What [`prepare`] did: the due time (Unix seconds, `None` to send at
/// once), the delay, and whether the campaign is sealed (then the entry is
/// signed and saved, whatever the change).
struct Prepared {
    due: Option<u64>,
    delay: Duration,
    sealed: bool,
}

/// Under the Web Lock: merges the stored wallet, prechecks `change`, draws
/// the delay and, for a pledge, signs it and saves it pending with its due
/// time. In a sealed campaign (SPEC R-SEAL-52) every change is signed and
/// saved here, sealed under the joint key checked against the log.
async fn prepare(
    s: &mut Session,
    id: &CampaignId,
    change: Change,
    opts: DelayOptions,
) -> Result<Prepared, JsValue> {
    lock::exclusive(async {
        s.wallet.refresh().map_err(|e| wallet_error(&e))?;
        let info = s
            .client
            .campaign(id)
            .await
            .map_err(|e| js_error(&ErrorInfo::from(&e)))?;
        if let Some(block) = &info.sealed {
            let to = sealed_change(&block.buckets, change).map_err(|e| js_error(&e))?;
            let resend = sealed::precheck(&s.wallet.data, id, &block.buckets, to)
                .map_err(|e| js_error(&e))?
                == sealed::Plan::Resend;
            let (due, delay) = draw_delay(resend, opts)?;
            let campaign = sealed::sealed_campaign(&s.client, &mut s.wallet, &s.log, &info)
                .await
                .map_err(|e| js_error(&e))?
                .ok_or_else(|| js_error(&ErrorInfo::new("campaign", "not a sealed campaign")))?;
            sealed::sign(&mut s.wallet, id, &campaign, to, due).map_err(|e| js_error(&e))?;
            return Ok(Prepared {
                due,
                delay,
                sealed: true,
            });
        }
        let resend = shape::precheck(&s.wallet.data, id, change).map_err(|e| js_error(&e))?;
        let (due, delay) = draw_delay(resend, opts)?;
        if let Change::Commit(t) = change {
            flows::sign_pledge(&s.client, &mut s.wallet, id, t, due)
                .await
                .map_err(|e| flow_error(&e))?;
        }
        Ok(Prepared {
            due,
            delay,
            sealed: false,
        })
    })
    .await
}

/// DESIGN P4: the same draw as `pledge commit` (uniform in [0, max], from
/// the CSPRNG); a resend goes at once, as there. Returns the due time
/// (Unix seconds, `None` for at once) and the delay.
fn draw_delay(resend: bool, opts: DelayOptions) -> Result<(Option<u64>, Duration), JsValue> {
    let delay = if resend || opts.now {
        Duration::ZERO
    } else {
        flows::random_delay(opts.max).map_err(|e| flow_error(&e))?
    };
    let due = (!delay.is_zero()).then(|| unix_now().saturating_add(shape::seconds_left(delay)));
    Ok((due, delay))
}

/// A change of the page in a sealed campaign: the threshold must be one of
/// its bucket values (SPEC R-SEAL-50), and plain thresholds only (sealed
/// funding is not specified); a withdrawal is the null vector.
fn sealed_change(buckets: &[u32], change: Change) -> Result<sealed::SealedChange, ErrorInfo> {
    let bucket = |t: pledge_protocol::pledge::Terms| match t {
        pledge_protocol::pledge::Terms::Threshold { t } => sealed::bucket_index(buckets, t),
        _ => Err(ErrorInfo::new(
            "campaign",
            "a sealed campaign takes a threshold only, neither support nor money",
        )),
    };
    Ok(match change {
        Change::Commit(t) => sealed::SealedChange::Pledge(Some(bucket(t)?)),
        Change::Amend(t) => sealed::SealedChange::Amend(Some(bucket(t)?)),
        Change::Withdraw => sealed::SealedChange::Amend(None),
    })
}

/// Under the Web Lock: sends what [`prepare`] saved (a pledge, or any
/// sealed entry: its signed entry, or nothing if another tab sent it
/// meanwhile and the wallet holds the receipt) or signs and sends an
/// amendment or withdrawal.
async fn send(
    s: &mut Session,
    id: &CampaignId,
    change: Change,
    sealed: bool,
) -> Result<flows::Submitted, FlowError> {
    if let (false, Change::Amend(t)) = (sealed, change) {
        return flows::change(&s.client, &mut s.wallet, &s.log, id, Some(t)).await;
    }
    if let (false, Change::Withdraw) = (sealed, change) {
        return flows::change(&s.client, &mut s.wallet, &s.log, id, None).await;
    }
    let report = flows::send_pending(
        &s.client,
        &mut s.wallet,
        &s.log,
        flows::PendingFilter::Campaign(*id),
    )
    .await?;
    if sealed {
        // SPEC R-SEAL-44: after an entry of mine, a new cover re-encryption time.
        sealed::after_sent(&s.client, &mut s.wallet, &report.sent).await;
    }
    if let Some((_, done)) = report.sent.into_iter().next() {
        return Ok(done);
    }
    // Sent by another tab meanwhile: its receipt is in the wallet.
    let gone = || FlowError::Wallet2(format!("the pledge on {id} is no longer in this wallet"));
    if !sealed {
        return flows::acknowledged_pledge(&s.wallet, &s.log, id)?.ok_or_else(gone);
    }
    let rec = s.wallet.data.pledge_for(id).ok_or_else(gone)?;
    let last = rec.entries.last().ok_or_else(gone)?;
    let (Some(index), Some(receipt)) = (last.index, last.receipt.clone()) else {
        return Err(gone());
    };
    let bytes = B64
        .decode(&last.entry)
        .map_err(|_| FlowError::Wallet2("a stored entry is damaged".into()))?;
    let signed = pledge_protocol::receipt::Receipt::parse(receipt.as_bytes())
        .and_then(|r| r.verify_entry(&bytes, &s.log))
        .map_err(|e| FlowError::Receipt(e.to_string()))?;
    Ok(flows::Submitted {
        index,
        checkpoint_size: signed.checkpoint().size(),
        nullifier: rec.nullifier.clone(),
        receipt,
    })
}
