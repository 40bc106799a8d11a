//! Upstream statuses through the pure exchange: the mapping table (400/422 -> 400, 413, 429,
//! 401/403/404/5xx -> 502), the headers the client gets with it, and the record (0 credits).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use serde_json::Value;
use tollgate_core::config::Config;
use tollgate_core::exchange::{BodyAction, ChunkAction, Env, Exchange, HeadAction, HeaderEdit, RequestHead};
use tollgate_core::keys;
use tollgate_core::limits::MemoryStore;

fn cfg() -> Config {
    let h = keys::to_hex(&keys::sha256(b"sk-test"));
    let j = format!(
        r#"{{"clusters":[{{"name":"c"}}],
        "models":[{{"id":"m","type":"text","cluster":"c","price":{{"prompt_per_1k":1,"completion_per_1k":2}}}}],
        "accounts":[{{"id":"a","rpm":1000}}],
        "keys":[{{"id":"k","sha256":"{h}","account":"a"}}]}}"#
    );
    Config::parse(j.as_bytes()).unwrap()
}

#[test]
fn every_upstream_status_maps_to_its_status_code_and_retry_advice() {
    let (c, s) = (cfg(), MemoryStore::new());
    let env = Env { now_ms: 1_000, store: &s };
    let table: [(u16, u16, &str, &str); 11] = [
        (400, 400, "bad_request", "false"),
        (422, 400, "bad_request", "false"),
        (413, 413, "request_entity_too_large", "false"),
        (429, 429, "rate_limit_exceeded", "true"),
        (401, 502, "upstream_error", "true"),
        (403, 502, "upstream_error", "true"),
        (404, 502, "upstream_error", "true"),
        (500, 502, "upstream_error", "true"),
        (502, 502, "upstream_error", "true"),
        (503, 502, "upstream_error", "true"),
        (529, 502, "upstream_error", "true"),
    ];
    for (upstream, status, code, retry) in table {
        let mut ex = Exchange::new();
        let head = RequestHead {
            method: "POST",
            path: "/v1/chat/completions",
            authorization: Some("Bearer sk-test"),
            content_type: Some("application/json"),
            ..Default::default()
        };
        assert!(matches!(ex.on_request_headers(&c, &head, &env), HeadAction::ReadBody(_)));
        let body = br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
        assert!(matches!(ex.on_request_body(&c, body, &env), BodyAction::Forward { .. }));
        let edits = ex.on_response_headers(upstream, Some("application/json"));
        assert!(edits.contains(&HeaderEdit::Set(":status".into(), status.to_string().into())), "{upstream}: {edits:?}");
        assert!(edits.contains(&HeaderEdit::Set("x-should-retry".into(), retry.into())), "{upstream}: {edits:?}");
        let upstream_body = format!(r#"{{"error":{{"message":"upstream says {upstream}","type":"x"}}}}"#);
        let ChunkAction::Replace(out) = ex.on_response_chunk(upstream_body.as_bytes(), true, 1 << 20) else {
            panic!("{upstream}: the error body is replaced")
        };
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["error"]["code"], code, "{upstream}: {v}");
        let rec: Value = serde_json::from_slice(&ex.on_done(&c, &env).record).unwrap();
        assert_eq!((rec["status"].as_u64(), rec["error"].as_str()), (Some(u64::from(status)), Some(code)), "{rec}");
        assert_eq!(rec["credits"].as_f64(), Some(0.0), "{rec}");
    }
}
