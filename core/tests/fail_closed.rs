//! Limits fail closed, end to end through the whole `Exchange`: when the counter store fails, or
//! every compare-and-swap write conflicts, a request is answered 503 `service_unavailable` in the
//! caller's dialect, nothing goes upstream, the failure is counted (the outcome's
//! `store_failures`, which the glue adds to `tollgate.limits.store_failures`) and a billing record
//! with the error is written.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use serde_json::Value;
use std::cell::Cell;
use tollgate_core::config::Config;
use tollgate_core::errors::Code;
use tollgate_core::exchange::{BodyAction, Env, Exchange, HeadAction, LocalReply, RequestHead};
use tollgate_core::keys;
use tollgate_core::limits::{check_rpm, Counters, MemoryStore, StoreError};

const NOW: u64 = 1_700_000_030_000;

fn cfg() -> Config {
    let h = |k: &str| keys::to_hex(&keys::sha256(k.as_bytes()));
    let j = format!(
        r#"{{"clusters":[{{"name":"c"}}],
        "models":[{{"id":"m","type":"text","cluster":"c","price":{{"prompt_per_1k":1,"completion_per_1k":1}}}}],
        "accounts":[{{"id":"a","rpm":100}},{{"id":"b","rpm":100}}],
        "keys":[{{"id":"k","sha256":"{}","account":"a"}},
                {{"id":"capped","sha256":"{}","account":"b","spend_cap":5}}]}}"#,
        h("sk-a"),
        h("sk-capped")
    );
    Config::parse(j.as_bytes()).unwrap()
}

/// How the store misbehaves.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Every call fails with `Unavailable`.
    Down,
    /// Reads work; every write conflicts (another worker always wins the race).
    AlwaysConflicts,
    /// Only the spend entries fail (`spend:` keys): the rate check passes first.
    SpendDown,
}

struct BadStore {
    inner: MemoryStore,
    fault: Fault,
    calls: Cell<u32>,
}

impl BadStore {
    fn new(fault: Fault) -> Self {
        BadStore { inner: MemoryStore::new(), fault, calls: Cell::new(0) }
    }
    fn failing(&self, key: &str) -> Option<StoreError> {
        self.calls.set(self.calls.get() + 1);
        match self.fault {
            Fault::Down => Some(StoreError::Unavailable),
            Fault::SpendDown if key.starts_with("spend:") => Some(StoreError::Unavailable),
            _ => None,
        }
    }
    fn write(&self, key: &str) -> Result<(), StoreError> {
        if let Some(e) = self.failing(key) {
            return Err(e);
        }
        match self.fault {
            Fault::AlwaysConflicts => Err(StoreError::CasMismatch),
            _ => Ok(()),
        }
    }
}

impl Counters for BadStore {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError> {
        match self.failing(key) {
            Some(e) => Err(e),
            None => self.inner.get(key),
        }
    }
    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        self.write(key)?;
        self.inner.set(key, value, cas)
    }
    fn remove(&self, key: &str, cas: Option<u32>) -> Result<(), StoreError> {
        self.write(key)?;
        self.inner.remove(key, cas)
    }
    fn create(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.write(key)?;
        self.inner.create(key, value)
    }
}

struct Front {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    body: &'static str,
}

const OPENAI: Front = Front {
    name: "openai",
    method: "POST",
    path: "/v1/chat/completions",
    body: r#"{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}"#,
};
const ANTHROPIC: Front = Front {
    name: "anthropic",
    method: "POST",
    path: "/v1/messages",
    body: r#"{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}"#,
};
const GEMINI: Front = Front {
    name: "gemini",
    method: "POST",
    path: "/v1beta/models/m:generateContent",
    body: r#"{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}"#,
};

fn head<'a>(f: &'a Front, key: &'a str, auth: &'a str) -> RequestHead<'a> {
    let mut h = RequestHead { method: f.method, path: f.path, request_id: Some("rid-503"), ..Default::default() };
    match f.name {
        "anthropic" => h.x_api_key = Some(key),
        "gemini" => h.x_goog_api_key = Some(key),
        _ => h.authorization = Some(auth),
    }
    h
}

/// Drives one request through the exchange; the local reply it got (panics if it was forwarded).
fn refused(cfg: &Config, store: &dyn Counters, f: &Front, key: &str) -> (Exchange, LocalReply) {
    let env = Env { now_ms: NOW, store };
    let auth = format!("Bearer {key}");
    let mut ex = Exchange::new();
    ex.request_id = "minted-503".to_string();
    let reply = match ex.on_request_headers(cfg, &head(f, key, &auth), &env) {
        HeadAction::Reply(r) => r,
        HeadAction::ReadBody(_) => match ex.on_request_body(cfg, f.body.as_bytes(), &env) {
            BodyAction::Reply(r) => r,
            BodyAction::Forward { edits, body } => {
                panic!("{}: forwarded upstream with a failing store: {edits:?} {body:?}", f.name)
            }
            BodyAction::AskLimits => panic!("{}: the local store never asks the limits service", f.name),
        },
    };
    (ex, reply)
}

fn header<'a>(r: &'a LocalReply, name: &str) -> Option<&'a str> {
    r.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The reply is a 503 in the front's error shape, and the record says so.
