//! Exchange tests: the catalog in the Anthropic and Gemini shapes, and the Gemini stream's `alt=sse`.
use super::*;

fn catalog_cfg() -> Config {
    let h = |k: &str| keys::to_hex(&keys::sha256(k.as_bytes()));
    let j = format!(
        r#"{{"clusters":[{{"name":"c"}}],
        "models":[{{"id":"t1","type":"text","cluster":"c"}},
                  {{"id":"emb","type":"embedding","cluster":"c"}},
                  {{"id":"t2","type":"text","cluster":"c"}},
                  {{"id":"img","type":"image","cluster":"c"}},
                  {{"id":"t3","type":"text","cluster":"c"}}],
        "accounts":[{{"id":"a","rpm":1000}}],
        "keys":[{{"id":"k","sha256":"{}","account":"a"}},
                {{"id":"only","sha256":"{}","account":"a","allowed_models":["t2"]}}]}}"#,
        h("sk-a"),
        h("sk-only")
    );
    Config::parse(j.as_bytes()).unwrap()
}

/// The local reply to a GET with an Anthropic client's headers (`x-api-key` + `anthropic-version`).
fn anthropic_get(c: &Config, key: &str, path: &str) -> (u16, Value) {
    let s = MemoryStore::new();
    let env = Env { now_ms: 1_700_000_040_000, store: &s };
    let mut ex = Exchange::new();
    let head = RequestHead { method: "GET", path, x_api_key: Some(key), anthropic_version: true, ..Default::default() };
    let HeadAction::Reply(r) = ex.on_request_headers(c, &head, &env) else { panic!("{path}: not answered") };
    (r.status, serde_json::from_slice(&r.body).unwrap())
}

