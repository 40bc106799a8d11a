//! Cross-module tests: real threads sharing one store, and a model check of the windows.

use super::*;
use proptest::prelude::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Barrier, Mutex};
use std::thread;

/// A thread-safe store with the same semantics as [`MemoryStore`], each operation atomic on its
/// own, so threads really interleave between a `get` and the `set` that follows it.
type Entries = HashMap<String, (Vec<u8>, u32)>;

#[derive(Default)]
struct SyncStore {
    /// The entries and the last token handed out.
    map: Mutex<(Entries, u32)>,
    conflicts: AtomicU32,
}

impl Counters for SyncStore {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError> {
        let value = self.map.lock().unwrap().0.get(key).cloned();
        thread::yield_now(); // widen the gap between our read and the write that follows it
        Ok(value)
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        let mut guard = self.map.lock().unwrap();
        let (map, last) = &mut *guard;
        if let Some(expected) = cas {
            if map.get(key).map(|(_, t)| *t) != Some(expected) {
                self.conflicts.fetch_add(1, Ordering::Relaxed);
                return Err(StoreError::CasMismatch);
            }
        }
        *last += 1;
        map.insert(key.to_owned(), (value.to_vec(), *last));
        Ok(())
    }

    fn remove(&self, key: &str, cas: Option<u32>) -> Result<(), StoreError> {
        let mut guard = self.map.lock().unwrap();
        if let Some(expected) = cas {
            if guard.0.get(key).map(|(_, t)| *t) != Some(expected) {
                return Err(StoreError::CasMismatch);
            }
        }
        guard.0.remove(key);
        Ok(())
    }

    fn create(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let mut guard = self.map.lock().unwrap();
        let (map, last) = &mut *guard;
        if map.contains_key(key) {
            return Err(StoreError::CasMismatch);
        }
        *last += 1;
        map.insert(key.to_owned(), (value.to_vec(), *last));
        Ok(())
    }
}

const THREADS: usize = 4;
const NOW: u64 = 1_700_000_000_000;

/// Runs `per_thread` calls of `f` on each of [`THREADS`] threads started together; returns how
/// many returned `Ok(true)` and how many failed closed.
fn hammer(
    store: &SyncStore,
    per_thread: usize,
    f: impl Fn(&SyncStore) -> Result<bool, LimitError> + Sync,
) -> (u32, u32) {
    let admitted = AtomicU32::new(0);
    let failed = AtomicU32::new(0);
    let barrier = Barrier::new(THREADS);
    thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                barrier.wait();
                for _ in 0..per_thread {
                    match f(store) {
                        Ok(true) => admitted.fetch_add(1, Ordering::Relaxed),
                        Ok(false) => 0,
                        Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            });
        }
    });
    (admitted.into_inner(), failed.into_inner())
}

#[test]
fn threads_sharing_a_store_admit_exactly_the_rpm_limit() {
    let store = SyncStore::default();
    let (admitted, failed) = hammer(&store, 500, |s| check_rpm(s, "acct", 700, NOW).map(|d| d.allowed));
    assert_eq!(admitted, 700, "exactly the limit across {THREADS} threads ({failed} failed closed)");
    let value = store.map.lock().unwrap().0.get("rpm:acct").cloned().unwrap().0;
    assert_eq!(value, format!("{}:700", NOW / 60_000 * 60).into_bytes());
    // Not a vacuous test: the threads really did collide.
    assert!(store.conflicts.load(Ordering::Relaxed) > 0, "no CAS conflicts happened");
}

#[test]
fn threads_sharing_a_store_admit_exactly_the_daily_quota_with_refunds() {
    let store = SyncStore::default();
    // Every third call that is admitted is refunded, as if a later check refused it.
    let calls = AtomicU32::new(0);
    let (admitted, _) = hammer(&store, 300, |s| {
        let d = check_daily(s, "key", 400, NOW)?;
        if d.allowed && calls.fetch_add(1, Ordering::Relaxed).is_multiple_of(3) {
            // A refund that fails closed leaves the request counted: count it as admitted.
            return Ok(undo_daily(s, "key", NOW).is_err());
        }
        Ok(d.allowed)
    });
    let value = store.map.lock().unwrap().0.get("sbx:key").cloned().unwrap().0;
    assert_eq!(value, format!("{}:{admitted}", NOW / 86_400_000 * 86_400).into_bytes());
    assert_eq!(admitted, 400, "refunded slots were reused, never exceeded");
}

