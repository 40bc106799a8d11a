//! The counter store the limits live in: a key-value map with compare-and-swap, shaped after
//! proxy-wasm "shared data" (one map shared by every worker's VM).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;

/// Why a store operation did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreError {
    /// The entry changed (or appeared, or vanished) since the token was read: re-read and retry.
    CasMismatch,
    /// The store could not be used at all. The limits fail closed on this.
    Unavailable,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::CasMismatch => f.write_str("compare-and-swap mismatch"),
            StoreError::Unavailable => f.write_str("counter store unavailable"),
        }
    }
}

impl std::error::Error for StoreError {}

/// A shared key-value store with compare-and-swap tokens.
///
/// Contract (what [`update`](super::update) relies on):
///
/// * `get` returns the value and a token identifying this version of the entry, or `None` if the
///   key is absent. An entry that exists with an **empty** value must be returned as
///   `Some((vec![], token))`, not `None`: the limits create entries as empty placeholders and
///   then update them by CAS, and an empty value always means "zero" to them.
/// * `set(key, value, Some(token))` writes only if the entry is still at that version, and
///   otherwise fails with [`StoreError::CasMismatch`]. `set(key, value, None)` overwrites blindly;
///   the limits never do that to a counter.
/// * `create(key, value)` writes only if the key is absent (`CasMismatch` otherwise). Hosts
///   without an atomic create, such as Envoy's shared data (which ignores the token for absent
///   keys), keep the default, a blind `set`; the limits only ever create an empty placeholder,
///   so the blind write can at worst clobber a counter created in the same instant by another
///   worker, once per key per host process (see the module docs).
/// * `remove(key, cas)` deletes the entry (with the same token rule as `set`). Hosts may
///   implement it by writing an empty value.
///
/// Methods take `&self`; implementations use interior mutability.
pub trait Counters {
    /// Reads `key`: its value and CAS token, or `None` if absent.
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError>;

    /// Writes `value` under `key`, if `cas` is `Some`, only when the entry is at that version.
    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError>;

    /// Deletes `key`, if `cas` is `Some`, only when the entry is at that version.
    fn remove(&self, key: &str, cas: Option<u32>) -> Result<(), StoreError>;

    /// Writes `value` under `key` only if the key is absent. The default is a blind `set`, for
    /// hosts that cannot do better.
    fn create(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.set(key, value, None)
    }
}

impl<S: Counters + ?Sized> Counters for &S {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError> {
        (**self).get(key)
    }
    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        (**self).set(key, value, cas)
    }
    fn remove(&self, key: &str, cas: Option<u32>) -> Result<(), StoreError> {
        (**self).remove(key, cas)
    }
    fn create(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        (**self).create(key, value)
    }
}

/// A correct single-threaded in-memory [`Counters`]: strict CAS (a token only matches the exact
/// version it was read from, so a stale token fails even if the key was removed or recreated),
/// atomic `create`, and tokens that increase on every write (never 0, which proxy-wasm reserves
/// for "no check").
#[derive(Debug, Default)]
pub struct MemoryStore {
    entries: RefCell<HashMap<String, (Vec<u8>, u32)>>,
    last_token: Cell<u32>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn next_token(&self) -> u32 {
        let next = match self.last_token.get().wrapping_add(1) {
            0 => 1,
            t => t,
        };
        self.last_token.set(next);
        next
    }

    /// How many entries the store holds.
    pub fn len(&self) -> usize {
        self.entries.borrow().len()
    }

    /// Whether the store holds no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.borrow().is_empty()
    }

    /// All keys, sorted.
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.entries.borrow().keys().cloned().collect();
        keys.sort();
        keys
    }

    /// The raw value under `key`, if any.
    pub fn value(&self, key: &str) -> Option<Vec<u8>> {
        self.entries.borrow().get(key).map(|(v, _)| v.clone())
    }
}

impl Counters for MemoryStore {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError> {
        Ok(self.entries.borrow().get(key).cloned())
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        let current = self.entries.borrow().get(key).map(|(_, t)| *t);
        if let Some(expected) = cas {
            if current != Some(expected) {
                return Err(StoreError::CasMismatch);
            }
        }
        let token = self.next_token();
        self.entries.borrow_mut().insert(key.to_owned(), (value.to_vec(), token));
        Ok(())
    }

