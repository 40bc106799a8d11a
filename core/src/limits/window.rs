//! Fixed-window request counters: requests per minute per account, sandbox requests per UTC day
//! per key.

use super::cas::{update, Decision, LimitError, DEFAULT_MAX_ATTEMPTS, SETTLE_MAX_ATTEMPTS};
use super::store::Counters;

/// Length of the requests-per-minute window.
pub const MINUTE_MS: u64 = 60_000;
/// Length of the sandbox-quota window (a UTC day: unix time has no leap seconds).
pub const DAY_MS: u64 = 86_400_000;

/// The outcome of a window check. Maps onto `x-ratelimit-*` and `Retry-After` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    /// Whether the request is admitted (and was counted).
    pub allowed: bool,
    /// The limit checked against.
    pub limit: u32,
    /// Requests left in this window after this one (0 when rejected).
    pub remaining: u32,
    /// Milliseconds until the window this request was counted in (or rejected from) ends.
    pub reset_after_ms: u64,
    /// `reset_after_ms` in whole seconds, rounded up, at least 1: the `Retry-After` for a
    /// rejection (also filled in when admitted, e.g. for `x-ratelimit-reset`).
    pub retry_after_secs: u64,
}

/// The store key of an account's requests-per-minute counter.
pub fn rpm_key(account_id: &str) -> String {
    prefixed("rpm:", account_id)
}

/// `prefix` then `id`, in one allocation (no formatting machinery per request).
fn prefixed(prefix: &str, id: &str) -> String {
    let mut k = String::with_capacity(prefix.len() + id.len());
    k.push_str(prefix);
    k.push_str(id);
    k
}

/// The longest store key the per-request checks build without an allocation.
const STACK_KEY: usize = 96;

/// A store key, `prefix` then `id`, built for one call: on the stack when it fits in
/// [`STACK_KEY`] bytes (the ids of a configuration are short), else in a `String`. Either way
/// the same text as [`prefixed`].
enum WindowKey {
    Stack([u8; STACK_KEY], usize),
    Heap(String),
}

impl WindowKey {
    fn new(prefix: &str, id: &str) -> Self {
        let len = prefix.len() + id.len();
        if len > STACK_KEY {
            return WindowKey::Heap(prefixed(prefix, id));
        }
        let mut buf = [0u8; STACK_KEY];
        let (head, rest) = buf.split_at_mut(prefix.len().min(STACK_KEY));
        head.copy_from_slice(prefix.as_bytes());
        if let Some(tail) = rest.get_mut(..id.len()) {
            tail.copy_from_slice(id.as_bytes());
        }
        WindowKey::Stack(buf, len)
    }

    fn as_str(&self) -> &str {
        match self {
            // Two `str`s one after the other are UTF-8: the check cannot fail.
            WindowKey::Stack(buf, len) => buf.get(..*len).and_then(|b| std::str::from_utf8(b).ok()).unwrap_or(""),
            WindowKey::Heap(s) => s,
        }
    }
}

/// The store key of an API key's own requests-per-minute counter (a prefix of its own, so a key
/// id never meets an account id).
pub fn key_rpm_key(key_id: &str) -> String {
    prefixed("rpmk:", key_id)
}

/// The store key of an API key's daily sandbox counter.
pub fn daily_key(key_id: &str) -> String {
    prefixed("sbx:", key_id)
}

/// Counts one request against `account_id`'s requests-per-minute limit, in the fixed 60-second
/// window (aligned to the unix minute) containing `now_ms`. A rejection writes nothing; a `limit`
/// of 0 rejects everything without touching the store.
pub fn check_rpm<S: Counters + ?Sized>(
    store: &S,
    account_id: &str,
    limit: u32,
    now_ms: u64,
) -> Result<RateDecision, LimitError> {
    let key = WindowKey::new("rpm:", account_id);
    check_window(store, key.as_str(), limit, now_ms, MINUTE_MS)
}

