//! Tests of `limits::tokens`.
use super::*;
use crate::limits::store::MemoryStore;

/// 2023-11-14T22:13:00Z, a minute boundary.
const T0: u64 = 1_699_999_980_000;

#[test]
fn reservations_fit_the_limit_exactly_and_a_refusal_writes_nothing() {
    let s = MemoryStore::new();
    let d = reserve_tokens(&s, "a", 1000, 400, T0 + 15_000).unwrap();
    assert_eq!((d.allowed, d.limit, d.remaining, d.reset_after_ms, d.retry_after_secs), (true, 1000, 600, 45_000, 45));
    assert_eq!(reserve_tokens(&s, "a", 1000, 600, T0 + 15_000).unwrap().remaining, 0);
    let refused = reserve_tokens(&s, "a", 1000, 1, T0 + 59_999).unwrap();
    assert_eq!((refused.allowed, refused.remaining, refused.retry_after_secs), (false, 0, 1));
    assert_eq!(s.value("tpm:a"), Some(b"1699999980:1000".to_vec()));
    // Larger than the whole limit: refused even in an empty window.
    assert!(!reserve_tokens(&s, "b", 1000, 1001, T0).unwrap().allowed);
    assert_eq!(s.value("tpm:b"), None);
    // The next minute starts over.
    let d = reserve_tokens(&s, "a", 1000, 1000, T0 + 60_000).unwrap();
    assert_eq!((d.allowed, d.remaining, d.reset_after_ms), (true, 0, 60_000));
}

#[test]
fn settling_releases_the_unused_part_and_adds_an_overrun_in_the_same_window() {
    let s = MemoryStore::new();
    assert!(reserve_tokens(&s, "a", 1000, 500, T0 + 1_000).unwrap().allowed);
    assert!(reserve_tokens(&s, "a", 1000, 300, T0 + 2_000).unwrap().allowed);
    assert_eq!(settle_tokens(&s, "a", 500, 120, T0 + 1_000), Ok(true));
    assert_eq!(peek_tokens(&s, "a", 1000, T0 + 3_000).unwrap().remaining, 1000 - 120 - 300);
    assert_eq!(settle_tokens(&s, "a", 300, 450, T0 + 2_000), Ok(true));
    assert_eq!(peek_tokens(&s, "a", 1000, T0 + 3_000).unwrap().remaining, 1000 - 120 - 450);
    // Equal: nothing to write; a reservation of a window that is over changes nothing.
    assert_eq!(settle_tokens(&s, "a", 7, 7, T0 + 2_000), Ok(false));
    assert!(reserve_tokens(&s, "a", 1000, 10, T0 + 61_000).unwrap().allowed);
    assert_eq!(settle_tokens(&s, "a", 500, 0, T0 + 59_000), Ok(false));
    assert_eq!(s.value("tpm:a"), Some(b"1700000040:10".to_vec()));
}

#[test]
fn successive_reservations_admit_exactly_what_fits() {
    // 11 x 90 fit in 1000, the 12th and later are refused.
    let s = MemoryStore::new();
    let admitted = (0..15).filter(|_| reserve_tokens(&s, "a", 1000, 90, T0).unwrap().allowed).count();
    assert_eq!(admitted, 11);
    assert_eq!(peek_tokens(&s, "a", 1000, T0).unwrap().remaining, 10);
}
