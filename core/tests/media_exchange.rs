//! Media through the pure exchange: uploads refused by their declared length before a byte is
//! read, the `model` field found at any split of the upload's start, pieces counted after
//! routing (and refused past the cap), and billing per unit.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use serde_json::Value;
use tollgate_core::config::Config;
use tollgate_core::exchange::{BodyAction, Env, Exchange, HeadAction, HeaderEdit, RequestHead, UploadAction};
use tollgate_core::keys;
use tollgate_core::limits::MemoryStore;

fn cfg() -> Config {
    let h = keys::to_hex(&keys::sha256(b"sk-test"));
    let j = format!(
        r#"{{"clusters":[{{"name":"c"}}],
        "models":[{{"id":"listen","type":"audio","task":"transcription","cluster":"c","upstream_model":"whisper-large","price":{{"per_second":0.5}}}},
                  {{"id":"voice","type":"audio","task":"speech","cluster":"c","price":{{"per_1k_chars":2}}}},
                  {{"id":"img","type":"image","cluster":"c","sizes":["512x512"],"price":{{"per_image":3}}}}],
        "accounts":[{{"id":"a","rpm":1000,"image_rpm":1}}],
        "keys":[{{"id":"k","sha256":"{h}","account":"a"}}],
        "max_upload_bytes": 1000}}"#
    );
    Config::parse(j.as_bytes()).unwrap()
}

const CT: &str = "multipart/form-data; boundary=BB";

fn form() -> Vec<u8> {
    let mut b = b"--BB\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nlisten\r\n".to_vec();
    b.extend_from_slice(b"--BB\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\n");
    b.extend_from_slice(&[0u8; 200]);
    b.extend_from_slice(b"\r\n--BB--\r\n");
    b
}

fn head<'a>(path: &'a str, len: Option<u64>, ct: &'a str) -> RequestHead<'a> {
    RequestHead {
        method: "POST",
        path,
        authorization: Some("Bearer sk-test"),
        content_type: Some(ct),
        content_length: len,
        ..Default::default()
    }
}

#[test]
fn declared_oversize_upload_is_refused_at_the_headers() {
    let (c, s) = (cfg(), MemoryStore::new());
    let env = Env { now_ms: 1, store: &s };
    let mut ex = Exchange::new();
    match ex.on_request_headers(&c, &head("/v1/audio/transcriptions", Some(1001), CT), &env) {
        HeadAction::Reply(r) => {
            assert_eq!(r.status, 413);
            assert!(String::from_utf8_lossy(&r.body).contains("request_entity_too_large"));
        }
        other => panic!("{other:?}"),
    }
    let mut ex = Exchange::new();
    match ex.on_request_headers(&c, &head("/v1/audio/transcriptions", Some(10), "application/json"), &env) {
        HeadAction::Reply(r) => assert_eq!(r.status, 400),
        other => panic!("{other:?}"),
    }
}

#[test]
fn upload_routes_at_any_split_renames_the_model_and_counts_the_rest() {
    let (c, s) = (cfg(), MemoryStore::new());
    let body = form();
    let model_end = body.windows(6).position(|w| w == b"listen").unwrap() + 6;
    for cut in 1..body.len() {
        let env = Env { now_ms: 1, store: &s };
        let mut ex = Exchange::new();
        let HeadAction::ReadBody(edits) =
            ex.on_request_headers(&c, &head("/v1/audio/transcriptions", Some(body.len() as u64), CT), &env)
        else {
            panic!()
        };
        assert!(!edits.contains(&HeaderEdit::Remove("content-length".into())), "uploads keep their length");
        // Deliver the first `cut` bytes (buffered), then the rest.
        let first = ex.on_upload_body(&c, &body[..cut], cut, false, &env);
        let (action, forwarded_at) = match first {
            UploadAction::NeedMore => {
                assert!(cut < model_end + 8, "cut {cut}: the model was there");
                (ex.on_upload_body(&c, &body, body.len(), true, &env), body.len())
            }
            a => (a, cut),
        };
        let UploadAction::Forward { edits, body: new_body } = action else { panic!("cut {cut}: {action:?}") };
        let new_body = new_body.expect("the upstream model name differs: the field is rewritten");
        let text = String::from_utf8_lossy(&new_body);
        assert!(text.contains("\r\n\r\nwhisper-large\r\n--BB"), "{text}");
        let delta = "whisper-large".len() - "listen".len();
        assert!(
            edits.contains(&HeaderEdit::Set("content-length".into(), (body.len() + delta).to_string().into())),
            "{edits:?}"
        );
        assert!(edits.contains(&HeaderEdit::Set(":path".into(), "/v1/audio/transcriptions".into())));
        if forwarded_at < body.len() {
            assert_eq!(ex.on_upload_body(&c, &[], body.len() - forwarded_at, true, &env), UploadAction::Continue);
        }
    }
}

