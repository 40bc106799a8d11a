//! Exchange tests: the limit policies of issue 18 (a key's own rpm, the account's tokens per
//! minute, spend cap periods, development keys), in the local store and on the limits service.

use serde_json::{json, Value};

use super::*;
use crate::limits::remote::{AdmitRequest, SettleRequest, WindowSettle, WindowSpec};

/// 2026-11-30T23:59:50Z: ten seconds before the end of a UTC day and month.
const LAST: u64 = 1_796_083_190_000;
/// 2026-12-01T00:00:05Z.
const FIRST: u64 = 1_796_083_205_000;

fn policy_cfg(store: &str) -> Config {
    let h = |k: &str| keys::to_hex(&keys::sha256(k.as_bytes()));
    let limits =
        if store == "remote" { r#""limits":{"store":"remote","cluster":"limits","fallback":"closed"},"# } else { "" };
    let j = format!(
        r#"{{"clusters":[{{"name":"c"}}],{limits}
        "models":[{{"id":"m","type":"text","cluster":"c","default_max_tokens":16,"price":{{"prompt_per_1k":1,"completion_per_1k":1}}}},
                  {{"id":"free","type":"text","cluster":"c","sandbox":true}}],
        "accounts":[{{"id":"a","rpm":5}},{{"id":"t","rpm":100,"tpm":100}},
                    {{"id":"mo","rpm":100,"spend_cap":{{"credits":0.035,"period":"month"}}}}],
        "keys":[{{"id":"own","sha256":"{}","account":"a","rpm":2}},
                {{"id":"dev","sha256":"{}","account":"a","sandbox_daily_quota":1,"environment":"development"}},
                {{"id":"prod","sha256":"{}","account":"a","sandbox_daily_quota":1}},
                {{"id":"tk","sha256":"{}","account":"t"}},
                {{"id":"day","sha256":"{}","account":"mo","spend_cap":0.035,"spend_cap_period":"day"}}]}}"#,
        h("sk-own"),
        h("sk-dev"),
        h("sk-prod"),
        h("sk-tk"),
        h("sk-day"),
    );
    Config::parse(j.as_bytes()).unwrap()
}

/// `max_tokens` 10 and a prompt estimate of 8 tokens (`usage::estimate_prompt_tokens`).
const TEN: &str = r#"{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}"#;
const TEN_TOKENS: u64 = 18;

fn usage_body(prompt: u64, completion: u64) -> Vec<u8> {
    json!({"id":"x","object":"chat.completion","model":"m",
        "choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],
        "usage":{"prompt_tokens":prompt,"completion_tokens":completion,"total_tokens":prompt + completion}})
    .to_string()
    .into_bytes()
}

fn finish(ex: &mut Exchange, c: &Config, store: &MemoryStore, now_ms: u64, usage: (u64, u64)) -> Outcome {
    ex.on_response_headers(200, Some("application/json"));
    let _ = ex.on_response_chunk(&usage_body(usage.0, usage.1), true, 1 << 20);
    ex.on_done(c, &Env { now_ms, store })
}

fn headers(ex: &Exchange) -> Vec<(String, String)> {
    ex.rate_headers()
}

fn value(h: &[(String, String)], name: &str) -> Option<String> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

fn error(r: &LocalReply) -> (u16, Value) {
    (r.status, serde_json::from_slice(&r.body).unwrap())
}

