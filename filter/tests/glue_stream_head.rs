//! A stream chunk the glue rewrites (the usage event dropped for a client that did not ask for
//! usage) through the fake host, which applies `proxy_set_buffer_bytes` as Envoy does: the
//! client gets the chunk less that event, with one write when the chunk's unchanged head is
//! short and two (the head back from the chunk read, then the rest appended) when it is long.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

extern crate tollgate;

mod host;
#[path = "host/scenarios.rs"]
mod host_scenarios;

use host::{config, Envoy, KEY};
use proxy_wasm::types::Action;
use serde_json::Value;

/// One OpenAI stream of `n` content events sent as a single chunk, for a client that did not
/// ask for usage: the client's bytes, the buffer writes the response took, the billed tokens.
fn one_chunk_stream(n: usize) -> (Vec<u8>, Vec<u8>, u64, Value) {
    let mut envoy = Envoy::start(&config());
    let mut s = envoy.stream();
    let auth = format!("Bearer {KEY}");
    s.request_headers(&[(":method", "POST"), (":path", "/v1/chat/completions"), ("authorization", &auth)], false);
    let body = r#"{"model":"gpt-x","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    assert_eq!(s.request_body(body.as_bytes(), true), Action::Continue);
    assert_eq!(
        s.response_headers(&[(":status", "200"), ("content-type", "text/event-stream")], false),
        Action::Continue
    );
    let events = host_scenarios::openai_stream(n);
    let usage_at = events.len() - 2;
    assert!(String::from_utf8_lossy(&events[usage_at]).contains("\"usage\""));
    let want: Vec<u8> =
        events.iter().enumerate().filter(|(i, _)| *i != usage_at).flat_map(|(_, e)| e.clone()).collect();
    host::take_calls();
    assert_eq!(s.response_body(&events.concat(), false), Action::Continue);
    let writes = host::take_calls().get("proxy_set_buffer_bytes").copied().unwrap_or(0);
    assert_eq!(s.response_body(b"", true), Action::Continue);
    s.finish();
    let rec: Value = serde_json::from_str(&host::billing_record().unwrap()).unwrap();
    (s.client_body.clone(), want, writes, rec)
}

#[test]
fn a_rewritten_chunk_with_a_long_unchanged_head_keeps_it_out_of_the_copy() {
    // 200 events: the head before the usage event is ~20 KB, past the glue's minimum.
    let (got, want, writes, rec) = one_chunk_stream(200);
    assert!(want.len() > 16 * 1024);
    assert_eq!(got, want);
    assert_eq!(writes, 2, "the head written back, then the rest appended");
    assert_eq!(rec["completion_tokens"], 200);
    assert_eq!(rec["estimated"], false);
}

#[test]
fn a_rewritten_chunk_with_a_short_head_is_replaced_in_one_write() {
    let (got, want, writes, rec) = one_chunk_stream(3);
    assert!(want.len() < 4096);
    assert_eq!(got, want);
    assert_eq!(writes, 1);
    assert_eq!(rec["completion_tokens"], 3);
}

/// The fake host's buffer writes follow Envoy's `Buffer::copyFrom` on a body: from the start,
/// `size` bytes are dropped and the data put in front; at or past the end, appended; in between,
/// refused.
#[test]
fn the_fake_host_writes_a_body_buffer_as_envoy_does() {
    let set = |start: usize, size: usize, data: &[u8]| unsafe {
        host::proxy_set_buffer_bytes(host::RESPONSE_BODY, start, size, data.as_ptr(), data.len())
    };
    let buf = || host::with(|h| h.buffers.get(&host::RESPONSE_BODY).cloned().unwrap_or_default());
    host::with(|h| h.buffers.insert(host::RESPONSE_BODY, b"abcdef".to_vec()));
    assert_eq!(set(0, 2, b"XY"), host::OK);
    assert_eq!(buf(), b"XYcdef");
    assert_eq!(set(0, 0, b"<"), host::OK);
    assert_eq!(buf(), b"<XYcdef");
    assert_eq!(set(7, 0, b">"), host::OK);
    assert_eq!(buf(), b"<XYcdef>");
    assert_eq!(set(3, 1, b"?"), host::BAD_ARGUMENT);
    assert_eq!(buf(), b"<XYcdef>");
    assert_eq!(set(0, 8, b"new"), host::OK);
    assert_eq!(buf(), b"new");
}
