//! Limit decisions never over-admit, under injected compare-and-swap conflicts, interleaved
//! rival workers and store failures (property tests over the public `Counters` trait).
//!
//! The store double wraps a [`MemoryStore`] and follows a proptest-generated script: at a CAS
//! write it can let a *rival worker* run a real limit operation (check, refund, reserve, settle)
//! on the shared store first, so our write meets a genuine conflict with real state changes; at
//! any call it can fail with `Unavailable`. A ground-truth model records what was really admitted
//! (ours and the rivals'), and the properties compare the store and every decision against it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use proptest::prelude::*;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use tollgate_core::limits::{
    check_rpm, release, reserve, settle, spend_state, undo_rpm, Counters, MemoryStore, SpendScope, StoreError,
};

const NOW: u64 = 1_700_000_000_000;
const ACCOUNT: &str = "acct";

/// What a rival worker does in the gap between our read and our write.
#[derive(Debug, Clone, Copy)]
enum Rival {
    /// A request on the same account: counted if the window has room.
    Rpm,
    /// Refund one of its own admitted requests.
    UndoRpm,
    /// Reserve this much on both scopes (or the account scope only).
    Reserve(u64, bool),
    /// Settle its oldest reservation at this share (0..=100 %) of what it reserved.
    Settle(u8),
}

/// One scripted store call.
#[derive(Debug, Clone, Copy)]
enum Fault {
    Pass,
    /// At a CAS write: the rival acts first; if it wrote nothing, the entry is rewritten anyway so
    /// our token is stale. Elsewhere: no effect.
    Conflict(Rival),
    Unavailable,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Scope {
    spent: u64,
    outstanding: u64,
}

/// What really happened, whatever the store says.
#[derive(Debug, Default)]
struct Truth {
    /// Requests in the window that went (or are going) upstream.
    rpm: u64,
    key: Scope,
    acct: Scope,
}

struct Adversary {
    inner: MemoryStore,
    script: RefCell<VecDeque<Fault>>,
    truth: RefCell<Truth>,
    rpm_limit: u32,
    scopes: [SpendScope; 2],
    /// The rival's admitted requests and reservations (amount, on both scopes).
    rival_rpm: Cell<u64>,
    rival_reserved: RefCell<VecDeque<(u64, bool)>>,
    /// No conflict at the write right after a conflicted one, so every decision lands on its
    /// second attempt (the exact variant); `false` allows unbounded bursts.
    bounded: bool,
    last_conflicted: Cell<bool>,
    rivals_ran: Cell<u32>,
}

impl Adversary {
    fn new(script: Vec<Fault>, rpm_limit: u32, key_cap: u64, acct_cap: u64, bounded: bool) -> Self {
        Adversary {
            inner: MemoryStore::new(),
            script: RefCell::new(script.into()),
            truth: RefCell::new(Truth::default()),
            rpm_limit,
            scopes: [SpendScope::key("k", key_cap), SpendScope::account(ACCOUNT, acct_cap)],
            rival_rpm: Cell::new(0),
            rival_reserved: RefCell::new(VecDeque::new()),
            bounded,
            last_conflicted: Cell::new(false),
            rivals_ran: Cell::new(0),
        }
    }

    fn next(&self) -> Fault {
        self.script.borrow_mut().pop_front().unwrap_or(Fault::Pass)
    }

    /// The rival acts on the shared store directly (it has its own, fault-free view).
    fn rival(&self, r: Rival) {
        self.rivals_ran.set(self.rivals_ran.get() + 1);
        let s = &self.inner;
        match r {
            Rival::Rpm => {
                if check_rpm(s, ACCOUNT, self.rpm_limit, NOW).unwrap().allowed {
                    self.rival_rpm.set(self.rival_rpm.get() + 1);
                    self.truth.borrow_mut().rpm += 1;
                }
            }
            Rival::UndoRpm => {
                if self.rival_rpm.get() > 0 {
                    assert!(undo_rpm(s, ACCOUNT, NOW).unwrap(), "a refund in the same window lands");
                    self.rival_rpm.set(self.rival_rpm.get() - 1);
                    self.truth.borrow_mut().rpm -= 1;
                }
            }
            Rival::Reserve(e, both) => {
                let scopes = if both { &self.scopes[..] } else { &self.scopes[1..] };
                let mut t = self.truth.borrow_mut();
                let d = reserve(s, scopes, e).unwrap();
                if d.allowed {
                    if both {
                        t.key.outstanding += e;
                    }
                    t.acct.outstanding += e;
                    self.rival_reserved.borrow_mut().push_back((e, both));
                }
            }
            Rival::Settle(pct) => {
                let Some((r, both)) = self.rival_reserved.borrow_mut().pop_front() else { return };
                let actual = r * u64::from(pct.min(100)) / 100;
                let scopes = if both { &self.scopes[..] } else { &self.scopes[1..] };
                settle(s, scopes, r, actual).unwrap();
                let mut t = self.truth.borrow_mut();
                let apply = |sc: &mut Scope| {
                    sc.outstanding -= r;
                    sc.spent += actual;
                };
                if both {
                    apply(&mut t.key);
                }
                apply(&mut t.acct);
            }
        }
    }
}

impl Counters for Adversary {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError> {
        match self.next() {
            Fault::Unavailable => Err(StoreError::Unavailable),
            _ => self.inner.get(key),
        }
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        let fault = self.next();
        match (fault, cas) {
            (Fault::Unavailable, _) => return Err(StoreError::Unavailable),
            (Fault::Conflict(r), Some(token)) if !(self.bounded && self.last_conflicted.get()) => {
                self.last_conflicted.set(true);
                self.rival(r);
                if let Some((v, t)) = self.inner.get(key)? {
                    if t == token {
                        self.inner.set(key, &v, None)?; // same value, new version
                    }
                }
            }
            _ => self.last_conflicted.set(false),
        }
        self.inner.set(key, value, cas)
    }

