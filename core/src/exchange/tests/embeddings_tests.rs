//! `/v1/embeddings`: routed like a model of its own type, billed per input token.

use super::*;

fn emb_cfg() -> Config {
    let h = keys::to_hex(&keys::sha256(b"sk-e"));
    let j = format!(
        r#"{{"clusters":[{{"name":"c"}},{{"name":"anth","dialect":"anthropic","api_key":"sk-up"}}],
        "models":[{{"id":"emb","type":"embedding","cluster":"c","upstream_model":"up-emb","price":{{"prompt_per_1k":2}}}},
                  {{"id":"emb-a","type":"embedding","cluster":"anth"}},
                  {{"id":"m","type":"text","cluster":"c"}}],
        "accounts":[{{"id":"a","rpm":100}}],
        "keys":[{{"id":"k","sha256":"{h}","account":"a","spend_cap":1}}]}}"#
    );
    Config::parse(j.as_bytes()).unwrap()
}

const EMB: &str = r#"{"model":"emb","input":["hello world","abc"],"dimensions":8,"encoding_format":"base64"}"#;

fn path_of(a: &BodyAction) -> Option<&str> {
    match a {
        BodyAction::Forward { edits, .. } => edits.iter().find_map(|e| match e {
            HeaderEdit::Set(k, v) if k == ":path" => Some(v.as_ref()),
            _ => None,
        }),
        _ => None,
    }
}

fn refusal(a: &BodyAction) -> (u16, Value) {
    match a {
        BodyAction::Reply(r) => (r.status, serde_json::from_slice(&r.body).unwrap()),
        _ => panic!("not refused"),
    }
}

fn finish(c: &Config, s: &MemoryStore, ex: &mut Exchange, body: &[u8]) -> Outcome {
    let _ = ex.on_response_headers(200, Some("application/json"));
    assert_eq!(ex.on_response_chunk(body, false, 1 << 20), ChunkAction::Buffer);
    assert_eq!(ex.on_response_chunk(body, true, 1 << 20), ChunkAction::Pass);
    ex.on_done(c, &Env { now_ms: 1_000, store: s })
}

#[test]
fn an_embeddings_request_goes_to_the_models_cluster_under_its_upstream_name() {
    let c = emb_cfg();
    let s = MemoryStore::new();
    for path in ["/v1/embeddings", "/api/v1/embeddings"] {
        let (_, a) = send(&c, &s, 1_000, "sk-e", path, EMB);
        assert_eq!(path_of(&a), Some("/v1/embeddings"));
        let sent = forwarded(&a, EMB);
        assert_eq!(sent["model"], "up-emb");
        assert_eq!(sent["input"], json!(["hello world", "abc"]));
        assert_eq!(sent["dimensions"], 8);
        assert_eq!(sent["encoding_format"], "base64");
    }
}

#[test]
fn the_upstreams_prompt_tokens_are_billed_and_recorded() {
    let c = emb_cfg();
    let s = MemoryStore::new();
    let (mut ex, a) = send(&c, &s, 1_000, "sk-e", "/v1/embeddings", EMB);
    assert!(matches!(a, BodyAction::Forward { .. }));
    // Admission reserves the body-size bound at prompt_per_1k (2 credits per 1000 tokens).
    assert_eq!(ex.estimate_micros(), (EMB.len() as u64).div_ceil(4) * 2000);
    let body = br#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":"AAAA"}],"model":"up-emb","usage":{"prompt_tokens":5,"total_tokens":5}}"#;
    let o = finish(&c, &s, &mut ex, body);
    assert_eq!(o.usage, crate::usage::Usage { prompt_tokens: 5, ..Default::default() });
    assert!(!o.estimated);
    assert_eq!(o.micros, 10_000);
    let rec: Value = serde_json::from_slice(&o.record).unwrap();
    assert_eq!(rec["endpoint"], "embeddings");
    assert_eq!(rec["prompt_tokens"], 5);
    assert_eq!(rec["completion_tokens"], 0);
    assert_eq!(rec["estimated"], false);
    assert_eq!(rec["units"], Value::Null);
    assert_eq!(rec["upstream_model"], "up-emb");
}

#[test]
fn without_usage_the_input_estimate_is_billed_and_flagged() {
    let c = emb_cfg();
    let s = MemoryStore::new();
    let (mut ex, _) = send(&c, &s, 1_000, "sk-e", "/v1/embeddings", EMB);
    let o = finish(&c, &s, &mut ex, br#"{"object":"list","data":[]}"#);
    // "hello world" is 11 bytes (3 tokens), "abc" 3 bytes (1 token).
    assert_eq!(o.usage.prompt_tokens, 4);
    assert_eq!(o.usage.completion_tokens, 0);
    assert!(o.estimated);
    assert_eq!(o.micros, 8_000);
}

#[test]
fn other_models_and_upstreams_are_refused_in_openai_shape() {
    let c = emb_cfg();
    let s = MemoryStore::new();
    let cases = [
        ("/v1/embeddings", r#"{"model":"m","input":"x"}"#, "text model and cannot be used on the embedding endpoint"),
        ("/v1/embeddings", r#"{"model":"nope","input":"x"}"#, "does not exist"),
        ("/v1/embeddings", r#"{"model":"emb-a","input":"x"}"#, "without an OpenAI embeddings API"),
        (
            "/v1/chat/completions",
            r#"{"model":"emb","messages":[{"role":"user","content":"x"}]}"#,
            "embedding model and cannot be used on the text endpoint",
        ),
    ];
    for (path, body, says) in cases {
        let (_, a) = send(&c, &s, 1_000, "sk-e", path, body);
        let (status, v) = refusal(&a);
        assert_eq!(status, 400, "{body}");
        assert_eq!(v["error"]["param"], "model", "{body}");
        let msg = v["error"]["message"].as_str().unwrap_or("");
        assert!(msg.contains(says), "{msg}");
    }
    let (_, a) = send(&c, &s, 1_000, "sk-e", "/v1/embeddings", r#"{"model":"emb","input":""}"#);
    let (status, v) = refusal(&a);
    assert_eq!(status, 400);
    assert_eq!(v["error"]["param"], "input");
}
