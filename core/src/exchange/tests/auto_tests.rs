//! A router model (`auto`) through the exchange: the chosen candidate is admitted, sent upstream
//! under its name, priced, shown in the response and its header, and recorded as `served_model`
//! beside the client's `model`.

use super::*;

fn auto_cfg() -> Config {
    let h = |k: &str| keys::to_hex(&keys::sha256(k.as_bytes()));
    let j = format!(
        r#"{{"clusters":[{{"name":"c"}},{{"name":"anth","dialect":"anthropic"}}],
        "models":[{{"id":"small","type":"text","cluster":"c","context_window":100,"default_max_tokens":10,
                    "price":{{"prompt_per_1k":1,"completion_per_1k":1}}}},
                  {{"id":"big","type":"text","cluster":"anth","upstream_model":"up-big","context_window":10000,
                    "supports":["tools","images"],"default_max_tokens":10,
                    "price":{{"prompt_per_1k":10,"completion_per_1k":10}}}},
                  {{"id":"auto","type":"text","router":{{"candidates":["small","big"]}}}},
                  {{"id":"auto-big","type":"text","router":{{"candidates":["big","small"]}}}}],
        "accounts":[{{"id":"a","rpm":100}}],
        "keys":[{{"id":"k","sha256":"{}","account":"a"}},
                {{"id":"only-auto","sha256":"{}","account":"a","allowed_models":["auto","big"]}},
                {{"id":"no-cand","sha256":"{}","account":"a","allowed_models":["auto"]}}]}}"#,
        h("sk-a"),
        h("sk-big"),
        h("sk-none")
    );
    Config::parse(j.as_bytes()).unwrap()
}

const SHORT: &str = r#"{"model":"auto","messages":[{"role":"user","content":"hi"}]}"#;

fn edit<'a>(edits: &'a [HeaderEdit], name: &str) -> Option<&'a str> {
    edits.iter().find_map(|e| match e {
        HeaderEdit::Set(k, v) if k == name => Some(v.as_ref()),
        _ => None,
    })
}

fn done(c: &Config, s: &MemoryStore, ex: &mut Exchange) -> Value {
    serde_json::from_slice(&ex.on_done(c, &Env { now_ms: 2_000, store: s }).record).unwrap()
}

#[test]
fn a_short_prompt_is_served_by_the_first_candidate_and_shown_under_its_name() {
    let (c, s) = (auto_cfg(), MemoryStore::new());
    let (mut ex, a) = send(&c, &s, 1_000, "sk-a", "/v1/chat/completions", SHORT);
    let BodyAction::Forward { edits, .. } = &a else { panic!("not forwarded: {a:?}") };
    assert_eq!(edit(edits, "x-tollgate-cluster"), Some("c"));
    assert_eq!(forwarded(&a, SHORT)["model"], "small");
    // Reserved at small's price: ceil(bytes / 4) prompt tokens and its 10 default completion tokens.
    assert_eq!(ex.estimate_micros(), (SHORT.len() as u64).div_ceil(4) * 1000 + 10 * 1000);
    let h = ex.on_response_headers(200, Some("application/json"));
    assert_eq!(edit(&h, "x-tollgate-model"), Some("small"));
    let body = br#"{"id":"x","object":"chat.completion","created":1,"model":"small","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":100,"completion_tokens":50,"total_tokens":150}}"#;
    let out = match ex.on_response_chunk(body, true, 1 << 20) {
        ChunkAction::Replace(b) => serde_json::from_slice::<Value>(&b).unwrap(),
        ChunkAction::Pass => serde_json::from_slice::<Value>(body).unwrap(),
        ChunkAction::Buffer => panic!("buffered at the end"),
    };
    assert_eq!(out["model"], "small");
    let rec = done(&c, &s, &mut ex);
    assert_eq!((rec["model"].as_str(), rec["served_model"].as_str()), (Some("auto"), Some("small")));
    assert_eq!(rec["upstream_model"], "small");
    // 150 tokens at 1 credit per 1000.
    assert_eq!(rec["credits"], 0.15);
}

#[test]
fn an_image_goes_to_the_candidate_that_accepts_images_in_its_dialect_and_price() {
    let (c, s) = (auto_cfg(), MemoryStore::new());
    let body = r#"{"model":"auto","max_tokens":5,"messages":[{"role":"user","content":[{"type":"text","text":"what"},{"type":"image_url","image_url":{"url":"https://example.com/a.png"}}]}]}"#;
    let (mut ex, a) = send(&c, &s, 1_000, "sk-a", "/v1/chat/completions", body);
    let BodyAction::Forward { edits, .. } = &a else { panic!("not forwarded: {a:?}") };
    assert_eq!((edit(edits, "x-tollgate-cluster"), edit(edits, ":path")), (Some("anth"), Some("/v1/messages")));
    assert_eq!(forwarded(&a, body)["model"], "up-big");
    assert_eq!(ex.estimate_micros(), (body.len() as u64).div_ceil(4) * 10_000 + 5 * 10_000);
    let h = ex.on_response_headers(200, Some("application/json"));
    assert_eq!(edit(&h, "x-tollgate-model"), Some("big"));
    let up = br#"{"id":"msg_1","type":"message","role":"assistant","model":"up-big","content":[{"type":"text","text":"a cat"}],"stop_reason":"end_turn","usage":{"input_tokens":20,"output_tokens":3}}"#;
    let ChunkAction::Replace(out) = ex.on_response_chunk(up, true, 1 << 20) else { panic!("not translated") };
    let out: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(out["model"], "big");
    let rec = done(&c, &s, &mut ex);
    assert_eq!((rec["model"].as_str(), rec["served_model"].as_str()), (Some("auto"), Some("big")));
    assert_eq!(rec["credits"], 0.23);
}

