//! Billing integrity on the response side, through the pure exchange: a buffered response past
//! `max_body_bytes` is refused whole and billed on a flagged estimate; a chunked transcription
//! upload keeps its spend reservation growing with the counted bytes (402 mid-upload once it no
//! longer fits) and bills estimates as estimates; upstream error text never relays the cluster's
//! own credentials.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use serde_json::Value;
use tollgate_core::config::Config;
use tollgate_core::exchange::{
    BodyAction, ChunkAction, Env, Exchange, HeadAction, LocalReply, RequestHead, UploadAction,
};
use tollgate_core::keys;
use tollgate_core::limits::{self, MemoryStore};

const UP_KEY: &str = "sk-upstream-SECRET-0123456789";
const UP_ORG: &str = "org-SECRET-header-value";

fn cfg() -> Config {
    let h = |k: &str| keys::to_hex(&keys::sha256(k.as_bytes()));
    let j = format!(
        r#"{{"clusters":[{{"name":"c","api_key":"{UP_KEY}","headers":{{"x-org":"{UP_ORG}"}}}},
                       {{"name":"ca","dialect":"anthropic","api_key":"{UP_KEY}"}}],
        "models":[{{"id":"m","type":"text","cluster":"c","price":{{"prompt_per_1k":1,"completion_per_1k":2}}}},
                  {{"id":"claude","type":"text","cluster":"ca","price":{{"prompt_per_1k":1,"completion_per_1k":2}}}},
                  {{"id":"listen","type":"audio","task":"transcription","cluster":"c","price":{{"per_second":0.5}}}}],
        "accounts":[{{"id":"a","rpm":1000}}],
        "keys":[{{"id":"capped","sha256":"{}","account":"a","spend_cap":5}},
                {{"id":"open","sha256":"{}","account":"a"}}],
        "max_body_bytes": 256}}"#,
        h("sk-capped"),
        h("sk-open")
    );
    Config::parse(j.as_bytes()).unwrap()
}

fn chat(c: &Config, s: &MemoryStore, front: &str, key: &str, model: &str, stream: bool) -> Exchange {
    let env = Env { now_ms: 1, store: s };
    let mut ex = Exchange::new();
    let auth = format!("Bearer {key}");
    let (path, body) = match front {
        "openai" => (
            "/v1/chat/completions",
            format!(
                r#"{{"model":"{model}","stream":{stream},"stream_options":{{"include_usage":true}},"messages":[{{"role":"user","content":"hello there"}}]}}"#
            ),
        ),
        "anthropic" => (
            "/v1/messages",
            format!(
                r#"{{"model":"{model}","max_tokens":100,"stream":{stream},"messages":[{{"role":"user","content":"hello there"}}]}}"#
            ),
        ),
        _ => (
            if stream {
                "/v1beta/models/MODEL:streamGenerateContent?alt=sse"
            } else {
                "/v1beta/models/MODEL:generateContent"
            },
            r#"{"contents":[{"parts":[{"text":"hello there"}]}]}"#.to_string(),
        ),
    };
    let path = path.replace("MODEL", model);
    let head = RequestHead { method: "POST", path: &path, authorization: Some(&auth), ..Default::default() };
    assert!(matches!(ex.on_request_headers(c, &head, &env), HeadAction::ReadBody(_)));
    let a = ex.on_request_body(c, body.as_bytes(), &env);
    assert!(matches!(a, BodyAction::Forward { .. }), "{a:?}");
    ex
}

fn error_message(front: &str, body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).unwrap();
    match front {
        "anthropic" => {
            assert_eq!(v["type"], "error");
            assert_eq!(v["error"]["type"], "api_error", "{v}");
        }
        "openai" => assert_eq!(v["error"]["code"], "upstream_error", "{v}"),
        _ => assert_eq!(v["error"]["status"], "UNAVAILABLE", "{v}"),
    }
    v["error"]["message"].as_str().unwrap().to_string()
}

fn header<'a>(r: &'a LocalReply, name: &str) -> Option<&'a str> {
    r.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn record(ex: &mut Exchange, c: &Config, s: &MemoryStore) -> (tollgate_core::exchange::Outcome, Value) {
    let o = ex.on_done(c, &Env { now_ms: 2, store: s });
    let r: Value = serde_json::from_slice(&o.record).unwrap();
    (o, r)
}

