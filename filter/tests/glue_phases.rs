//! The glue driven through the fake host (`host/mod.rs`) in Envoy's order: phases and pauses,
//! local replies, header edits, the response path, the billing record, metrics, shared data.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

extern crate tollgate;

mod host;
#[path = "host/scenarios.rs"]
mod host_scenarios;

use host::{config, Envoy, KEY};
use proxy_wasm::types::Action;
use serde_json::Value;

const CHAT: &str = r#"{"model":"gpt-x","messages":[{"role":"user","content":"hi"}]}"#;
const OPENAI_REPLY: &str = r#"{"id":"c1","object":"chat.completion","created":1,"model":"gpt-x","choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}"#;

fn bearer() -> String {
    format!("Bearer {KEY}")
}

#[test]
fn openai_chat_holds_headers_until_the_body_then_rewrites_and_bills() {
    let mut envoy = Envoy::start(&config());
    let mut s = envoy.stream();
    let auth = bearer();
    let a = s.request_headers(
        &[
            (":method", "POST"),
            (":path", "/v1/chat/completions"),
            (":authority", "gw"),
            ("authorization", &auth),
            ("content-type", "application/json"),
            ("x-request-id", "client-id"),
            ("user-agent", "sdk"),
            ("cookie", "session=1"),
            ("x-tollgate-cluster", "evil"),
        ],
        false,
    );
    assert_eq!(a, Action::Pause);
    assert!(s.request_held());
    assert_eq!(s.upstream, None);
    // The first half of the body: still held.
    assert_eq!(s.request_body(&CHAT.as_bytes()[..10], false), Action::Pause);
    assert_eq!(s.upstream, None);
    assert_eq!(s.request_body(&CHAT.as_bytes()[10..], true), Action::Continue);
    let up = s.upstream.clone().expect("forwarded");
    // The client's key is gone, the cluster's credential and the route are set.
    assert_eq!(up.header("authorization").as_deref(), Some("Bearer sk-upstream-oa"));
    assert_eq!(up.header("x-tollgate-cluster").as_deref(), Some("oa"));
    assert_eq!(up.header(":path").as_deref(), Some("/v1/chat/completions"));
    assert_eq!(up.header("user-agent").as_deref(), Some("sdk"));
    assert_eq!(up.header("cookie"), None);
    let rid = up.header("x-request-id").unwrap();
    assert_ne!(rid, "client-id");
    assert_eq!(rid.len(), 36);
    assert_eq!(up.body, CHAT.as_bytes());
    // The response: headers held until the body is read (an invalid body can still be a 502).
    assert_eq!(
        s.response_headers(
            &[(":status", "200"), ("content-type", "application/json"), ("content-length", "200")],
            false
        ),
        Action::Pause
    );
    assert_eq!(s.client, None);
    assert_eq!(s.response_body(&OPENAI_REPLY.as_bytes()[..50], false), Action::Pause);
    assert_eq!(s.response_body(&OPENAI_REPLY.as_bytes()[50..], true), Action::Continue);
    assert_eq!(s.client_status(), 200);
    assert_eq!(s.client_header("content-length"), None);
    assert_eq!(s.client_header("x-ratelimit-limit-requests").as_deref(), Some("1000"));
    let body: Value = serde_json::from_slice(&s.client_body).unwrap();
    assert_eq!(body["usage"]["completion_tokens"], 5);
    assert_eq!(host::billing_record(), None);
    s.finish();
    let rec: Value = serde_json::from_str(&host::billing_record().expect("record")).unwrap();
    assert_eq!(rec["request_id"], rid.as_str());
    assert_eq!(rec["status"], 200);
    assert_eq!(rec["prompt_tokens"], 12);
    assert_eq!(rec["completion_tokens"], 5);
    assert_eq!(host::metric("tollgate.hostcall_failures"), Some(0));
}

#[test]
fn a_bad_key_gets_a_local_401_in_the_callers_dialect_and_nothing_goes_upstream() {
    let mut envoy = Envoy::start(&config());
    let mut s = envoy.stream();
    let a = s.request_headers(
        &[
            (":method", "POST"),
            (":path", "/v1/messages"),
            ("x-api-key", "sk-wrong"),
            ("content-type", "application/json"),
        ],
        false,
    );
    assert_eq!(a, Action::Pause);
    let r = s.local_reply().expect("a local reply");
    assert_eq!(r.status, 401);
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "authentication_error");
    // The body Envoy still delivers is not read, nothing goes upstream; the reply passes the
    // filter's response path unchanged.
    assert_eq!(s.request_body(b"{}", true), Action::Pause);
    assert_eq!(s.upstream, None);
    assert_eq!(s.client_status(), 401);
    assert_eq!(s.client_body, r.body);
    assert_eq!(
        s.phases.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
        ["request_headers", "response_headers(local)", "response_body(local)"]
    );
    s.finish();
    let rec: Value = serde_json::from_str(&host::billing_record().unwrap()).unwrap();
    assert_eq!(rec["status"], 401);
    assert_eq!(host::metric(&tollgate_core::metrics::errors(tollgate_core::errors::Code::Unauthorized)), Some(1));
}