    fn remove(&self, key: &str, cas: Option<u32>) -> Result<(), StoreError> {
        self.inner.remove(key, cas)
    }

    fn create(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        match self.next() {
            Fault::Unavailable => Err(StoreError::Unavailable),
            _ => self.inner.create(key, value),
        }
    }
}

/// Our own operations, one per step.
#[derive(Debug, Clone, Copy)]
enum Op {
    /// A request: rpm check; `refund` = a later check refused it, so the slot is given back.
    Rpm { refund: bool },
    /// A request: spend reservation of this estimate.
    Reserve(u64),
    /// Our oldest outstanding reservation finishes, at this share (0..=100 %) of the estimate.
    Settle(u8),
    /// Our oldest outstanding reservation failed upstream: released.
    Release,
}

fn rival() -> impl Strategy<Value = Rival> {
    prop_oneof![
        Just(Rival::Rpm),
        Just(Rival::UndoRpm),
        (0u64..400, any::<bool>()).prop_map(|(e, b)| Rival::Reserve(e, b)),
        (0u8..=100).prop_map(Rival::Settle),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        any::<bool>().prop_map(|refund| Op::Rpm { refund }),
        (0u64..500).prop_map(Op::Reserve),
        (0u8..=100).prop_map(Op::Settle),
        Just(Op::Release),
    ]
}

fn script(failures: bool) -> impl Strategy<Value = Vec<Fault>> {
    let fault = if failures {
        prop_oneof![4 => Just(Fault::Pass), 4 => rival().prop_map(Fault::Conflict), 1 => Just(Fault::Unavailable)]
            .boxed()
    } else {
        prop_oneof![1 => Just(Fault::Pass), 1 => rival().prop_map(Fault::Conflict)].boxed()
    };
    proptest::collection::vec(fault, 0..400)
}

fn rpm_stored(s: &MemoryStore) -> u64 {
    s.value(&format!("rpm:{ACCOUNT}"))
        .and_then(|v| String::from_utf8(v).ok())
        .and_then(|v| v.split_once(':').and_then(|(_, c)| c.parse().ok()))
        .unwrap_or(0)
}

fn stored(s: &MemoryStore, key: &str) -> Scope {
    let (spent, outstanding) = spend_state(s, key).unwrap();
    Scope { spent, outstanding }
}

/// Runs `ops` against the adversary; checks the invariants after every step. `exact`: no store
/// failures and bounded conflicts, so every decision must land and the store must equal the
/// truth; otherwise the store may only err on the side of refusing.
fn run(a: &Adversary, ops: &[Op], exact: bool) -> Result<(), TestCaseError> {
    let mut ours: VecDeque<u64> = VecDeque::new();
    let [key_scope, acct_scope] = a.scopes.clone();
    for (step, op) in ops.iter().enumerate() {
        match *op {
            Op::Rpm { refund } => match check_rpm(a, ACCOUNT, a.rpm_limit, NOW) {
                Ok(d) if d.allowed => {
                    a.truth.borrow_mut().rpm += 1;
                    if refund {
                        // Given back whatever the refund's outcome: the request never went out.
                        a.truth.borrow_mut().rpm -= 1;
                        let r = undo_rpm(a, ACCOUNT, NOW);
                        if exact {
                            prop_assert_eq!(r, Ok(true), "step {}: the refund lands", step);
                        }
                    }
                }
                Ok(_) => {
                    // Refused: the window really was full when we decided (nothing ran after).
                    prop_assert!(rpm_stored(&a.inner) >= u64::from(a.rpm_limit), "step {}: spurious 429", step);
                }
                Err(e) => prop_assert!(!exact, "step {}: {:?} without injected failures", step, e),
            },
            Op::Reserve(e) => match reserve(a, &a.scopes, e) {
                Ok(d) if d.allowed => {
                    prop_assert_eq!(d.reserved_micros, e);
                    let mut t = a.truth.borrow_mut();
                    t.key.outstanding += e;
                    t.acct.outstanding += e;
                    ours.push_back(e);
                }
                Ok(d) => prop_assert_eq!(d.reserved_micros, 0),
                Err(err) => prop_assert!(!exact, "step {}: {:?} without injected failures", step, err),
            },
            Op::Settle(_) | Op::Release if ours.is_empty() => {}
            Op::Settle(_) | Op::Release => {
                let r = ours.pop_front().unwrap();
                let actual = match *op {
                    Op::Settle(pct) => r * u64::from(pct) / 100,
                    _ => 0,
                };
                let res = if actual == 0 { release(a, &a.scopes, r) } else { settle(a, &a.scopes, r, actual) };
                if exact {
                    prop_assert_eq!(res, Ok(()), "step {}", step);
                }
                let mut guard = a.truth.borrow_mut();
                let t = &mut *guard;
                for sc in [&mut t.key, &mut t.acct] {
                    sc.outstanding -= r;
                    sc.spent += actual;
                }
            }
        }
        // Invariants, after every step.
        let t = a.truth.borrow();
        let rpm = rpm_stored(&a.inner);
        prop_assert!(
            t.rpm <= u64::from(a.rpm_limit),
            "step {}: {} requests admitted, limit {}",
            step,
            t.rpm,
            a.rpm_limit
        );
        prop_assert!(rpm <= u64::from(a.rpm_limit), "step {}: stored count {} over the limit", step, rpm);
        for (name, truth, scope) in [("key", t.key, &key_scope), ("account", t.acct, &acct_scope)] {
            let s = stored(&a.inner, &scope.key);
            // Actual <= estimate here, so nothing may ever be committed past the cap.
            prop_assert!(
                truth.spent + truth.outstanding <= scope.cap_micros,
                "step {}: {} scope committed {:?} past its cap {}",
                step,
                name,
                truth,
                scope.cap_micros
            );
            if exact {
                prop_assert_eq!(s, truth, "step {}: {} scope store vs truth", step, name);
            } else {
                // The store may keep a reservation a failed rollback or settle could not remove,
                // never less than what is really committed.
                prop_assert!(
                    s.spent + s.outstanding >= truth.spent + truth.outstanding,
                    "step {}: {} store {:?} under truth {:?}",
                    step,
                    name,
                    s,
                    truth
                );
            }
        }
        if exact {
            prop_assert_eq!(rpm, t.rpm, "step {}: stored count vs admitted", step);
        } else {
            prop_assert!(rpm >= t.rpm, "step {}: stored count {} under admitted {}", step, rpm, t.rpm);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Rival workers interleave real admissions, refunds, reservations and settlements between
    /// our reads and writes: every decision still lands, nothing is over-admitted, refunds and
    /// settlements are exact (the store equals the truth after every step).
    #[test]
    fn interleaved_rivals_never_over_admit_and_bookkeeping_is_exact(
        limit in 0u32..8,
        key_cap in 0u64..2_000,
        acct_cap in 0u64..2_000,
        faults in script(false),
        ops in proptest::collection::vec(op(), 1..60),
    ) {
        let a = Adversary::new(faults, limit, key_cap, acct_cap, true);
        run(&a, &ops, true)?;
    }

    /// With store outages and unbounded conflict bursts on top: decisions may fail (closed), and
    /// the store may keep more than the truth, never less; still nothing is over-admitted.
    #[test]
    fn failures_and_contention_fail_closed(
        limit in 0u32..8,
        key_cap in 0u64..2_000,
        acct_cap in 0u64..2_000,
        faults in script(true),
        ops in proptest::collection::vec(op(), 1..60),
    ) {
        let a = Adversary::new(faults, limit, key_cap, acct_cap, false);
        run(&a, &ops, false)?;
    }
}

/// The double really interleaves: a conflict runs the rival's admission between our read and our
/// write, and our decision accounts for it.
#[test]
fn a_conflict_runs_a_real_rival_admission() {
    let mut script = vec![Fault::Pass; 5];
    script.push(Fault::Conflict(Rival::Rpm));
    let a = Adversary::new(script, 2, 0, 0, true);
    // First request: get (absent), create, get, set; the second: get, then the conflicted set.
    assert!(check_rpm(&a, ACCOUNT, 2, NOW).unwrap().allowed);
    // Second: our write meets the rival's admission; on retry the window is full.
    let d = check_rpm(&a, ACCOUNT, 2, NOW).unwrap();
    assert_eq!(a.rivals_ran.get(), 1);
    assert!(!d.allowed, "the rival took the last slot");
    assert_eq!(rpm_stored(&a.inner), 2);
    assert_eq!(a.truth.borrow().rpm, 1, "only the rival's counts here; ours was tallied by run()");
}