/// The oversized response as Envoy delivers it: headers held, the body buffered by the host and
/// only its growing size handed over; past 256 bytes a local 502 in the caller's dialect, and the
/// record bills the prompt estimate plus the 256 bytes read at 4 bytes a token.
#[test]
fn oversized_buffered_response_is_refused_before_any_byte_and_billed_on_an_estimate() {
    for front in ["openai", "anthropic", "gemini"] {
        let (c, s) = (cfg(), MemoryStore::new());
        let mut ex = chat(&c, &s, front, "sk-capped", "m", false);
        let reserved = limits::spend_state(&s, "spend:key:capped").unwrap().1;
        assert!(reserved > 0);
        ex.on_response_headers(200, Some("application/json"));
        assert!(ex.hold_response_headers() && ex.buffers_response());
        assert_eq!(ex.on_response_buffered(100, 256), ChunkAction::Buffer);
        assert_eq!(ex.on_response_buffered(256, 256), ChunkAction::Buffer);
        assert!(ex.take_response_reply().is_none());
        let ChunkAction::Replace(body) = ex.on_response_buffered(300, 256) else { panic!("{front}: not refused") };
        let reply = ex.take_response_reply().expect("a local reply from the response path");
        assert_eq!(reply.status, 502);
        assert_eq!(reply.body, body);
        assert_eq!(header(&reply, "x-should-retry"), Some("false"), "a retry would be billed again");
        assert!(error_message(front, &reply.body).contains("larger than 256 bytes"), "{front}");
        // Anything Envoy still hands over is dropped.
        assert_eq!(ex.on_response_buffered(400, 256), ChunkAction::Replace(Vec::new()));
        assert!(ex.take_response_reply().is_none(), "one reply");
        let prompt = ex.prompt_estimate();
        let (o, r) = record(&mut ex, &c, &s);
        assert_eq!((r["status"].as_u64(), r["error"].as_str()), (Some(502), Some("upstream_error")), "{front}");
        assert_eq!(r["estimated"], true);
        assert_eq!(r["complete"], false);
        assert_eq!(o.usage.prompt_tokens, prompt);
        assert_eq!(o.usage.completion_tokens, 64, "256 bytes read / 4");
        let want = limits::credits_to_micros(prompt as f64 * 1.0 / 1000.0 + 64.0 * 2.0 / 1000.0);
        assert_eq!(o.micros, want);
        assert_eq!(
            limits::spend_state(&s, "spend:key:capped").unwrap(),
            (want, 0),
            "settled: spent, nothing left reserved"
        );
    }
}

/// The same in the host-independent form (pieces, as the fuzz target feeds them) and when the
/// final piece alone is over the cap: the client's bytes are our error and nothing else.
#[test]
fn oversized_response_pieces_and_whole_body_give_only_the_error() {
    let (c, s) = (cfg(), MemoryStore::new());
    let upstream = format!(
        r#"{{"id":"x","choices":[{{"index":0,"message":{{"role":"assistant","content":"{}"}}}}]}}"#,
        "y".repeat(400)
    );
    let mut ex = chat(&c, &s, "anthropic", "sk-open", "m", false);
    ex.on_response_headers(200, Some("application/json"));
    let mut client = Vec::new();
    let pieces: Vec<&[u8]> = upstream.as_bytes().chunks(100).collect();
    for (i, p) in pieces.iter().enumerate() {
        let last = i + 1 == pieces.len();
        match ex.on_response_chunk(if last { upstream.as_bytes() } else { p }, last, 256) {
            ChunkAction::Replace(b) => client.extend_from_slice(&b),
            ChunkAction::Buffer => {}
            ChunkAction::Pass => panic!("piece {i} passed"),
        }
    }
    assert!(error_message("anthropic", &client).contains("larger than 256 bytes"));
    assert!(!String::from_utf8_lossy(&client).contains("yyyy"));

    let mut ex = chat(&c, &s, "openai", "sk-open", "m", false);
    ex.on_response_headers(200, Some("application/json"));
    let ChunkAction::Replace(b) = ex.on_response_chunk(upstream.as_bytes(), true, 256) else { panic!() };
    assert_eq!(ex.take_status_override(), Some(502));
    assert!(error_message("openai", &b).contains("larger than 256 bytes"));
    let (o, _) = record(&mut ex, &c, &s);
    assert!(o.estimated && o.usage.completion_tokens == 64 && o.status == 502);
}

