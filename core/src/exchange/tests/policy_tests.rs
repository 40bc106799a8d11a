//! Exchange tests: per-key policies (`allowed_models`).

use serde_json::Value;

use super::*;

fn policy_cfg(store: &str) -> Config {
    let h = |k: &str| keys::to_hex(&keys::sha256(k.as_bytes()));
    let limits = if store == "remote" { r#""limits":{"store":"remote","cluster":"limits"},"# } else { "" };
    let j = format!(
        r#"{{"clusters":[{{"name":"c"}},{{"name":"an","dialect":"anthropic"}}],{limits}
        "models":[{{"id":"m","type":"text","cluster":"c"}},
                  {{"id":"m2","type":"text","cluster":"c"}},
                  {{"id":"free","type":"text","cluster":"c","sandbox":true}},
                  {{"id":"fast-1","type":"text","cluster":"an"}}],
        "accounts":[{{"id":"a","rpm":2}},{{"id":"b","rpm":100}}],
        "keys":[{{"id":"k","sha256":"{}","account":"b"}},
                {{"id":"only","sha256":"{}","account":"a","allowed_models":["m2","fr*"]}},
                {{"id":"only2","sha256":"{}","account":"b","allowed_models":["m2","fr*"]}}]}}"#,
        h("sk-all"),
        h("sk-only"),
        h("sk-only2"),
    );
    Config::parse(j.as_bytes()).unwrap()
}

fn chat(model: &str) -> String {
    format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":"hi"}}]}}"#)
}

fn refusal(a: &BodyAction) -> (u16, Value) {
    match a {
        BodyAction::Reply(r) => (r.status, serde_json::from_slice(&r.body).unwrap()),
        other => panic!("not refused: {other:?}"),
    }
}

fn get(cfg: &Config, store: &MemoryStore, path: &str, key: &str) -> (u16, Value) {
    let auth = format!("Bearer {key}");
    let mut ex = Exchange::new();
    match ex.on_request_headers(cfg, &head_of("GET", path, &auth), &Env { now_ms: 1_000, store }) {
        HeadAction::Reply(r) => (r.status, serde_json::from_slice(&r.body).unwrap()),
        HeadAction::ReadBody(_) => panic!("a model listing is answered at the headers"),
    }
}

#[test]
fn a_key_uses_only_its_allowed_models_exact_or_by_prefix() {
    let c = policy_cfg("local");
    let store = MemoryStore::new();
    // `m` is an OpenAI model sent unchanged: the fast path must refuse it too.
    let (_, a) = send(&c, &store, 1_000, "sk-only", "/v1/chat/completions", &chat("m"));
    let (status, body) = refusal(&a);
    assert_eq!(status, 403);
    // The window as read at the headers, left as it was.
    let remaining = match &a {
        BodyAction::Reply(r) => header(r, "x-ratelimit-remaining-requests"),
        _ => None,
    };
    assert_eq!(remaining, Some("2"));
    assert_eq!(body["error"]["code"], "forbidden");
    assert_eq!(body["error"]["param"], "model");
    assert_eq!(body["error"]["message"], "This API key may not use the model 'm'");
    // A refusal counts in no limit: the account's 2 requests a minute are both still there.
    for model in ["m2", "free"] {
        let (_, a) = send(&c, &store, 1_000, "sk-only", "/v1/chat/completions", &chat(model));
        assert!(matches!(a, BodyAction::Forward { .. }), "{model}: {a:?}");
    }
    // The key without a list uses every model.
    let (_, a) = send(&c, &store, 1_000, "sk-all", "/v1/chat/completions", &chat("m"));
    assert!(matches!(a, BodyAction::Forward { .. }), "{a:?}");
    // An unknown model is still 400 invalid_model, not 403.
    let (_, a) = send(&c, &store, 61_000, "sk-only", "/v1/chat/completions", &chat("nope"));
    let (status, body) = refusal(&a);
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_model")));
}

#[test]
fn a_forbidden_model_is_refused_in_the_callers_dialect() {
    let c = policy_cfg("local");
    let store = MemoryStore::new();
    let body = r#"{"model":"fast-1","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#;
    let (_, a) = send(&c, &store, 1_000, "sk-only", "/v1/messages", body);
    let (status, v) = refusal(&a);
    assert_eq!(status, 403);
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "permission_error");
    assert_eq!(v["error"]["message"], "This API key may not use the model 'fast-1'");
    let g = r#"{"contents":[{"parts":[{"text":"hi"}]}]}"#;
    let (_, a) = send(&c, &store, 1_000, "sk-only", "/v1beta/models/m:generateContent", g);
    let (status, v) = refusal(&a);
    assert_eq!(status, 403);
    assert_eq!(v["error"]["status"], "PERMISSION_DENIED");
    assert_eq!(v["error"]["message"], "This API key may not use the model 'm'");
}

#[test]
fn the_model_lists_show_only_the_keys_models() {
    let c = policy_cfg("local");
    let store = MemoryStore::new();
    let ids = |v: &Value, list: &str, field: &str| -> Vec<String> {
        v[list].as_array().unwrap().iter().map(|m| m[field].as_str().unwrap().to_string()).collect()
    };
    let (s, v) = get(&c, &store, "/v1/models", "sk-only2");
    assert_eq!((s, ids(&v, "data", "id")), (200, vec!["m2".to_string(), "free".to_string()]));
    let (s, v) = get(&c, &store, "/v1beta/models", "sk-only2");
    assert_eq!((s, ids(&v, "models", "name")), (200, vec!["models/m2".to_string(), "models/free".to_string()]));
    let (_, v) = get(&c, &store, "/v1/models", "sk-all");
    assert_eq!(ids(&v, "data", "id").len(), 4);
    let (s, v) = get(&c, &store, "/v1/models/m", "sk-only2");
    assert_eq!((s, v["error"]["message"].as_str()), (403, Some("This API key may not use the model 'm'")));
    let (s, v) = get(&c, &store, "/v1beta/models/m", "sk-only2");
    assert_eq!((s, v["error"]["status"].as_str()), (403, Some("PERMISSION_DENIED")));
    assert_eq!(get(&c, &store, "/v1/models/m2", "sk-only2").0, 200);
}

#[test]
fn with_the_limits_service_a_forbidden_model_is_refused_before_asking() {
    let c = policy_cfg("remote");
    let store = MemoryStore::new();
    let (mut ex, a) = send(&c, &store, 1_000, "sk-only", "/v1/chat/completions", &chat("m"));
    assert_eq!(refusal(&a).0, 403);
    assert_eq!(ex.take_limits_call(), None);
    let (_, a) = send(&c, &store, 1_000, "sk-only", "/v1/chat/completions", &chat("m2"));
    assert_eq!(a, BodyAction::AskLimits);
}

#[test]
fn keys_with_the_same_list_share_one_policy() {
    let c = policy_cfg("local");
    assert_eq!(c.model_policies.len(), 1);
    assert_eq!(c.keys.iter().map(|k| k.allowed_models).collect::<Vec<_>>(), vec![0, 1, 1]);
}