/// Counts one request against API key `key_id`'s daily sandbox quota, in the UTC day containing
/// `now_ms`. Rolls over at UTC midnight; a rejection's `retry_after_secs` is the time until then.
/// A rejection writes nothing; a `quota` of 0 rejects everything without touching the store.
pub fn check_daily<S: Counters + ?Sized>(
    store: &S,
    key_id: &str,
    quota: u32,
    now_ms: u64,
) -> Result<RateDecision, LimitError> {
    let key = WindowKey::new("sbx:", key_id);
    check_window(store, key.as_str(), quota, now_ms, DAY_MS)
}

/// Counts one request against API key `key_id`'s own requests-per-minute limit (a key's `rpm`,
/// beside its account's), as [`check_rpm`] does for an account.
pub fn check_key_rpm<S: Counters + ?Sized>(
    store: &S,
    key_id: &str,
    limit: u32,
    now_ms: u64,
) -> Result<RateDecision, LimitError> {
    let key = WindowKey::new("rpmk:", key_id);
    check_window(store, key.as_str(), limit, now_ms, MINUTE_MS)
}

/// Reads API key `key_id`'s own requests-per-minute window without counting (see [`peek_rpm`]).
pub fn peek_key_rpm<S: Counters + ?Sized>(
    store: &S,
    key_id: &str,
    limit: u32,
    now_ms: u64,
) -> Result<RateDecision, LimitError> {
    let key = WindowKey::new("rpmk:", key_id);
    peek_window(store, key.as_str(), limit, now_ms)
}

/// Gives back a request admitted by [`check_key_rpm`] with the same `now_ms` (see [`undo_rpm`]).
pub fn undo_key_rpm<S: Counters + ?Sized>(store: &S, key_id: &str, now_ms: u64) -> Result<bool, LimitError> {
    let key = WindowKey::new("rpmk:", key_id);
    undo_window(store, key.as_str(), now_ms, MINUTE_MS)
}

/// Reads `account_id`'s requests-per-minute window without counting anything: `allowed` is
/// whether [`check_rpm`] would admit one more request now. For refusing at the request headers
/// an account already over its rate, before its body is read; the request is counted later, by
/// [`check_rpm`], only once it is valid. A `limit` of 0 refuses without touching the store.
pub fn peek_rpm<S: Counters + ?Sized>(
    store: &S,
    account_id: &str,
    limit: u32,
    now_ms: u64,
) -> Result<RateDecision, LimitError> {
    let key = WindowKey::new("rpm:", account_id);
    peek_window(store, key.as_str(), limit, now_ms)
}

/// A requests-per-minute window under `key`, read without counting.
fn peek_window<S: Counters + ?Sized>(
    store: &S,
    key: &str,
    limit: u32,
    now_ms: u64,
) -> Result<RateDecision, LimitError> {
    let start_secs = window_start(now_ms, MINUTE_MS) / 1000;
    if limit == 0 {
        return Ok(decision(false, 0, 0, start_secs, now_ms, MINUTE_MS));
    }
    let value = store.get(key).map_err(|_| LimitError::Unavailable)?;
    let (start, count) = effective(decode(value.as_ref().map(|(v, _)| v.as_slice())), now_ms, MINUTE_MS);
    Ok(decision(count < u64::from(limit), limit, count, start, now_ms, MINUTE_MS))
}

/// Gives back a request admitted by [`check_rpm`] with the same `now_ms`, for when a later check
/// rejected it. Returns whether a request was given back: nothing is done if the window has
/// moved on (or the count is already 0), so it can never refund another window's request.
/// Uses the [`SETTLE_MAX_ATTEMPTS`] bound.
pub fn undo_rpm<S: Counters + ?Sized>(store: &S, account_id: &str, now_ms: u64) -> Result<bool, LimitError> {
    let key = WindowKey::new("rpm:", account_id);
    undo_window(store, key.as_str(), now_ms, MINUTE_MS)
}

/// Gives back a request admitted by [`check_daily`] with the same `now_ms`; see [`undo_rpm`].
pub fn undo_daily<S: Counters + ?Sized>(store: &S, key_id: &str, now_ms: u64) -> Result<bool, LimitError> {
    let key = WindowKey::new("sbx:", key_id);
    undo_window(store, key.as_str(), now_ms, DAY_MS)
}

