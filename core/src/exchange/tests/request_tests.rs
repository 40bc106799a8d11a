//! Exchange tests: The request side: credentials, the path's `?key=`, body shape checks, uploads.
use super::*;
use crate::exchange::upload::too_large_upload;

#[test]
fn the_key_leaves_every_path_and_goog_key_counts_only_on_gemini_paths() {
    let c = cfg();
    let s = MemoryStore::new();
    let env = Env { now_ms: 1_700_000_040_000, store: &s };
    for (method, path, stripped) in [
        ("POST", "/v1beta/models/m:countTokens?key=sk-a", "/v1beta/models/m:countTokens"),
        ("POST", "/v1beta/models/m:embedContent?alt=x&key=sk-a", "/v1beta/models/m:embedContent?alt=x"),
        ("GET", "/v1/models?key=sk-a&x=1", "/v1/models?x=1"),
        ("GET", "/v1beta/files?key=sk-a", "/v1beta/files"),
        ("DELETE", "/v1/chat/completions?key=sk-a", "/v1/chat/completions"),
        ("GET", "/nowhere?key=sk-a&key=sk-b", "/nowhere"),
        ("POST", "/v1beta/models/m:generateContent?key=sk-a", "/v1beta/models/m:generateContent"),
    ] {
        let mut ex = Exchange::new();
        let head = RequestHead { method, path, ..Default::default() };
        let _ = ex.on_request_headers(&c, &head, &env);
        assert_eq!(ex.take_path_without_key().as_deref(), Some(stripped), "{path}");
    }
    // `x-goog-api-key` alone on an OpenAI or Anthropic path: no key (401).
    for path in ["/v1/chat/completions", "/v1/messages", "/v1/models"] {
        let mut ex = Exchange::new();
        let head = RequestHead { method: "POST", path, x_goog_api_key: Some("sk-a"), ..Default::default() };
        let HeadAction::Reply(r) = ex.on_request_headers(&c, &head, &env) else { panic!("{path}: admitted") };
        assert_eq!(r.status, 401, "{path}");
        assert_eq!(ex.key, None);
    }
    let mut ex = Exchange::new();
    let head =
        RequestHead { method: "GET", path: "/v1beta/models", x_goog_api_key: Some("sk-a"), ..Default::default() };
    let HeadAction::Reply(r) = ex.on_request_headers(&c, &head, &env) else { panic!() };
    assert_eq!(r.status, 200);
    let r = ex.path_strip_failed();
    assert_eq!(r.status, 500);
}

#[test]
fn shape_refusals_come_before_any_path_and_use_no_limit() {
    let (c, s) = (cfg(), MemoryStore::new());
    let deep = |levels: usize| {
        format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":"hi","x":{}{}}}]}}"#,
            "[".repeat(levels),
            "]".repeat(levels)
        )
    };
    // The fast path's own scan skips deep values; the shape check refuses them first. Same
    // limit on every path: 61 arrays in a message (depth 64) pass, 62 do not.
    assert!(run(&c, &s, 0, "sk-a", &deep(61)).1.is_none());
    for body in [
        deep(62),
        deep(1_000_000),
        r#"{"model":"free","Model":"m","messages":[{"role":"user","content":"hi"}]}"#.to_string(),
        r#"{"model":"m","n":1,"N":4,"messages":[{"role":"user","content":"hi"}]}"#.to_string(),
    ] {
        let r = run(&c, &s, 0, "sk-a", &body).1.unwrap();
        assert_eq!(r.status, 400);
        assert!(String::from_utf8_lossy(&r.body).contains("bad_request"));
    }
    // None of them took a rate slot: two of the account's three are left.
    let statuses: Vec<_> = (0..3).map(|_| run(&c, &s, 0, "sk-a", CHAT).1.map(|r| r.status)).collect();
    assert_eq!(statuses, [None, None, Some(429)]);
}

#[test]
fn upload_limit_message_states_the_limit_in_bytes_even_under_one_mb() {
    assert_eq!(
        too_large_upload(500_000, 500_001).message,
        "The upload is larger than the limit of 500000 bytes (500001 bytes)"
    );
}