fn assert_fail_closed(cfg: &Config, store: &dyn Counters, f: &Front, ex: &mut Exchange, r: &LocalReply) {
    let ctx = format!("{} via {}", f.name, f.path);
    assert_eq!(r.status, 503, "{ctx}");
    assert_eq!(header(r, "content-type"), Some("application/json"), "{ctx}");
    assert_eq!(header(r, "x-should-retry"), Some("true"), "{ctx}");
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    let msg = "The gateway cannot check this request's limits right now; retry shortly";
    match f.name {
        "openai" => {
            assert_eq!(v["error"]["code"], "service_unavailable", "{ctx}: {v}");
            assert_eq!(v["error"]["type"], "api_error", "{ctx}: {v}");
            assert_eq!(v["error"]["message"], msg, "{ctx}: {v}");
            assert_eq!(v["error"]["param"], Value::Null, "{ctx}: {v}");
        }
        "anthropic" => {
            assert_eq!(v["type"], "error", "{ctx}: {v}");
            assert_eq!(v["error"]["type"], "overloaded_error", "{ctx}: {v}");
            assert_eq!(v["error"]["message"], msg, "{ctx}: {v}");
        }
        _ => {
            assert_eq!(v["error"]["code"], 503, "{ctx}: {v}");
            assert_eq!(v["error"]["status"], "UNAVAILABLE", "{ctx}: {v}");
            assert_eq!(v["error"]["message"], msg, "{ctx}: {v}");
        }
    }
    assert!(ex.local_reply, "{ctx}");
    assert_eq!(ex.error(), Some(Code::ServiceUnavailable), "{ctx}");

    let env = Env { now_ms: NOW + 5, store };
    let out = ex.on_done(cfg, &env);
    assert_eq!(out.status, 503, "{ctx}");
    assert_eq!(out.error, Some(Code::ServiceUnavailable), "{ctx}");
    assert_eq!(out.micros, 0, "{ctx}");
    let rec: Value = serde_json::from_slice(&out.record).unwrap();
    assert_eq!(rec["status"], 503, "{ctx}: {rec}");
    assert_eq!(rec["error"], "service_unavailable", "{ctx}: {rec}");
    assert_eq!(rec["front"], f.name, "{ctx}: {rec}");
    // The record's id is the one the glue minted; the client's own id is kept apart.
    assert_eq!(rec["request_id"], "minted-503", "{ctx}: {rec}");
    assert_eq!(rec["client_request_id"], "rid-503", "{ctx}: {rec}");
    assert_eq!(rec["credits"], 0.0, "{ctx}: {rec}");
    assert_eq!(rec["prompt_tokens"], 0, "{ctx}: {rec}");
    assert_eq!(rec["completion_tokens"], 0, "{ctx}: {rec}");
    // Nothing was forwarded: no cluster, no upstream.
    assert_eq!(rec["cluster"], Value::Null, "{ctx}: {rec}");
    assert_eq!(rec["upstream"], Value::Null, "{ctx}: {rec}");
    assert_eq!(rec["upstream_model"], Value::Null, "{ctx}: {rec}");
    assert_eq!(rec["complete"], true, "{ctx}: {rec}");
    assert_eq!(out.store_failures, 1, "{ctx}: counted once for the store_failures stat");
    assert_eq!(out.settle_failures, 0, "{ctx}: nothing was reserved, nothing to settle");
}

#[test]
fn store_down_answers_503_in_every_dialect_and_forwards_nothing() {
    let c = cfg();
    for f in [&OPENAI, &ANTHROPIC, &GEMINI] {
        let store = BadStore::new(Fault::Down);
        let (mut ex, r) = refused(&c, &store, f, "sk-a");
        assert_fail_closed(&c, &store, f, &mut ex, &r);
        assert!(store.inner.is_empty(), "{}: nothing written", f.name);
    }
}

#[test]
fn store_that_always_conflicts_answers_503_in_every_dialect() {
    let c = cfg();
    for f in [&OPENAI, &ANTHROPIC, &GEMINI] {
        let store = BadStore::new(Fault::AlwaysConflicts);
        let (mut ex, r) = refused(&c, &store, f, "sk-a");
        assert_fail_closed(&c, &store, f, &mut ex, &r);
        assert!(store.inner.is_empty(), "{}: nothing written", f.name);
        // The CAS loop is bounded: it gave up instead of spinning.
        assert!(store.calls.get() < 100, "{}: {} store calls", f.name, store.calls.get());
    }
}

#[test]
fn spend_store_failure_answers_503_and_gives_the_rate_slot_back() {
    let c = cfg();
    for f in [&OPENAI, &ANTHROPIC, &GEMINI] {
        let store = BadStore::new(Fault::SpendDown);
        let (mut ex, r) = refused(&c, &store, f, "sk-capped");
        assert_fail_closed(&c, &store, f, &mut ex, &r);
        // The rate check passed and was refunded: the account's window is empty again.
        let d = check_rpm(&store.inner, "b", 100, NOW).unwrap();
        assert_eq!(d.remaining, 99, "{}: the refused request holds no rate slot", f.name);
        assert_eq!(store.inner.keys(), vec!["rpm:b".to_string()], "{}", f.name);
    }
}

#[test]
fn model_list_fails_closed_too() {
    let c = cfg();
    for (f, path) in [(&OPENAI, "/v1/models"), (&GEMINI, "/v1beta/models")] {
        let f = Front { name: f.name, method: "GET", path, body: "" };
        let store = BadStore::new(Fault::Down);
        let (mut ex, r) = refused(&c, &store, &f, "sk-a");
        assert_fail_closed(&c, &store, &f, &mut ex, &r);
    }
}
