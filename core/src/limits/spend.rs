//! Spend caps in credits, as reserve-then-settle on integer micro-credits.

use super::cas::{update, Decision, LimitError, DEFAULT_MAX_ATTEMPTS, SETTLE_MAX_ATTEMPTS};
use super::store::Counters;

/// Micro-credits per credit.
pub const MICROS_PER_CREDIT: u64 = 1_000_000;

/// One spend cap to check: a store key and its cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpendScope {
    /// The store key, e.g. `"spend:key:{key_id}"` or `"spend:acct:{account_id}"`.
    pub key: String,
    /// The cap, in micro-credits.
    pub cap_micros: u64,
}

impl SpendScope {
    /// The cap of API key `key_id`, stored under `"spend:key:{key_id}"`.
    pub fn key(key_id: &str, cap_micros: u64) -> Self {
        Self { key: format!("spend:key:{key_id}"), cap_micros }
    }

    /// The cap of account `account_id`, stored under `"spend:acct:{account_id}"`.
    pub fn account(account_id: &str, cap_micros: u64) -> Self {
        Self { key: format!("spend:acct:{account_id}"), cap_micros }
    }
}

/// The outcome of [`reserve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpendDecision {
    /// Whether the request is admitted (its estimate is now reserved on every scope).
    pub allowed: bool,
    /// What was reserved on every scope: the estimate if admitted, else 0. Pass it to
    /// [`settle`] or [`release`].
    pub reserved_micros: u64,
    /// When rejected (402), the index in `scopes` of the cap that refused.
    pub rejected_scope: Option<usize>,
    /// Admitted: the smallest budget left over all scopes after this reservation (`u64::MAX` with
    /// no scopes). Rejected: the budget the refusing scope had left (`cap - spent - reserved`,
    /// at least 0).
    pub remaining_micros: u64,
}

/// A scope's state. Value format: `"{spent_micros}:{reserved_micros}"` in decimal ASCII, e.g.
/// `"1250000:40000"`. Empty or unreadable values read as `(0, 0)`.
fn decode(value: Option<&[u8]>) -> (u64, u64) {
    value
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|s| s.split_once(':'))
        .and_then(|(s, r)| Some((s.parse().ok()?, r.parse().ok()?)))
        .unwrap_or((0, 0))
}

fn encode(spent: u64, reserved: u64) -> Vec<u8> {
    format!("{spent}:{reserved}").into_bytes()
}

/// Reads a scope's `(spent_micros, reserved_micros)` (for reporting; `(0, 0)` if absent).
pub fn spend_state<S: Counters + ?Sized>(store: &S, key: &str) -> Result<(u64, u64), LimitError> {
    update(store, key, DEFAULT_MAX_ATTEMPTS, |v| Decision::Keep(decode(v)))
}

/// Whether `estimate` fits a scope at `(spent, reserved)` under `cap`: `Ok(left after reserving)`
/// or `Err(left now)`.
fn fits(spent: u64, reserved: u64, cap: u64, estimate: u64) -> Result<u64, u64> {
    let committed = spent.saturating_add(reserved);
    let left = cap.saturating_sub(committed);
    match committed.checked_add(estimate) {
        Some(total) if spent < cap && total <= cap => Ok(left.saturating_sub(estimate)),
        _ => Err(left),
    }
}

fn refusal(index: usize, left: u64) -> SpendDecision {
    SpendDecision { allowed: false, reserved_micros: 0, rejected_scope: Some(index), remaining_micros: left }
}

