//! Tests of `limits::window` (in their own file, so test code is findable by path).
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
    assert_eq!(s.value("rpm:acct").unwrap(), format!("{start}:5").into_bytes(), "rejections don't consume");
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
    for (offset, secs) in [(0, 60), (1, 60), (999, 60), (1_000, 59), (1_001, 59), (58_999, 2), (59_000, 1)] {
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

/// The stored value and the store keys, byte for byte (other VMs and the limits service read
/// the same counters).
#[test]
fn stored_values_and_keys_are_spelled_exactly() {
    assert_eq!(encode(1_700_000_040, 17), b"1700000040:17".to_vec());
    assert_eq!(encode(0, 0), b"0:0".to_vec());
    assert_eq!(encode(u64::MAX, 9), format!("{}:9", u64::MAX).into_bytes());
    assert_eq!(decode(Some(&encode(1_700_000_040, 17))), (1_700_000_040, 17));
    assert_eq!(rpm_key("acct-1"), "rpm:acct-1");
    assert_eq!(key_rpm_key("key-1"), "rpmk:key-1");
    assert_eq!(daily_key(""), "sbx:");
}

/// The window value's reading before it read bytes: UTF-8, split at the first `:`, each side
/// `str::parse`d.
fn decode_via_str(value: Option<&[u8]>) -> (u64, u64) {
    value
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|s| s.split_once(':'))
        .and_then(|(w, c)| Some((w.parse().ok()?, c.parse().ok()?)))
        .unwrap_or((0, 0))
}

#[test]
fn decode_reads_what_str_parse_read() {
    let cases: [&[u8]; 14] = [
        b"1700000040:17",
        b"+1700000040:+17",
        b"1:2:3",
        b":5",
        b"5:",
        b"+:5",
        b"-1:5",
        b"18446744073709551615:18446744073709551615",
        b"18446744073709551616:1",
        b"1:18446744073709551616",
        b" 1:2",
        b"1:2\xff",
        b"\xff1:2",
        b"",
    ];
    for c in cases {
        assert_eq!(decode(Some(c)), decode_via_str(Some(c)), "{:?}", String::from_utf8_lossy(c));
    }
    assert_eq!(decode(Some(b"1700000040:17")), (1_700_000_040, 17));
    assert_eq!(decode(None), (0, 0));
}

proptest::proptest! {
    #[test]
    fn decode_is_the_str_parse_reading(v in proptest::collection::vec(proptest::sample::select(b"0123456789:+- \xff\xc3\xa9a".to_vec()), 0..24)) {
        proptest::prop_assert_eq!(decode(Some(&v)), decode_via_str(Some(&v)));
    }

    #[test]
    fn a_window_key_is_the_prefixed_string(id in "[a-z0-9_\u{e9}\u{1F600}-]{0,120}") {
        for prefix in ["rpm:", "rpmk:", "sbx:"] {
            let k = WindowKey::new(prefix, &id);
            let want = prefixed(prefix, &id);
            proptest::prop_assert_eq!(k.as_str(), want.as_str());
        }
    }
}
