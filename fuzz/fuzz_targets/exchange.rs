//! The whole pure request state machine, as the glue drives it: request headers -> body ->
//! response headers -> body chunks -> done, with a real in-memory counter store. A panic here
//! would kill the worker's VM in Envoy. Every local reply is a JSON error (or model list) in the
//! caller's dialect; every translated stream is SSE the client can parse.
//!
//! And the money: every exchange writes exactly one record, a single JSON object that agrees with
//! the outcome (request id, status, error, tokens, `credits` = micros / 1e6); no reservation is
//! left on a spend cap once an exchange is done; the spend on a capped key or account never
//! exceeds its cap by more than the documented bound (the largest `actual - estimate` of one
//! admitted request); an OpenAI client that did not ask for usage never gets a usage chunk.
#![no_main]

use fuzzkit::{assert_client_sse, frame, pieces};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use std::sync::OnceLock;
use tollgate_core::config::Config;
use tollgate_core::dialect::Dialect;
use tollgate_core::exchange::Outcome;
use tollgate_core::exchange::{
    BodyAction, ChunkAction, Env, Exchange, HeadAction, LocalReply, RequestHead, UploadAction,
};
use tollgate_core::keys;
use tollgate_core::limits::{credits_to_micros, MemoryStore};

fn config() -> &'static Config {
    static CFG: OnceLock<Config> = OnceLock::new();
    CFG.get_or_init(|| {
        let h = |k: &str| keys::to_hex(&keys::sha256(k.as_bytes()));
        let json = format!(
            r#"{{"clusters":[{{"name":"o","dialect":"openai","api_key":"up-o"}},
                  {{"name":"a","dialect":"anthropic","api_key":"up-a"}},
                  {{"name":"g","dialect":"gemini","api_key":"up-g"}},
                  {{"name":"r","dialect":"openai-responses","api_key":"up-r"}}],
               "models":[{{"id":"m","type":"text","cluster":"o","price":{{"prompt_per_1k":1,"completion_per_1k":2}}}},
                 {{"id":"mo","type":"text","cluster":"o","upstream_model":"other"}},
                 {{"id":"ma","type":"text","cluster":"a","upstream_model":"claude"}},
                 {{"id":"mg","type":"text","cluster":"g","upstream_model":"gem"}},
                 {{"id":"mr","type":"text","cluster":"r","upstream_model":"resp"}},
                 {{"id":"free","type":"text","cluster":"o","sandbox":true}},
                 {{"id":"img","type":"image","cluster":"o","price":{{"per_image":1}}}},
                 {{"id":"vid","type":"video","cluster":"o","price":{{"per_second":1}}}},
                 {{"id":"listen","type":"audio","task":"transcription","cluster":"o","upstream_model":"whisper","price":{{"per_second":1}}}},
                 {{"id":"voice","type":"audio","task":"speech","cluster":"o","price":{{"per_1k_chars":1}}}}],
               "accounts":[{{"id":"a","rpm":1000}},{{"id":"l","rpm":2}},{{"id":"c","spend_cap":25}},{{"id":"i","status":"inactive"}}],
               "keys":[{{"id":"k","sha256":"{}","account":"a","sandbox_daily_quota":2}},
                 {{"id":"kl","sha256":"{}","account":"l"}},
                 {{"id":"kc","sha256":"{}","account":"c","spend_cap":10}},
                 {{"id":"ki","sha256":"{}","account":"i"}}],
               "max_body_bytes": 4096, "max_upload_bytes": 8192}}"#,
            h("sk-a"),
            h("sk-l"),
            h("sk-c"),
            h("sk-i")
        );
        Config::parse(json.as_bytes()).expect("fuzz config parses")
    })
}

const STATUSES: [u16; 16] = [200, 201, 400, 401, 404, 413, 422, 429, 500, 502, 503, 529, 0, 599, 302, 204];
const TYPES: [Option<&str>; 6] = [
    Some("application/json"),
    Some("text/event-stream"),
    Some("text/plain"),
    None,
    Some("application/json; charset=utf-8"),
    Some(" TEXT/EVENT-STREAM;charset=x"),
];

fn check_reply(front: Dialect, r: &LocalReply) {
    assert!(r.status == 200 || (400..600).contains(&r.status), "status {}", r.status);
    let v: Value = serde_json::from_slice(&r.body).expect("local reply is JSON");
    for (k, val) in &r.headers {
        assert!(!k.is_empty() && !val.contains(['\r', '\n']), "header {k}: {val:?}");
    }
    if r.status >= 400 {
        let ok = match front {
            Dialect::OpenAi | Dialect::OpenAiResponses => v.pointer("/error/message").is_some_and(Value::is_string),
            Dialect::Anthropic => v["type"] == "error" && v.pointer("/error/type").is_some_and(Value::is_string),
            Dialect::Gemini => {
                v.pointer("/error/status").is_some_and(Value::is_string)
                    && v.pointer("/error/code").is_some_and(Value::is_u64)
            }
        };
        assert!(ok, "{front:?} error shape: {v}");
    }
}

