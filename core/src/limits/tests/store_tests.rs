//! Tests of `limits/store.rs` (in their own file, so test code is found by its path).
use super::*;

#[test]
fn memory_store_cas_semantics() {
    let s = MemoryStore::new();
    assert_eq!(s.get("k").unwrap(), None);
    s.create("k", b"a").unwrap();
    assert_eq!(s.create("k", b"b"), Err(StoreError::CasMismatch));
    let (v, t1) = s.get("k").unwrap().unwrap();
    assert_eq!(v, b"a");
    s.set("k", b"b", Some(t1)).unwrap();
    let (_, t2) = s.get("k").unwrap().unwrap();
    assert!(t2 > t1, "tokens increase on every write");
    assert_eq!(s.set("k", b"c", Some(t1)), Err(StoreError::CasMismatch), "stale token");
    assert_eq!(s.remove("k", Some(t1)), Err(StoreError::CasMismatch));
    s.remove("k", Some(t2)).unwrap();
    assert!(s.is_empty());
    assert_eq!(s.set("k", b"d", Some(t2)), Err(StoreError::CasMismatch), "token of a removed entry");
    s.set("k", b"e", None).unwrap();
    assert_eq!(s.value("k").unwrap(), b"e");
    assert_eq!(s.keys(), vec!["k".to_owned()]);
    s.remove("absent", None).unwrap();
}

#[test]
fn memory_store_tokens_skip_zero_on_wrap() {
    let s = MemoryStore::new();
    s.last_token.set(u32::MAX);
    s.set("k", b"", None).unwrap();
    assert_eq!(s.get("k").unwrap(), Some((vec![], 1)));
}

#[test]
fn flaky_store_really_conflicts() {
    let f = flaky::FlakyStore::new(MemoryStore::new());
    f.create("k", b"1").unwrap();
    let (_, t) = f.get("k").unwrap().unwrap();
    f.conflicts.set(1);
    assert_eq!(f.set("k", b"2", Some(t)), Err(StoreError::CasMismatch));
    assert_eq!(f.inner.value("k").unwrap(), b"1");
    let (_, t) = f.get("k").unwrap().unwrap();
    f.set("k", b"2", Some(t)).unwrap();
    f.get_failures.set(1);
    assert_eq!(f.get("k"), Err(StoreError::Unavailable));
    f.set_failures.set(1);
    assert_eq!(f.set("k", b"3", None), Err(StoreError::Unavailable));
    assert_eq!(f.cas_writes.get(), 2);
}
