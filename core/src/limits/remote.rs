//! The wire side of the shared limits service (`tollgate-limits`, on Redis): the request bodies
//! the filter sends and the parsing of the answers into the decisions the local store returns
//! ([`RateDecision`], [`SpendDecision`], [`LimitError`]), so the exchange can use either store.
//!
//! Pure: no I/O here. The service uses the same types to read the requests, so both ends share
//! one definition of the protocol. HTTP/1.1, JSON, `POST` with `content-type: application/json`:
//!
//! | path          | body                     | answer (200)             |
//! |---------------|--------------------------|--------------------------|
//! | `/v1/admit`   | [`AdmitRequest`]         | [`AdmitResponse`]        |
//! | `/v1/settle`  | [`SettleRequest`]        | [`SettleResponse`]       |
//! | `/v1/undo`    | [`UndoRequest`]          | [`UndoResponse`]         |
//! | `/v1/peek`    | [`PeekRequest`]          | [`WindowState`]          |
//! | `/healthz`    | (`GET`)                  | `{"redis":"ok"}`         |
//!
//! Any other status (400 for a request the service cannot read, 503 when Redis is unreachable
//! or slow) and any answer that does not parse or does not fit the request is
//! [`LimitError::Unavailable`]: like the local store, the remote one fails closed.
//!
//! Numbers: Redis scripts compute in doubles, exact up to 2^53. Caps and amounts above
//! [`MAX_EXACT_MICROS`] (about 9 billion credits) are clamped to it when building a request
//! (a cap that large is no cap in practice), and the service refuses larger values with 400.

use serde::{Deserialize, Serialize};

use super::cas::LimitError;
use super::spend::{SpendDecision, SpendScope};
use super::tokens::tpm_key;
use super::window::{daily_key, key_rpm_key, rpm_key, RateDecision, DAY_MS, MINUTE_MS};

/// Path of the admission call.
pub const ADMIT_PATH: &str = "/v1/admit";
/// Path of the settlement call.
pub const SETTLE_PATH: &str = "/v1/settle";
/// Path of the call that gives a window slot back.
pub const UNDO_PATH: &str = "/v1/undo";
/// Path of the read-only window check.
pub const PEEK_PATH: &str = "/v1/peek";
/// Path of the health check (`GET`).
pub const HEALTH_PATH: &str = "/healthz";

/// The largest amount in micro-credits that the service's scripts handle exactly (2^53 - 1).
pub const MAX_EXACT_MICROS: u64 = (1 << 53) - 1;

/// One fixed calendar window to count in: the store key (as the local store names it, e.g.
/// `rpm:acct-1`, `rpm:img:acct-1`, `sbx:key-1`), its limit, and its length (60 000 for
/// requests per minute, 86 400 000 for a UTC day). The window is the one containing `now_ms`,
/// aligned to the unix epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowSpec {
    /// The counter's key.
    pub key: String,
    /// Requests admitted per window; 0 refuses everything.
    pub limit: u32,
    /// The window's length in milliseconds.
    pub period_ms: u64,
    /// What this request counts in the window: 1 for a request window, the token estimate for a
    /// tokens-per-minute window. Admitted only if `count + cost <= limit`.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub cost: u64,
}

fn one() -> u64 {
    1
}

fn is_one(n: &u64) -> bool {
    *n == 1
}

/// One spend cap: the scope's key (`spend:key:{id}` or `spend:acct:{id}`) and its cap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapSpec {
    /// The scope's key.
    pub key: String,
    /// The cap in micro-credits.
    pub cap_micros: u64,
}

/// `POST /v1/admit`: all the limits of one request, checked and applied all or nothing, in
/// order: every window, then the hold on every cap. A refused request changes nothing.
///
/// The hold is the reservation's **total**: admitting the same `reservation` again with a
/// larger `hold_micros` reserves only the difference (a growing upload), and a repeated admit
/// reserves nothing more. A hold stops counting `hold_ttl_ms` after its last admit, by the
/// Redis server's clock, unless settled before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdmitRequest {
    /// The request's time (unix ms), which picks the windows.
    pub now_ms: u64,
    /// Windows to count in.
    #[serde(default)]
    pub windows: Vec<WindowSpec>,
    /// Spend caps to hold `hold_micros` on.
    #[serde(default)]
    pub caps: Vec<CapSpec>,
    /// The reservation's id (unique per request, e.g. its request id); required with caps.
    #[serde(default)]
    pub reservation: String,
    /// The reservation's total hold in micro-credits.
    #[serde(default)]
    pub hold_micros: u64,
    /// How long the hold counts if never settled, in milliseconds.
    #[serde(default)]
    pub hold_ttl_ms: u64,
}