/// What one exchange left behind, for the checks across exchanges.
struct Done {
    outcome: Outcome,
    /// The admission estimate, when the request went upstream.
    estimate: Option<u64>,
}

fn one(store: &MemoryStore, ctl: &[u8; 8], path: &str, body: &[u8], resp: &[u8], rid: &str) -> Done {
    let cfg = config();
    let now_ms = 1_700_000_000_000 + u64::from(u16::from_le_bytes([ctl[6], ctl[7]])) * 997;
    let env = Env { now_ms, store };
    let method = ["POST", "GET", "PUT", "DELETE"][usize::from(ctl[0] % 4)];
    let (auth, xkey, gkey): (Option<&str>, Option<&str>, Option<&str>) = match ctl[1] % 10 {
        0 => (None, None, None),
        1 => (Some("Bearer sk-a"), None, None),
        2 => (None, Some("sk-a"), None),
        3 => (None, None, Some("sk-a")),
        4 => (Some("Bearer sk-a"), Some("sk-l"), None),
        5 => (Some("Bearer sk-c"), None, None),
        6 => (Some("Bearer sk-l"), None, None),
        7 => (Some("Bearer sk-i"), None, None),
        8 => (Some("Basic c2stYQ=="), None, None),
        _ => (Some("Bearer sk-a"), Some("sk-a"), Some("sk-a")),
    };
    let head = RequestHead {
        method,
        path,
        authorization: auth,
        x_api_key: xkey,
        x_goog_api_key: gkey,
        request_id: Some(rid),
        content_type: Some(if ctl[5] & 2 == 2 { "multipart/form-data; boundary=BB" } else { "application/json" }),
        content_length: (ctl[5] & 4 == 4).then_some(body.len() as u64),
        end_of_stream: ctl[5] & 1 == 1,
        anthropic_version: ctl[5] & 8 == 8,
    };
    let mut ex = Exchange::new();
    // The glue mints the record's id; the client's own `x-request-id` is kept apart.
    ex.request_id = format!("minted-{rid}");
    let forwarded = match ex.on_request_headers(cfg, &head, &env) {
        HeadAction::Reply(r) => {
            check_reply(ex.front(), &r);
            false
        }
        HeadAction::ReadBody(_) if ex.is_upload() => {
            // A streamed upload: growing prefixes until routed, then counted pieces.
            let mut routed = false;
            let mut done = false;
            let mut upto = 0usize;
            for piece in pieces(body, &[ctl[4], ctl[4] / 5 + 1]) {
                upto += piece.len();
                let last = upto == body.len();
                let action = if routed {
                    ex.on_upload_body(cfg, &[], piece.len(), last, &env)
                } else {
                    ex.on_upload_body(cfg, &body[..upto], upto, last, &env)
                };
                match action {
                    UploadAction::NeedMore => {}
                    UploadAction::Continue => {}
                    UploadAction::Forward { .. } => routed = true,
                    UploadAction::AskLimits => panic!("the local store never asks the limits service"),
                    UploadAction::Reply(r) => {
                        check_reply(ex.front(), &r);
                        done = true;
                        break;
                    }
                }
            }
            routed && !done
        }
        HeadAction::ReadBody(_) => {
            if let Some(r) = ex.request_too_large(cfg, body.len()) {
                check_reply(ex.front(), &r);
                false
            } else {
                match ex.on_request_body(cfg, body, &env) {
                    BodyAction::Reply(r) => {
                        check_reply(ex.front(), &r);
                        false
                    }
                    BodyAction::Forward { body: new_body, .. } => {
                        if let Some(b) = new_body {
                            assert!(serde_json::from_slice::<Value>(&b).is_ok(), "upstream body is JSON");
                        }
                        true
                    }
                    BodyAction::AskLimits => panic!("the local store never asks the limits service"),
                }
            }
        }
    };
    let status = STATUSES[usize::from(ctl[2] % 16)];
    let ctype = TYPES[usize::from(ctl[3] % 6)];
    ex.on_response_headers(status, ctype);
    let split = pieces(resp, &[ctl[4], ctl[4] / 3 + 1]);
    let mut buffered: Vec<u8> = Vec::new();
    let mut client: Vec<u8> = Vec::new();
    let n = split.len();
    let max_body = [4096usize, 16, 0, 1 << 20][usize::from(ctl[5] >> 6)];
    for (i, chunk) in split.iter().enumerate() {
        let end = i + 1 == n;
        // Buffered bodies reach the filter whole at the end, as Envoy hands them over.
        let mut whole = std::mem::take(&mut buffered);
        whole.extend_from_slice(chunk);
        match ex.on_response_chunk(if end { &whole } else { chunk }, end, max_body) {
            ChunkAction::Pass => client.extend_from_slice(&whole),
            ChunkAction::Buffer => buffered = whole,
            ChunkAction::Replace(out) => client.extend_from_slice(&out),
        }
    }
    if n == 0 {
        let _ = ex.on_response_chunk(&[], true, max_body);
    }
    let outcome = ex.on_done(cfg, &env);
    check_record(&outcome, rid);
    // A translated stream (2xx/3xx with an SSE content type) reaches the client as SSE.
    let sse = ctype.is_some_and(|c| c.trim_start().to_ascii_lowercase().starts_with("text/event-stream"));
    let fast = ex.front() == Dialect::OpenAi && ex.upstream() == Dialect::OpenAi;
    if forwarded && (200..400).contains(&status) && sse && !fast {
        assert_client_sse(ex.front(), &client);
    }
    if forwarded
        && ex.front() == Dialect::OpenAi
        && ex.stream()
        && !ex.wants_usage()
        && (200..300).contains(&status)
        && sse
    {
        let (events, _) = frame(&[&client], usize::MAX);
        for ev in &events {
            if let Ok(Value::Object(o)) = serde_json::from_str::<Value>(&ev.data) {
                assert!(
                    !o.get("usage").is_some_and(Value::is_object),
                    "usage chunk sent to a client that did not ask: {}",
                    ev.data
                );
            }
        }
    }
    Done { outcome, estimate: forwarded.then_some(ex.estimate_micros()) }
}

