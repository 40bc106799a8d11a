//! The glue with `limits.store: "remote"`, driven through the fake host: the request pauses
//! while the limits service is asked (`proxy_http_call`), resumes or replies on the answer
//! (`proxy_on_http_call_response`), and its settlement is sent from the root context on a tick
//! (`proxy_on_tick`), retried until it is accepted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

extern crate tollgate;

mod host;

use host::{config, metric, with, Envoy, Stream, BAD_ARGUMENT, KEY};
use proxy_wasm::types::Action;
use serde_json::{json, Value};

const CHAT: &str = r#"{"model":"gpt-x","messages":[{"role":"user","content":"hi"}],"max_tokens":10}"#;
const OPENAI_REPLY: &str = r#"{"id":"c1","object":"chat.completion","created":1,"model":"gpt-x","choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}"#;

/// The test configuration on the limits service, with a spend cap on the account.
fn remote_config() -> String {
    config()
        .replace(
            r#""accounts":[{"id":"acct","rpm":1000}]"#,
            r#""limits":{"store":"remote","cluster":"limits","timeout_ms":40,"hold_ttl_ms":60000},
               "accounts":[{"id":"acct","rpm":1000,"spend_cap":1.0}]"#,
        )
        .to_string()
}

/// The same with a transcription model (streamed multipart uploads).
fn remote_config_with_audio() -> String {
    remote_config().replace(
        r#""models":["#,
        r#""models":[{"id":"listen-x","type":"audio","task":"transcription","cluster":"oa","price":{"per_second":0.001}},"#,
    )
}

