//! Exchange tests: failover to the next tier (the exchange's decisions; the glue's HTTP call and
//! local reply are tested against real Envoy in tests/integration/test_failover.py).
use super::*;

fn fcfg() -> Config {
    let h = |k: &str| keys::to_hex(&keys::sha256(k.as_bytes()));
    let j = format!(
        r#"{{"clusters":[{{"name":"a","api_key":"secret-a","headers":{{"x-a-only":"secret-a-header"}}}},
                       {{"name":"b","dialect":"anthropic","api_key":"secret-b"}}],
        "models":[{{"id":"big","type":"text","cluster":"a","default_max_tokens":16,"fallbacks":["mid","claude"],
                    "price":{{"prompt_per_1k":10,"completion_per_1k":10}}}},
                  {{"id":"mid","type":"text","cluster":"a","upstream_model":"up-mid",
                    "price":{{"prompt_per_1k":1,"completion_per_1k":1}}}},
                  {{"id":"claude","type":"text","cluster":"b","upstream_model":"claude-up",
                    "price":{{"prompt_per_1k":2,"completion_per_1k":2}}}},
                  {{"id":"cheap","type":"text","cluster":"a","default_max_tokens":16,"fallbacks":["dear","mid"],
                    "price":{{"prompt_per_1k":1,"completion_per_1k":1}}}},
                  {{"id":"dear","type":"text","cluster":"a","price":{{"prompt_per_1k":1000,"completion_per_1k":1000}}}},
                  {{"id":"lone","type":"text","cluster":"a"}}],
        "accounts":[{{"id":"acc","rpm":100}}],
        "keys":[{{"id":"k","sha256":"{}","account":"acc"}},
                {{"id":"capped","sha256":"{}","account":"acc","spend_cap":1.0}},
                {{"id":"no-mid","sha256":"{}","account":"acc","allowed_models":["big","claude"]}},
                {{"id":"rich","sha256":"{}","account":"acc","spend_cap":10000}}]}}"#,
        h("sk-k"),
        h("sk-capped"),
        h("sk-no-mid"),
        h("sk-rich")
    );
    Config::parse(j.as_bytes()).unwrap()
}

const BIG: &str = r#"{"model":"big","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}"#;

/// The request headers the first upstream got (as the glue tracks them).
fn present() -> Vec<(String, Vec<u8>)> {
    [
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        (":authority", "gateway.local"),
        ("authorization", "Bearer secret-a"),
        ("x-a-only", "secret-a-header"),
        ("x-tollgate-cluster", "a"),
        ("content-length", "80"),
        ("x-demo-trace", "t1"),
        ("x-request-id", "rid"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
    .collect()
}

fn routed(cfg: &Config, store: &MemoryStore, key: &str, body: &str) -> Exchange {
    let (ex, reply) = run(cfg, store, 1_000, key, body);
    assert!(reply.is_none(), "{:?}", reply.map(|r| String::from_utf8_lossy(&r.body).into_owned()));
    ex
}

fn hdr<'a>(call: &'a FailoverCall, name: &str) -> Option<&'a str> {
    let mut it = call.headers.iter().filter(|(k, _)| k == name);
    let v = it.next().map(|(_, v)| v.as_str());
    assert!(it.next().is_none(), "{name} repeated");
    v
}

const OPENAI_OK: &[u8] = br#"{"id":"x","object":"chat.completion","created":1,"model":"up-mid","choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":100,"completion_tokens":10,"total_tokens":110}}"#;

