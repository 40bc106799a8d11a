//! A spend reservation whose settlement fails at the end of the exchange is counted and reported,
//! not dropped: the outcome says so (`settle_failures`, which the glue adds to
//! `tollgate.limits.settle_failures`, and `settle_failure`, which it logs), the client's bill and
//! its record are unchanged, and the reservation stays held on the caps (stricter, never looser).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::cell::Cell;

use serde_json::Value;
use tollgate_core::config::Config;
use tollgate_core::exchange::{BodyAction, ChunkAction, Env, Exchange, HeadAction, Outcome, RequestHead};
use tollgate_core::keys;
use tollgate_core::limits::{spend_state, Counters, LimitError, MemoryStore, StoreError};
use tollgate_core::pricing::SettleFailure;

const NOW: u64 = 1_700_000_030_000;
const BODY: &str = r#"{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}"#;
const RESPONSE: &str = r#"{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}}"#;

fn cfg() -> Config {
    let h = |k: &str| keys::to_hex(&keys::sha256(k.as_bytes()));
    let j = format!(
        r#"{{"clusters":[{{"name":"c"}}],
        "models":[{{"id":"m","type":"text","cluster":"c","price":{{"prompt_per_1k":1,"completion_per_1k":1}}}}],
        "accounts":[{{"id":"b","rpm":100,"spend_cap":7}}],
        "keys":[{{"id":"capped","sha256":"{}","account":"b","spend_cap":5}}]}}"#,
        h("sk-capped")
    );
    Config::parse(j.as_bytes()).unwrap()
}

/// A store whose spend entries stop accepting writes once `spend_down` is set (after admission:
/// the reservation landed, its settlement does not).
struct SettleFails {
    inner: MemoryStore,
    spend_down: Cell<bool>,
}

impl SettleFails {
    fn check(&self, key: &str) -> Result<(), StoreError> {
        if self.spend_down.get() && key.starts_with("spend:") {
            return Err(StoreError::Unavailable);
        }
        Ok(())
    }
}

impl Counters for SettleFails {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError> {
        self.inner.get(key)
    }
    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        self.check(key)?;
        self.inner.set(key, value, cas)
    }
    fn remove(&self, key: &str, cas: Option<u32>) -> Result<(), StoreError> {
        self.check(key)?;
        self.inner.remove(key, cas)
    }
    fn create(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.check(key)?;
        self.inner.create(key, value)
    }
}

/// One capped request answered 200 with usage (10 + 5 tokens at 1 credit per 1000: 15 000
/// micro-credits); the store's spend entries fail from the end of the response when `fail`.
fn exchange(store: &SettleFails, fail: bool) -> (Exchange, Outcome) {
    let c = cfg();
    let env = Env { now_ms: NOW, store };
    let mut ex = Exchange::new();
    ex.request_id = "minted-1".to_string();
    let head = RequestHead {
        method: "POST",
        path: "/v1/chat/completions",
        authorization: Some("Bearer sk-capped"),
        ..Default::default()
    };
    assert!(matches!(ex.on_request_headers(&c, &head, &env), HeadAction::ReadBody(_)));
    assert!(matches!(ex.on_request_body(&c, BODY.as_bytes(), &env), BodyAction::Forward { .. }));
    ex.on_response_headers(200, Some("application/json"));
    assert!(matches!(
        ex.on_response_chunk(RESPONSE.as_bytes(), true, 1 << 20),
        ChunkAction::Pass | ChunkAction::Replace(_)
    ));
    store.spend_down.set(fail);
    let out = ex.on_done(&c, &Env { now_ms: NOW + 5, store });
    (ex, out)
}

#[test]
fn a_failed_settlement_is_counted_and_described_and_the_bill_stands() {
    let store = SettleFails { inner: MemoryStore::new(), spend_down: Cell::new(false) };
    let (ex, out) = exchange(&store, true);
    let reserved = ex.estimate_micros();
    assert_eq!(
        reserved,
        19 * 1000 + 10 * 1000,
        "the admission estimate: 19 prompt tokens (73 bytes / 4) + 10 max_tokens"
    );
    assert_eq!(out.settle_failures, 1);
    assert_eq!(
        out.settle_failure,
        Some(SettleFailure {
            error: LimitError::Unavailable,
            reserved_micros: reserved,
            actual_micros: 15_000,
            scopes: vec!["spend:key:capped".to_string(), "spend:acct:b".to_string()],
        })
    );
    assert_eq!(out.store_failures, 0, "not a refusal: the request was admitted and served");
    // The client is billed as usual; the record does not depend on the bookkeeping.
    assert_eq!((out.status, out.error, out.micros, out.estimated), (200, None, 15_000, false));
    let rec: Value = serde_json::from_slice(&out.record).unwrap();
    assert_eq!((rec["status"].as_u64(), rec["credits"].as_f64()), (Some(200), Some(0.015)));
    assert_eq!((rec["prompt_tokens"].as_u64(), rec["completion_tokens"].as_u64()), (Some(10), Some(5)));
    // The reservation stays held (nothing counted as spent): the caps are stricter, not looser.
    assert_eq!(spend_state(&store.inner, "spend:key:capped"), Ok((0, reserved)));
    assert_eq!(spend_state(&store.inner, "spend:acct:b"), Ok((0, reserved)));
}

#[test]
fn a_settlement_that_lands_counts_nothing() {
    let store = SettleFails { inner: MemoryStore::new(), spend_down: Cell::new(false) };
    let (_, out) = exchange(&store, false);
    assert_eq!((out.settle_failures, out.settle_failure), (0, None));
    assert_eq!(out.micros, 15_000);
    assert_eq!(spend_state(&store.inner, "spend:key:capped"), Ok((15_000, 0)));
    assert_eq!(spend_state(&store.inner, "spend:acct:b"), Ok((15_000, 0)));
}