#[test]
fn a_keys_own_rpm_binds_beside_its_accounts() {
    let c = policy_cfg("local");
    let store = MemoryStore::new();
    let now = 1_700_000_010_000;
    let (ex, r) = run(&c, &store, now, "sk-own", TEN);
    assert!(r.is_none());
    // The key's window (2, 1 left) binds over the account's (5, 4 left).
    assert_eq!(value(&headers(&ex), "x-ratelimit-limit-requests").as_deref(), Some("2"));
    assert_eq!(value(&headers(&ex), "x-ratelimit-remaining-requests").as_deref(), Some("1"));
    assert!(run(&c, &store, now, "sk-own", TEN).1.is_none());
    let (_, r) = run(&c, &store, now, "sk-own", TEN);
    let r = r.unwrap();
    let (status, body) = error(&r);
    assert_eq!((status, body["error"]["code"].as_str()), (429, Some("rate_limit_exceeded")));
    assert_eq!(header(&r, "x-ratelimit-limit-requests"), Some("2"));
    assert_eq!(header(&r, "x-ratelimit-remaining-requests"), Some("0"));
    assert_eq!(header(&r, "retry-after"), Some("30"));
    // The refused request gave the account's slot back: two counted there, so the account's
    // other keys have 3 left.
    let (ex, r) = run(&c, &store, now, "sk-prod", TEN);
    assert!(r.is_none());
    assert_eq!(value(&headers(&ex), "x-ratelimit-remaining-requests").as_deref(), Some("2"));
    assert_eq!(value(&headers(&ex), "x-ratelimit-limit-requests").as_deref(), Some("5"));
    // The next minute, the key may send again.
    assert!(run(&c, &store, now + 60_000, "sk-own", TEN).1.is_none());
}

#[test]
fn a_development_key_is_not_held_to_the_sandbox_quota() {
    let c = policy_cfg("local");
    let store = MemoryStore::new();
    let now = 1_700_000_010_000;
    assert!(run(&c, &store, now, "sk-prod", FREE).1.is_none());
    let (_, r) = run(&c, &store, now, "sk-prod", FREE);
    assert_eq!(error(&r.unwrap()).1["error"]["code"], json!("sandbox_quota_exceeded"));
    for _ in 0..3 {
        assert!(run(&c, &store, now, "sk-dev", FREE).1.is_none());
    }
    // ...but still by its account's rpm (5: 1 + 3 taken, one left).
    assert!(run(&c, &store, now, "sk-dev", FREE).1.is_none());
    let (_, r) = run(&c, &store, now, "sk-dev", FREE);
    assert_eq!(error(&r.unwrap()).1["error"]["code"], json!("rate_limit_exceeded"));
    assert_eq!(store.value("sbx:dev"), None);
}

#[test]
fn tokens_are_reserved_from_the_estimate_and_settled_with_the_usage() {
    let c = policy_cfg("local");
    let store = MemoryStore::new();
    let now = 1_700_000_010_000;
    let (mut ex, r) = run(&c, &store, now, "sk-tk", TEN);
    assert!(r.is_none());
    let h = headers(&ex);
    assert_eq!(value(&h, "x-ratelimit-limit-tokens").as_deref(), Some("100"));
    assert_eq!(value(&h, "x-ratelimit-remaining-tokens"), Some((100 - TEN_TOKENS).to_string()));
    assert_eq!(value(&h, "x-ratelimit-reset-tokens").as_deref(), Some("30s"));
    // 7 tokens used: the other 8 are released.
    finish(&mut ex, &c, &store, now + 5, (4, 3));
    assert_eq!(store.value("tpm:t"), Some(b"1699999980:7".to_vec()));
    let (mut ex, r) = run(&c, &store, now + 10, "sk-tk", TEN);
    assert!(r.is_none());
    assert_eq!(value(&headers(&ex), "x-ratelimit-remaining-tokens"), Some((100 - 7 - TEN_TOKENS).to_string()));
    // An overrun (60 used of 15 reserved) is added.
    finish(&mut ex, &c, &store, now + 15, (20, 40));
    assert_eq!(store.value("tpm:t"), Some(b"1699999980:67".to_vec()));
    // 67 + 18 fit 100, then nothing: a 429 with Retry-After to the minute's end.
    assert!(run(&c, &store, now + 20, "sk-tk", TEN).1.is_none());
    let (_, r) = run(&c, &store, now + 20, "sk-tk", TEN);
    let r = r.unwrap();
    assert_eq!(error(&r).0, 429);
    assert_eq!(error(&r).1["error"]["code"], json!("rate_limit_exceeded"));
    assert_eq!(header(&r, "x-ratelimit-remaining-tokens"), Some("0"));
    assert_eq!(header(&r, "retry-after"), Some("30"));
    // The refusal gave its request slot back (3 counted of 100).
    assert_eq!(store.value("rpm:t"), Some(b"1699999980:3".to_vec()));
    // A request larger than the whole limit is refused with what to change.
    let big = r#"{"model":"m","max_tokens":500,"messages":[{"role":"user","content":"hi"}]}"#;
    let (_, r) = run(&c, &store, now + 61_000, "sk-tk", big);
    let msg = error(&r.unwrap()).1["error"]["message"].as_str().unwrap().to_string();
    assert!(msg.contains("more than the account's limit of 100 tokens per minute"), "{msg}");
    // A request that fails upstream releases everything it reserved.
    let (mut ex, r) = run(&c, &store, now + 62_000, "sk-tk", TEN);
    assert!(r.is_none());
    ex.on_response_headers(503, Some("application/json"));
    let _ = ex.on_response_chunk(b"{}", true, 1 << 20);
    ex.on_done(&c, &Env { now_ms: now + 62_100, store: &store });
    assert_eq!(store.value("tpm:t"), Some(b"1700000040:0".to_vec()));
}