/// Reserves `estimate_micros` on every scope, in order, or on none.
///
/// A scope admits only if its cap is not already reached (`spent < cap`) and the estimate fits
/// what is left (`spent + reserved + estimate <= cap`), so concurrent requests cannot together
/// overshoot, and a single request overshoots by at most its `actual - estimate`. An estimate of
/// 0 writes nothing but is still refused by a reached cap.
///
/// All scopes are first checked read-only, so the usual refusal writes nothing. Then each scope
/// is reserved by CAS, re-checking from the fresh value; if one refuses at that point (another
/// worker took the budget in between) or fails, the reservations already made are released again
/// (with the more patient [`SETTLE_MAX_ATTEMPTS`] bound; if even that fails, the reservation
/// stays behind and blocks that much budget, erring on the side of refusing).
pub fn reserve<S: Counters + ?Sized>(
    store: &S,
    scopes: &[SpendScope],
    estimate_micros: u64,
) -> Result<SpendDecision, LimitError> {
    for (index, scope) in scopes.iter().enumerate() {
        let (spent, reserved) = spend_state(store, &scope.key)?;
        if let Err(left) = fits(spent, reserved, scope.cap_micros, estimate_micros) {
            return Ok(refusal(index, left));
        }
    }
    let mut remaining_min = u64::MAX;
    for (index, scope) in scopes.iter().enumerate() {
        let outcome = update(store, &scope.key, DEFAULT_MAX_ATTEMPTS, |v| {
            let (spent, reserved) = decode(v);
            match fits(spent, reserved, scope.cap_micros, estimate_micros) {
                Ok(after) if estimate_micros == 0 => Decision::Keep(Ok(after)),
                Ok(after) => Decision::Write(encode(spent, reserved.saturating_add(estimate_micros)), Ok(after)),
                Err(left) => Decision::Keep(Err(left)),
            }
        });
        let refused = match outcome {
            Ok(Ok(after)) => {
                remaining_min = remaining_min.min(after);
                continue;
            }
            Ok(Err(left)) => Ok(refusal(index, left)),
            Err(e) => Err(e),
        };
        // Best-effort rollback; the outcome to report is the refusal or failure itself.
        let _ = release(store, scopes.get(..index).unwrap_or_default(), estimate_micros);
        return refused;
    }
    Ok(SpendDecision {
        allowed: true,
        reserved_micros: estimate_micros,
        rejected_scope: None,
        remaining_micros: remaining_min,
    })
}

/// Settles a finished request on every scope: `reserved -= reserved_micros` (saturating at 0) and
/// `spent += actual_micros` (saturating). Caps are not checked here: the request has happened, so
/// `actual > estimate` may take `spent` past the cap, which then refuses further requests. All
/// scopes are attempted even if one fails; the first error is returned. Uses the more patient
/// [`SETTLE_MAX_ATTEMPTS`] bound, since giving up here loses bookkeeping rather than refusing a
/// request.
pub fn settle<S: Counters + ?Sized>(
    store: &S,
    scopes: &[SpendScope],
    reserved_micros: u64,
    actual_micros: u64,
) -> Result<(), LimitError> {
    if reserved_micros == 0 && actual_micros == 0 {
        return Ok(());
    }
    let mut first_error = None;
    for scope in scopes {
        let result = update(store, &scope.key, SETTLE_MAX_ATTEMPTS, |v| {
            let (spent, reserved) = decode(v);
            let next = (spent.saturating_add(actual_micros), reserved.saturating_sub(reserved_micros));
            if v.is_some() && next == (spent, reserved) {
                Decision::Keep(())
            } else {
                Decision::Write(encode(next.0, next.1), ())
            }
        });
        if let Err(e) = result {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Releases a reservation without spending: for requests that failed upstream or were refused
/// by a later check. Same as [`settle`] with an actual cost of 0.
pub fn release<S: Counters + ?Sized>(store: &S, scopes: &[SpendScope], reserved_micros: u64) -> Result<(), LimitError> {
    settle(store, scopes, reserved_micros, 0)
}

/// Credits to micro-credits, rounded up (so a cost is never under-counted), saturating:
/// negative and NaN give 0, anything at or past `u64::MAX` micro-credits gives `u64::MAX`.
/// Values within floating-point noise of a whole micro-credit are taken as that micro-credit,
/// so decimal amounts like `0.29` or `1.000017` convert exactly.
pub fn credits_to_micros(credits: f64) -> u64 {
    if credits.is_nan() || credits <= 0.0 {
        return 0;
    }
    let micros = credits * MICROS_PER_CREDIT as f64;
    let nearest = micros.round();
    let snapped = if nearest >= 1.0 && (micros - nearest).abs() <= nearest * 1e-12 { nearest } else { micros.ceil() };
    // `as` saturates for floats: +inf and anything >= 2^64 become u64::MAX.
    snapped as u64
}

/// Micro-credits to credits (for display and headers; may round for huge values).
pub fn micros_to_credits(micros: u64) -> f64 {
    micros as f64 / MICROS_PER_CREDIT as f64
}

#[cfg(test)]
#[path = "tests/spend_tests.rs"]
mod tests;
