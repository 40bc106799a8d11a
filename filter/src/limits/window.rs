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
    format!("rpm:{account_id}")
}

/// The store key of an API key's daily sandbox counter.
pub fn daily_key(key_id: &str) -> String {
    format!("sbx:{key_id}")
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
    check_window(store, &rpm_key(account_id), limit, now_ms, MINUTE_MS)
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
    check_window(store, &daily_key(key_id), quota, now_ms, DAY_MS)
}

/// Gives back a request admitted by [`check_rpm`] with the same `now_ms`, for when a later check
/// rejected it. Returns whether a request was given back: nothing is done if the window has
/// moved on (or the count is already 0), so it can never refund another window's request.
/// Uses the [`SETTLE_MAX_ATTEMPTS`] bound.
pub fn undo_rpm<S: Counters + ?Sized>(store: &S, account_id: &str, now_ms: u64) -> Result<bool, LimitError> {
    undo_window(store, &rpm_key(account_id), now_ms, MINUTE_MS)
}

/// Gives back a request admitted by [`check_daily`] with the same `now_ms`; see [`undo_rpm`].
pub fn undo_daily<S: Counters + ?Sized>(store: &S, key_id: &str, now_ms: u64) -> Result<bool, LimitError> {
    undo_window(store, &daily_key(key_id), now_ms, DAY_MS)
}

/// Start (unix ms) of the window of length `period_ms` containing `now_ms`.
fn window_start(now_ms: u64, period_ms: u64) -> u64 {
    now_ms.checked_div(period_ms).and_then(|i| i.checked_mul(period_ms)).unwrap_or(0)
}

/// Value format: `"{window_start_secs}:{count}"` in decimal ASCII, e.g. `"1700000040:17"`.
/// Empty or unreadable values read as "no window, count 0".
fn decode(value: Option<&[u8]>) -> (u64, u64) {
    value
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|s| s.split_once(':'))
        .and_then(|(w, c)| Some((w.parse().ok()?, c.parse().ok()?)))
        .unwrap_or((0, 0))
}

fn encode(start_secs: u64, count: u64) -> Vec<u8> {
    format!("{start_secs}:{count}").into_bytes()
}

/// Which window a request at `now_ms` is counted in, given the stored one, and the count so far.
///
/// Normally the current window (a stored older window counts as 0). A stored window exactly one
/// period ahead means another worker has already moved on while this request's `now_ms` was
/// taken just before the boundary: the request is counted in that newer window rather than
/// resurrect the old one. A stored window further ahead can only come from the host clock
/// stepping back; it is abandoned so an account is not locked out until the clock catches up.
fn effective(stored: (u64, u64), now_ms: u64, period_ms: u64) -> (u64, u64) {
    let period_secs = period_ms / 1000;
    let current = window_start(now_ms, period_ms) / 1000;
    let (start, count) = stored;
    if start == current || Some(start) == current.checked_add(period_secs) {
        (start, count)
    } else {
        (current, 0)
    }
}