impl AdmitRequest {
    /// A request at `now_ms` with no limits yet.
    pub fn new(now_ms: u64) -> Self {
        Self {
            now_ms,
            windows: Vec::new(),
            caps: Vec::new(),
            reservation: String::new(),
            hold_micros: 0,
            hold_ttl_ms: 0,
        }
    }

    /// Adds the requests-per-minute window of rate scope `scope` (an account id, or
    /// `img:{account}` for image generations), stored as the local store names it.
    pub fn rpm(mut self, scope: &str, limit: u32) -> Self {
        self.windows.push(WindowSpec { key: rpm_key(scope), limit, period_ms: MINUTE_MS, cost: 1 });
        self
    }

    /// Adds API key `key_id`'s own requests-per-minute window.
    pub fn key_rpm(mut self, key_id: &str, limit: u32) -> Self {
        self.windows.push(WindowSpec { key: key_rpm_key(key_id), limit, period_ms: MINUTE_MS, cost: 1 });
        self
    }

    /// Adds account `account_id`'s tokens-per-minute window, reserving `tokens` in it.
    pub fn tpm(mut self, account_id: &str, limit: u32, tokens: u64) -> Self {
        let cost = tokens.min(MAX_EXACT_MICROS);
        self.windows.push(WindowSpec { key: tpm_key(account_id), limit, period_ms: MINUTE_MS, cost });
        self
    }

    /// Adds the sandbox quota of API key `key_id`, per UTC day.
    pub fn daily(mut self, key_id: &str, quota: u32) -> Self {
        self.windows.push(WindowSpec { key: daily_key(key_id), limit: quota, period_ms: DAY_MS, cost: 1 });
        self
    }

    /// Holds `estimate_micros` (the reservation's total) on every scope, under `reservation`,
    /// for at most `ttl_ms`. Caps and amounts are clamped to [`MAX_EXACT_MICROS`].
    pub fn hold(mut self, reservation: &str, scopes: &[SpendScope], estimate_micros: u64, ttl_ms: u64) -> Self {
        self.caps = scopes
            .iter()
            .map(|s| CapSpec { key: s.key.clone(), cap_micros: s.cap_micros.min(MAX_EXACT_MICROS) })
            .collect();
        self.reservation = reservation.to_string();
        self.hold_micros = estimate_micros.min(MAX_EXACT_MICROS);
        self.hold_ttl_ms = ttl_ms;
        self
    }

    /// The JSON body.
    pub fn body(&self) -> Vec<u8> {
        to_body(self)
    }
}

/// A window's state after an admit or a peek.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowState {
    /// Whether the request is (or, for a peek, would be) admitted by this window.
    pub allowed: bool,
    /// The limit checked against.
    pub limit: u32,
    /// Requests left in the window after this one (0 when refused).
    pub remaining: u32,
    /// Milliseconds from `now_ms` to the end of the window.
    pub reset_after_ms: u64,
}

impl WindowState {
    /// The same decision as the local store's.
    pub fn decision(self) -> RateDecision {
        RateDecision {
            allowed: self.allowed,
            limit: self.limit,
            remaining: if self.allowed { self.remaining } else { 0 },
            reset_after_ms: self.reset_after_ms,
            retry_after_secs: self.reset_after_ms.div_ceil(1000).max(1),
        }
    }
}

/// What refused an admit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Refusal {
    /// The window at `index` in the request is full.
    Window,
    /// The cap at `index` in the request has not enough left for the hold.
    Cap,
}

/// The answer to an admit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdmitResponse {
    /// Whether everything was admitted (and applied).
    pub admitted: bool,
    /// When refused: by what, and `index` says which.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<Refusal>,
    /// When refused: the index of the refusing window or cap in the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// The windows checked, in order: all of them when admitted or refused by a cap; up to and
    /// including the refusing one when refused by a window.
    #[serde(default)]
    pub windows: Vec<WindowState>,
    /// Admitted: the smallest budget left over the caps after the hold. Refused by a cap: what
    /// that cap had left. Absent when no cap was checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_micros: Option<u64>,
    /// Admitted with caps: the reservation's total hold now (`hold_micros`); else 0. Like the
    /// local [`SpendDecision::reserved_micros`], what the settlement releases.
    #[serde(default)]
    pub reserved_micros: u64,
}