const CT: &str = "multipart/form-data; boundary=BB";
const MODEL_PART: &[u8] =
    b"--BB\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nlisten\r\n--BB\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\n";

fn upload(c: &Config, s: &MemoryStore, key: &str) -> Exchange {
    let env = Env { now_ms: 1, store: s };
    let mut ex = Exchange::new();
    let auth = format!("Bearer {key}");
    let head = RequestHead {
        method: "POST",
        path: "/v1/audio/transcriptions",
        authorization: Some(&auth),
        content_type: Some(CT),
        ..Default::default()
    };
    assert!(matches!(ex.on_request_headers(c, &head, &env), HeadAction::ReadBody(_)));
    // Chunked: the first piece ends right after the model field (admitted on 1 s of audio).
    let a = ex.on_upload_body(c, MODEL_PART, MODEL_PART.len(), false, &env);
    assert!(matches!(a, UploadAction::Forward { .. }), "{a:?}");
    ex
}

/// A 5-credit cap at 0.5 credits a second holds 10 s (160,000 bytes at 16 kB a second): the
/// reservation follows the counted upload up to exactly that, and the next byte is a 402.
#[test]
fn chunked_upload_reservation_grows_with_the_counted_bytes_then_402() {
    let (c, s) = (cfg(), MemoryStore::new());
    let env = Env { now_ms: 1, store: &s };
    let mut ex = upload(&c, &s, "sk-capped");
    assert_eq!(limits::spend_state(&s, "spend:key:capped").unwrap(), (0, 500_000), "1 s reserved at admission");
    let first = MODEL_PART.len() as u64;
    let mut counted = first;
    while counted < 160_000 {
        let n = 7_000.min(160_000 - counted);
        counted += n;
        assert_eq!(ex.on_upload_body(&c, &[], n as usize, false, &env), UploadAction::Continue, "at {counted} bytes");
        let want = (counted.div_ceil(16_000)) * 500_000;
        assert_eq!(limits::spend_state(&s, "spend:key:capped").unwrap(), (0, want), "at {counted} bytes");
    }
    match ex.on_upload_body(&c, &[], 1, false, &env) {
        UploadAction::Reply(r) => {
            assert_eq!(r.status, 402);
            assert!(String::from_utf8_lossy(&r.body).contains("insufficient_funds"));
        }
        other => panic!("{other:?}"),
    }
    let (o, r) = record(&mut ex, &c, &s);
    assert_eq!((o.status, o.micros), (402, 0));
    assert_eq!(r["error"], "insufficient_funds");
    assert_eq!(limits::spend_state(&s, "spend:key:capped").unwrap(), (0, 0), "the grown reservation is released");
}

