//! A non-streamed upstream body that is not a response of its dialect is reported, never
//! passed on: `translate::response` says why, and the exchange answers 502 `upstream_error` in
//! the caller's dialect, with that reason, and records the error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use serde_json::Value;
use tollgate_core::config::Config;
use tollgate_core::dialect::Dialect;
use tollgate_core::errors::Code;
use tollgate_core::exchange::{BodyAction, ChunkAction, Env, Exchange, HeadAction, RequestHead};
use tollgate_core::keys;
use tollgate_core::limits::MemoryStore;
use tollgate_core::translate;

const FRONTS: [Dialect; 4] = [Dialect::OpenAi, Dialect::Anthropic, Dialect::Gemini, Dialect::OpenAiResponses];

/// Bodies each upstream dialect may send at status 200 that are not a response, and the reason.
fn malformed() -> Vec<(Dialect, &'static str, &'static str)> {
    vec![
        (
            Dialect::Anthropic,
            r#"{"id":"msg_1","type":"message","role":"assistant"}"#,
            "the Anthropic response has no 'content'",
        ),
        (Dialect::Anthropic, r#"[1,2]"#, "the Anthropic response is not a JSON object"),
        (Dialect::Gemini, r#"{"responseId":"r1","modelVersion":"g"}"#, "the Gemini response has no candidates"),
        (Dialect::Gemini, r#""text""#, "the Gemini response is not a JSON object"),
        (Dialect::OpenAi, r#"{"id":"chatcmpl-1","object":"chat.completion"}"#, "the OpenAI response has no 'choices'"),
        (Dialect::Anthropic, "<html>bad gateway</html>", "not JSON"),
        (
            Dialect::OpenAiResponses,
            r#"{"id":"resp_1","object":"response","status":"completed"}"#,
            "the Responses API response has no 'output'",
        ),
    ]
}

#[test]
fn translate_reports_why_an_upstream_body_is_not_a_response() {
    for (upstream, body, reason) in malformed() {
        for front in FRONTS {
            if front == Dialect::OpenAi && upstream == Dialect::OpenAi {
                continue; // the fast path: the exchange checks that body itself
            }
            let e = translate::response(front, upstream, body.as_bytes(), "c", "u").unwrap_err();
            assert_eq!(e.code, Code::UpstreamError, "{front:?} <- {upstream:?}: {body}");
            assert_eq!(e.message, format!("The generation service sent an invalid response ({reason})"));
        }
    }
}

fn cfg() -> Config {
    let h = keys::to_hex(&keys::sha256(b"sk-open"));
    let j = format!(
        r#"{{"clusters":[{{"name":"co","api_key":"sk-up"}},
                       {{"name":"ca","dialect":"anthropic","api_key":"sk-up"}},
                       {{"name":"cg","dialect":"gemini","api_key":"sk-up"}},
                       {{"name":"cr","dialect":"openai-responses","api_key":"sk-up"}}],
        "models":[{{"id":"mo","type":"text","cluster":"co","price":{{"prompt_per_1k":1,"completion_per_1k":2}}}},
                  {{"id":"ma","type":"text","cluster":"ca","price":{{"prompt_per_1k":1,"completion_per_1k":2}}}},
                  {{"id":"mg","type":"text","cluster":"cg","price":{{"prompt_per_1k":1,"completion_per_1k":2}}}},
                  {{"id":"mr","type":"text","cluster":"cr","price":{{"prompt_per_1k":1,"completion_per_1k":2}}}}],
        "accounts":[{{"id":"a","rpm":1000}}],
        "keys":[{{"id":"open","sha256":"{h}","account":"a"}}]}}"#
    );
    Config::parse(j.as_bytes()).unwrap()
}

fn exchange(c: &Config, s: &MemoryStore, front: Dialect, model: &str) -> Exchange {
    let env = Env { now_ms: 1, store: s };
    let mut ex = Exchange::new();
    let (path, body) = match front {
        Dialect::OpenAi => (
            "/v1/chat/completions".to_string(),
            format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":"hi"}}]}}"#),
        ),
        Dialect::Anthropic => (
            "/v1/messages".to_string(),
            format!(r#"{{"model":"{model}","max_tokens":10,"messages":[{{"role":"user","content":"hi"}}]}}"#),
        ),
        Dialect::Gemini => (
            format!("/v1beta/models/{model}:generateContent"),
            r#"{"contents":[{"parts":[{"text":"hi"}]}]}"#.to_string(),
        ),
        Dialect::OpenAiResponses => ("/v1/responses".to_string(), format!(r#"{{"model":"{model}","input":"hi"}}"#)),
    };
    let head = RequestHead { method: "POST", path: &path, authorization: Some("Bearer sk-open"), ..Default::default() };
    assert!(matches!(ex.on_request_headers(c, &head, &env), HeadAction::ReadBody(_)));
    assert!(matches!(ex.on_request_body(c, body.as_bytes(), &env), BodyAction::Forward { .. }));
    ex
}

/// Through the exchange: the client gets our 502 in its dialect carrying the reason (not the
/// upstream's body), and the outcome and record carry the status and `upstream_error`.
#[test]
fn a_malformed_upstream_response_is_a_502_upstream_error_in_the_callers_dialect() {
    let c = cfg();
    for (upstream, body, reason) in malformed() {
        let model = match upstream {
            Dialect::OpenAi => "mo",
            Dialect::Anthropic => "ma",
            Dialect::Gemini => "mg",
            Dialect::OpenAiResponses => "mr",
        };
        for front in FRONTS {
            if front == Dialect::OpenAi && upstream == Dialect::OpenAi {
                continue;
            }
            let s = MemoryStore::new();
            let mut ex = exchange(&c, &s, front, model);
            ex.on_response_headers(200, Some("application/json"));
            let ChunkAction::Replace(out) = ex.on_response_chunk(body.as_bytes(), true, 1 << 20) else {
                panic!("{front:?} <- {upstream:?}: {body} passed on")
            };
            assert_eq!(ex.take_status_override(), Some(502));
            let v: Value = serde_json::from_slice(&out).unwrap();
            let msg = v["error"]["message"].as_str().unwrap();
            assert_eq!(msg, format!("The generation service sent an invalid response ({reason})"), "{front:?}");
            match front {
                Dialect::OpenAi | Dialect::OpenAiResponses => assert_eq!(v["error"]["code"], "upstream_error"),
                Dialect::Anthropic => assert_eq!(v["error"]["type"], "api_error"),
                Dialect::Gemini => assert_eq!(v["error"]["code"], 502),
            }
            let o = ex.on_done(&c, &Env { now_ms: 2, store: &s });
            assert_eq!((o.status, o.error), (502, Some(Code::UpstreamError)), "{front:?} <- {upstream:?}");
            let r: Value = serde_json::from_slice(&o.record).unwrap();
            assert_eq!((r["status"].as_u64(), r["error"].as_str()), (Some(502), Some("upstream_error")));
        }
    }
}
