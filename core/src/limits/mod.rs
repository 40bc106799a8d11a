//! Request and spend limits, exact across Envoy workers.
//!
//! Pure and host-free: the counters live behind the [`Counters`] trait (shaped after proxy-wasm
//! shared data: `get` with a CAS token, `set` with an optional token), and time comes in as
//! `now_ms`, unix milliseconds. The glue adapts the host's shared data to [`Counters`]; tests use
//! [`MemoryStore`].
//!
//! # Exactness: one bounded CAS loop per decision
//!
//! Every worker has its own VM, so a limit is only exact if each decision reads the counter,
//! decides, and writes back with the token it read, starting over from the read if another worker
//! wrote in between. [`update`] is that loop, and everything here goes through it. It is bounded
//! ([`DEFAULT_MAX_ATTEMPTS`] = 16 conflicts for admission decisions); when it gives up, or when
//! the store fails, the result is a [`LimitError`], which the gateway answers with 503
//! `service_unavailable`: limits **fail closed**, they never admit
//! unchecked. Writes that record what already happened (settle, release, refunds) use the more
//! patient [`SETTLE_MAX_ATTEMPTS`] = 64, because giving up there leaks budget instead.
//!
//! A request that is refused writes nothing, so refusals never consume anything.
//!
//! # Windows: requests per minute, sandbox requests per day
//!
//! [`check_rpm`] counts in fixed 60-second windows aligned to the unix minute, [`check_daily`] in
//! UTC days (unix time has no leap seconds, so a day is exactly 86 400 s and the window ends at
//! UTC midnight). Boundaries are exact to the millisecond: `…:59.999` is in the old window,
//! `…:00.000` in the new. A refusal's `Retry-After` is the time to the end of the window, in whole
//! seconds rounded up, at least 1.
//!
//! **One entry per account (or key), rewritten in place.** The entry's value carries the window
//! it counts (`"{window_start_secs}:{count}"`); the first request of a new window replaces the old
//! window's value by CAS. This is instead of one entry per window (`rpm:{account}:{window}`) plus
//! deleting the previous window's entry when a new one is created, which has three problems
//! under concurrency: (1) a request stamped `…:59.999` on one worker, handled just after another
//! worker deleted that window's entry, would find no entry, start the old window over at 0 and
//! over-admit (and leave an entry nobody ever deletes); (2) every window would need a fresh
//! entry, and Envoy's shared data cannot create atomically (a set on an absent key ignores the
//! token), so every minute would open a lost-update race; (3) deletion is best-effort, so entries
//! could still leak. Rewriting in place needs no cleanup at all: memory is one entry per account
//! (`rpm:`) and per sandbox key (`sbx:`) ever seen, whatever the number of windows.
//!
//! If the stored window is the *next* one (another worker crossed the boundary first while this
//! request was stamped just before it), the request is counted in that newer window: it can no
//! longer be counted in the old one, and counting it in the newer one can only under-admit. A
//! stored window further in the future can only mean the host clock stepped back; it is dropped.
//!
//! **Entry creation.** [`update`] never writes a real value into an absent key: it first creates
//! an empty placeholder (empty means zero), then writes by CAS. With an atomic
//! [`Counters::create`] (as [`MemoryStore`] has) this is exact. On Envoy, where the create is a
//! blind write, two workers creating the placeholder at once is harmless; the one remaining
//! window is a placeholder write landing after another worker has already created the
//! placeholder *and* counted into it, which can happen only on the very first request for a
//! given account or key in the Envoy process's lifetime.
//!
//! # Spend caps: reserve, then settle
//!
//! Costs are integer micro-credits ([`credits_to_micros`] rounds up), so sums are exact. Each
//! cap ([`SpendScope`], e.g. per key and per account) keeps `"{spent}:{reserved}"`. Before the
//! upstream call, [`reserve`] admits a request only if, on every scope, the cap is not yet reached
//! and the *estimate* fits what is left (`spent + reserved + estimate <= cap`), and adds the
//! estimate to `reserved`; if a later scope refuses, earlier reservations are released again.
//! Concurrent requests therefore cannot jointly overshoot, and a single request overshoots by at
//! most `actual - estimate`. When the request finishes, [`settle`] moves it from `reserved` to
//! `spent` at its actual cost; a request that failed upstream is [`release`]d (actual cost 0).
//! Spend entries have no window and never expire. A reservation that is never settled (e.g. a
//! reset stream whose completion is never seen) stays reserved, blocking budget: the caller must
//! settle or release on every path that follows a successful reservation.
//!
//! # Order of checks
//!
//! The caller decides, but the recommended order is: **authenticate → [`check_rpm`] →
//! [`check_daily`] (sandbox keys) → [`reserve`]**, cheapest and most general first. A request
//! refused at a later step should not have used up earlier ones: give them back with
//! [`undo_daily`] / [`undo_rpm`] (same `now_ms` as the check), which decrement the current
//! window's count if it is still the stored window (and otherwise do nothing, so a refund never
//! lands in another window).
//!
//! ```
//! use tollgate_core::limits::{check_daily, check_rpm, reserve, settle, undo_daily, undo_rpm};
//! use tollgate_core::limits::{credits_to_micros, MemoryStore, SpendScope};
//!
//! let store = MemoryStore::new();
//! let now_ms = 1_700_000_000_000;
//! let scopes = [SpendScope::key("key-1", credits_to_micros(5.0))];
//!
//! let rpm = check_rpm(&store, "acct-1", 100, now_ms)?;
//! assert!(rpm.allowed); // else 429 rate_limit_exceeded, Retry-After: rpm.retry_after_secs
//! let quota = check_daily(&store, "key-1", 10, now_ms)?;
//! assert!(quota.allowed); // else undo_rpm, then 429 sandbox_quota_exceeded
//! let spend = reserve(&store, &scopes, credits_to_micros(9.0))?;
//! if !spend.allowed {
//!     // 402 insufficient_funds: give back what the earlier checks took.
//!     undo_daily(&store, "key-1", now_ms)?;
//!     undo_rpm(&store, "acct-1", now_ms)?;
//! }
//! # assert!(!spend.allowed);
//! # assert_eq!(check_rpm(&store, "acct-1", 100, now_ms)?.remaining, 99);
//! // ... after a successful upstream call:
//! # let spend = reserve(&store, &scopes, credits_to_micros(1.0))?;
//! settle(&store, &scopes, spend.reserved_micros, credits_to_micros(0.42))?;
//! # Ok::<(), tollgate_core::limits::LimitError>(())
//! ```
//!
//! # Shared across replicas: the remote store
//!
//! [`remote`] is the wire side of `tollgate-limits`, a service that keeps the same limits in
//! Redis for many Envoys (one atomic script per decision, so no CAS loop): it builds the request
//! bodies from the inputs above and parses the answers into the same [`RateDecision`],
//! [`SpendDecision`] and [`LimitError`]. With `limits.store: "remote"` the exchange asks it
//! (asynchronously, `exchange/remote.rs`) instead of calling the functions above.
//!
//! # Stored keys and values
//!
//! All values are decimal ASCII. An empty value means zero; an unreadable value (not written by
//! this module) is also read as zero and overwritten by the next write, rather than locking the
//! account out forever.
//!
//! | key                    | value                        | written by                   |
//! |------------------------|------------------------------|------------------------------|
//! | `rpm:{account_id}`     | `{window_start_secs}:{count}`| [`check_rpm`], [`undo_rpm`]  |
//! | `rpmk:{key_id}`        | same                         | [`check_key_rpm`], [`undo_key_rpm`] |
//! | `tpm:{account_id}`     | `{window_start_secs}:{tokens}` | [`reserve_tokens`], [`settle_tokens`] |
//! | `sbx:{key_id}`         | `{day_start_secs}:{count}`   | [`check_daily`], [`undo_daily`] |
//! | `spend:key:{key_id}`   | `{spent_micros}:{reserved_micros}` | [`reserve`], [`settle`], [`release`] |
//! | `spend:acct:{account_id}` | same                      | same                          |
//! | `spend:key:{key_id}@2026-11`, `…@2026-11-30` | same (a `month` or `day` cap's period; see `period.rs`) | same |

mod cas;
mod period;
pub mod remote;
mod spend;
mod store;
mod tokens;
mod window;

#[cfg(test)]
mod tests;

pub use cas::{update, Decision, LimitError, DEFAULT_MAX_ATTEMPTS, SETTLE_MAX_ATTEMPTS};
pub use period::{civil_from_days, period_suffix, utc_date};
pub use spend::{
    credits_to_micros, micros_to_credits, release, reserve, settle, spend_state, SpendDecision, SpendScope,
    MICROS_PER_CREDIT,
};
pub use store::{Counters, MemoryStore, StoreError};
pub use tokens::{peek_tokens, reserve_tokens, settle_tokens, tpm_key};
pub use window::{
    check_daily, check_key_rpm, check_rpm, daily_key, key_rpm_key, peek_key_rpm, peek_rpm, rpm_key, undo_daily,
    undo_key_rpm, undo_rpm, RateDecision, DAY_MS, MINUTE_MS,
};
