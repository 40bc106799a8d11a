//! Token counting: forwarded to an upstream of the caller's dialect, else estimated and marked;
//! counted in rpm, never billed.

use super::*;

fn count_cfg() -> Config {
    let h = keys::to_hex(&keys::sha256(b"sk-c"));
    let j = format!(
        r#"{{"clusters":[{{"name":"c"}},{{"name":"anth","dialect":"anthropic","api_key":"sk-up-a"}},
                     {{"name":"gem","dialect":"gemini","api_key":"sk-up-g"}}],
        "models":[{{"id":"m","type":"text","cluster":"c","price":{{"prompt_per_1k":1,"completion_per_1k":1}}}},
                  {{"id":"claude","type":"text","cluster":"anth","upstream_model":"up-claude","price":{{"prompt_per_1k":1}}}},
                  {{"id":"gm","type":"text","cluster":"gem","upstream_model":"up-gem"}},
                  {{"id":"emb","type":"embedding","cluster":"c"}}],
        "accounts":[{{"id":"a","rpm":3}}],
        "keys":[{{"id":"k","sha256":"{h}","account":"a","spend_cap":0.000001}}]}}"#
    );
    Config::parse(j.as_bytes()).unwrap()
}

const ANTH: &str = r#"{"model":"claude","system":"be brief","messages":[{"role":"user","content":"hello there"}]}"#;
const GEM: &str = r#"{"contents":[{"role":"user","parts":[{"text":"hello there"}]}]}"#;

fn count(c: &Config, s: &MemoryStore, path: &str, body: &str) -> (Exchange, BodyAction) {
    let env = Env { now_ms: 1_000, store: s };
    let mut ex = Exchange::new();
    let gemini = path.contains(":countTokens");
    let head = RequestHead {
        method: "POST",
        path,
        x_api_key: (!gemini).then_some("sk-c"),
        x_goog_api_key: gemini.then_some("sk-c"),
        ..Default::default()
    };
    if let HeadAction::Reply(r) = ex.on_request_headers(c, &head, &env) {
        return (ex, BodyAction::Reply(r));
    }
    let a = ex.on_request_body(c, body.as_bytes(), &env);
    (ex, a)
}

fn edit<'a>(a: &'a BodyAction, name: &str) -> Option<&'a str> {
    match a {
        BodyAction::Forward { edits, .. } => edits.iter().find_map(|e| match e {
            HeaderEdit::Set(k, v) if k == name => Some(v.as_ref()),
            _ => None,
        }),
        _ => None,
    }
}

fn reply(a: &BodyAction) -> &LocalReply {
    match a {
        BodyAction::Reply(r) => r,
        _ => panic!("not answered by the gateway"),
    }
}

fn done(c: &Config, s: &MemoryStore, ex: &mut Exchange) -> Outcome {
    ex.on_done(c, &Env { now_ms: 2_000, store: s })
}

#[test]
fn an_anthropic_count_goes_to_an_anthropic_upstream_under_its_name_and_bills_nothing() {
    let c = count_cfg();
    let s = MemoryStore::new();
    let (mut ex, a) = count(&c, &s, "/v1/messages/count_tokens", ANTH);
    assert_eq!(edit(&a, ":path"), Some("/v1/messages/count_tokens"));
    assert_eq!(edit(&a, "x-api-key"), Some("sk-up-a"));
    let sent = forwarded(&a, ANTH);
    assert_eq!(sent["model"], "up-claude");
    assert_eq!(sent.get("max_tokens"), None);
    assert_eq!(ex.estimate_micros(), 0);
    let _ = ex.on_response_headers(200, Some("application/json"));
    assert_eq!(ex.on_response_chunk(br#"{"input_tokens":9}"#, true, 1 << 20), ChunkAction::Pass);
    let o = done(&c, &s, &mut ex);
    assert_eq!((o.micros, o.usage, o.estimated), (0, crate::usage::Usage::default(), false));
    let rec: Value = serde_json::from_slice(&o.record).unwrap();
    assert_eq!((rec["endpoint"].as_str(), rec["upstream"].as_str()), (Some("count_tokens"), Some("anthropic")));
}

#[test]
fn a_gemini_count_goes_to_a_gemini_upstream_under_its_name() {
    let c = count_cfg();
    let s = MemoryStore::new();
    let (_, a) = count(&c, &s, "/v1beta/models/gm:countTokens", GEM);
    assert_eq!(edit(&a, ":path"), Some("/v1beta/models/up-gem:countTokens"));
    assert_eq!(edit(&a, "x-goog-api-key"), Some("sk-up-g"));
    let wrapped =
        r#"{"generateContentRequest":{"model":"models/gm","contents":[{"role":"user","parts":[{"text":"hi"}]}]}}"#;
    let (_, a) = count(&c, &s, "/v1/models/gm:countTokens", wrapped);
    assert_eq!(forwarded(&a, wrapped)["generateContentRequest"]["model"], "models/up-gem");
}

#[test]
fn another_upstream_dialect_gets_the_gateways_estimate_marked_as_such() {
    let c = count_cfg();
    let s = MemoryStore::new();
    let body = ANTH.replace("claude", "m");
    let (mut ex, a) = count(&c, &s, "/v1/messages/count_tokens", &body);
    let r = reply(&a);
    assert_eq!(r.status, 200);
    assert_eq!(header(r, ESTIMATED_HEADER), Some("true"));
    // The estimator's figure: "be brief" (2 tokens) and "hello there" (3), 4 tokens of framing
    // for each of the two messages (system and user), 3 for the reply.
    assert_eq!(ex.prompt_estimate(), 16);
    assert_eq!(serde_json::from_slice::<Value>(&r.body).unwrap(), json!({"input_tokens": 16}));
    let o = done(&c, &s, &mut ex);
    assert_eq!((o.status, o.micros, o.error), (200, 0, None));
    let (_, a) = count(&c, &s, "/v1beta/models/m:countTokens", GEM);
    let r = reply(&a);
    assert_eq!(header(r, ESTIMATED_HEADER), Some("true"));
    assert_eq!(serde_json::from_slice::<Value>(&r.body).unwrap(), json!({"totalTokens": 10}));
}

#[test]
fn counting_counts_in_rpm_and_refuses_in_the_callers_shape() {
    let c = count_cfg();
    let s = MemoryStore::new();
    for _ in 0..3 {
        let (_, a) = count(&c, &s, "/v1/messages/count_tokens", ANTH);
        assert!(matches!(a, BodyAction::Forward { .. }));
    }
    let (_, a) = count(&c, &s, "/v1/messages/count_tokens", ANTH);
    let r = reply(&a);
    assert_eq!(r.status, 429);
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "rate_limit_error");
}

#[test]
fn unknown_and_non_text_models_are_refused_in_the_callers_shape() {
    let c = count_cfg();
    let s = MemoryStore::new();
    let (_, a) = count(&c, &s, "/v1/messages/count_tokens", &ANTH.replace("claude", "nope"));
    let v: Value = serde_json::from_slice(&reply(&a).body).unwrap();
    // An unknown model is a 404 `not_found_error` for Anthropic clients, as from the real API.
    assert_eq!((reply(&a).status, v["error"]["type"].as_str()), (404, Some("not_found_error")));
    let (_, a) = count(&c, &s, "/v1beta/models/emb:countTokens", GEM);
    let v: Value = serde_json::from_slice(&reply(&a).body).unwrap();
    assert_eq!((reply(&a).status, v["error"]["status"].as_str()), (400, Some("INVALID_ARGUMENT")));
}