#[test]
fn an_unknown_model_is_a_404_for_anthropic_and_gemini_clients_and_a_400_for_openai_ones() {
    let (c, s) = (cfg(), MemoryStore::new());
    let env = Env { now_ms: 1_700_000_040_000, store: &s };
    let anthropic_body = r#"{"model":"nope","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#;
    let gemini_body = r#"{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}"#;
    for (path, body, x_api_key, goog, status, want) in [
        ("/v1/messages", anthropic_body, Some("sk-a"), None, 404, r#""type":"not_found_error""#),
        ("/v1beta/models/nope:generateContent", gemini_body, None, Some("sk-a"), 404, r#""status":"NOT_FOUND""#),
        (
            "/v1beta/models/nope:streamGenerateContent?alt=sse",
            gemini_body,
            None,
            Some("sk-a"),
            404,
            r#""status":"NOT_FOUND""#,
        ),
    ] {
        let mut ex = Exchange::new();
        let head = RequestHead { method: "POST", path, x_api_key, x_goog_api_key: goog, ..Default::default() };
        let HeadAction::ReadBody(_) = ex.on_request_headers(&c, &head, &env) else { panic!("{path}: refused at head") };
        let BodyAction::Reply(r) = ex.on_request_body(&c, body.as_bytes(), &env) else { panic!("{path}: admitted") };
        assert_eq!(r.status, status, "{path}");
        assert!(String::from_utf8_lossy(&r.body).contains(want), "{path}: {}", String::from_utf8_lossy(&r.body));
    }
    let (_, r) =
        run(&c, &s, 1_700_000_040_000, "sk-a", r#"{"model":"nope","messages":[{"role":"user","content":"hi"}]}"#);
    let r = r.unwrap();
    assert_eq!(r.status, 400);
    assert!(String::from_utf8_lossy(&r.body).contains(r#""code":"invalid_model""#));
}

#[test]
fn a_gemini_clients_v1_models_get_the_gemini_catalog() {
    let c = cfg();
    let body_of = |head: &RequestHead| {
        // A fresh store each time: the account's 3 requests a minute are not the point here.
        let s = MemoryStore::new();
        let env = Env { now_ms: 1_700_000_040_000, store: &s };
        let mut ex = Exchange::new();
        let HeadAction::Reply(r) = ex.on_request_headers(&c, head, &env) else { panic!("not answered") };
        (r.status, serde_json::from_slice::<Value>(&r.body).unwrap())
    };
    // `x-goog-api-key` or `?key=`: Gemini's shape.
    let goog = RequestHead { method: "GET", path: "/v1/models", x_goog_api_key: Some("sk-a"), ..Default::default() };
    let (status, v) = body_of(&goog);
    assert_eq!(status, 200);
    assert_eq!(v["models"][0]["name"], "models/m");
    assert_eq!(v.get("data"), None);
    let (status, v) = body_of(&RequestHead { method: "GET", path: "/v1/models?key=sk-a", ..Default::default() });
    assert_eq!(status, 200);
    assert_eq!(v["models"].as_array().map(Vec::len), Some(3));
    let one = RequestHead { method: "GET", path: "/v1/models/m2", x_goog_api_key: Some("sk-a"), ..Default::default() };
    let (status, v) = body_of(&one);
    assert_eq!((status, v["name"].as_str()), (200, Some("models/m2")));
    let none =
        RequestHead { method: "GET", path: "/v1/models/nope", x_goog_api_key: Some("sk-a"), ..Default::default() };
    let (status, v) = body_of(&none);
    assert_eq!((status, v["error"]["status"].as_str()), (404, Some("NOT_FOUND")));
    // A bearer key: OpenAI's list, as before.
    let (status, v) = body_of(&head_of("GET", "/v1/models", "Bearer sk-a"));
    assert_eq!((status, v["object"].as_str()), (200, Some("list")));
    assert_eq!(v["data"][0]["id"], "m");
}

#[test]
fn unknown_paths_in_the_anthropic_and_gemini_namespaces_get_errors_in_that_dialect() {
    let c = cfg();
    for (method, path) in [
        ("POST", "/v1/messages/batches"),
        ("GET", "/v1alpha/models/m"),
        ("POST", "/v1beta/models/m:unknownAction"),
        ("POST", "/v1/models/m:unknownAction"),
        ("GET", "/v1/nothing"),
    ] {
        let s = MemoryStore::new();
        let env = Env { now_ms: 1_700_000_040_000, store: &s };
        let mut ex = Exchange::new();
        let head = RequestHead { method, path, x_api_key: Some("sk-a"), ..Default::default() };
        let HeadAction::Reply(r) = ex.on_request_headers(&c, &head, &env) else { panic!("{path}: admitted") };
        let body = String::from_utf8_lossy(&r.body).to_string();
        assert_eq!(r.status, 404, "{path}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        match path {
            "/v1/messages/batches" => assert_eq!(v["error"]["type"], "not_found_error", "{body}"),
            "/v1/nothing" => assert_eq!(v["error"]["code"], "not_found", "{body}"),
            _ => assert_eq!(v["error"]["status"], "NOT_FOUND", "{path}: {body}"),
        }
    }
}

#[test]
fn a_stream_without_stream_options_gets_them_at_byte_level_and_one_with_them_is_merged() {
    let c = cfg();
    // No `stream_options`: the client's bytes go on with the member added after the brace.
    let body = r#"{"model":"m", "stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let (ex, a) = send(&c, &MemoryStore::new(), 0, "sk-a", "/v1/chat/completions", body);
    assert!(!ex.wants_usage());
    let BodyAction::Forward { edits, body: Some(b) } = &a else { panic!("no body") };
    assert_eq!(
        String::from_utf8_lossy(b),
        r#"{"stream_options":{"include_usage":true},"model":"m", "stream":true,"messages":[{"role":"user","content":"hi"}]}"#
    );
    assert!(edits.contains(&HeaderEdit::Set("content-length".into(), b.len().to_string().into())));
    // With it (asking for nothing, `null`, or other members): merged by the general path,
    // the member once, the client's other options kept.
    for opts in [r#"{"include_usage":false}"#, "null", r#"{"x":1}"#] {
        let body = format!(
            r#"{{"model":"m","stream":true,"stream_options":{opts},"messages":[{{"role":"user","content":"hi"}}]}}"#
        );
        let (ex, a) = send(&c, &MemoryStore::new(), 0, "sk-a", "/v1/chat/completions", &body);
        assert!(!ex.wants_usage());
        let BodyAction::Forward { body: Some(b), .. } = &a else { panic!("no body: {opts}") };
        assert_eq!(String::from_utf8_lossy(b).matches("stream_options").count(), 1, "{opts}");
        let up = forwarded(&a, &body);
        assert_eq!(up["stream_options"]["include_usage"], true, "{opts}");
        assert_eq!(up["stream_options"]["x"].as_u64(), (opts == r#"{"x":1}"#).then_some(1), "{opts}");
    }
    // Asked for by the client, or not a stream: the bytes go on unchanged.
    for body in [
        r#"{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#,
        r#"{"model":"m","stream":false,"messages":[{"role":"user","content":"hi"}]}"#,
    ] {
        let (_, a) = send(&c, &MemoryStore::new(), 0, "sk-a", "/v1/chat/completions", body);
        assert!(matches!(a, BodyAction::Forward { body: None, .. }), "{body}");
    }
}
