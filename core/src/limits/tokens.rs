//! Tokens per minute per account: a fixed 60-second window (aligned to the unix minute, as the
//! requests-per-minute window) that counts tokens instead of requests, reserved at admission and
//! settled with the usage.
//!
//! [`reserve_tokens`] admits a request only if the window's count plus the request's estimate
//! (prompt estimate plus its completion budget) fits the limit, and adds the estimate; a refusal
//! writes nothing. [`settle_tokens`] replaces the estimate by the tokens actually used (the unused
//! part is released, an overrun added) in the window the request was reserved in; once that
//! window is over, nothing is changed (the new window starts from its own requests). The entry is
//! `tpm:{account_id}` = `"{window_start_secs}:{tokens}"`, rewritten in place like the request
//! windows (see the module docs), so it needs no cleanup.

use super::cas::{update, Decision, LimitError, DEFAULT_MAX_ATTEMPTS, SETTLE_MAX_ATTEMPTS};
use super::store::Counters;
use super::window::{decision, decode, effective, encode, window_start, RateDecision, MINUTE_MS};

/// The store key of an account's tokens-per-minute counter.
pub fn tpm_key(account_id: &str) -> String {
    format!("tpm:{account_id}")
}

/// A window's decision as the `x-ratelimit-*-tokens` headers report it (the request windows'
/// shape over a minute): `remaining` is the tokens left after this request's reservation when
/// admitted, 0 when refused.
fn token_decision(allowed: bool, limit: u32, count: u64, start_secs: u64, now_ms: u64) -> RateDecision {
    decision(allowed, limit, count, start_secs, now_ms, MINUTE_MS)
}

/// Reserves `tokens` in `account_id`'s tokens-per-minute window containing `now_ms`, if they fit
/// `limit` (`count + tokens <= limit`); a request larger than the whole limit is always refused.
pub fn reserve_tokens<S: Counters + ?Sized>(
    store: &S,
    account_id: &str,
    limit: u32,
    tokens: u64,
    now_ms: u64,
) -> Result<RateDecision, LimitError> {
    let limit64 = u64::from(limit);
    update(store, &tpm_key(account_id), DEFAULT_MAX_ATTEMPTS, |value| {
        let (start, count) = effective(decode(value), now_ms, MINUTE_MS);
        match count.checked_add(tokens).filter(|total| *total <= limit64) {
            Some(total) if tokens > 0 => {
                Decision::Write(encode(start, total), token_decision(true, limit, total, start, now_ms))
            }
            Some(total) => Decision::Keep(token_decision(true, limit, total, start, now_ms)),
            None => Decision::Keep(token_decision(false, limit, count, start, now_ms)),
        }
    })
}

/// Reads `account_id`'s tokens-per-minute window (for the headers of a reply that reserved none).
pub fn peek_tokens<S: Counters + ?Sized>(
    store: &S,
    account_id: &str,
    limit: u32,
    now_ms: u64,
) -> Result<RateDecision, LimitError> {
    let value = store.get(&tpm_key(account_id)).map_err(|_| LimitError::Unavailable)?;
    let (start, count) = effective(decode(value.as_ref().map(|(v, _)| v.as_slice())), now_ms, MINUTE_MS);
    Ok(token_decision(count < u64::from(limit), limit, count, start, now_ms))
}

/// Settles a reservation of `reserved` tokens made at `reserved_at_ms` at the `actual` tokens
/// used: `count = count - reserved + actual` (at least 0), if the stored window is still the one
/// the reservation was made in. Returns whether the count changed. Uses the
/// [`SETTLE_MAX_ATTEMPTS`] bound.
pub fn settle_tokens<S: Counters + ?Sized>(
    store: &S,
    account_id: &str,
    reserved: u64,
    actual: u64,
    reserved_at_ms: u64,
) -> Result<bool, LimitError> {
    if reserved == actual {
        return Ok(false);
    }
    let window = window_start(reserved_at_ms, MINUTE_MS) / 1000;
    update(store, &tpm_key(account_id), SETTLE_MAX_ATTEMPTS, |value| {
        let (start, count) = decode(value);
        if value.is_none() || start != window {
            return Decision::Keep(false);
        }
        let next = count.saturating_sub(reserved).saturating_add(actual);
        Decision::Write(encode(start, next), true)
    })
}

#[cfg(test)]
#[path = "tests/tokens_tests.rs"]
mod tests;