#[test]
fn the_rate_window_lives_in_shared_data_and_each_request_counts_once() {
    let mut envoy = Envoy::start(&config());
    let auth = bearer();
    for _ in 0..2 {
        let mut s = envoy.stream();
        s.request_headers(&[(":method", "POST"), (":path", "/v1/chat/completions"), ("authorization", &auth)], false);
        assert_eq!(s.request_body(CHAT.as_bytes(), true), Action::Continue);
        s.response_headers(&[(":status", "200"), ("content-type", "application/json")], false);
        s.response_body(OPENAI_REPLY.as_bytes(), true);
        s.finish();
        assert_eq!(s.client_status(), 200);
    }
    // Besides the configuration's digest (`cfg:*`, live configuration), only the window.
    let keys: Vec<String> = host::with(|h| h.shared.keys().filter(|k| !k.starts_with("cfg:")).cloned().collect());
    assert_eq!(keys, ["rpm:acct"]);
    // The window's minute and its count, written with compare-and-swap.
    assert_eq!(host::with(|h| h.shared["rpm:acct"].0.clone()), b"1795434420:2");
    // The third request sees the two before it.
    let mut s = envoy.stream();
    s.request_headers(&[(":method", "POST"), (":path", "/v1/chat/completions"), ("authorization", &auth)], false);
    s.request_body(CHAT.as_bytes(), true);
    s.response_headers(&[(":status", "200"), ("content-type", "application/json")], false);
    s.response_body(OPENAI_REPLY.as_bytes(), true);
    assert_eq!(s.client_header("x-ratelimit-remaining-requests").as_deref(), Some("997"));
    s.finish();
    assert_eq!(host::metric(&tollgate_core::metrics::Stat::Requests(1).name("gpt-x")), Some(3));
}

#[test]
fn an_openai_stream_passes_each_chunk_as_it_comes_and_bills_its_usage() {
    let mut envoy = Envoy::start(&config());
    let mut s = envoy.stream();
    let auth = bearer();
    s.request_headers(&[(":method", "POST"), (":path", "/v1/chat/completions"), ("authorization", &auth)], false);
    let body = r#"{"model":"gpt-x","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#;
    assert_eq!(s.request_body(body.as_bytes(), true), Action::Continue);
    assert_eq!(
        s.response_headers(&[(":status", "200"), ("content-type", "text/event-stream")], false),
        Action::Continue
    );
    assert_eq!(s.client_status(), 200);
    let events = host_scenarios::openai_stream(3);
    for (i, ev) in events.iter().enumerate() {
        assert_eq!(s.response_body(ev, false), Action::Continue);
        assert_eq!(s.client_body.len(), events[..=i].iter().map(Vec::len).sum::<usize>());
    }
    assert_eq!(s.response_body(b"", true), Action::Continue);
    s.finish();
    let rec: Value = serde_json::from_str(&host::billing_record().unwrap()).unwrap();
    assert_eq!(rec["completion_tokens"], 3);
    assert_eq!(rec["estimated"], false);
}

#[test]
fn trailers_end_the_body_are_removed_and_the_request_is_routed_then() {
    let mut envoy = Envoy::start(&config());
    let mut s = envoy.stream();
    let auth = bearer();
    s.request_headers(&[(":method", "POST"), (":path", "/v1/chat/completions"), ("authorization", &auth)], false);
    assert_eq!(s.request_body(CHAT.as_bytes(), false), Action::Pause);
    assert_eq!(s.upstream, None);
    assert_eq!(s.request_trailers(&[("x-api-key", "sk-smuggled"), ("x-trailer", "1")]), Action::Continue);
    assert_eq!(host::with(|h| h.maps.get(&host::REQUEST_TRAILERS).cloned()), Some(Vec::new()));
    let up = s.upstream.clone().expect("forwarded at the trailers");
    assert_eq!(up.header("x-tollgate-cluster").as_deref(), Some("oa"));
    assert_eq!(up.body, CHAT.as_bytes());
    s.finish();
}