/// A plain-text transcription (no seconds reported) bills the estimate from the counted upload,
/// marked as an estimate; a JSON one with seconds bills them, not estimated.
#[test]
fn transcription_without_reported_seconds_bills_the_counted_size_as_an_estimate() {
    let (c, s) = (cfg(), MemoryStore::new());
    let env = Env { now_ms: 1, store: &s };
    let mut ex = upload(&c, &s, "sk-open");
    for _ in 0..10 {
        assert_eq!(ex.on_upload_body(&c, &[], 100_000, false, &env), UploadAction::Continue);
    }
    assert_eq!(ex.on_upload_body(&c, &[], 10, true, &env), UploadAction::Continue);
    let counted = MODEL_PART.len() as u64 + 1_000_010;
    ex.on_response_headers(200, Some("text/plain; charset=utf-8"));
    assert_eq!(ex.on_response_chunk(b"some words", true, 256), ChunkAction::Pass);
    let (o, r) = record(&mut ex, &c, &s);
    let secs = counted.div_ceil(16_000);
    assert_eq!(r["units"].as_f64(), Some(secs as f64));
    assert_eq!(r["estimated"], true);
    assert_eq!(o.micros, secs * 500_000);

    let mut ex = upload(&c, &s, "sk-open");
    assert_eq!(ex.on_upload_body(&c, &[], 100_000, true, &env), UploadAction::Continue);
    ex.on_response_headers(200, Some("application/json"));
    assert_eq!(
        ex.on_response_chunk(br#"{"text":"a","usage":{"type":"duration","seconds":3}}"#, true, 256),
        ChunkAction::Pass
    );
    let (o, r) = record(&mut ex, &c, &s);
    assert_eq!((r["units"].as_f64(), r["estimated"].as_bool(), o.micros), (Some(3.0), Some(false), 1_500_000));
}

/// Upstream error text never carries the cluster's credential (`api_key`) or its configured
/// header values; a 401/403 body is not relayed at all.
#[test]
fn upstream_error_text_never_relays_the_clusters_credentials() {
    let (c, s) = (cfg(), MemoryStore::new());
    let quote = format!("Incorrect API key provided: Bearer {UP_KEY} (x-org: {UP_ORG})");
    for front in ["openai", "anthropic", "gemini"] {
        for status in [401u16, 403, 400, 404, 422, 500, 503] {
            let mut ex = chat(&c, &s, front, "sk-open", "m", false);
            ex.on_response_headers(status, Some("application/json"));
            let body = serde_json::to_vec(&serde_json::json!({"error": {"message": quote}})).unwrap();
            let ChunkAction::Replace(out) = ex.on_response_chunk(&body, true, 1 << 20) else { panic!() };
            let text = String::from_utf8_lossy(&out);
            assert!(!text.contains("SECRET"), "{front} {status}: {text}");
            let v: Value = serde_json::from_slice(&out).unwrap();
            let msg = v["error"]["message"].as_str().unwrap();
            if status == 401 || status == 403 {
                assert!(msg.contains("refused the gateway's credential") && !msg.contains("Incorrect"), "{msg}");
            } else {
                assert!(msg.contains("Incorrect API key provided: Bearer [redacted] (x-org: [redacted])"), "{msg}");
            }
        }
        // Plain text, and a credential straddling the 500-character cut: no prefix of it survives.
        for pad in [0usize, 480, 490, 499] {
            let mut ex = chat(&c, &s, front, "sk-open", "m", false);
            ex.on_response_headers(500, Some("text/plain"));
            let body = format!("{}{UP_KEY} tail", "p".repeat(pad));
            let ChunkAction::Replace(out) = ex.on_response_chunk(body.as_bytes(), true, 1 << 20) else { panic!() };
            let text = String::from_utf8_lossy(&out);
            assert!(!text.contains("sk-upstream"), "{front} pad {pad}: {text}");
        }
    }
}

/// In a stream, an upstream error event's text is redacted too: relayed as it came on the OpenAI
/// fast path, translated into the client's error event otherwise.
#[test]
fn streamed_upstream_error_events_are_redacted() {
    let (c, s) = (cfg(), MemoryStore::new());
    let msg = format!("upstream auth failed for {UP_KEY}");
    let openai_err = format!("data: {}\n\n", serde_json::json!({"error": {"message": msg}}));
    let anthropic_err = format!(
        "event: error\ndata: {}\n\n",
        serde_json::json!({"type": "error", "error": {"type": "api_error", "message": msg}})
    );
    let cases = [
        ("openai", "m", &openai_err),
        ("openai", "claude", &anthropic_err),
        ("anthropic", "claude", &anthropic_err),
        ("gemini", "claude", &anthropic_err),
    ];
    for (front, model, stream) in cases {
        for cut in 0..=stream.len() {
            let mut ex = chat(&c, &s, front, "sk-open", model, true);
            ex.on_response_headers(200, Some("text/event-stream"));
            let mut client = Vec::new();
            for (piece, last) in [(&stream.as_bytes()[..cut], false), (&stream.as_bytes()[cut..], true)] {
                match ex.on_response_chunk(piece, last, 1 << 20) {
                    ChunkAction::Pass => client.extend_from_slice(piece),
                    ChunkAction::Replace(b) => client.extend_from_slice(&b),
                    ChunkAction::Buffer => panic!("a stream is never buffered"),
                }
            }
            let text = String::from_utf8_lossy(&client);
            assert!(!text.contains("SECRET"), "{front}/{model} cut {cut}: {text}");
            assert!(text.contains("[redacted]"), "{front}/{model} cut {cut}: the error is still relayed: {text}");
        }
    }
}

/// A credential with characters JSON escapes (`"`, `\`) is redacted from a relayed stream error
/// event too, where it appears escaped.
#[test]
fn a_credential_that_json_escapes_is_redacted_in_stream_events() {
    let h = keys::to_hex(&keys::sha256(b"sk-open"));
    let secret = r#"sk-"quoted\secret"#;
    let cfg = serde_json::json!({
        "clusters": [{"name": "c", "api_key": secret}],
        "models": [{"id": "m", "type": "text", "cluster": "c"}],
        "accounts": [{"id": "a"}],
        "keys": [{"id": "open", "sha256": h, "account": "a"}],
    });
    let c = Config::parse(cfg.to_string().as_bytes()).unwrap();
    let s = MemoryStore::new();
    let event = format!("data: {}\n\n", serde_json::json!({"error": {"message": format!("bad key {secret}")}}));
    let escaped = serde_json::to_string(secret).unwrap();
    assert!(event.contains(&escaped[1..escaped.len() - 1]));
    let mut ex = chat(&c, &s, "openai", "sk-open", "m", true);
    ex.on_response_headers(200, Some("text/event-stream"));
    let out = match ex.on_response_chunk(event.as_bytes(), true, 1 << 20) {
        ChunkAction::Replace(b) => b,
        other => panic!("{other:?}"),
    };
    let text = String::from_utf8_lossy(&out);
    assert!(!text.contains("quoted"), "{text}");
    assert!(text.contains("bad key [redacted]"), "{text}");
}

/// A transcription's JSON past `max_body_bytes` is never rewritten, so it passes whole (not
/// half): billed on the estimate from the counted upload, marked as an estimate.
#[test]
fn oversized_transcription_json_passes_whole_and_bills_the_upload_estimate() {
    let (c, s) = (cfg(), MemoryStore::new());
    let env = Env { now_ms: 1, store: &s };
    let mut ex = upload(&c, &s, "sk-open");
    assert_eq!(ex.on_upload_body(&c, &[], 40_000, true, &env), UploadAction::Continue);
    let counted = MODEL_PART.len() as u64 + 40_000;
    ex.on_response_headers(200, Some("application/json"));
    assert!(!ex.hold_response_headers(), "a transcription's headers are not held");
    assert_eq!(ex.on_response_buffered(200, 256), ChunkAction::Buffer);
    assert_eq!(ex.on_response_buffered(300, 256), ChunkAction::Pass, "past the cap: let it all through");
    assert!(ex.take_response_reply().is_none());
    assert!(!ex.buffers_response(), "the rest streams on");
    assert_eq!(ex.on_response_chunk(br#"tail","usage":{"seconds":99}}"#, true, 256), ChunkAction::Pass);
    let (o, r) = record(&mut ex, &c, &s);
    let secs = counted.div_ceil(16_000);
    assert_eq!(
        (r["status"].as_u64(), r["units"].as_f64(), r["estimated"].as_bool()),
        (Some(200), Some(secs as f64), Some(true)),
        "{r}"
    );
    assert_eq!(o.micros, secs * 500_000);
}

/// The estimate for an oversized response is capped by the completion budget the request
/// authorised: 1024 bytes read would be 256 tokens, but the Anthropic request said max_tokens 100.
#[test]
fn oversized_response_bill_is_capped_by_the_authorised_completion_budget() {
    let (c, s) = (cfg(), MemoryStore::new());
    for (front, budget) in [("anthropic", 100u64), ("openai", 256)] {
        let mut ex = chat(&c, &s, front, "sk-open", "m", false);
        ex.on_response_headers(200, Some("application/json"));
        assert!(matches!(ex.on_response_buffered(2000, 1024), ChunkAction::Replace(_)));
        let (o, _) = record(&mut ex, &c, &s);
        assert_eq!((o.usage.completion_tokens, o.estimated), (budget, true), "{front}");
    }
}
