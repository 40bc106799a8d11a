//! Settlements of spend holds on the limits service, sent from the root context.
//!
//! An HTTP context's outstanding calls are cancelled when its stream is destroyed, so a request
//! never sends its own settlement: at its end (`on_log`) it queues it here, and the root context
//! of the same VM sends it on its next tick and retries a failed send on later ticks. Settling
//! is idempotent by the reservation id (the request id), so a retry never charges twice; a
//! settlement given up (the queue full, or older than the hold's TTL) lets the hold expire.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};

use tollgate_core::exchange::LimitsCall;
use tollgate_core::limits::remote;

/// Settlements waiting in one VM, at most; one more is dropped (and counted).
pub const MAX_QUEUED: usize = 10_000;
/// Calls in flight from one root context, at most (the rest wait for the next tick).
pub const MAX_IN_FLIGHT: usize = 64;
/// The root context's tick while the limits service is in use.
pub const TICK_MS: u32 = 50;

/// A settlement to send: its call and when it was queued (unix ms).
#[derive(Debug)]
struct Queued {
    call: LimitsCall,
    since_ms: u64,
}

#[derive(Default)]
struct Queue {
    waiting: VecDeque<Queued>,
    in_flight: HashMap<u32, Queued>,
}

thread_local! {
    static QUEUE: RefCell<Queue> = RefCell::new(Queue::default());
}

/// What a tick or an answer did, for the stats.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub sent: u64,
    pub retried: u64,
    pub dropped: u64,
}

/// Queues a settlement; `false` when the queue is full (the settlement is dropped).
pub fn push(call: LimitsCall, now_ms: u64) -> bool {
    QUEUE.with(|q| {
        let mut q = q.borrow_mut();
        if q.waiting.len() + q.in_flight.len() >= MAX_QUEUED {
            return false;
        }
        q.waiting.push_back(Queued { call, since_ms: now_ms });
        true
    })
}

/// How many settlements wait or are in flight.
pub fn len() -> usize {
    QUEUE.with(|q| {
        let q = q.borrow();
        q.waiting.len() + q.in_flight.len()
    })
}

/// Sends what waits (up to [`MAX_IN_FLIGHT`] in flight), with `send` (which returns the call's
/// token, or fails: then it waits for the next tick). Settlements older than `max_age_ms` are
/// dropped: their hold has expired.
pub fn drain(now_ms: u64, max_age_ms: u64, mut send: impl FnMut(&LimitsCall) -> Option<u32>) -> Counts {
    let mut counts = Counts::default();
    QUEUE.with(|q| {
        let mut q = q.borrow_mut();
        let mut kept = VecDeque::new();
        while let Some(item) = q.waiting.pop_front() {
            if now_ms.saturating_sub(item.since_ms) > max_age_ms {
                counts.dropped += 1;
                continue;
            }
            if q.in_flight.len() >= MAX_IN_FLIGHT {
                kept.push_back(item);
                continue;
            }
            match send(&item.call) {
                Some(token) => {
                    counts.sent += 1;
                    q.in_flight.insert(token, item);
                }
                None => {
                    counts.retried += 1;
                    kept.push_back(item);
                }
            }
        }
        q.waiting = kept;
    });
    counts
}

/// The answer to the call `token`: settled (or settled before) with a 200 that parses; anything
/// else puts the settlement back in the queue. `false` when the token is not a settlement's.
pub fn answered(token: u32, status: u16, body: &[u8]) -> Option<bool> {
    QUEUE.with(|q| {
        let mut q = q.borrow_mut();
        let item = q.in_flight.remove(&token)?;
        if remote::parse_settle(status, body).is_ok() {
            return Some(true);
        }
        q.waiting.push_back(item);
        Some(false)
    })
}