    fn remove(&self, key: &str, cas: Option<u32>) -> Result<(), StoreError> {
        let mut entries = self.entries.borrow_mut();
        if let Some(expected) = cas {
            if entries.get(key).map(|(_, t)| *t) != Some(expected) {
                return Err(StoreError::CasMismatch);
            }
        }
        entries.remove(key);
        Ok(())
    }

    fn create(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        if self.entries.borrow().contains_key(key) {
            return Err(StoreError::CasMismatch);
        }
        self.set(key, value, None)
    }
}

#[cfg(test)]
pub(crate) mod flaky {
    //! A fault-injecting wrapper for tests.

    use super::{Counters, MemoryStore, StoreError};
    use std::cell::{Cell, RefCell};

    /// What "another worker" does between our `get` and our `set`.
    pub type Interference = Box<dyn FnMut(&MemoryStore, &str)>;

    /// Wraps a [`MemoryStore`] and injects faults:
    ///
    /// * `conflicts`: the next N CAS writes (`set` with a token) meet a genuine conflict: the
    ///   interference closure runs against the inner store first (simulating another worker that
    ///   read, decided and wrote in between, e.g. admitting a request of its own), and if it left
    ///   the entry untouched the entry is rewritten anyway, so the forwarded write really fails.
    /// * `get_failures` / `set_failures`: the next N reads / writes fail with `Unavailable`.
    /// * `target`: if set, conflicts are only injected into writes to that key.
    pub struct FlakyStore {
        pub inner: MemoryStore,
        pub conflicts: Cell<u32>,
        pub target: RefCell<Option<String>>,
        pub get_failures: Cell<u32>,
        pub set_failures: Cell<u32>,
        /// CAS writes attempted through this wrapper.
        pub cas_writes: Cell<u32>,
        interfere: RefCell<Interference>,
    }

    fn take(counter: &Cell<u32>) -> bool {
        let n = counter.get();
        if n > 0 {
            counter.set(n - 1);
        }
        n > 0
    }

    impl FlakyStore {
        /// A wrapper whose injected conflicts just rewrite the entry unchanged.
        pub fn new(inner: MemoryStore) -> Self {
            Self::with_interference(inner, Box::new(|_, _| {}))
        }

        /// A wrapper whose injected conflicts run `interfere` on the inner store first.
        pub fn with_interference(inner: MemoryStore, interfere: Interference) -> Self {
            Self {
                inner,
                conflicts: Cell::new(0),
                target: RefCell::new(None),
                get_failures: Cell::new(0),
                set_failures: Cell::new(0),
                cas_writes: Cell::new(0),
                interfere: RefCell::new(interfere),
            }
        }
    }

    impl Counters for FlakyStore {
        fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError> {
            if take(&self.get_failures) {
                return Err(StoreError::Unavailable);
            }
            self.inner.get(key)
        }

        fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
            if take(&self.set_failures) {
                return Err(StoreError::Unavailable);
            }
            if let Some(token) = cas {
                self.cas_writes.set(self.cas_writes.get() + 1);
                let targeted = self.target.borrow().as_deref().is_none_or(|t| t == key);
                if targeted && take(&self.conflicts) {
                    (self.interfere.borrow_mut())(&self.inner, key);
                    if let Some((v, t)) = self.inner.get(key)? {
                        if t == token {
                            self.inner.set(key, &v, None)?;
                        }
                    }
                }
            }
            self.inner.set(key, value, cas)
        }

        fn remove(&self, key: &str, cas: Option<u32>) -> Result<(), StoreError> {
            if take(&self.set_failures) {
                return Err(StoreError::Unavailable);
            }
            self.inner.remove(key, cas)
        }

        fn create(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
            if take(&self.set_failures) {
                return Err(StoreError::Unavailable);
            }
            self.inner.create(key, value)
        }
    }
}

#[cfg(test)]
#[path = "tests/store_tests.rs"]
mod tests;