#[test]
fn a_failed_status_goes_to_the_next_tier_with_its_body_and_credential() {
    let (c, s) = (fcfg(), MemoryStore::new());
    let env = Env { now_ms: 1_050, store: &s };
    let mut ex = routed(&c, &s, "sk-k", BIG);
    let call = ex.fail_over(&c, 503, &present(), &env).expect("a fallback");
    assert_eq!(call.cluster, "a");
    assert_eq!(call.timeout_ms, FAILOVER_TIMEOUT_MS);
    assert_eq!(hdr(&call, ":method"), Some("POST"));
    assert_eq!(hdr(&call, ":path"), Some("/v1/chat/completions"));
    assert_eq!(hdr(&call, ":authority"), Some("gateway.local"));
    assert_eq!(hdr(&call, "authorization"), Some("Bearer secret-a"));
    assert_eq!(hdr(&call, "x-a-only"), Some("secret-a-header"));
    assert_eq!(hdr(&call, "x-demo-trace"), Some("t1"));
    assert_eq!(hdr(&call, "x-request-id"), Some("rid"));
    assert_eq!(hdr(&call, "content-type"), Some("application/json"));
    // Envoy is asked by cluster name; the route header and the old length do not go.
    assert_eq!(hdr(&call, "x-tollgate-cluster"), None);
    assert_eq!(hdr(&call, "content-length"), None);
    let body: Value = serde_json::from_slice(&call.body).unwrap();
    assert_eq!(body["model"], "up-mid");
    assert_eq!(body["max_tokens"], 10);
    assert_eq!(ex.shown_model_if_other(), Some("mid"));
    assert_eq!(ex.failovers(), 1);
    assert_eq!(ex.failed_model(), Some("big"));

    // mid fails too (no response at all): claude, on another provider's dialect and credential.
    let env = Env { now_ms: 1_080, store: &s };
    let next = match ex.fallback_answered(&c, 0, None, b"", &present(), &env) {
        FallbackAnswer::Next(n) => n,
        FallbackAnswer::Reply(r) => panic!("replied {}", r.status),
    };
    assert_eq!(next.cluster, "b");
    assert_eq!(hdr(&next, ":path"), Some("/v1/messages"));
    assert_eq!(hdr(&next, "x-api-key"), Some("secret-b"));
    assert_eq!(hdr(&next, "anthropic-version"), Some("2023-06-01"));
    assert_eq!(hdr(&next, "authorization"), None);
    assert_eq!(hdr(&next, "x-a-only"), None);
    assert!(!next.headers.iter().any(|(_, v)| v.contains("secret-a")), "{:?}", next.headers);
    let body: Value = serde_json::from_slice(&next.body).unwrap();
    assert_eq!(body["model"], "claude-up");
    assert_eq!(body["messages"][0]["content"], "hi");
    assert_eq!(ex.failovers(), 2);
    let got: Vec<(&str, &str, u16, u64)> =
        ex.attempts().unwrap().iter().map(|a| (a.model.as_str(), a.cluster.as_str(), a.status, a.latency_ms)).collect();
    assert_eq!(got, vec![("big", "a", 503, 50), ("mid", "a", 0, 30)]);
}

#[test]
fn only_429_5xx_and_no_response_fail_over() {
    for (status, fails) in [
        (0, true),
        (429, true),
        (500, true),
        (503, true),
        (504, true),
        (200, false),
        (400, false),
        (401, false),
        (403, false),
        (404, false),
        (413, false),
        (422, false),
    ] {
        assert_eq!(fails_over(status), fails, "{status}");
        let (c, s) = (fcfg(), MemoryStore::new());
        let env = Env { now_ms: 1_010, store: &s };
        let mut ex = routed(&c, &s, "sk-k", BIG);
        assert_eq!(ex.fail_over(&c, status, &present(), &env).is_some(), fails, "{status}");
    }
    // A model without fallbacks never fails over, and its record has no attempts.
    let (c, s) = (fcfg(), MemoryStore::new());
    let env = Env { now_ms: 1_010, store: &s };
    let mut ex = routed(&c, &s, "sk-k", r#"{"model":"lone","messages":[{"role":"user","content":"hi"}]}"#);
    assert!(ex.fail_over(&c, 503, &present(), &env).is_none());
    assert!(ex.attempts().is_none());
}

#[test]
fn the_serving_tier_answers_under_its_name_and_price() {
    let (c, s) = (fcfg(), MemoryStore::new());
    let env = Env { now_ms: 1_050, store: &s };
    let mut ex = routed(&c, &s, "sk-k", BIG);
    ex.fail_over(&c, 503, &present(), &env).unwrap();
    let env = Env { now_ms: 1_100, store: &s };
    let r = match ex.fallback_answered(&c, 200, Some("application/json"), OPENAI_OK, &present(), &env) {
        FallbackAnswer::Reply(r) => r,
        FallbackAnswer::Next(_) => panic!("a 200 is served"),
    };
    assert_eq!(r.status, 200);
    assert_eq!(header(&r, MODEL_HEADER), Some("mid"));
    assert_eq!(header(&r, "content-type"), Some("application/json"));
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["model"], "mid");
    assert_eq!(body["choices"][0]["message"]["content"], "hello");
    let o = ex.on_done(&c, &Env { now_ms: 1_200, store: &s });
    // 100 + 10 tokens at mid's 1 credit per 1000, not big's 10.
    assert_eq!(o.micros, 110_000);
    let rec: Value = serde_json::from_slice(&o.record).unwrap();
    assert_eq!(rec["model"], "big");
    assert_eq!(rec["served_model"], "mid");
    assert_eq!(rec["upstream_model"], "up-mid");
    assert_eq!(
        rec["attempts"],
        json!([{"model": "big", "cluster": "a", "status": 503, "latency_ms": 50},
               {"model": "mid", "cluster": "a", "status": 200, "latency_ms": 50}])
    );
    assert_eq!(rec["ttfb_ms"], 100);
}