#[test]
fn monthly_and_daily_caps_reset_at_the_utc_boundary() {
    let c = policy_cfg("local");
    let store = MemoryStore::new();
    // A request reserves 19 prompt tokens (its 75 bytes / 4) + 10 completion = 0.029 credits: the
    // 0.035 caps admit one, then (0.010 spent) refuse until the period changes.
    let (mut ex, r) = run(&c, &store, LAST, "sk-day", TEN);
    assert!(r.is_none());
    finish(&mut ex, &c, &store, LAST + 1, (4, 6));
    assert_eq!(store.value("spend:key:day@2026-11-30"), Some(b"10000:0".to_vec()));
    assert_eq!(store.value("spend:acct:mo@2026-11"), Some(b"10000:0".to_vec()));
    let (_, r) = run(&c, &store, LAST + 2, "sk-day", TEN);
    assert_eq!(error(&r.unwrap()).0, 402);
    // Past midnight on the 1st: a new day and a new month, both start from nothing.
    let (mut ex, r) = run(&c, &store, FIRST, "sk-day", TEN);
    assert!(r.is_none());
    finish(&mut ex, &c, &store, FIRST + 1, (4, 6));
    assert_eq!(store.value("spend:key:day@2026-12-01"), Some(b"10000:0".to_vec()));
    assert_eq!(store.value("spend:acct:mo@2026-12"), Some(b"10000:0".to_vec()));
    assert_eq!(store.value("spend:key:day@2026-11-30"), Some(b"10000:0".to_vec()));
}

#[test]
fn a_request_admitted_before_midnight_settles_into_its_own_period() {
    let c = policy_cfg("local");
    let store = MemoryStore::new();
    let (mut ex, r) = run(&c, &store, LAST, "sk-day", TEN);
    assert!(r.is_none());
    finish(&mut ex, &c, &store, FIRST, (4, 6));
    assert_eq!(store.value("spend:key:day@2026-11-30"), Some(b"10000:0".to_vec()));
    assert_eq!(store.value("spend:key:day@2026-12-01"), None);
}

fn remote_ask(c: &Config, store: &MemoryStore, now: u64, key: &str, body: &str) -> (Exchange, AdmitRequest) {
    let (mut ex, a) = send(c, store, now, key, "/v1/chat/completions", body);
    assert_eq!(a, BodyAction::AskLimits);
    let call = ex.take_limits_call().unwrap();
    (ex, serde_json::from_slice(&call.body).unwrap())
}

fn remote_answer(ex: &mut Exchange, c: &Config, store: &MemoryStore, now: u64, reply: Value, body: &str) -> BodyAction {
    let bytes = reply.to_string().into_bytes();
    ex.on_limits_answer(Some((200, &bytes)), now);
    ex.on_request_body(c, body.as_bytes(), &Env { now_ms: now, store })
}

fn w(allowed: bool, limit: u32, remaining: u32) -> Value {
    json!({"allowed": allowed, "limit": limit, "remaining": remaining, "reset_after_ms": 20_000})
}

