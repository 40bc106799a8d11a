//! Shared pieces of the fuzz targets: how a fuzz input selects dialects and chunk boundaries, and
//! the properties every translator output must have (whatever the input, it is well-formed).

use serde_json::{Map, Value};
use tollgate_core::dialect::pivot::PivotRequest;
use tollgate_core::dialect::Dialect;
use tollgate_core::errors::GatewayError;
use tollgate_core::sse::{Event, Framer};
use tollgate_core::translate;

pub const DIALECTS: [Dialect; 4] = [Dialect::OpenAi, Dialect::Anthropic, Dialect::Gemini, Dialect::OpenAiResponses];

/// A dialect from a selector byte.
pub fn dialect(b: u8) -> Dialect {
    match b % 4 {
        0 => Dialect::OpenAi,
        1 => Dialect::Anthropic,
        2 => Dialect::Gemini,
        _ => Dialect::OpenAiResponses,
    }
}

/// Splits `data` into pieces whose sizes come from `sizes` (cycled; a size byte of 0 means an
/// empty piece, which the framer must also accept). With no size bytes, one piece.
pub fn pieces<'a>(data: &'a [u8], sizes: &[u8]) -> Vec<&'a [u8]> {
    if sizes.is_empty() {
        return vec![data];
    }
    let mut out = Vec::new();
    let mut rest = data;
    let mut i = 0usize;
    while !rest.is_empty() {
        let n = usize::from(sizes[i % sizes.len()]).min(rest.len());
        let (head, tail) = rest.split_at(n);
        out.push(head);
        rest = tail;
        i += 1;
        if i > 4 * data.len() + 8 {
            // Only zero sizes left: take the rest in one piece.
            out.push(rest);
            break;
        }
    }
    out
}

/// Frames a whole byte stream.
pub fn frame(pieces: &[&[u8]], max_event_bytes: usize) -> (Vec<Event>, bool) {
    let mut f = Framer::new(max_event_bytes);
    let mut out = Vec::new();
    let mut too_large = false;
    for p in pieces {
        if f.push(p, &mut out).is_err() {
            too_large = true;
            break;
        }
    }
    if !too_large {
        f.finish(&mut out);
    }
    (out, too_large)
}

/// What a client receives on a stream must be SSE whose every `data` is a JSON value (or
/// OpenAI's `[DONE]`), whatever the upstream sent.
pub fn assert_client_sse(front: Dialect, bytes: &[u8]) {
    let (events, too_large) = frame(&[bytes], usize::MAX);
    assert!(!too_large);
    for ev in events {
        if front == Dialect::OpenAi && ev.data == "[DONE]" {
            continue;
        }
        if let Err(e) = serde_json::from_str::<Value>(&ev.data) {
            panic!("client {front:?} stream event is not JSON ({e}): {:?}", ev.data);
        }
        if front == Dialect::Gemini {
            assert!(ev.event.is_none(), "Gemini clients get bare data events");
        }
    }
}

/// A validated pivot request, sent to each upstream dialect: the body must be a JSON object and
/// the path absolute.
pub fn to_every_upstream(front: Dialect, req: &PivotRequest, wants_usage: bool) {
    for upstream in DIALECTS {
        match translate::upstream_request(front, upstream, req, wants_usage, "up-model", "/v1", 256) {
            Ok((body, path)) => {
                assert!(path.starts_with('/'), "path {path:?}");
                if let Some(b) = body {
                    let v: Value = serde_json::from_slice(&b).expect("upstream body is JSON");
                    assert!(v.is_object(), "upstream body is an object");
                }
            }
            Err(e) => assert_error_renders(&e),
        }
    }
}

/// An error renders as a JSON object in every dialect, with a 4xx/5xx status.
pub fn assert_error_renders(e: &GatewayError) {
    assert!((400..600).contains(&e.status()), "status {}", e.status());
    for d in DIALECTS {
        let v: Value = serde_json::from_slice(&e.body(d)).expect("error body is JSON");
        assert!(v.is_object());
    }
}

/// The JSON object of a fuzz input, if it is one.
pub fn object(data: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice::<Value>(data) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    }
}
