//! The bounded read-decide-write loop every limit goes through.

use std::fmt;

use super::store::{Counters, StoreError};

/// How many CAS conflicts [`update`] tolerates before giving up, as used by the limit checks.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 16;

/// The bound for writes that record what has already happened (spend settlement, releases and
/// rollbacks, window refunds): more patient, since giving up there leaks budget or loses a
/// refund instead of refusing one request.
pub const SETTLE_MAX_ATTEMPTS: u32 = 64;

/// What an [`update`] closure decided from the current value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision<T> {
    /// Write this new value and, once the write has landed, return `T`.
    Write(Vec<u8>, T),
    /// Write nothing and return `T` (e.g. a rejection, or nothing to change).
    Keep(T),
}

/// Why a limit could not be decided. Every variant fails closed: the gateway answers
/// 503 `service_unavailable` rather than admit unchecked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitError {
    /// Other workers kept winning the compare-and-swap; gave up after this many conflicts.
    Contended {
        /// Conflicts met.
        attempts: u32,
    },
    /// The counter store failed.
    Unavailable,
}

impl fmt::Display for LimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitError::Contended { attempts } => {
                write!(f, "limit counter still contended after {attempts} compare-and-swap attempts")
            }
            LimitError::Unavailable => f.write_str("limit counter store unavailable"),
        }
    }
}

impl std::error::Error for LimitError {}

impl From<StoreError> for LimitError {
    /// A stray `CasMismatch` outside the retry loop counts as one lost attempt.
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::CasMismatch => LimitError::Contended { attempts: 1 },
            StoreError::Unavailable => LimitError::Unavailable,
        }
    }
}

/// Atomically updates `key`: reads it, lets `f` decide from the current value, and if `f` wants
/// to write, writes with the token just read, retrying from the read on a CAS conflict.
///
/// * `f` sees `None` when the key is absent **or** its value is empty (an empty value is the
///   "zero" state of every limit). It may be called several times, so it must have no side
///   effects beyond its return value.
/// * If the key is absent and `f` wants to write, an empty placeholder is created first and the
///   loop goes round again, so the real value is always written by CAS (see the module docs on
///   hosts without atomic create). That first round does not count as a conflict.
/// * After `max_attempts` conflicts (at least 1) it returns [`LimitError::Contended`]; any
///   [`StoreError::Unavailable`] returns [`LimitError::Unavailable`] at once. Nothing has been
///   written by a call that returns an error, except possibly the empty placeholder.
pub fn update<S, T, F>(store: &S, key: &str, max_attempts: u32, mut f: F) -> Result<T, LimitError>
where
    S: Counters + ?Sized,
    F: FnMut(Option<&[u8]>) -> Decision<T>,
{
    let max_attempts = max_attempts.max(1);
    let mut conflicts: u32 = 0;
    let mut placeholder_written = false;
    while conflicts < max_attempts {
        match store.get(key).map_err(unavailable)? {
            None => match f(None) {
                Decision::Keep(t) => return Ok(t),
                Decision::Write(..) => {
                    if placeholder_written {
                        // Removed again since we created it: someone else is churning this key.
                        conflicts = conflicts.saturating_add(1);
                    }
                    placeholder_written = true;
                    match store.create(key, &[]) {
                        Ok(()) => {}
                        Err(StoreError::CasMismatch) => conflicts = conflicts.saturating_add(1),
                        Err(StoreError::Unavailable) => return Err(LimitError::Unavailable),
                    }
                }
            },
            Some((value, token)) => {
                let current = if value.is_empty() { None } else { Some(value.as_slice()) };
                match f(current) {
                    Decision::Keep(t) => return Ok(t),
                    Decision::Write(new, t) => match store.set(key, &new, Some(token)) {
                        Ok(()) => return Ok(t),
                        Err(StoreError::CasMismatch) => conflicts = conflicts.saturating_add(1),
                        Err(StoreError::Unavailable) => return Err(LimitError::Unavailable),
                    },
                }
            }
        }
    }
    Err(LimitError::Contended { attempts: conflicts })
}

fn unavailable(_: StoreError) -> LimitError {
    // `get` has no token to mismatch; any failure to read is an outage.
    LimitError::Unavailable
}

#[cfg(test)]
#[path = "tests/cas_tests.rs"]
mod tests;