fn decision(
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

fn undo_window<S: Counters + ?Sized>(
    store: &S,
    key: &str,
    now_ms: u64,
    period_ms: u64,
) -> Result<bool, LimitError> {
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
mod tests {
    use super::*;
    use crate::limits::store::flaky::FlakyStore;
    use crate::limits::store::MemoryStore;
    use std::cell::Cell;
    use std::rc::Rc;

    /// 2023-11-14T22:13:00Z, a minute boundary.
    const T0: u64 = 1_699_999_980_000;
    /// 2023-11-15T00:00:00Z, a UTC midnight.
    const MIDNIGHT: u64 = 1_700_006_400_000;

    #[test]
    fn constants_line_up() {
        assert_eq!(T0 % MINUTE_MS, 0);
        assert_eq!(MIDNIGHT % DAY_MS, 0);
    }

    #[test]
    fn rpm_admits_exactly_limit_then_rejects_with_retry_after() {
        let s = MemoryStore::new();
        let now = T0 + 30_500;
        for i in 1..=5u32 {
            let d = check_rpm(&s, "acct", 5, now).unwrap();
            assert!(d.allowed, "request {i}");
            assert_eq!(d.remaining, 5 - i);
            assert_eq!(d.limit, 5);
        }
        for _ in 0..3 {
            let d = check_rpm(&s, "acct", 5, now).unwrap();
            assert!(!d.allowed);
            assert_eq!(d.remaining, 0);
            assert_eq!(d.reset_after_ms, 29_500);
            assert_eq!(d.retry_after_secs, 30, "29.5 s rounds up");
        }
        let start = T0 / 1000;
        assert_eq!(
            s.value("rpm:acct").unwrap(),
            format!("{start}:5").into_bytes(),
            "rejections don't consume"
        );
        let d = check_rpm(&s, "acct", 5, T0 + 59_000).unwrap();
        assert_eq!((d.allowed, d.retry_after_secs), (false, 1));
    }

    #[test]
    fn rpm_window_boundary_is_exact_to_the_millisecond() {
        let s = MemoryStore::new();
        assert!(check_rpm(&s, "a", 1, T0).unwrap().allowed);
        let d = check_rpm(&s, "a", 1, T0 + 59_999).unwrap();
        assert!(!d.allowed);
        assert_eq!(d.reset_after_ms, 1);
        assert_eq!(d.retry_after_secs, 1, "1 ms rounds up to 1 s");
        let d = check_rpm(&s, "a", 1, T0 + 60_000).unwrap();
        assert!(d.allowed, "next window admits again");
        assert_eq!(d.reset_after_ms, 60_000);
        assert_eq!(d.retry_after_secs, 60);
        assert!(!check_rpm(&s, "a", 1, T0 + 119_999).unwrap().allowed);
        assert!(check_rpm(&s, "a", 1, T0 + 120_000).unwrap().allowed);
    }

    #[test]
    fn rpm_retry_after_rounds_up_whole_seconds() {
        let s = MemoryStore::new();
        for (offset, secs) in
            [(0, 60), (1, 60), (999, 60), (1_000, 59), (1_001, 59), (58_999, 2), (59_000, 1)]
        {
            let d = check_rpm(&s, "z", 0, T0 + offset).unwrap();
            assert_eq!(d.retry_after_secs, secs, "offset {offset}");
            assert_eq!(d.reset_after_ms, 60_000 - offset);
        }
    }

    #[test]
    fn rpm_limit_zero_always_rejects_and_writes_nothing() {
        let s = MemoryStore::new();
        for i in 0..3 {
            let d = check_rpm(&s, "a", 0, T0 + i * MINUTE_MS).unwrap();
            assert!(!d.allowed);
            assert_eq!((d.limit, d.remaining), (0, 0));
        }
        assert!(s.is_empty());
    }

    #[test]
    fn rpm_accounts_are_independent() {
        let s = MemoryStore::new();
        assert!(check_rpm(&s, "a", 1, T0).unwrap().allowed);
        assert!(check_rpm(&s, "b", 1, T0).unwrap().allowed);
        assert!(!check_rpm(&s, "a", 1, T0).unwrap().allowed);
    }

    #[test]
    fn rpm_lowered_limit_mid_window_rejects() {
        let s = MemoryStore::new();
        for _ in 0..4 {
            assert!(check_rpm(&s, "a", 10, T0).unwrap().allowed);
        }
        let d = check_rpm(&s, "a", 3, T0).unwrap();
        assert!(!d.allowed);
        assert_eq!(d.remaining, 0);
    }

    #[test]
    fn stale_windows_are_overwritten_not_accumulated() {
        let s = MemoryStore::new();
        for minute in 0..1_000 {
            assert!(check_rpm(&s, "a", 2, T0 + minute * MINUTE_MS).unwrap().allowed);
            assert!(check_daily(&s, "k", 2, MIDNIGHT + minute * DAY_MS).unwrap().allowed);
        }
        assert_eq!(s.keys(), vec!["rpm:a".to_owned(), "sbx:k".to_owned()], "one entry per account/key, ever");
        let last = (T0 + 999 * MINUTE_MS) / 1000;
        assert_eq!(s.value("rpm:a").unwrap(), format!("{last}:1").into_bytes());
    }

    #[test]
    fn request_stamped_just_before_the_boundary_counts_in_the_newer_window() {
        let s = MemoryStore::new();
        // Another worker already opened the next window and filled it.
        for _ in 0..2 {
            assert!(check_rpm(&s, "a", 2, T0 + 60_000).unwrap().allowed);
        }
        // A request stamped in the old window must not resurrect it (its count is gone).
        let d = check_rpm(&s, "a", 2, T0 + 59_999).unwrap();
        assert!(!d.allowed);
        assert_eq!(d.reset_after_ms, 60_001);
        assert_eq!(d.retry_after_secs, 61);
        assert_eq!(s.value("rpm:a").unwrap(), format!("{}:2", T0 / 1000 + 60).into_bytes());
    }

    #[test]
    fn clock_stepping_back_far_does_not_lock_out() {
        let s = MemoryStore::new();
        assert!(check_rpm(&s, "a", 1, T0 + 10 * MINUTE_MS).unwrap().allowed);
        assert!(check_rpm(&s, "a", 1, T0).unwrap().allowed);
        assert!(!check_rpm(&s, "a", 1, T0).unwrap().allowed);
    }

    #[test]
    fn corrupt_values_read_as_zero_and_are_overwritten() {
        let s = MemoryStore::new();
        for junk in [&b"garbage"[..], b"12", b"1:x", b"\xff\xfe", b":"] {
            s.set("rpm:a", junk, None).unwrap();
            let d = check_rpm(&s, "a", 3, T0).unwrap();
            assert_eq!((d.allowed, d.remaining), (true, 2));
            assert_eq!(s.value("rpm:a").unwrap(), format!("{}:1", T0 / 1000).into_bytes());
        }
    }

    #[test]
    fn undo_rpm_refunds_only_the_current_window() {
        let s = MemoryStore::new();
        assert!(!undo_rpm(&s, "a", T0).unwrap(), "nothing to undo");
        assert!(s.is_empty(), "undo never creates entries");
        assert!(check_rpm(&s, "a", 1, T0).unwrap().allowed);
        assert!(!check_rpm(&s, "a", 1, T0 + 1).unwrap().allowed);
        assert!(undo_rpm(&s, "a", T0).unwrap());
        assert!(!undo_rpm(&s, "a", T0).unwrap(), "never below zero");
        assert!(check_rpm(&s, "a", 1, T0 + 2).unwrap().allowed, "refunded");
        assert!(check_rpm(&s, "a", 1, T0 + 60_000).unwrap().allowed);
        assert!(!undo_rpm(&s, "a", T0).unwrap(), "the old window is gone; the new one is not ours");
        assert!(!check_rpm(&s, "a", 1, T0 + 60_001).unwrap().allowed);
    }

    #[test]
    fn daily_rolls_over_at_utc_midnight() {
        let s = MemoryStore::new();
        let before = MIDNIGHT - 1; // 23:59:59.999
        assert!(check_daily(&s, "k", 2, before - 3_600_000).unwrap().allowed);
        assert!(check_daily(&s, "k", 2, before - 1_000).unwrap().allowed);
        let d = check_daily(&s, "k", 2, before).unwrap();
        assert!(!d.allowed);
        assert_eq!((d.reset_after_ms, d.retry_after_secs), (1, 1));
        let d = check_daily(&s, "k", 2, MIDNIGHT).unwrap(); // 00:00:00.000
        assert!(d.allowed);
        assert_eq!(d.remaining, 1);
        assert_eq!(d.reset_after_ms, DAY_MS);
        assert_eq!(s.value("sbx:k").unwrap(), format!("{}:1", MIDNIGHT / 1000).into_bytes());
    }

    #[test]
    fn daily_retry_after_is_time_to_midnight() {
        let s = MemoryStore::new();
        let noon = MIDNIGHT - DAY_MS / 2;
        assert!(check_daily(&s, "k", 1, noon).unwrap().allowed);
        let d = check_daily(&s, "k", 1, noon + 250).unwrap();
        assert!(!d.allowed);
        assert_eq!(d.reset_after_ms, 43_200_000 - 250);
        assert_eq!(d.retry_after_secs, 43_200);
        assert!(!check_daily(&s, "k", 0, noon).unwrap().allowed);
    }

    #[test]
    fn daily_keys_are_independent_and_undo_works() {
        let s = MemoryStore::new();
        assert!(check_daily(&s, "k1", 1, MIDNIGHT).unwrap().allowed);
        assert!(!check_daily(&s, "k1", 1, MIDNIGHT).unwrap().allowed);
        assert!(check_daily(&s, "k2", 1, MIDNIGHT).unwrap().allowed);
        assert!(undo_daily(&s, "k1", MIDNIGHT + 5).unwrap());
        assert!(check_daily(&s, "k1", 1, MIDNIGHT + 6).unwrap().allowed);
        assert!(!check_daily(&s, "k2", 1, MIDNIGHT + 7).unwrap().allowed);
    }

    /// Another worker, admitting a request on the same counter between our read and our write.
    fn rival(account: &'static str, limit: u32, now: u64, admitted: Rc<Cell<u32>>) -> FlakyStore {
        FlakyStore::with_interference(
            MemoryStore::new(),
            Box::new(move |inner, _key| {
                if check_rpm(inner, account, limit, now).unwrap().allowed {
                    admitted.set(admitted.get() + 1);
                }
            }),
        )
    }

    #[test]
    fn cas_conflicts_from_a_rival_worker_never_over_admit() {
        let theirs = Rc::new(Cell::new(0));
        let s = rival("a", 10, T0, theirs.clone());
        let mut ours = 0;
        for i in 0..30 {
            s.conflicts.set(i % 4); // 0..=3 rival writes slip in before each of our writes
            if check_rpm(&s, "a", 10, T0).unwrap().allowed {
                ours += 1;
            }
        }
        assert!(theirs.get() > 0 && ours > 0, "both workers got some: {} / {ours}", theirs.get());
        assert_eq!(ours + theirs.get(), 10, "exactly the limit across workers");
        assert_eq!(s.inner.value("rpm:a").unwrap(), format!("{}:10", T0 / 1000).into_bytes());
    }

    #[test]
    fn rival_fills_the_window_during_our_retry() {
        let theirs = Rc::new(Cell::new(0));
        let s = rival("a", 3, T0, theirs.clone());
        assert!(check_rpm(&s, "a", 3, T0).unwrap().allowed);
        s.conflicts.set(2); // the rival takes the last two slots while we retry
        let d = check_rpm(&s, "a", 3, T0).unwrap();
        assert!(!d.allowed, "we must re-decide from the fresh value");
        assert_eq!(theirs.get(), 2);
    }

    #[test]
    fn too_many_conflicts_or_an_outage_fail_closed() {
        let s = FlakyStore::new(MemoryStore::new());
        assert!(check_rpm(&s, "a", 5, T0).unwrap().allowed);
        s.conflicts.set(DEFAULT_MAX_ATTEMPTS);
        assert_eq!(check_rpm(&s, "a", 5, T0), Err(LimitError::Contended { attempts: DEFAULT_MAX_ATTEMPTS }));
        s.conflicts.set(DEFAULT_MAX_ATTEMPTS - 1);
        assert_eq!(check_rpm(&s, "a", 5, T0).unwrap().remaining, 3);
        s.get_failures.set(1);
        assert_eq!(check_daily(&s, "k", 5, T0), Err(LimitError::Unavailable));
        s.set_failures.set(1);
        assert_eq!(check_rpm(&s, "a", 5, T0), Err(LimitError::Unavailable));
        s.set_failures.set(1);
        assert_eq!(undo_rpm(&s, "a", T0), Err(LimitError::Unavailable));
        assert_eq!(s.inner.value("rpm:a").unwrap(), format!("{}:2", T0 / 1000).into_bytes());
    }
}
