//! Exchange tests: admission on the shared limits service (`limits.store: "remote"`): the
//! exchange asks, the answer (or its failure) is fed back, the same callback runs again.

use serde_json::{json, Value};

use super::*;
use crate::limits::remote::{AdmitRequest, SettleRequest, ADMIT_PATH, SETTLE_PATH};

const NOW: u64 = 1_700_000_030_000;

fn remote_cfg(fallback: &str) -> Config {
    let h = |k: &str| keys::to_hex(&keys::sha256(k.as_bytes()));
    let j = format!(
        r#"{{"clusters":[{{"name":"c"}}],
        "limits":{{"store":"remote","cluster":"limits","timeout_ms":40,"fallback":"{fallback}","replicas":2,"hold_ttl_ms":9000}},
        "models":[{{"id":"m","type":"text","cluster":"c","default_max_tokens":16,"price":{{"prompt_per_1k":1,"completion_per_1k":1}}}},
                  {{"id":"free","type":"text","cluster":"c","sandbox":true}}],
        "accounts":[{{"id":"a","rpm":3}},{{"id":"b","rpm":100}}],
        "keys":[{{"id":"k","sha256":"{}","account":"a","sandbox_daily_quota":2}},
                {{"id":"capped","sha256":"{}","account":"b","spend_cap":0.05}}]}}"#,
        h("sk-a"),
        h("sk-capped"),
    );
    Config::parse(j.as_bytes()).unwrap()
}

const CHAT: &str = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;

/// Headers, then the body: the exchange asks (the call is returned, parsed).
fn ask(cfg: &Config, store: &MemoryStore, key: &str, body: &str) -> (Exchange, AdmitRequest) {
    let (mut ex, a) = send(cfg, store, NOW, key, "/v1/chat/completions", body);
    assert_eq!(a, BodyAction::AskLimits);
    let call = ex.take_limits_call().unwrap();
    assert_eq!(call.path, ADMIT_PATH);
    assert_eq!(ex.take_limits_call(), None, "the call is taken once");
    (ex, serde_json::from_slice(&call.body).unwrap())
}

/// Feeds the answer and runs the body again.
fn answer(ex: &mut Exchange, cfg: &Config, store: &MemoryStore, reply: Option<(u16, Value)>, body: &str) -> BodyAction {
    let bytes = reply.as_ref().map(|(s, v)| (*s, v.to_string().into_bytes()));
    ex.on_limits_answer(bytes.as_ref().map(|(s, b)| (*s, b.as_slice())), NOW + 3);
    ex.on_request_body(cfg, body.as_bytes(), &Env { now_ms: NOW + 3, store })
}

fn window(allowed: bool, limit: u32, remaining: u32) -> Value {
    json!({"allowed": allowed, "limit": limit, "remaining": remaining, "reset_after_ms": 30_000})
}

fn done(ex: &mut Exchange, cfg: &Config, store: &MemoryStore) -> (Outcome, Value) {
    let o = ex.on_done(cfg, &Env { now_ms: NOW + 10, store });
    let record = serde_json::from_slice(&o.record).unwrap();
    (o, record)
}

