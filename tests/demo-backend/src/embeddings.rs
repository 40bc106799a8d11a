//! OpenAI embeddings (`POST /v1/embeddings`) and the token counters of the other dialects
//! (Anthropic `POST /v1/messages/count_tokens`, Gemini `models/{m}:countTokens`).
//!
//! Vectors are deterministic: the same text and `dimensions` give the same vector. Tokens are
//! counted as whitespace-separated words (at least 1 per input), so a test can tell the demo's
//! count from the gateway's byte-based estimate.

use hyper::StatusCode;
use serde_json::{json, Value};

use crate::body::{self, Resp};
use crate::controls::Controls;
use crate::openai::{bad_request, parse_object};
use crate::util::base64_encode;

/// Dimensions of a vector when the request names none.
pub const DEFAULT_DIMENSIONS: u64 = 8;

/// Tokens of a text: its words, at least 1.
pub fn text_tokens(s: &str) -> u64 {
    (s.split_whitespace().count() as u64).max(1)
}

/// Words in every string of `v`, skipping fields that are not content.
pub fn content_tokens(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.split_whitespace().count() as u64,
        Value::Array(a) => a.iter().map(content_tokens).sum(),
        Value::Object(o) => o
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "model" | "role" | "type" | "mimeType" | "mime_type"))
            .map(|(_, x)| content_tokens(x))
            .sum(),
        _ => 0,
    }
}

/// A deterministic vector of `dims` values in [-1, 1] for `seed` (FNV-1a, then a xorshift).
pub fn vector(seed: &str, dims: u64) -> Vec<f32> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in seed.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    (0..dims)
        .map(|_| {
            h ^= h << 13;
            h ^= h >> 7;
            h ^= h << 17;
            ((h % 2001) as f32 / 1000.0) - 1.0
        })
        .collect()
}

/// The inputs of an embeddings request as (seed text, tokens).
fn inputs(input: Option<&Value>) -> Option<Vec<(String, u64)>> {
    let ids = |a: &Vec<Value>| a.iter().all(Value::is_u64);
    match input? {
        Value::String(s) => Some(vec![(s.clone(), text_tokens(s))]),
        Value::Array(a) if !a.is_empty() && ids(a) => Some(vec![(Value::Array(a.clone()).to_string(), a.len() as u64)]),
        Value::Array(a) if !a.is_empty() => a
            .iter()
            .map(|x| match x {
                Value::String(s) => Some((s.clone(), text_tokens(s))),
                Value::Array(t) if !t.is_empty() && ids(t) => Some((x.to_string(), t.len() as u64)),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

/// `POST /v1/embeddings`.
pub fn create(ctl: &Controls, body: &[u8]) -> Resp {
    let req = match parse_object(body) {
        Ok(v) => v,
        Err(m) => return bad_request(&m),
    };
    let Some(inputs) = inputs(req.get("input")) else {
        return bad_request("'input' must be a string, a list of strings or a list of token ids");
    };
    let dims = req.get("dimensions").and_then(Value::as_u64).unwrap_or(DEFAULT_DIMENSIONS).clamp(1, 4096);
    let base64 = req.get("encoding_format").and_then(Value::as_str) == Some("base64");
    let model = req.get("model").and_then(Value::as_str).unwrap_or("demo-embedding");
    let mut tokens = 0u64;
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, (seed, t))| {
            tokens += t;
            let v = vector(seed, dims);
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                Value::String(base64_encode(&bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    let mut out = json!({"object": "list", "data": data, "model": model});
    if !ctl.no_usage {
        out["usage"] = json!({"prompt_tokens": tokens, "total_tokens": tokens});
    }
    body::json(StatusCode::OK, &out)
}

/// `POST /v1/messages/count_tokens` (Anthropic): the words of `system`, `messages` and `tools`.
pub fn anthropic_count(body: &[u8]) -> Resp {
    let req = match parse_object(body) {
        Ok(v) => v,
        Err(m) => return crate::anthropic::error(StatusCode::BAD_REQUEST, "invalid_request_error", &m),
    };
    let n: u64 = ["system", "messages", "tools"].iter().filter_map(|k| req.get(*k)).map(content_tokens).sum();
    body::json(StatusCode::OK, &json!({"input_tokens": n.max(1)}))
}

/// `models/{m}:countTokens` (Gemini): the words of `contents` (or of
/// `generateContentRequest.contents`), `systemInstruction` and `tools`.
pub fn gemini_count(body: &[u8]) -> Resp {
    let req = match parse_object(body) {
        Ok(v) => v,
        Err(m) => return crate::gemini::error(StatusCode::BAD_REQUEST, &m),
    };
    let inner = req.get("generateContentRequest").unwrap_or(&req);
    let n: u64 =
        ["contents", "systemInstruction", "tools"].iter().filter_map(|k| inner.get(*k)).map(content_tokens).sum();
    body::json(StatusCode::OK, &json!({"totalTokens": n.max(1)}))
}