#[test]
fn threads_sharing_a_store_never_overspend() {
    let store = SyncStore::default();
    let scopes = [SpendScope::key("k", 1_000_000), SpendScope::account("a", 2_500)];
    let (admitted, failed) = hammer(&store, 100, |s| reserve(s, &scopes, 10).map(|d| d.allowed));
    assert_eq!(admitted, 250, "exactly the account cap ({failed} failed closed)");
    let state = |k: &str| spend_state(&store, k).unwrap();
    assert_eq!(state("spend:acct:a"), (0, 2_500));
    // Refusals on the account roll back the key's reservation. Under this much contention a
    // rollback can itself give up (fail closed), leaving a reservation behind: never less.
    let (spent, key_reserved) = state("spend:key:k");
    assert_eq!(spent, 0);
    assert!(key_reserved >= 2_500 && key_reserved.is_multiple_of(10), "{key_reserved}");

    // Settle every admitted request, one scope at a time so a scope that gave up can be retried.
    let settled = AtomicU32::new(0);
    hammer(&store, 100, |s| {
        if settled.fetch_add(1, Ordering::Relaxed) < 250 {
            for scope in &scopes {
                while settle(s, std::slice::from_ref(scope), 10, 7).is_err() {}
            }
        }
        Ok(false)
    });
    assert_eq!(state("spend:acct:a"), (1_750, 0));
    assert_eq!(state("spend:key:k"), (1_750, key_reserved - 2_500));
}

proptest! {
    /// Against a model: in every window, admitted == min(requests, limit), and every decision's
    /// numbers agree with the model.
    #[test]
    fn rpm_matches_a_model(limit in 0u32..6, steps in proptest::collection::vec(0u64..25_000, 1..120)) {
        let store = MemoryStore::new();
        let mut now = NOW;
        let mut counts: HashMap<u64, u32> = HashMap::new();
        for step in steps {
            now += step;
            let window = now / MINUTE_MS;
            let used = counts.entry(window).or_default();
            let d = check_rpm(&store, "a", limit, now).unwrap();
            prop_assert_eq!(d.allowed, *used < limit);
            if d.allowed {
                *used += 1;
                prop_assert_eq!(d.remaining, limit - *used);
            }
            let end = (window + 1) * MINUTE_MS;
            prop_assert_eq!(d.reset_after_ms, end - now);
            prop_assert_eq!(d.retry_after_secs, (end - now).div_ceil(1000).max(1));
        }
        prop_assert!(store.len() <= 1);
    }

    /// Reservations never exceed the cap, whatever the sequence of reserves and settlements.
    #[test]
    fn spend_never_overcommits(ops in proptest::collection::vec((0u64..400, 0u64..600, any::<bool>()), 1..60)) {
        let store = MemoryStore::new();
        let scopes = [SpendScope::account("a", 1_000)];
        let mut outstanding: Vec<u64> = Vec::new();
        for (estimate, actual, finish) in ops {
            let (spent, reserved) = spend_state(&store, "spend:acct:a").unwrap();
            let d = reserve(&store, &scopes, estimate).unwrap();
            prop_assert_eq!(d.allowed, spent < 1_000 && spent + reserved + estimate <= 1_000);
            if d.allowed {
                outstanding.push(d.reserved_micros);
            }
            if finish {
                if let Some(r) = outstanding.pop() {
                    settle(&store, &scopes, r, actual).unwrap();
                }
            }
            let (_, reserved) = spend_state(&store, "spend:acct:a").unwrap();
            prop_assert_eq!(reserved, outstanding.iter().sum::<u64>());
            prop_assert!(reserved <= 1_000);
        }
    }
}