/// Start (unix ms) of the window of length `period_ms` containing `now_ms`.
pub(super) fn window_start(now_ms: u64, period_ms: u64) -> u64 {
    now_ms.checked_div(period_ms).and_then(|i| i.checked_mul(period_ms)).unwrap_or(0)
}

/// Value format: `"{window_start_secs}:{count}"` in decimal ASCII, e.g. `"1700000040:17"`.
/// Empty or unreadable values read as "no window, count 0".
pub(super) fn decode(value: Option<&[u8]>) -> (u64, u64) {
    value
        .and_then(|v| {
            let colon = memchr::memchr(b':', v)?;
            Some((parse_u64(v.get(..colon)?)?, parse_u64(v.get(colon + 1..)?)?))
        })
        .unwrap_or((0, 0))
}

/// A decimal `u64` as `str::parse` reads one (an optional `+`, then at least one ASCII digit,
/// no overflow), straight from the bytes.
fn parse_u64(b: &[u8]) -> Option<u64> {
    let digits = b.strip_prefix(b"+").unwrap_or(b);
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, d| match d {
        b'0'..=b'9' => n.checked_mul(10)?.checked_add(u64::from(d - b'0')),
        _ => None,
    })
}

pub(super) fn encode(start_secs: u64, count: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(24);
    crate::sse::write_u64(&mut v, start_secs);
    v.push(b':');
    crate::sse::write_u64(&mut v, count);
    v
}

/// Which window a request at `now_ms` is counted in, given the stored one, and the count so far.
///
/// Normally the current window (a stored older window counts as 0). A stored window exactly one
/// period ahead means another worker has already moved on while this request's `now_ms` was
/// taken just before the boundary: the request is counted in that newer window rather than
/// resurrect the old one. A stored window further ahead can only come from the host clock
/// stepping back; it is abandoned so an account is not locked out until the clock catches up.
pub(super) fn effective(stored: (u64, u64), now_ms: u64, period_ms: u64) -> (u64, u64) {
    let period_secs = period_ms / 1000;
    let current = window_start(now_ms, period_ms) / 1000;
    let (start, count) = stored;
    if start == current || Some(start) == current.checked_add(period_secs) {
        (start, count)
    } else {
        (current, 0)
    }
}

pub(super) fn decision(
    allowed: bool,
    limit: u32,
    count: u64,
    start_secs: u64,
    now_ms: u64,
    period_ms: u64,
) -> RateDecision {
    let end_ms = start_secs.saturating_mul(1000).saturating_add(period_ms);
    let reset_after_ms = end_ms.saturating_sub(now_ms);
    let remaining = if allowed { u64::from(limit).saturating_sub(count) } else { 0 };
    RateDecision {
        allowed,
        limit,
        remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
        reset_after_ms,
        retry_after_secs: reset_after_ms.div_ceil(1000).max(1),
    }
}

fn check_window<S: Counters + ?Sized>(
    store: &S,
    key: &str,
    limit: u32,
    now_ms: u64,
    period_ms: u64,
) -> Result<RateDecision, LimitError> {
    if limit == 0 {
        let start_secs = window_start(now_ms, period_ms) / 1000;
        return Ok(decision(false, 0, 0, start_secs, now_ms, period_ms));
    }
    update(store, key, DEFAULT_MAX_ATTEMPTS, |value| {
        let (start, count) = effective(decode(value), now_ms, period_ms);
        if count >= u64::from(limit) {
            Decision::Keep(decision(false, limit, count, start, now_ms, period_ms))
        } else {
            let count = count.saturating_add(1);
            Decision::Write(encode(start, count), decision(true, limit, count, start, now_ms, period_ms))
        }
    })
}

fn undo_window<S: Counters + ?Sized>(store: &S, key: &str, now_ms: u64, period_ms: u64) -> Result<bool, LimitError> {
    let current = window_start(now_ms, period_ms) / 1000;
    update(store, key, SETTLE_MAX_ATTEMPTS, |value| {
        let (start, count) = decode(value);
        if value.is_some() && start == current && count > 0 {
            Decision::Write(encode(start, count.saturating_sub(1)), true)
        } else {
            Decision::Keep(false)
        }
    })
}

#[cfg(test)]
#[path = "tests/window_tests.rs"]
mod tests;