/// An admit's outcome as the local store would have given it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// Every window checked, in the request's order (see [`AdmitResponse::windows`]).
    pub windows: Vec<RateDecision>,
    /// The spend decision, when the request had caps and its windows admitted it.
    pub spend: Option<SpendDecision>,
}

impl Admission {
    /// Whether the request was admitted by every window and every cap.
    pub fn admitted(&self) -> bool {
        self.windows.iter().all(|w| w.allowed) && self.spend.is_none_or(|s| s.allowed)
    }

    /// The first window that refused, if any.
    pub fn refused_window(&self) -> Option<(usize, RateDecision)> {
        self.windows.iter().copied().enumerate().find(|(_, w)| !w.allowed)
    }
}

/// Parses the service's answer to `request`. Anything but a 200 with an answer that fits the
/// request is [`LimitError::Unavailable`].
pub fn parse_admit(request: &AdmitRequest, status: u16, body: &[u8]) -> Result<Admission, LimitError> {
    let r: AdmitResponse = parse_ok(status, body)?;
    let windows: Vec<RateDecision> = r.windows.iter().map(|w| w.decision()).collect();
    let expected_windows = match (r.admitted, r.refused, r.index) {
        (true, None, None) => request.windows.len(),
        (false, Some(Refusal::Window), Some(i)) if i < request.windows.len() => {
            if windows.get(i).is_some_and(|w| w.allowed) {
                return Err(LimitError::Unavailable);
            }
            i.saturating_add(1)
        }
        (false, Some(Refusal::Cap), Some(i)) if i < request.caps.len() => request.windows.len(),
        _ => return Err(LimitError::Unavailable),
    };
    if windows.len() != expected_windows || windows.iter().take(expected_windows.saturating_sub(1)).any(|w| !w.allowed)
    {
        return Err(LimitError::Unavailable);
    }
    if r.admitted && windows.iter().any(|w| !w.allowed) {
        return Err(LimitError::Unavailable);
    }
    let caps_checked = !request.caps.is_empty() && r.refused != Some(Refusal::Window);
    let spend = if caps_checked {
        let remaining_micros = r.remaining_micros.ok_or(LimitError::Unavailable)?;
        Some(if r.admitted {
            SpendDecision { allowed: true, reserved_micros: r.reserved_micros, rejected_scope: None, remaining_micros }
        } else {
            SpendDecision { allowed: false, reserved_micros: 0, rejected_scope: r.index, remaining_micros }
        })
    } else {
        None
    };
    Ok(Admission { windows, spend })
}

/// `POST /v1/settle`: the reservation's actual cost, charged once. `spent += actual_micros` on
/// every scope and the reservation's hold (if it still counts) is released: the difference is
/// refunded, or the excess charged. Settling an id again changes nothing (the service remembers
/// settled ids for longer than any hold lives). A settlement whose hold has expired still
/// charges its cost: the request happened. Releasing (a failed request) is settling at 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettleRequest {
    /// The reservation's id, as admitted.
    pub reservation: String,
    /// The scopes' keys, as in the admit's caps.
    pub caps: Vec<String>,
    /// The billed cost in micro-credits.
    pub actual_micros: u64,
    /// Token windows to settle: the reservation's estimate there is replaced by the tokens used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<WindowSettle>,
}

/// A tokens-per-minute reservation to settle: in the window that contained the admit's `now_ms`
/// (if its counter still exists), `count = max(count - reserved + actual, 0)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowSettle {
    /// The window's key, as admitted.
    pub key: String,
    /// The admit's `now_ms`.
    pub now_ms: u64,
    /// The window's length in milliseconds.
    pub period_ms: u64,
    /// What the admit counted.
    pub reserved: u64,
    /// What the request used.
    pub actual: u64,
}

impl WindowSettle {
    /// Settles account `account_id`'s tokens-per-minute reservation of `reserved` tokens made at
    /// `now_ms` at `actual` tokens.
    pub fn tpm(account_id: &str, now_ms: u64, reserved: u64, actual: u64) -> Self {
        Self {
            key: tpm_key(account_id),
            now_ms,
            period_ms: MINUTE_MS,
            reserved: reserved.min(MAX_EXACT_MICROS),
            actual: actual.min(MAX_EXACT_MICROS),
        }
    }
}