#[test]
fn the_remote_admit_carries_every_policy_window() {
    let c = policy_cfg("remote");
    let store = MemoryStore::new();
    let now = 1_700_000_010_000;
    let spec =
        |key: &str, limit: u32, period_ms: u64, cost: u64| WindowSpec { key: key.to_string(), limit, period_ms, cost };
    let (_, req) = remote_ask(&c, &store, now, "sk-own", TEN);
    assert_eq!(req.windows, vec![spec("rpm:a", 5, 60_000, 1), spec("rpmk:own", 2, 60_000, 1)]);
    let (_, req) = remote_ask(&c, &store, now, "sk-prod", FREE);
    assert_eq!(req.windows, vec![spec("rpm:a", 5, 60_000, 1), spec("sbx:prod", 1, 86_400_000, 1)]);
    let (_, req) = remote_ask(&c, &store, now, "sk-dev", FREE);
    assert_eq!(req.windows, vec![spec("rpm:a", 5, 60_000, 1)]);
    let (_, req) = remote_ask(&c, &store, now, "sk-tk", TEN);
    assert_eq!(req.windows, vec![spec("rpm:t", 100, 60_000, 1), spec("tpm:t", 100, 60_000, TEN_TOKENS)]);
    let (_, req) = remote_ask(&c, &store, LAST, "sk-day", TEN);
    let caps: Vec<&str> = req.caps.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(caps, ["spend:key:day@2026-11-30", "spend:acct:mo@2026-11"]);
    assert!(store.is_empty());
}

#[test]
fn remote_refusals_and_headers_follow_the_binding_window() {
    let c = policy_cfg("remote");
    let store = MemoryStore::new();
    let now = 1_700_000_010_000;
    // Refused by the key's window: its 429 and headers.
    let (mut ex, _) = remote_ask(&c, &store, now, "sk-own", TEN);
    let reply = json!({"admitted": false, "refused": "window", "index": 1, "windows": [w(true, 5, 3), w(false, 2, 0)]});
    let BodyAction::Reply(r) = remote_answer(&mut ex, &c, &store, now, reply, TEN) else { panic!("admitted") };
    assert_eq!((r.status, header(&r, "x-ratelimit-limit-requests")), (429, Some("2")));
    assert!(error(&r).1["error"]["message"].as_str().unwrap().contains("for this API key"));
    // Refused by tokens: 429 with the token headers; nothing to settle.
    let (mut ex, _) = remote_ask(&c, &store, now, "sk-tk", TEN);
    let reply =
        json!({"admitted": false, "refused": "window", "index": 1, "windows": [w(true, 100, 99), w(false, 100, 0)]});
    let BodyAction::Reply(r) = remote_answer(&mut ex, &c, &store, now, reply, TEN) else { panic!("admitted") };
    assert_eq!((r.status, header(&r, "x-ratelimit-remaining-tokens")), (429, Some("0")));
    assert_eq!(header(&r, "x-ratelimit-reset-tokens"), Some("20s"));
    assert_eq!(ex.on_done(&c, &Env { now_ms: now, store: &store }).remote_settlement, None);
    // Admitted: the tokens settle on the service at the usage, with no spend cap to settle.
    let (mut ex, _) = remote_ask(&c, &store, now, "sk-tk", TEN);
    let reply = json!({"admitted": true, "windows": [w(true, 100, 98), w(true, 100, 85)], "reserved_micros": 0});
    assert!(matches!(remote_answer(&mut ex, &c, &store, now, reply, TEN), BodyAction::Forward { .. }));
    assert_eq!(value(&headers(&ex), "x-ratelimit-remaining-tokens").as_deref(), Some("85"));
    let o = finish(&mut ex, &c, &store, now + 5, (4, 3));
    let s: SettleRequest = serde_json::from_slice(&o.remote_settlement.unwrap().body).unwrap();
    assert_eq!(s.caps, Vec::<String>::new());
    assert_eq!(s.windows, vec![WindowSettle::tpm("t", now, TEN_TOKENS, 7)]);
    assert!(store.is_empty());
}
