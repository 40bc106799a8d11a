//! Tests of `limits::cas` (in their own file, so test code is findable by path).
use super::*;
use crate::limits::store::flaky::FlakyStore;
use crate::limits::store::MemoryStore;

fn incr(v: Option<&[u8]>) -> Decision<u64> {
    let n: u64 = v.and_then(|b| std::str::from_utf8(b).ok()?.parse().ok()).unwrap_or(0) + 1;
    Decision::Write(n.to_string().into_bytes(), n)
}

#[test]
fn creates_then_increments() {
    let s = MemoryStore::new();
    assert_eq!(update(&s, "c", 1, incr), Ok(1), "placeholder round is not a conflict");
    assert_eq!(update(&s, "c", 1, incr), Ok(2));
    assert_eq!(s.value("c").unwrap(), b"2");
}

#[test]
fn keep_writes_nothing() {
    let s = MemoryStore::new();
    assert_eq!(update(&s, "c", 4, |_| Decision::Keep(7)), Ok(7));
    assert!(s.is_empty(), "no placeholder when nothing is written");
}

#[test]
fn retries_up_to_the_bound_then_fails_closed() {
    let f = FlakyStore::new(MemoryStore::new());
    f.inner.set("c", b"5", None).unwrap();
    f.conflicts.set(3);
    assert_eq!(update(&f, "c", 4, incr), Ok(6));
    assert_eq!(f.cas_writes.get(), 4);

    f.conflicts.set(4);
    assert_eq!(update(&f, "c", 4, incr), Err(LimitError::Contended { attempts: 4 }));
    assert_eq!(f.inner.value("c").unwrap(), b"6", "nothing written on failure");

    f.conflicts.set(DEFAULT_MAX_ATTEMPTS);
    assert!(update(&f, "c", DEFAULT_MAX_ATTEMPTS, incr).is_err());
    f.conflicts.set(DEFAULT_MAX_ATTEMPTS - 1);
    assert_eq!(update(&f, "c", DEFAULT_MAX_ATTEMPTS, incr), Ok(7));
}

#[test]
fn zero_attempts_means_one() {
    let s = MemoryStore::new();
    s.set("c", b"1", None).unwrap();
    assert_eq!(update(&s, "c", 0, incr), Ok(2));
}

#[test]
fn unavailable_fails_closed() {
    let f = FlakyStore::new(MemoryStore::new());
    f.get_failures.set(1);
    assert_eq!(update(&f, "c", 16, incr), Err(LimitError::Unavailable));
    f.set_failures.set(1);
    assert_eq!(update(&f, "c", 16, incr), Err(LimitError::Unavailable), "placeholder create fails");
    f.inner.set("c", b"1", None).unwrap();
    f.set_failures.set(1);
    assert_eq!(update(&f, "c", 16, incr), Err(LimitError::Unavailable), "CAS write fails");
    assert_eq!(f.inner.value("c").unwrap(), b"1");
}

#[test]
fn empty_value_reads_as_absent_and_is_updated_by_cas() {
    let s = MemoryStore::new();
    s.set("c", b"", None).unwrap();
    let mut seen = Vec::new();
    let r = update(&s, "c", 2, |v| {
        seen.push(v.map(<[u8]>::to_vec));
        incr(v)
    });
    assert_eq!(r, Ok(1));
    assert_eq!(seen, vec![None]);
}
