//! Hostcalls the host refuses, made visible: a request whose key cannot be stripped from the
//! path, or whose client credential cannot be removed, or whose rewrite cannot be applied, is
//! refused with a 500 in the caller's dialect, nothing of it upstream, and counted. Before the
//! glue made its own hostcalls, any of these refusals panicked inside the SDK (the VM died).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

extern crate tollgate;

mod host;

use host::{config, Envoy, KEY, REQUEST_BODY, REQUEST_HEADERS, RESPONSE_BODY};
use proxy_wasm::types::Action;
use serde_json::Value;
use tollgate_core::errors::Code;

const CHAT: &str = r#"{"model":"gpt-x","messages":[{"role":"user","content":"hi"}]}"#;
const GEMINI: &str = r#"{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}"#;

fn internal_errors() -> Option<i64> {
    host::metric(&tollgate_core::metrics::errors(Code::InternalError))
}

/// Runs a request whose headers the host refuses to edit at `refused`, and checks it is refused
/// closed: a 500 whose body is `dialect_check`ed, nothing upstream, counted, recorded.
fn refused_closed(refused: &str, headers: &[(&str, &str)], body: &str, check: fn(&Value)) {
    // A host and VM of its own (the SDK's dispatcher is per thread).
    let refused = refused.to_string();
    let headers: Vec<(String, String)> = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let body = body.to_string();
    std::thread::spawn(move || {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        refused_closed_here(&refused, &h, &body, check)
    })
    .join()
    .unwrap();
}

fn refused_closed_here(refused: &str, headers: &[(&str, &str)], body: &str, check: fn(&Value)) {
    let mut envoy = Envoy::start(&config());
    host::with(|h| h.refuse_header_writes.push((REQUEST_HEADERS, refused.to_string())));
    let mut s = envoy.stream();
    let a = s.request_headers(headers, false);
    // The key leaves the path before anything else: its failure answers at the headers.
    assert!(refused != ":path" || s.local_reply().is_some(), "no reply at the headers");
    if s.local_reply().is_none() {
        assert_eq!(a, Action::Pause);
        s.request_body(body.as_bytes(), true);
    }
    let r = s.local_reply().unwrap_or_else(|| panic!("no local reply; refused {refused}"));
    assert_eq!(r.status, 500, "refused {refused}");
    check(&serde_json::from_slice(&r.body).unwrap());
    assert_eq!(s.upstream, None, "refused {refused}");
    assert_eq!(s.client_status(), 500);
    s.finish();
    assert_eq!(host::metric(tollgate::HOSTCALL_FAILURES), Some(1), "refused {refused}");
    assert_eq!(internal_errors(), Some(1), "refused {refused}");
    let rec: Value = serde_json::from_str(&host::billing_record().unwrap()).unwrap();
    assert_eq!(rec["status"], 500);
    assert_eq!(rec["error"], "internal_error");
    assert_eq!(rec["upstream"], Value::Null);
}

fn openai_error(v: &Value) {
    assert_eq!(v["error"]["code"], "internal_error", "{v}");
}

fn anthropic_error(v: &Value) {
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], "api_error", "{v}");
}

fn gemini_error(v: &Value) {
    assert_eq!(v["error"]["code"], 500, "{v}");
    assert_eq!(v["error"]["status"], "INTERNAL", "{v}");
}

#[test]
fn a_key_that_cannot_leave_the_path_refuses_the_request() {
    let path = format!("/v1beta/models/gpt-x:generateContent?key={KEY}");
    refused_closed(":path", &[(":method", "POST"), (":path", &path)], GEMINI, gemini_error);
}

