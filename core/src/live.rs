//! Live configuration (ECDS): what the glue's `on_configure` reports about each configuration
//! document it is given, counted once per document however many VMs configure it.
//!
//! Envoy configures one update several times: on a throwaway VM first, then once per VM (the main
//! thread's and every worker's). The stats `tollgate.config.applied` and
//! `tollgate.config.rejected` count documents, not calls: the first VM to see a valid document
//! other than the last one applied counts it as applied, and the first VM to see an invalid one
//! other than the last document it saw (valid or not) counts it as rejected. The digests live in
//! the VMs' shared data, which survives updates.

use std::hash::{DefaultHasher, Hasher};

use crate::limits::{Counters, StoreError};

/// Counter: configuration documents applied (the first one at start included).
pub const APPLIED: &str = "tollgate.config.applied";
/// Counter: configuration documents refused (Envoy keeps the previous configuration serving).
pub const REJECTED: &str = "tollgate.config.rejected";
/// The shared-data entry holding the digest of the last valid document configured.
pub const APPLIED_KEY: &str = "cfg:applied";
/// The shared-data entry holding the digest of the last document configured, valid or not.
pub const LAST_KEY: &str = "cfg:last";

/// Attempts of the compare-and-swap loop before giving up (then the document is counted).
const CAS_ATTEMPTS: usize = 16;

/// A digest of a configuration document: equal documents, equal digests (in one build of the
/// filter, which every VM of one Envoy runs). Not a security boundary: it only deduplicates stats.
pub fn digest(doc: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    h.write(doc);
    h.finish()
}

/// Records `digest` under `key` (`APPLIED_KEY`, `LAST_KEY`) and says whether this call is the
/// first to see it there (so the caller counts it). Another document since makes it new again.
/// A store that cannot be used counts the document (a stat may count an update twice; it never
/// hides one).
pub fn first_to_see(store: &dyn Counters, key: &str, digest: u64) -> bool {
    let value = format!("{digest:016x}");
    for _ in 0..CAS_ATTEMPTS {
        let (current, cas) = match store.get(key) {
            Ok(Some((v, cas))) => (Some(v), Some(cas)),
            Ok(None) => (None, None),
            Err(_) => return true,
        };
        if current.as_deref() == Some(value.as_bytes()) {
            return false;
        }
        // An absent entry is created atomically: two VMs starting at once count the first once.
        let written = match cas {
            Some(cas) => store.set(key, value.as_bytes(), Some(cas)),
            None => store.create(key, value.as_bytes()),
        };
        match written {
            Ok(()) => return true,
            Err(StoreError::CasMismatch) => continue,
            Err(StoreError::Unavailable) => return true,
        }
    }
    true
}

/// Records a valid document; true when it is to be counted as applied.
pub fn applied(store: &dyn Counters, digest: u64) -> bool {
    let first = first_to_see(store, APPLIED_KEY, digest);
    first_to_see(store, LAST_KEY, digest);
    first
}

/// Records an invalid document; true when it is to be counted as rejected.
pub fn rejected(store: &dyn Counters, digest: u64) -> bool {
    first_to_see(store, LAST_KEY, digest)
}

/// Whether some VM of this Envoy (this `vm_id`) applied a document before: then a refused one
/// is an update, and Envoy keeps the previous configuration serving.
pub fn configured_before(store: &dyn Counters) -> bool {
    matches!(store.get(APPLIED_KEY), Ok(Some((v, _))) if !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::MemoryStore;

    fn vms(n: usize, f: impl Fn() -> bool) -> Vec<bool> {
        (0..n).map(|_| f()).collect()
    }

    #[test]
    fn one_document_is_counted_once_however_many_vms_configure_it() {
        let store = MemoryStore::default();
        let (a, b, x, y) = (digest(b"{}"), digest(br#"{"keys":[]}"#), digest(b"{"), digest(b"[]"));
        assert_ne!(a, b);
        assert!(!configured_before(&store));
        // Start: the throwaway VM, the main thread's and two workers' configure the same document.
        assert_eq!(vms(4, || applied(&store, a)), [true, false, false, false]);
        assert!(configured_before(&store));
        // An update, then the first document again: each is new once.
        assert_eq!(vms(3, || applied(&store, b)), [true, false, false]);
        assert_eq!(vms(3, || applied(&store, a)), [true, false, false]);
        // A refused document, seen again by another VM: one refusal; the same refused twice in a
        // row is one, and again after a valid one is another.
        assert_eq!(vms(2, || rejected(&store, x)), [true, false]);
        assert_eq!(vms(2, || rejected(&store, y)), [true, false]);
        // A VM configuring the serving document again (a restarted VM) counts nothing.
        assert_eq!(vms(2, || applied(&store, a)), [false, false]);
        assert_eq!(vms(2, || rejected(&store, y)), [true, false]);
        assert_eq!(vms(2, || applied(&store, b)), [true, false]);
    }

    #[test]
    fn a_store_that_fails_counts_rather_than_hides() {
        struct Down;
        impl Counters for Down {
            fn get(&self, _: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError> {
                Err(StoreError::Unavailable)
            }
            fn set(&self, _: &str, _: &[u8], _: Option<u32>) -> Result<(), StoreError> {
                Err(StoreError::Unavailable)
            }
            fn remove(&self, _: &str, _: Option<u32>) -> Result<(), StoreError> {
                Err(StoreError::Unavailable)
            }
        }
        assert_eq!(vms(2, || applied(&Down, 1)), [true, true]);
        assert_eq!(vms(2, || rejected(&Down, 2)), [true, true]);
        assert!(!configured_before(&Down));
    }
}
