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
                Ok(after) => {
                    Decision::Write(encode(spent, reserved.saturating_add(estimate_micros)), Ok(after))
                }
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
pub fn release<S: Counters + ?Sized>(
    store: &S,
    scopes: &[SpendScope],
    reserved_micros: u64,
) -> Result<(), LimitError> {
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
    let snapped =
        if nearest >= 1.0 && (micros - nearest).abs() <= nearest * 1e-12 { nearest } else { micros.ceil() };
    // `as` saturates for floats: +inf and anything >= 2^64 become u64::MAX.
    snapped as u64
}

/// Micro-credits to credits (for display and headers; may round for huge values).
pub fn micros_to_credits(micros: u64) -> f64 {
    micros as f64 / MICROS_PER_CREDIT as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::store::flaky::FlakyStore;
    use crate::limits::store::MemoryStore;

    fn state(s: &MemoryStore, key: &str) -> (u64, u64) {
        spend_state(s, key).unwrap()
    }

    #[test]
    fn scope_keys() {
        assert_eq!(SpendScope::key("k1", 5).key, "spend:key:k1");
        assert_eq!(SpendScope::account("a1", 5).key, "spend:acct:a1");
    }

    #[test]
    fn reserve_then_settle_arithmetic() {
        let s = MemoryStore::new();
        let scopes = [SpendScope::key("k", 1_000), SpendScope::account("a", 5_000)];
        let d = reserve(&s, &scopes, 300).unwrap();
        assert_eq!(
            d,
            SpendDecision {
                allowed: true,
                reserved_micros: 300,
                rejected_scope: None,
                remaining_micros: 700
            }
        );
        assert_eq!(state(&s, "spend:key:k"), (0, 300));
        assert_eq!(state(&s, "spend:acct:a"), (0, 300));
        assert_eq!(s.value("spend:key:k").unwrap(), b"0:300");

        let d2 = reserve(&s, &scopes, 200).unwrap();
        assert_eq!(d2.remaining_micros, 500);
        settle(&s, &scopes, 300, 250).unwrap();
        assert_eq!(state(&s, "spend:key:k"), (250, 200));
        assert_eq!(state(&s, "spend:acct:a"), (250, 200));
        release(&s, &scopes, 200).unwrap();
        assert_eq!(state(&s, "spend:key:k"), (250, 0));
        assert_eq!(state(&s, "spend:acct:a"), (250, 0));
    }

    #[test]
    fn estimate_must_fit_the_remaining_budget() {
        let s = MemoryStore::new();
        let scopes = [SpendScope::key("k", 1_000)];
        assert!(reserve(&s, &scopes, 600).unwrap().allowed);
        let d = reserve(&s, &scopes, 401).unwrap();
        assert_eq!(
            d,
            SpendDecision {
                allowed: false,
                reserved_micros: 0,
                rejected_scope: Some(0),
                remaining_micros: 400
            }
        );
        assert_eq!(state(&s, "spend:key:k"), (0, 600), "a refusal reserves nothing");
        assert!(reserve(&s, &scopes, 400).unwrap().allowed, "exactly filling the cap is fine");
        assert_eq!(
            reserve(&s, &scopes, 0).unwrap().remaining_micros,
            0,
            "zero estimate fits a full reservation"
        );
        assert!(!reserve(&s, &scopes, 1).unwrap().allowed);
    }

    #[test]
    fn cap_reached_rejects_even_a_zero_estimate() {
        let s = MemoryStore::new();
        let scopes = [SpendScope::account("a", 1_000)];
        let d = reserve(&s, &scopes, 100).unwrap();
        settle(&s, &scopes, d.reserved_micros, 1_000).unwrap();
        let d = reserve(&s, &scopes, 0).unwrap();
        assert!(!d.allowed);
        assert_eq!((d.rejected_scope, d.remaining_micros), (Some(0), 0));
        assert!(!reserve(&s, &[SpendScope::account("zero", 0)], 0).unwrap().allowed, "cap 0");
    }

    #[test]
    fn settle_with_actual_above_estimate_overshoots_once_then_blocks() {
        let s = MemoryStore::new();
        let scopes = [SpendScope::key("k", 1_000)];
        let d = reserve(&s, &scopes, 900).unwrap();
        assert!(d.allowed);
        settle(&s, &scopes, d.reserved_micros, 1_300).unwrap();
        assert_eq!(state(&s, "spend:key:k"), (1_300, 0));
        let d = reserve(&s, &scopes, 1).unwrap();
        assert!(!d.allowed);
        assert_eq!(d.remaining_micros, 0);
        settle(&s, &scopes, 5, 0).unwrap();
        assert_eq!(state(&s, "spend:key:k"), (1_300, 0), "reserved saturates at 0");
    }

    #[test]
    fn later_scope_refusal_rolls_back_earlier_reservations() {
        let s = MemoryStore::new();
        let scopes = [SpendScope::key("k", 10_000), SpendScope::account("a", 500)];
        let d = reserve(&s, &scopes, 600).unwrap();
        assert_eq!(
            d,
            SpendDecision {
                allowed: false,
                reserved_micros: 0,
                rejected_scope: Some(1),
                remaining_micros: 500
            }
        );
        assert_eq!(state(&s, "spend:key:k"), (0, 0), "scope 0 rolled back");
        assert_eq!(state(&s, "spend:acct:a"), (0, 0));
        assert!(reserve(&s, &scopes, 500).unwrap().allowed);
        assert_eq!(state(&s, "spend:key:k"), (0, 500));
    }

    #[test]
    fn later_scope_failure_rolls_back_and_fails_closed() {
        let f = FlakyStore::new(MemoryStore::new());
        let scopes = [SpendScope::key("k", 10_000), SpendScope::account("a", 10_000)];
        assert!(reserve(&f, &scopes, 100).unwrap().allowed);
        // Scope 0's write succeeds, scope 1 meets as many conflicts as the bound.
        *f.target.borrow_mut() = Some("spend:acct:a".to_owned());
        f.conflicts.set(DEFAULT_MAX_ATTEMPTS);
        let r = reserve(&f, &scopes, 100);
        assert_eq!(r, Err(LimitError::Contended { attempts: DEFAULT_MAX_ATTEMPTS }));
        assert_eq!(spend_state(&f, "spend:key:k").unwrap(), (0, 100), "scope 0 rolled back");
        assert_eq!(spend_state(&f, "spend:acct:a").unwrap(), (0, 100));
        f.get_failures.set(1);
        assert_eq!(reserve(&f, &scopes, 1), Err(LimitError::Unavailable));
    }

    #[test]
    fn settle_tries_every_scope_and_reports_the_failure() {
        let f = FlakyStore::new(MemoryStore::new());
        let scopes = [SpendScope::key("k", 1_000), SpendScope::account("a", 1_000)];
        assert!(reserve(&f, &scopes, 100).unwrap().allowed);
        f.set_failures.set(1);
        assert_eq!(settle(&f, &scopes, 100, 70), Err(LimitError::Unavailable));
        assert_eq!(spend_state(&f, "spend:key:k").unwrap(), (0, 100));
        assert_eq!(spend_state(&f, "spend:acct:a").unwrap(), (70, 0));
    }

    #[test]
    fn rival_reservations_during_our_retry_are_respected() {
        // Another worker reserves 300 each time it slips in between our read and write.
        let f = FlakyStore::with_interference(
            MemoryStore::new(),
            Box::new(|inner, _| {
                reserve(inner, &[SpendScope::key("k", 1_000)], 300).unwrap();
            }),
        );
        let scopes = [SpendScope::key("k", 1_000)];
        assert!(reserve(&f, &scopes, 300).unwrap().allowed);
        f.conflicts.set(2);
        let d = reserve(&f, &scopes, 300).unwrap();
        assert!(!d.allowed, "900 already reserved by the time our write could land");
        assert_eq!(d.remaining_micros, 100);
        assert_eq!(spend_state(&f, "spend:key:k").unwrap(), (0, 900));
    }

    #[test]
    fn no_scopes_admits() {
        let s = MemoryStore::new();
        let d = reserve(&s, &[], 5).unwrap();
        assert!(d.allowed);
        assert_eq!(d.remaining_micros, u64::MAX);
        settle(&s, &[], 5, 5).unwrap();
        assert!(s.is_empty());
    }

    #[test]
    fn credits_conversion() {
        assert_eq!(credits_to_micros(f64::NAN), 0);
        assert_eq!(credits_to_micros(-1.0), 0);
        assert_eq!(credits_to_micros(-0.0), 0);
        assert_eq!(credits_to_micros(0.0), 0);
        assert_eq!(credits_to_micros(f64::INFINITY), u64::MAX);
        assert_eq!(credits_to_micros(1e30), u64::MAX);
        assert_eq!(credits_to_micros(f64::MIN_POSITIVE), 1, "any positive amount costs at least 1 micro");
        assert_eq!(credits_to_micros(0.0000001), 1, "rounded up");
        assert_eq!(credits_to_micros(0.0000011), 2);
        assert_eq!(credits_to_micros(1.0), 1_000_000);
        assert_eq!(credits_to_micros(25.5), 25_500_000);
        for (c, m) in
            [(0.29, 290_000), (0.1, 100_000), (0.3, 300_000), (1.000017, 1_000_017), (2.675, 2_675_000)]
        {
            assert_eq!(credits_to_micros(c), m, "{c}");
        }
        for m in [0u64, 1, 7, 999_999, 1_000_001, 123_456_789] {
            assert_eq!(credits_to_micros(micros_to_credits(m)), m, "round trip {m}");
        }
        assert_eq!(micros_to_credits(2_500_000), 2.5);
    }

    #[test]
    fn corrupt_state_reads_as_zero() {
        let s = MemoryStore::new();
        s.set("spend:key:k", b"nonsense", None).unwrap();
        assert_eq!(state(&s, "spend:key:k"), (0, 0));
        assert!(reserve(&s, &[SpendScope::key("k", 10)], 10).unwrap().allowed);
        assert_eq!(s.value("spend:key:k").unwrap(), b"0:10");
    }
}