#[test]
fn the_last_failure_is_the_clients_unbilled() {
    let (c, s) = (fcfg(), MemoryStore::new());
    let env = Env { now_ms: 1_050, store: &s };
    let mut ex = routed(&c, &s, "sk-k", BIG);
    ex.fail_over(&c, 503, &present(), &env).unwrap();
    assert!(matches!(ex.fallback_answered(&c, 500, None, b"", &present(), &env), FallbackAnswer::Next(_)));
    let err = br#"{"error":{"message":"overloaded","type":"overloaded_error"}}"#;
    let r = match ex.fallback_answered(&c, 529, Some("application/json"), err, &present(), &env) {
        FallbackAnswer::Reply(r) => r,
        FallbackAnswer::Next(_) => panic!("no tier is left"),
    };
    assert_eq!(r.status, 502);
    assert_eq!(header(&r, MODEL_HEADER), None);
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["error"]["code"], "upstream_error");
    let o = ex.on_done(&c, &Env { now_ms: 1_200, store: &s });
    assert_eq!((o.status, o.micros), (502, 0));
    let rec: Value = serde_json::from_slice(&o.record).unwrap();
    assert_eq!(rec["served_model"], Value::Null);
    let statuses: Vec<u64> =
        rec["attempts"].as_array().unwrap().iter().map(|a| a["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses, vec![503, 500, 529]);
}

#[test]
fn a_fallback_the_caps_or_the_key_do_not_allow_is_skipped() {
    // `dear` does not fit the 1-credit cap: skipped for `mid`; the reservation is left as it was.
    let (c, s) = (fcfg(), MemoryStore::new());
    let env = Env { now_ms: 1_050, store: &s };
    let mut ex = routed(&c, &s, "sk-capped", r#"{"model":"cheap","messages":[{"role":"user","content":"hi"}]}"#);
    let held = ex.reserved.as_ref().unwrap().reserved_micros();
    let call = ex.fail_over(&c, 503, &present(), &env).unwrap();
    assert_eq!(ex.shown_model_if_other(), Some("mid"));
    assert_eq!(ex.reserved.as_ref().unwrap().reserved_micros(), held);
    // The budget the reservation assumed goes upstream, at the serving model's default.
    let body: Value = serde_json::from_slice(&call.body).unwrap();
    assert_eq!(body["max_tokens"], 16);
    // Where the cap has room, the reservation grows to the dearer fallback's estimate.
    let cheap = r#"{"model":"cheap","messages":[{"role":"user","content":"hi"}]}"#;
    let mut ex = routed(&c, &s, "sk-rich", cheap);
    let call = ex.fail_over(&c, 503, &present(), &env).unwrap();
    assert_eq!(ex.shown_model_if_other(), Some("dear"));
    let dear = c.model("dear").unwrap();
    let needed = crate::pricing::admission_micros(dear, &ex.endpoint, cheap.len(), 1.0, Some(16));
    assert_eq!(ex.reserved.as_ref().unwrap().reserved_micros(), needed);
    assert!(needed > held);
    assert_eq!(serde_json::from_slice::<Value>(&call.body).unwrap()["max_tokens"], 16);
    // A key that may not use `mid` goes to `claude`.
    let mut ex = routed(&c, &s, "sk-no-mid", BIG);
    let call = ex.fail_over(&c, 503, &present(), &env).unwrap();
    assert_eq!((call.cluster.as_str(), ex.shown_model_if_other()), ("b", Some("claude")));
}

#[test]
fn a_fallback_call_still_out_when_the_exchange_ends_is_an_attempt_without_response() {
    // The client left while `mid`'s call was out: the record lists it with status 0, nothing is
    // billed and the hold is released (settled at 0).
    let (c, s) = (fcfg(), MemoryStore::new());
    let mut ex = routed(&c, &s, "sk-capped", BIG);
    ex.fail_over(&c, 504, &present(), &Env { now_ms: 1_050, store: &s }).unwrap();
    let o = ex.on_done(&c, &Env { now_ms: 1_300, store: &s });
    assert!(o.settle_failure.is_none());
    assert_eq!((o.status, o.micros, o.complete), (0, 0, false));
    let rec: Value = serde_json::from_slice(&o.record).unwrap();
    assert_eq!(
        rec["attempts"],
        json!([{"model": "big", "cluster": "a", "status": 504, "latency_ms": 50},
               {"model": "mid", "cluster": "a", "status": 0, "latency_ms": 250}])
    );
    assert_eq!((rec["served_model"].clone(), rec["credits"].clone()), (Value::Null, json!(0.0)));
    // The whole cap is free again: a request reserving all of it is admitted.
    let all = r#"{"model":"big","max_tokens":81,"messages":[{"role":"user","content":"hi"}]}"#;
    let next = routed(&c, &s, "sk-capped", all);
    assert_eq!(next.reserved.as_ref().unwrap().reserved_micros(), 1_000_000);
}

#[test]
fn a_streamed_fallback_answer_past_max_body_bytes_is_cut_at_its_last_whole_event() {
    let (mut c, s) = (fcfg(), MemoryStore::new());
    let env = Env { now_ms: 1_050, store: &s };
    let body = r#"{"model":"big","stream":true,"max_tokens":1000,"messages":[{"role":"user","content":"hi"}]}"#;
    let mut ex = routed(&c, &s, "sk-rich", body);
    ex.fail_over(&c, 503, &present(), &env).unwrap();
    let mut sse = Vec::new();
    for i in 0..40 {
        let ev = json!({"id": "c", "object": "chat.completion.chunk", "model": "up-mid",
                        "choices": [{"index": 0, "delta": {"content": format!("tok{i} ")}, "finish_reason": null}]});
        sse.extend_from_slice(format!("data: {ev}\n\n").as_bytes());
    }
    let one = sse.len() / 40;
    // The glue reads one byte past the cap: the cap falls inside the 10th event.
    c.max_body_bytes = one * 9 + one / 2;
    let read = &sse[..c.max_body_bytes + 1];
    let r = match ex.fallback_answered(&c, 200, Some("text/event-stream"), read, &present(), &env) {
        FallbackAnswer::Reply(r) => r,
        FallbackAnswer::Next(_) => panic!("a 200 is served"),
    };
    assert_eq!(r.status, 200);
    let text = String::from_utf8(r.body).unwrap();
    assert!(text.ends_with("\n\n") && !text.contains("[DONE]"), "{text}");
    let mut got = String::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let ev: Value = serde_json::from_str(line.strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(ev["model"], "mid");
        assert_eq!(ev["choices"][0]["finish_reason"], Value::Null);
        got.push_str(ev["choices"][0]["delta"]["content"].as_str().unwrap());
    }
    assert_eq!(got, (0..9).map(|i| format!("tok{i} ")).collect::<String>());
    let o = ex.on_done(&c, &Env { now_ms: 1_200, store: &s });
    assert_eq!((o.complete, o.estimated), (false, true));
    assert_eq!(o.usage.completion_tokens, (got.len() as u64).div_ceil(4));
}