impl SettleRequest {
    /// Settles `reservation` on `scopes` at `actual_micros` (clamped to [`MAX_EXACT_MICROS`]).
    pub fn new(reservation: &str, scopes: &[SpendScope], actual_micros: u64) -> Self {
        Self {
            reservation: reservation.to_string(),
            caps: scopes.iter().map(|s| s.key.clone()).collect(),
            actual_micros: actual_micros.min(MAX_EXACT_MICROS),
            windows: Vec::new(),
        }
    }

    /// Also settles these token windows.
    pub fn with_windows(mut self, windows: Vec<WindowSettle>) -> Self {
        self.windows = windows;
        self
    }

    /// The JSON body.
    pub fn body(&self) -> Vec<u8> {
        to_body(self)
    }
}

/// The answer to a settle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettleResponse {
    /// `true` when this call charged the cost; `false` when the id was already settled.
    pub settled: bool,
}

/// Parses a settle's answer: whether this call charged (`false`: an earlier one did).
pub fn parse_settle(status: u16, body: &[u8]) -> Result<bool, LimitError> {
    parse_ok::<SettleResponse>(status, body).map(|r| r.settled)
}

/// `POST /v1/undo`: gives back one request counted by an admit at the same `now_ms`, if that
/// window is still the one containing `now_ms` and its count is above 0 (a refund never lands
/// in another window).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UndoRequest {
    /// The admit's `now_ms`.
    pub now_ms: u64,
    /// The window's key.
    pub key: String,
    /// The window's length in milliseconds.
    pub period_ms: u64,
}

impl UndoRequest {
    /// Gives back a requests-per-minute slot of rate scope `scope` (see [`AdmitRequest::rpm`]).
    pub fn rpm(scope: &str, now_ms: u64) -> Self {
        Self { now_ms, key: rpm_key(scope), period_ms: MINUTE_MS }
    }

    /// Gives back a sandbox call of API key `key_id`.
    pub fn daily(key_id: &str, now_ms: u64) -> Self {
        Self { now_ms, key: daily_key(key_id), period_ms: DAY_MS }
    }

    /// The JSON body.
    pub fn body(&self) -> Vec<u8> {
        to_body(self)
    }
}

/// The answer to an undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UndoResponse {
    /// Whether a slot was given back.
    pub undone: bool,
}

/// Parses an undo's answer: whether a slot was given back.
pub fn parse_undo(status: u16, body: &[u8]) -> Result<bool, LimitError> {
    parse_ok::<UndoResponse>(status, body).map(|r| r.undone)
}

/// `POST /v1/peek`: a window read without counting (the local `peek_rpm`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeekRequest {
    /// The request's time (unix ms).
    pub now_ms: u64,
    /// The window to read.
    #[serde(flatten)]
    pub window: WindowSpec,
}

impl PeekRequest {
    /// Reads the requests-per-minute window of rate scope `scope`.
    pub fn rpm(scope: &str, limit: u32, now_ms: u64) -> Self {
        Self { now_ms, window: WindowSpec { key: rpm_key(scope), limit, period_ms: MINUTE_MS, cost: 1 } }
    }

    /// The JSON body.
    pub fn body(&self) -> Vec<u8> {
        to_body(self)
    }
}

/// Parses a peek's answer: `allowed` is whether one more request would be admitted now.
pub fn parse_peek(request: &PeekRequest, status: u16, body: &[u8]) -> Result<RateDecision, LimitError> {
    let w: WindowState = parse_ok(status, body)?;
    if w.limit != request.window.limit {
        return Err(LimitError::Unavailable);
    }
    Ok(w.decision())
}

fn to_body<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing these plain structs cannot fail; an empty body would be refused by the service.
    serde_json::to_vec(value).unwrap_or_default()
}

fn parse_ok<T: for<'de> Deserialize<'de>>(status: u16, body: &[u8]) -> Result<T, LimitError> {
    if status != 200 {
        return Err(LimitError::Unavailable);
    }
    serde_json::from_slice(body).map_err(|_| LimitError::Unavailable)
}

#[cfg(test)]
#[path = "tests/remote_tests.rs"]
mod tests;