fn start_request(envoy: &mut Envoy) -> Stream {
    let mut s = envoy.stream();
    let auth = format!("Bearer {KEY}");
    let a = s.request_headers(
        &[
            (":method", "POST"),
            (":path", "/v1/chat/completions"),
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        false,
    );
    assert_eq!(a, Action::Pause);
    s
}

fn admitted(hold: u64) -> String {
    json!({"admitted": true, "windows": [{"allowed": true, "limit": 1000, "remaining": 998, "reset_after_ms": 1500}],
           "remaining_micros": 5, "reserved_micros": hold})
    .to_string()
}

fn body(call: &host::HttpCall) -> Value {
    serde_json::from_slice(&call.body).unwrap()
}

#[test]
fn the_request_pauses_for_the_admit_and_resumes_on_the_answer() {
    let mut envoy = Envoy::start(&remote_config());
    assert_eq!(with(|h| h.tick_period_ms), Some(50));
    let mut s = start_request(&mut envoy);
    assert_eq!(s.request_body(CHAT.as_bytes(), true), Action::Pause);
    assert!(s.upstream.is_none());
    let calls = with(|h| h.http_calls.clone());
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call.cluster, "limits");
    assert_eq!(call.timeout_ms, 40);
    assert_eq!(call.header(":method").as_deref(), Some("POST"));
    assert_eq!(call.header(":path").as_deref(), Some("/v1/admit"));
    let admit = body(call);
    assert_eq!(admit["windows"][0]["key"], json!("rpm:acct"));
    assert_eq!(admit["caps"][0]["key"], json!("spend:acct:acct"));
    let rid = admit["reservation"].as_str().unwrap().to_string();
    let hold = admit["hold_micros"].as_u64().unwrap();
    assert!(hold > 0);

    let answered = envoy.answer_call(Some((200, &admitted(hold))));
    assert_eq!(answered.token, call.token);
    s.after_call();
    let up = s.upstream.clone().expect("resumed upstream");
    assert_eq!(up.header("x-tollgate-cluster").as_deref(), Some("oa"));
    assert_eq!(up.header("x-request-id").as_deref(), Some(rid.as_str()));

    s.response_headers(&[(":status", "200"), ("content-type", "application/json")], false);
    s.response_body(OPENAI_REPLY.as_bytes(), true);
    assert_eq!(s.client_header("x-ratelimit-remaining-requests").as_deref(), Some("998"));
    s.finish();
    // The settlement waits for the root context's tick: nothing sent from the stream.
    assert!(with(|h| h.http_calls.is_empty()));
    let record: Value = serde_json::from_str(&host::billing_record().unwrap()).unwrap();
    assert_eq!(record["limits"], json!("remote"));
    envoy.tick();
    let calls = with(|h| h.http_calls.clone());
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].header(":path").as_deref(), Some("/v1/settle"));
    let settle = body(&calls[0]);
    // 12 prompt + 5 completion tokens at 1 and 2 credits per 1000.
    assert_eq!(settle, json!({"reservation": rid, "caps": ["spend:acct:acct"], "actual_micros": 22_000}));
    envoy.answer_call(Some((200, r#"{"settled":true}"#)));
    assert_eq!(metric("tollgate.limits.remote_settlements"), Some(1));
    envoy.tick();
    assert!(with(|h| h.http_calls.is_empty()), "settled once");
}

#[test]
fn a_failed_settlement_is_sent_again_on_the_next_tick() {
    let mut envoy = Envoy::start(&remote_config());
    let mut s = start_request(&mut envoy);
    s.request_body(CHAT.as_bytes(), true);
    let hold = body(&with(|h| h.http_calls[0].clone()))["hold_micros"].as_u64().unwrap();
    envoy.answer_call(Some((200, &admitted(hold))));
    s.after_call();
    s.response_headers(&[(":status", "200"), ("content-type", "application/json")], false);
    s.response_body(OPENAI_REPLY.as_bytes(), true);
    s.finish();
    envoy.tick();
    let first = envoy.answer_call(None);
    envoy.tick();
    let second = envoy.answer_call(Some((503, r#"{"error":"redis"}"#)));
    envoy.tick();
    let third = envoy.answer_call(Some((200, r#"{"settled":false}"#)));
    assert_eq!((first.body.clone(), second.body.clone()), (third.body.clone(), third.body.clone()));
    assert_eq!(metric("tollgate.limits.remote_settle_retries"), Some(2));
    assert_eq!(metric("tollgate.limits.remote_settlements"), Some(3));
    envoy.tick();
    assert!(with(|h| h.http_calls.is_empty()));
}

#[test]
fn a_failed_admit_refuses_the_capped_request_and_releases_its_hold() {
    let mut envoy = Envoy::start(&remote_config());
    let mut s = start_request(&mut envoy);
    s.request_body(CHAT.as_bytes(), true);
    envoy.answer_call(None);
    s.after_call();
    assert_eq!(s.client_status(), 503);
    assert!(s.upstream.is_none());
    let err: Value = serde_json::from_slice(&s.client_body).unwrap();
    assert_eq!(err["error"]["code"], json!("service_unavailable"));
    s.finish();
    assert_eq!(metric("tollgate.limits.remote_failures"), Some(1));
    envoy.tick();
    let settle = body(&with(|h| h.http_calls[0].clone()));
    assert_eq!(settle["actual_micros"], json!(0));
}

#[test]
fn a_call_the_host_refuses_is_a_failed_call_answered_at_once() {
    let mut envoy = Envoy::start(&remote_config());
    with(|h| h.refuse_http_calls = Some(BAD_ARGUMENT));
    let mut s = start_request(&mut envoy);
    s.request_body(CHAT.as_bytes(), true);
    assert_eq!(s.client_status(), 503);
    assert!(s.upstream.is_none());
    s.finish();
    assert_eq!(metric("tollgate.limits.remote_failures"), Some(1));
}

#[test]
fn the_local_store_sets_no_tick_and_calls_nothing() {
    let mut envoy = Envoy::start(&config());
    assert_eq!(with(|h| h.tick_period_ms), None);
    let mut s = envoy.stream();
    let auth = format!("Bearer {KEY}");
    s.request_headers(&[(":method", "POST"), (":path", "/v1/chat/completions"), ("authorization", &auth)], false);
    assert_eq!(s.request_body(CHAT.as_bytes(), true), Action::Continue);
    s.finish();
    envoy.tick();
    assert!(with(|h| h.http_calls.is_empty()));
}

#[test]
fn an_upload_that_ends_while_the_service_is_asked_is_asked_once() {
    let mut envoy = Envoy::start(&remote_config_with_audio());
    let mut s = envoy.stream();
    let auth = format!("Bearer {KEY}");
    let ct = "multipart/form-data; boundary=XyZ";
    s.request_headers(
        &[(":method", "POST"), (":path", "/v1/audio/transcriptions"), ("authorization", &auth), ("content-type", ct)],
        false,
    );
    let head = "--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nlisten-x\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\n";
    assert_eq!(s.request_body(head.as_bytes(), false), Action::Pause);
    assert_eq!(with(|h| h.http_calls.len()), 1);
    // No declared length: the hold covers the largest upload.
    let admit = body(&with(|h| h.http_calls[0].clone()));
    assert!(admit["hold_micros"].as_u64().unwrap() > 0);
    // More of the body, then trailers, while the answer is awaited: held, not asked again.
    assert_eq!(s.request_body(b"RIFFdata", false), Action::Pause);
    assert_eq!(s.request_trailers(&[("x-trailer", "1")]), Action::Pause);
    assert_eq!(with(|h| h.http_calls.len()), 1);
    let hold = admit["hold_micros"].as_u64().unwrap();
    envoy.answer_call(Some((200, &admitted(hold))));
    s.after_call();
    let up = s.upstream.clone().expect("resumed upstream");
    assert!(up.body.ends_with(b"RIFFdata"));
    assert!(with(|h| h.http_calls.is_empty()));
}