#[test]
fn a_request_no_candidate_fits_is_refused_in_the_callers_dialect_and_not_served() {
    let (c, s) = (auto_cfg(), MemoryStore::new());
    let long = format!(r#"{{"model":"auto","messages":[{{"role":"user","content":"{}"}}]}}"#, "word ".repeat(9000));
    let (mut ex, a) = send(&c, &s, 1_000, "sk-a", "/v1/chat/completions", &long);
    let BodyAction::Reply(r) = a else { panic!("forwarded") };
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!((r.status, v["error"]["code"].as_str()), (400, Some("context_length_exceeded")));
    assert_eq!(v["error"]["param"], "messages");
    let rec = done(&c, &s, &mut ex);
    assert_eq!(
        (rec["model"].as_str(), rec["served_model"].as_str(), rec["credits"].as_f64()),
        (Some("auto"), None, Some(0.0))
    );
    assert_eq!(rec["error"], "context_length_exceeded");

    // Anthropic's front: its error shape.
    let anth = format!(
        r#"{{"model":"auto","max_tokens":5,"messages":[{{"role":"user","content":"{}"}}]}}"#,
        "word ".repeat(9000)
    );
    let env = Env { now_ms: 1_000, store: &s };
    let mut ex = Exchange::new();
    let head = RequestHead { method: "POST", path: "/v1/messages", x_api_key: Some("sk-a"), ..Default::default() };
    assert!(matches!(ex.on_request_headers(&c, &head, &env), HeadAction::ReadBody(_)));
    let BodyAction::Reply(r) = ex.on_request_body(&c, anth.as_bytes(), &env) else { panic!("forwarded") };
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        (r.status, v["type"].as_str(), v["error"]["type"].as_str()),
        (400, Some("error"), Some("invalid_request_error"))
    );
}

#[test]
fn the_key_must_be_allowed_the_candidate_that_serves() {
    let (c, s) = (auto_cfg(), MemoryStore::new());
    // Allowed `auto` and `big` only: small is skipped.
    let (_, a) = send(&c, &s, 1_000, "sk-big", "/v1/chat/completions", SHORT);
    assert_eq!(forwarded(&a, SHORT)["model"], "up-big");
    // Allowed `auto` alone: no candidate it may use.
    let (_, a) = send(&c, &s, 1_000, "sk-none", "/v1/chat/completions", SHORT);
    let BodyAction::Reply(r) = a else { panic!("forwarded") };
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!((r.status, v["error"]["code"].as_str()), (403, Some("forbidden")));
}

#[test]
fn a_model_named_directly_gets_no_served_header_and_is_its_own_served_model() {
    let (c, s) = (auto_cfg(), MemoryStore::new());
    let body = r#"{"model":"small","messages":[{"role":"user","content":"hi"}]}"#;
    let (mut ex, a) = send(&c, &s, 1_000, "sk-a", "/v1/chat/completions", body);
    assert!(matches!(a, BodyAction::Forward { body: None, .. }), "{a:?}");
    let h = ex.on_response_headers(200, Some("application/json"));
    assert_eq!(edit(&h, "x-tollgate-model"), None);
    let rec = done(&c, &s, &mut ex);
    assert_eq!((rec["model"].as_str(), rec["served_model"].as_str()), (Some("small"), Some("small")));
    // An upstream failure served nothing.
    let (mut ex, _) = send(&c, &s, 1_000, "sk-a", "/v1/chat/completions", SHORT);
    let h = ex.on_response_headers(503, Some("application/json"));
    assert_eq!(edit(&h, "x-tollgate-model"), Some("small"));
    let _ = ex.on_response_chunk(b"{}", true, 1 << 20);
    let rec = done(&c, &s, &mut ex);
    assert_eq!((rec["model"].as_str(), rec["served_model"].as_str()), (Some("auto"), None));
}

#[test]
fn a_count_for_auto_is_the_gateways_estimate() {
    let (c, s) = (auto_cfg(), MemoryStore::new());
    let env = Env { now_ms: 1_000, store: &s };
    let mut ex = Exchange::new();
    let head = RequestHead {
        method: "POST",
        path: "/v1/messages/count_tokens",
        x_api_key: Some("sk-a"),
        ..Default::default()
    };
    assert!(matches!(ex.on_request_headers(&c, &head, &env), HeadAction::ReadBody(_)));
    let BodyAction::Reply(r) = ex.on_request_body(&c, SHORT.as_bytes(), &env) else { panic!("forwarded") };
    assert_eq!((r.status, header(&r, "x-tollgate-estimated")), (200, Some("true")));
    // Also when its first candidate's cluster speaks the caller's dialect: no candidate is chosen
    // to count with, so nothing goes upstream under the router's name.
    let mut ex = Exchange::new();
    assert!(matches!(ex.on_request_headers(&c, &head, &env), HeadAction::ReadBody(_)));
    let body = r#"{"model":"auto-big","messages":[{"role":"user","content":"hi"}]}"#;
    let BodyAction::Reply(r) = ex.on_request_body(&c, body.as_bytes(), &env) else { panic!("forwarded") };
    assert_eq!((r.status, header(&r, "x-tollgate-estimated")), (200, Some("true")));
}