#[test]
fn the_admit_carries_the_local_paths_limits_and_estimate() {
    let c = remote_cfg("closed");
    let store = MemoryStore::new();
    let (ex, req) = ask(&c, &store, "sk-capped", CHAT);
    assert_eq!(req.now_ms, NOW);
    assert_eq!(req.windows.len(), 1);
    assert_eq!((req.windows[0].key.as_str(), req.windows[0].limit), ("rpm:b", 100));
    assert_eq!(req.caps.len(), 1);
    assert_eq!((req.caps[0].key.as_str(), req.caps[0].cap_micros), ("spend:key:capped", 50_000));
    assert_eq!(req.hold_micros, ex.estimate_micros());
    assert!(req.hold_micros > 0);
    assert_eq!(req.reservation, ex.request_id);
    assert_eq!(req.hold_ttl_ms, 9000);
    // A sandbox model adds the key's daily window; an uncapped key holds nothing.
    let (_, req) = ask(&c, &store, "sk-a", r#"{"model":"free","messages":[{"role":"user","content":"hi"}]}"#);
    let windows: Vec<_> = req.windows.iter().map(|w| (w.key.as_str(), w.limit)).collect();
    assert_eq!(windows, [("rpm:a", 3), ("sbx:k", 2)]);
    assert!(req.caps.is_empty());
    assert_eq!(req.hold_micros, 0);
    // Nothing was counted in this Envoy's own store.
    assert!(store.is_empty());
}

#[test]
fn an_admitted_request_goes_upstream_and_settles_from_the_end() {
    let c = remote_cfg("closed");
    let store = MemoryStore::new();
    let (mut ex, req) = ask(&c, &store, "sk-capped", CHAT);
    let reply = json!({"admitted": true, "windows": [window(true, 100, 41)], "remaining_micros": 1, "reserved_micros": req.hold_micros});
    let a = answer(&mut ex, &c, &store, Some((200, reply)), CHAT);
    // Held: the reserved budget goes upstream, as on the local path.
    assert_eq!(forwarded(&a, CHAT)["max_tokens"], json!(16));
    assert_eq!(ex.rate_headers()[1], ("x-ratelimit-remaining-requests".to_string(), "41".to_string()));
    ex.on_response_headers(200, Some("application/json"));
    let body = br#"{"id":"x","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}}"#;
    let _ = ex.on_response_chunk(body, true, 1 << 20);
    let (o, record) = done(&mut ex, &c, &store);
    assert_eq!(o.micros, 15_000);
    let settle = o.remote_settlement.unwrap();
    assert_eq!(settle.path, SETTLE_PATH);
    let s: SettleRequest = serde_json::from_slice(&settle.body).unwrap();
    assert_eq!(
        s,
        SettleRequest {
            reservation: ex.request_id.clone(),
            caps: vec!["spend:key:capped".into()],
            actual_micros: 15_000,
            windows: Vec::new(),
        }
    );
    assert_eq!(record["limits"], json!("remote"));
    assert_eq!((o.remote_failures, o.remote_fallbacks), (0, 0));
    assert!(store.is_empty());
}

#[test]
fn refusals_are_the_local_paths_and_hold_nothing() {
    let c = remote_cfg("closed");
    let store = MemoryStore::new();
    // The cap has not enough left: 402, nothing to settle.
    let (mut ex, _) = ask(&c, &store, "sk-capped", CHAT);
    let reply = json!({"admitted": false, "refused": "cap", "index": 0, "windows": [window(true, 100, 9)], "remaining_micros": 3});
    let BodyAction::Reply(r) = answer(&mut ex, &c, &store, Some((200, reply)), CHAT) else { panic!("admitted") };
    assert_eq!(r.status, 402);
    assert_eq!(done(&mut ex, &c, &store).0.remote_settlement, None);
    // The sandbox window: 429 sandbox_quota_exceeded.
    let free = r#"{"model":"free","messages":[{"role":"user","content":"hi"}]}"#;
    let (mut ex, _) = ask(&c, &store, "sk-a", free);
    let reply = json!({"admitted": false, "refused": "window", "index": 1, "windows": [window(true, 3, 2), window(false, 2, 0)]});
    let BodyAction::Reply(r) = answer(&mut ex, &c, &store, Some((200, reply)), free) else { panic!("admitted") };
    assert_eq!(r.status, 429);
    assert_eq!(ex.error(), Some(Code::SandboxQuotaExceeded));
    // The rate window is full (last: this VM then refuses the account at its headers).
    // 429 with Retry-After and the shared counter's headers.
    let (mut ex, _) = ask(&c, &store, "sk-capped", CHAT);
    let reply = json!({"admitted": false, "refused": "window", "index": 0, "windows": [window(false, 100, 0)]});
    let BodyAction::Reply(r) = answer(&mut ex, &c, &store, Some((200, reply)), CHAT) else { panic!("admitted") };
    assert_eq!(r.status, 429);
    assert!(r.headers.contains(&("retry-after".to_string(), "30".to_string())), "{:?}", r.headers);
    assert!(r.headers.contains(&("x-ratelimit-remaining-requests".to_string(), "0".to_string())));
    let (o, record) = done(&mut ex, &c, &store);
    assert_eq!(o.remote_settlement, None);
    assert_eq!((record["error"].clone(), record["limits"].clone()), (json!("rate_limit_exceeded"), json!("remote")));
}

#[test]
fn an_unreachable_service_fails_caps_closed_and_releases_what_may_have_landed() {
    for fallback in ["closed", "local"] {
        let c = remote_cfg(fallback);
        let store = MemoryStore::new();
        for reply in [None, Some((503, json!({"error": "redis"}))), Some((200, json!({"admitted": "yes"})))] {
            let (mut ex, _) = ask(&c, &store, "sk-capped", CHAT);
            let BodyAction::Reply(r) = answer(&mut ex, &c, &store, reply, CHAT) else { panic!("admitted") };
            assert_eq!(r.status, 503);
            assert_eq!(ex.error(), Some(Code::ServiceUnavailable));
            let (o, record) = done(&mut ex, &c, &store);
            assert_eq!((o.remote_failures, o.remote_fallbacks, o.store_failures), (1, 0, 1));
            assert_eq!(record["limits"], json!("unavailable"));
            // The admit may have landed before the call failed: released at 0 from the end.
            let s: SettleRequest = serde_json::from_slice(&o.remote_settlement.unwrap().body).unwrap();
            assert_eq!((s.reservation, s.actual_micros), (ex.request_id.clone(), 0));
        }
        assert!(store.is_empty());
    }
}

#[test]
fn rpm_falls_back_to_this_envoys_counters_at_limit_over_replicas() {
    let c = remote_cfg("local");
    let store = MemoryStore::new();
    // Account `a`: 3 rpm over 2 replicas -> 1 here.
    let (mut ex, _) = ask(&c, &store, "sk-a", CHAT);
    let a = answer(&mut ex, &c, &store, None, CHAT);
    assert!(matches!(a, BodyAction::Forward { .. }), "{a:?}");
    assert_eq!(ex.rate_headers()[0], ("x-ratelimit-limit-requests".to_string(), "1".to_string()));
    let (o, record) = done(&mut ex, &c, &store);
    assert_eq!((o.remote_failures, o.remote_fallbacks), (1, 1));
    assert_eq!(o.remote_settlement, None);
    assert_eq!(record["limits"], json!("local_fallback"));
    let (mut ex, _) = ask(&c, &store, "sk-a", CHAT);
    let BodyAction::Reply(r) = answer(&mut ex, &c, &store, None, CHAT) else { panic!("admitted past the limit") };
    assert_eq!(r.status, 429);
    assert_eq!(limits::peek_rpm(&store, "a", 1, NOW).unwrap().remaining, 0);
    // With `closed`, the same failure is a 503.
    let c = remote_cfg("closed");
    let (mut ex, _) = ask(&c, &store, "sk-a", CHAT);
    let BodyAction::Reply(r) = answer(&mut ex, &c, &store, None, CHAT) else { panic!("admitted") };
    assert_eq!(r.status, 503);
}

#[test]
fn content_is_kept_once_when_the_body_runs_again() {
    let c = remote_cfg("closed");
    let store = MemoryStore::new();
    // Content on (as for a key that logs it): the first run keeps the body, the second does not.
    let mut ex2 = Exchange::new();
    let env = Env { now_ms: NOW, store: &store };
    let head = RequestHead {
        method: "POST",
        path: "/v1/chat/completions",
        authorization: Some("Bearer sk-capped"),
        ..Default::default()
    };
    assert!(matches!(ex2.on_request_headers(&c, &head, &env), HeadAction::ReadBody(_)));
    ex2.content = Some((Vec::new(), Vec::new()));
    assert_eq!(ex2.on_request_body(&c, CHAT.as_bytes(), &env), BodyAction::AskLimits);
    let reply =
        json!({"admitted": true, "windows": [window(true, 100, 1)], "remaining_micros": 1, "reserved_micros": 1});
    assert!(matches!(answer(&mut ex2, &c, &store, Some((200, reply)), CHAT), BodyAction::Forward { .. }));
    assert_eq!(ex2.content.as_ref().unwrap().0, CHAT.as_bytes());
}

#[test]
fn a_window_the_service_refused_is_refused_at_the_headers_until_it_ends() {
    let c = remote_cfg("closed");
    let store = MemoryStore::new();
    // Asked while the account is under its rate: the headers pass.
    let (mut ex, _) = ask(&c, &store, "sk-a", CHAT);
    let reply = json!({"admitted": false, "refused": "window", "index": 0,
                       "windows": [{"allowed": false, "limit": 3, "remaining": 0, "reset_after_ms": 20_000}]});
    let BodyAction::Reply(r) = answer(&mut ex, &c, &store, Some((200, reply)), CHAT) else { panic!("admitted") };
    assert_eq!(r.status, 429);
    // Within the window: refused at the headers, nothing asked, nothing read.
    let env = Env { now_ms: NOW + 5_000, store: &store };
    let mut ex = Exchange::new();
    let head = RequestHead {
        method: "POST",
        path: "/v1/chat/completions",
        authorization: Some("Bearer sk-a"),
        ..Default::default()
    };
    let HeadAction::Reply(r) = ex.on_request_headers(&c, &head, &env) else { panic!("read the body") };
    assert_eq!(r.status, 429);
    assert!(r.headers.contains(&("retry-after".to_string(), "15".to_string())), "{:?}", r.headers);
    assert!(r.headers.contains(&("x-ratelimit-remaining-requests".to_string(), "0".to_string())));
    assert_eq!(ex.take_limits_call(), None);
    // Another account, and the same one once the window ended, are asked.
    let env = Env { now_ms: NOW + 20_000, store: &store };
    let mut ex = Exchange::new();
    assert!(matches!(ex.on_request_headers(&c, &head, &env), HeadAction::ReadBody(_)));
    let (_, req) = ask(&c, &store, "sk-capped", CHAT);
    assert_eq!(req.windows[0].key, "rpm:b");
}