#[test]
fn chunked_upload_past_the_cap_is_refused_while_streaming_and_billing_uses_reported_seconds() {
    let (c, s) = (cfg(), MemoryStore::new());
    let env = Env { now_ms: 1, store: &s };
    let body = form();
    let mut ex = Exchange::new();
    assert!(matches!(
        ex.on_request_headers(&c, &head("/v1/audio/transcriptions", None, CT), &env),
        HeadAction::ReadBody(_)
    ));
    assert!(matches!(ex.on_upload_body(&c, &body[..150], 150, false, &env), UploadAction::Forward { .. }));
    assert_eq!(ex.on_upload_body(&c, &[], 500, false, &env), UploadAction::Continue);
    match ex.on_upload_body(&c, &[], 400, false, &env) {
        UploadAction::Reply(r) => assert_eq!(r.status, 413),
        other => panic!("{other:?}"),
    }

    // A normal one: billed for the seconds the response reports.
    let mut ex = Exchange::new();
    assert!(matches!(
        ex.on_request_headers(&c, &head("/v1/audio/transcriptions", Some(body.len() as u64), CT), &env),
        HeadAction::ReadBody(_)
    ));
    assert!(matches!(ex.on_upload_body(&c, &body, body.len(), true, &env), UploadAction::Forward { .. }));
    ex.on_response_headers(200, Some("application/json"));
    let resp = br#"{"text":"hi","usage":{"type":"duration","seconds":7}}"#;
    ex.on_response_chunk(resp, true, 1 << 20);
    let o = ex.on_done(&c, &env);
    let r: Value = serde_json::from_slice(&o.record).unwrap();
    assert_eq!(
        (r["units"].as_f64(), r["credits"].as_f64(), r["estimated"].as_bool()),
        (Some(7.0), Some(3.5), Some(false)),
        "{r}"
    );

    // No seconds reported: an estimate from the upload's size, marked.
    let mut ex = Exchange::new();
    ex.on_request_headers(&c, &head("/v1/audio/transcriptions", Some(body.len() as u64), CT), &env);
    ex.on_upload_body(&c, &body, body.len(), true, &env);
    ex.on_response_headers(200, Some("application/json"));
    ex.on_response_chunk(br#"{"text":"hi"}"#, true, 1 << 20);
    let o = ex.on_done(&c, &env);
    assert!(o.estimated);
    assert!(o.micros > 0);
}

#[test]
fn images_bill_per_image_and_have_their_own_rate() {
    let (c, s) = (cfg(), MemoryStore::new());
    let env = Env { now_ms: 1, store: &s };
    let run = |body: &str| {
        let mut ex = Exchange::new();
        let h = RequestHead {
            method: "POST",
            path: "/v1/images/generations",
            authorization: Some("Bearer sk-test"),
            ..Default::default()
        };
        assert!(matches!(ex.on_request_headers(&c, &h, &env), HeadAction::ReadBody(_)));
        let a = ex.on_request_body(&c, body.as_bytes(), &env);
        (ex, a)
    };
    let (mut ex, a) = run(r#"{"model":"img","prompt":"a cat","n":2}"#);
    assert!(matches!(a, BodyAction::Forward { .. }), "{a:?}");
    ex.on_response_headers(200, Some("application/json"));
    assert_eq!(ex.on_response_chunk(b"{\"data\":[]}", true, 1 << 20), tollgate_core::exchange::ChunkAction::Pass);
    let o = ex.on_done(&c, &env);
    assert_eq!(o.micros, 6_000_000);
    // image_rpm is 1: the next image is refused, at the headers (before its body is read);
    // speech (the account's rpm) is not.
    let mut ex = Exchange::new();
    let h = RequestHead {
        method: "POST",
        path: "/v1/images/generations",
        authorization: Some("Bearer sk-test"),
        ..Default::default()
    };
    match ex.on_request_headers(&c, &h, &env) {
        HeadAction::Reply(r) => {
            assert_eq!(r.status, 429);
            assert!(String::from_utf8_lossy(&r.body).contains("image generations"));
        }
        other => panic!("{other:?}"),
    }
    let mut ex = Exchange::new();
    let h = RequestHead {
        method: "POST",
        path: "/v1/audio/speech",
        authorization: Some("Bearer sk-test"),
        ..Default::default()
    };
    ex.on_request_headers(&c, &h, &env);
    assert!(matches!(
        ex.on_request_body(&c, br#"{"model":"voice","input":"hello","voice":"a"}"#, &env),
        BodyAction::Forward { .. }
    ));
    ex.on_response_headers(200, Some("audio/wav"));
    let o = ex.on_done(&c, &env);
    assert_eq!(o.micros, 10_000); // 5 chars at 2 credits per 1000
}