#[test]
fn a_trailer_the_host_will_not_remove_refuses_the_request() {
    let mut envoy = Envoy::start(&config());
    host::with(|h| h.refuse_header_writes.push((host::REQUEST_TRAILERS, "x-api-key".to_string())));
    let mut s = envoy.stream();
    let auth = bearer();
    s.request_headers(&[(":method", "POST"), (":path", "/v1/chat/completions"), ("authorization", &auth)], false);
    s.request_body(CHAT.as_bytes(), false);
    assert_eq!(s.request_trailers(&[("x-api-key", "sk-smuggled")]), Action::Pause);
    assert_eq!(s.local_reply().map(|r| r.status), Some(500));
    assert_eq!(s.upstream, None);
    s.finish();
    assert_eq!(host::metric(tollgate::HOSTCALL_FAILURES), Some(1));
}

#[test]
fn a_body_over_the_cap_is_refused_at_the_piece_that_passes_it() {
    let cfg = config().replacen('{', r#"{"max_body_bytes":100,"#, 1);
    let mut envoy = Envoy::start(&cfg);
    let mut s = envoy.stream();
    let auth = bearer();
    s.request_headers(&[(":method", "POST"), (":path", "/v1/chat/completions"), ("authorization", &auth)], false);
    assert_eq!(s.request_body(&[b' '; 60], false), Action::Pause);
    assert_eq!(s.local_reply(), None);
    assert_eq!(s.request_body(&[b' '; 60], false), Action::Pause);
    assert_eq!(s.local_reply().map(|r| r.status), Some(413));
    assert_eq!(s.upstream, None);
    // Later pieces are not read.
    host::take_calls();
    assert_eq!(s.request_body(&[b' '; 60], true), Action::Pause);
    assert_eq!(host::take_calls().get("proxy_get_buffer_bytes"), None);
    s.finish();
}

#[test]
fn an_invalid_upstream_body_becomes_a_502_on_the_held_headers() {
    let mut envoy = Envoy::start(&config());
    let mut s = envoy.stream();
    let auth = bearer();
    s.request_headers(&[(":method", "POST"), (":path", "/v1/chat/completions"), ("authorization", &auth)], false);
    s.request_body(CHAT.as_bytes(), true);
    assert_eq!(s.response_headers(&[(":status", "200"), ("content-type", "application/json")], false), Action::Pause);
    assert_eq!(s.response_body(b"<html>oops</html>", true), Action::Continue);
    assert_eq!(s.client_status(), 502);
    assert_eq!(s.client_header("x-should-retry").as_deref(), Some("true"));
    assert_eq!(s.client_header("content-type").as_deref(), Some("application/json"));
    let body: Value = serde_json::from_slice(&s.client_body).unwrap();
    assert_eq!(body["error"]["code"], "upstream_error");
    s.finish();
    assert_eq!(host::metric(&tollgate_core::metrics::errors(tollgate_core::errors::Code::UpstreamError)), Some(1));
}

#[test]
fn a_missing_envoy_cluster_gets_a_local_502_naming_it() {
    let mut envoy = Envoy::start(&config());
    let mut s = envoy.stream();
    let auth = bearer();
    s.request_headers(&[(":method", "POST"), (":path", "/v1/chat/completions"), ("authorization", &auth)], false);
    s.request_body(CHAT.as_bytes(), true);
    host::with(|h| h.properties.insert("response.code_details".to_string(), b"cluster_not_found".to_vec()));
    assert_eq!(s.response_headers(&[(":status", "503")], true), Action::Pause);
    let r = s.local_reply().expect("a local reply");
    assert_eq!(r.status, 502);
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        body["error"]["message"],
        "The gateway is misconfigured: its cluster 'oa' is not defined in Envoy (clusters[].name must name an Envoy cluster)"
    );
    assert_eq!(r.headers.iter().find(|(k, _)| k == "x-should-retry").map(|(_, v)| v.as_str()), Some("false"));
    s.finish();
}

#[test]
fn a_cluster_header_is_set_even_when_the_client_sent_it_with_that_value_among_others() {
    let cfg = config()
        .replacen('{', r#"{"pass_request_headers":["x-org"],"#, 1)
        .replace(r#""api_key":"sk-upstream-oa"}"#, r#""api_key":"sk-upstream-oa","headers":{"x-org":"acme"}}"#);
    let mut envoy = Envoy::start(&cfg);
    let mut s = envoy.stream();
    let auth = bearer();
    s.request_headers(
        &[
            (":method", "POST"),
            (":path", "/v1/chat/completions"),
            ("authorization", &auth),
            ("x-org", "acme"),
            ("x-org", "other"),
        ],
        false,
    );
    assert_eq!(s.request_body(CHAT.as_bytes(), true), Action::Continue);
    let up = s.upstream.clone().unwrap();
    let orgs: Vec<&[u8]> = up.headers.iter().filter(|(k, _)| k == "x-org").map(|(_, v)| v.as_slice()).collect();
    assert_eq!(orgs, vec![b"acme".as_slice()]);
    s.finish();
}