/// The record is one JSON object (no newline, nothing after it) that says what the outcome says.
fn check_record(o: &Outcome, rid: &str) {
    assert!(!o.record.contains(&b'\n'), "record has a newline");
    let v: Value = serde_json::from_slice(&o.record).expect("the record is one JSON value");
    assert!(v.is_object(), "record {v}");
    assert_eq!(v["request_id"], format!("minted-{rid}"), "record {v}");
    assert_eq!(v["client_request_id"], rid, "record {v}");
    assert_eq!(v["status"], o.status, "record {v}");
    assert_eq!(v["error"].as_str(), o.error.map(|c| c.as_str()), "record {v}");
    assert_eq!(v["prompt_tokens"], o.usage.prompt_tokens, "record {v}");
    assert_eq!(v["completion_tokens"], o.usage.completion_tokens, "record {v}");
    assert_eq!(v["estimated"], o.estimated, "record {v}");
    let credits = v["credits"].as_f64().expect("credits is a number");
    assert!(credits == o.micros as f64 / 1e6, "credits {credits} != {} micros / 1e6", o.micros);
    if o.status >= 400 || o.error.is_some() {
        assert_eq!(o.micros, 0, "an error is not billed: {v}");
    }
}

/// `{spent}:{reserved}` as stored (read raw: reading through the limits could write).
fn spend_of(store: &MemoryStore, key: &str) -> (u64, u64) {
    let Some(v) = store.value(key).filter(|v| !v.is_empty()) else { return (0, 0) };
    let s = String::from_utf8(v).expect("spend entry is ASCII");
    let (a, b) = s.split_once(':').expect("spend entry is spent:reserved");
    (a.parse().expect("spent"), b.parse().expect("reserved"))
}

/// The spend caps of the fuzz config: key `kc` (10) and its account `c` (25), large enough for a
/// priced request's estimate to be admitted (and reserved, then settled) a few times.
fn caps() -> [(&'static str, u64); 2] {
    [("spend:key:kc", credits_to_micros(10.0)), ("spend:acct:c", credits_to_micros(25.0))]
}

fuzz_target!(|data: &[u8]| {
    // [8 control bytes][path]\n--\n[request body]\n--\n[response body]
    if data.len() < 8 {
        return;
    }
    let (c, rest) = data.split_at(8);
    let ctl: [u8; 8] = c.try_into().expect("8 bytes");
    let sep = b"\n--\n";
    let mut parts = Vec::new();
    let mut cur = rest;
    while parts.len() < 2 {
        match cur.windows(sep.len()).position(|w| w == sep) {
            Some(p) => {
                parts.push(&cur[..p]);
                cur = &cur[p + sep.len()..];
            }
            None => break,
        }
    }
    parts.push(cur);
    let path = String::from_utf8_lossy(parts.first().copied().unwrap_or_default()).into_owned();
    let path = if path.is_empty() { "/v1/chat/completions".to_string() } else { path };
    let body = parts.get(1).copied().unwrap_or_default();
    let resp = parts.get(2).copied().unwrap_or_default();
    let store = MemoryStore::new();
    // The same request a few times on one store: rate windows, quotas and spend caps engage.
    // The largest overshoot of one admitted request (actual - estimate): the documented bound.
    let mut overshoot = 0u64;
    for i in 0..=(ctl[5] >> 1) % 4 {
        let rid = format!("rid-{i}");
        let d = one(&store, &ctl, &path, body, resp, &rid);
        if let Some(estimate) = d.estimate {
            overshoot = overshoot.max(d.outcome.micros.saturating_sub(estimate));
        }
        for (key, cap) in caps() {
            let (spent, reserved) = spend_of(&store, key);
            assert_eq!(reserved, 0, "{key}: a reservation outlived its exchange");
            assert!(spent <= cap + overshoot, "{key}: spent {spent} > cap {cap} + overshoot {overshoot}");
        }
    }
});
