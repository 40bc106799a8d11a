//! Tests of `limits/spend.rs` (in their own file, so test code is found by its path).
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
    assert_eq!(d, SpendDecision { allowed: true, reserved_micros: 300, rejected_scope: None, remaining_micros: 700 });
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
    assert_eq!(d, SpendDecision { allowed: false, reserved_micros: 0, rejected_scope: Some(0), remaining_micros: 400 });
    assert_eq!(state(&s, "spend:key:k"), (0, 600), "a refusal reserves nothing");
    assert!(reserve(&s, &scopes, 400).unwrap().allowed, "exactly filling the cap is fine");
    assert_eq!(reserve(&s, &scopes, 0).unwrap().remaining_micros, 0, "zero estimate fits a full reservation");
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
    assert_eq!(d, SpendDecision { allowed: false, reserved_micros: 0, rejected_scope: Some(1), remaining_micros: 500 });
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
    for (c, m) in [(0.29, 290_000), (0.1, 100_000), (0.3, 300_000), (1.000017, 1_000_017), (2.675, 2_675_000)] {
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