#[test]
fn a_client_credential_that_cannot_be_removed_refuses_the_request() {
    let bearer = format!("Bearer {KEY}");
    refused_closed(
        "authorization",
        &[(":method", "POST"), (":path", "/v1/chat/completions"), ("authorization", &bearer)],
        CHAT,
        openai_error,
    );
    refused_closed(
        "x-api-key",
        &[(":method", "POST"), (":path", "/v1/messages"), ("x-api-key", KEY)],
        r#"{"model":"gpt-x","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#,
        anthropic_error,
    );
    let goog = "/v1beta/models/gpt-x:generateContent";
    refused_closed(
        "x-goog-api-key",
        &[(":method", "POST"), (":path", goog), ("x-goog-api-key", KEY)],
        GEMINI,
        gemini_error,
    );
    // A credential the client sent besides the one it authenticated with.
    refused_closed(
        "api-key",
        &[(":method", "POST"), (":path", "/v1/chat/completions"), ("authorization", &bearer), ("api-key", "sk-other")],
        CHAT,
        openai_error,
    );
}

#[test]
fn a_route_or_upstream_credential_that_cannot_be_set_refuses_the_request() {
    let bearer = format!("Bearer {KEY}");
    let h = [(":method", "POST"), (":path", "/v1/chat/completions"), ("authorization", bearer.as_str())];
    refused_closed("x-tollgate-cluster", &h, CHAT, openai_error);
}

#[test]
fn a_request_body_that_cannot_be_rewritten_refuses_the_request() {
    let mut envoy = Envoy::start(&config());
    host::with(|h| h.refuse_buffer_writes.push(REQUEST_BODY));
    let mut s = envoy.stream();
    // Anthropic front to an OpenAI model: the body must be translated.
    s.request_headers(&[(":method", "POST"), (":path", "/v1/messages"), ("x-api-key", KEY)], false);
    s.request_body(br#"{"model":"gpt-x","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#, true);
    assert_eq!(s.local_reply().map(|r| r.status), Some(500));
    assert_eq!(s.upstream, None);
    s.finish();
    assert_eq!(host::metric(tollgate::HOSTCALL_FAILURES), Some(1));
}

#[test]
fn a_response_that_cannot_be_rewritten_is_reset_not_passed_through() {
    let mut envoy = Envoy::start(&config());
    host::with(|h| h.refuse_buffer_writes.push(RESPONSE_BODY));
    let mut s = envoy.stream();
    s.request_headers(&[(":method", "POST"), (":path", "/v1/messages"), ("x-api-key", KEY)], false);
    assert_eq!(
        s.request_body(br#"{"model":"gpt-x","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#, true),
        Action::Continue
    );
    s.response_headers(&[(":status", "200"), ("content-type", "application/json")], false);
    let reply = r#"{"id":"c1","object":"chat.completion","created":1,"model":"gpt-x","choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}"#;
    assert_eq!(s.response_body(reply.as_bytes(), true), Action::Pause);
    assert_eq!(s.client_body, b"");
    assert_eq!(host::with(|h| h.closed.clone()), vec![1]);
    s.finish();
    assert_eq!(host::metric(tollgate::HOSTCALL_FAILURES), Some(1));
}

#[test]
fn a_billing_record_the_host_will_not_store_is_counted() {
    let mut envoy = Envoy::start(&config());
    host::with(|h| h.refuse_property_writes.push("tollgate.billing".to_string()));
    let mut s = envoy.stream();
    s.request_headers(
        &[(":method", "POST"), (":path", "/v1/chat/completions"), ("authorization", "Bearer sk-wrong")],
        false,
    );
    s.finish();
    assert_eq!(host::billing_record(), None);
    assert_eq!(host::metric(tollgate::HOSTCALL_FAILURES), Some(1));
    assert_eq!(host::metric(&tollgate_core::metrics::errors(Code::Unauthorized)), Some(1));
}

#[test]
fn the_counts_of_a_healthy_request_stay_zero() {
    let mut envoy = Envoy::start(&config());
    let mut s = envoy.stream();
    let bearer = format!("Bearer {KEY}");
    s.request_headers(&[(":method", "POST"), (":path", "/v1/chat/completions"), ("authorization", &bearer)], false);
    assert_eq!(s.request_body(CHAT.as_bytes(), true), Action::Continue);
    s.finish();
    assert_eq!(host::metric(tollgate::HOSTCALL_FAILURES), Some(0));
    assert_eq!(internal_errors(), Some(0));
}