fn ids(v: &Value) -> Vec<&str> {
    v["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect()
}

#[test]
fn an_anthropic_clients_model_list_is_in_anthropic_shape_and_pages() {
    let c = catalog_cfg();
    let (status, v) = anthropic_get(&c, "sk-a", "/v1/models");
    assert_eq!(status, 200);
    assert_eq!(
        v,
        json!({"data": [
            {"type": "model", "id": "t1", "display_name": "t1", "created_at": "1970-01-01T00:00:00Z"},
            {"type": "model", "id": "t2", "display_name": "t2", "created_at": "1970-01-01T00:00:00Z"},
            {"type": "model", "id": "t3", "display_name": "t3", "created_at": "1970-01-01T00:00:00Z"}],
            "has_more": false, "first_id": "t1", "last_id": "t3"})
    );
    // Pages: `limit`, then `after_id` (what the SDK's auto-pagination sends), and `before_id`.
    let (_, v) = anthropic_get(&c, "sk-a", "/v1/models?limit=2");
    assert_eq!((ids(&v), &v["has_more"], &v["last_id"]), (vec!["t1", "t2"], &json!(true), &json!("t2")));
    let (_, v) = anthropic_get(&c, "sk-a", "/v1/models?limit=2&after_id=t2");
    assert_eq!((ids(&v), &v["has_more"], &v["first_id"]), (vec!["t3"], &json!(false), &json!("t3")));
    let (_, v) = anthropic_get(&c, "sk-a", "/v1/models?limit=1&before_id=t3");
    assert_eq!((ids(&v), &v["has_more"]), (vec!["t2"], &json!(true)));
    let (_, v) = anthropic_get(&c, "sk-a", "/v1/models?after_id=t3");
    assert_eq!((ids(&v), &v["has_more"], &v["first_id"]), (Vec::<&str>::new(), &json!(false), &Value::Null));
    for bad in ["0", "1001", "x", "-1"] {
        let (status, v) = anthropic_get(&c, "sk-a", &format!("/v1/models?limit={bad}"));
        assert_eq!(
            (status, v["type"].as_str(), v["error"]["type"].as_str()),
            (400, Some("error"), Some("invalid_request_error")),
            "{bad}"
        );
    }
    // A key limited to some models sees only those.
    let (_, v) = anthropic_get(&c, "sk-only", "/v1/models");
    assert_eq!(ids(&v), vec!["t2"]);
    // Without `anthropic-version`, the same key gets OpenAI's list, every type included.
    let s = MemoryStore::new();
    let env = Env { now_ms: 1_700_000_040_000, store: &s };
    let head = RequestHead { method: "GET", path: "/v1/models", x_api_key: Some("sk-a"), ..Default::default() };
    let HeadAction::Reply(r) = Exchange::new().on_request_headers(&c, &head, &env) else { panic!() };
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!((v["object"].as_str(), v["data"].as_array().map(Vec::len)), (Some("list"), Some(5)));
}

#[test]
fn an_anthropic_clients_model_is_in_anthropic_shape_and_its_errors_too() {
    let c = catalog_cfg();
    let (status, v) = anthropic_get(&c, "sk-a", "/v1/models/t2");
    assert_eq!(status, 200);
    assert_eq!(v, json!({"type": "model", "id": "t2", "display_name": "t2", "created_at": "1970-01-01T00:00:00Z"}));
    // Unknown, or not a model `/v1/messages` serves: Anthropic's 404.
    for id in ["nope", "emb", "img"] {
        let (status, v) = anthropic_get(&c, "sk-a", &format!("/v1/models/{id}"));
        assert_eq!(
            (status, v["type"].as_str(), v["error"]["type"].as_str()),
            (404, Some("error"), Some("not_found_error")),
            "{id}"
        );
    }
    let (status, v) = anthropic_get(&c, "sk-only", "/v1/models/t1");
    assert_eq!((status, v["error"]["type"].as_str()), (403, Some("permission_error")));
    let (status, v) = anthropic_get(&c, "sk-wrong", "/v1/models");
    assert_eq!((status, v["error"]["type"].as_str()), (401, Some("authentication_error")));
}

#[test]
fn the_gemini_catalog_lists_what_each_model_type_serves() {
    let c = catalog_cfg();
    let s = MemoryStore::new();
    let env = Env { now_ms: 1_700_000_040_000, store: &s };
    let head =
        RequestHead { method: "GET", path: "/v1beta/models", x_goog_api_key: Some("sk-a"), ..Default::default() };
    let HeadAction::Reply(r) = Exchange::new().on_request_headers(&c, &head, &env) else { panic!() };
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    let methods: Vec<(&str, &Value)> = v["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["name"].as_str().unwrap(), &m["supportedGenerationMethods"]))
        .collect();
    let text = json!(["generateContent", "streamGenerateContent", "countTokens"]);
    let embed = json!(["embedContent", "batchEmbedContents"]);
    assert_eq!(
        methods,
        vec![
            ("models/t1", &text),
            ("models/emb", &embed),
            ("models/t2", &text),
            ("models/img", &json!([])),
            ("models/t3", &text)
        ]
    );
}

#[test]
fn a_gemini_stream_without_alt_sse_is_refused_before_its_body() {
    let c = catalog_cfg();
    for (path, refused) in [
        ("/v1beta/models/t1:streamGenerateContent", true),
        ("/v1beta/models/t1:streamGenerateContent?alt=json", true),
        ("/v1/models/t1:streamGenerateContent?key=sk-a", true),
        ("/v1beta/models/t1:streamGenerateContent?alt=sse", false),
        ("/v1beta/models/t1:streamGenerateContent?key=sk-a&alt=sse", false),
        ("/v1beta/models/t1:generateContent", false),
    ] {
        let s = MemoryStore::new();
        let env = Env { now_ms: 1_700_000_040_000, store: &s };
        let head = RequestHead { method: "POST", path, x_goog_api_key: Some("sk-a"), ..Default::default() };
        let mut ex = Exchange::new();
        match ex.on_request_headers(&c, &head, &env) {
            HeadAction::Reply(r) => {
                assert!(refused, "{path}: refused");
                let v: Value = serde_json::from_slice(&r.body).unwrap();
                assert_eq!((r.status, v["error"]["status"].as_str()), (400, Some("INVALID_ARGUMENT")), "{path}");
                assert!(v["error"]["message"].as_str().unwrap().contains("'alt=sse'"), "{v}");
            }
            HeadAction::ReadBody(_) => assert!(!refused, "{path}: admitted"),
        }
    }
    // A bad key still gets its 401 first.
    let s = MemoryStore::new();
    let env = Env { now_ms: 1_700_000_040_000, store: &s };
    let head = RequestHead {
        method: "POST",
        path: "/v1beta/models/t1:streamGenerateContent",
        x_goog_api_key: Some("sk-wrong"),
        ..Default::default()
    };
    let HeadAction::Reply(r) = Exchange::new().on_request_headers(&c, &head, &env) else { panic!() };
    assert_eq!(r.status, 401);
}
