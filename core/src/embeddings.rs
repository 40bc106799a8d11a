//! `POST /v1/embeddings`: the request checked before it goes to an OpenAI-dialect upstream, the
//! prompt tokens it is estimated at, and the usage read from the upstream's response.

use serde_json::{json, Map, Value};

use crate::errors::GatewayError;
use crate::usage::{self, Usage};

/// Most inputs in one request (OpenAI's own limit).
pub const MAX_INPUTS: usize = 2048;
/// Largest `dimensions` accepted.
pub const MAX_DIMENSIONS: u64 = 65_536;
const ENCODINGS: [&str; 2] = ["float", "base64"];

/// Checks an embeddings request (`input` a non-empty string, a list of them, a list of token ids
/// or a list of such lists; `dimensions` a positive integer; `encoding_format` float or base64)
/// and returns its estimated prompt tokens: text at 4 bytes a token, a token id as one token.
pub fn validate(body: &Map<String, Value>) -> Result<u64, GatewayError> {
    let input = body.get("input").ok_or_else(|| GatewayError::missing("input"))?;
    let tokens = input_tokens(input)?;
    if let Some(d) = body.get("dimensions") {
        match d.as_u64() {
            Some(n) if (1..=MAX_DIMENSIONS).contains(&n) => {}
            _ => {
                return Err(GatewayError::bad(
                    "dimensions",
                    format!("'dimensions' must be an integer from 1 to {MAX_DIMENSIONS}"),
                ))
            }
        }
    }
    if let Some(f) = body.get("encoding_format") {
        if !f.as_str().is_some_and(|s| ENCODINGS.contains(&s)) {
            return Err(GatewayError::bad("encoding_format", "'encoding_format' must be 'float' or 'base64'"));
        }
    }
    if let Some(u) = body.get("user") {
        if !u.is_string() {
            return Err(GatewayError::bad("user", "'user' must be a string"));
        }
    }
    Ok(tokens)
}

fn bad_input() -> GatewayError {
    GatewayError::bad(
        "input",
        format!(
            "'input' must be a non-empty string, a list of at most {MAX_INPUTS} non-empty strings, a list of token ids, or a list of such lists"
        ),
    )
}

fn input_tokens(input: &Value) -> Result<u64, GatewayError> {
    match input {
        Value::String(s) if !s.is_empty() => Ok(text_tokens(s)),
        Value::Array(items) if !items.is_empty() && items.len() <= MAX_INPUTS => {
            if items.iter().all(|x| x.as_u64().is_some()) {
                return Ok(items.len() as u64);
            }
            let mut n = 0u64;
            for item in items {
                let t = match item {
                    Value::String(s) if !s.is_empty() => text_tokens(s),
                    Value::Array(ids) if !ids.is_empty() && ids.iter().all(|x| x.as_u64().is_some()) => {
                        ids.len() as u64
                    }
                    _ => return Err(bad_input()),
                };
                n = n.saturating_add(t);
            }
            Ok(n)
        }
        _ => Err(bad_input()),
    }
}

fn text_tokens(s: &str) -> u64 {
    usage::tokens_from_bytes(s.len() as u64).max(1)
}

/// The usage of an OpenAI embeddings response (`usage.prompt_tokens`): `None` when the body is
/// not JSON or reports none. Embeddings have no completion tokens.
pub fn response_usage(body: &[u8]) -> Option<Usage> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let prompt = v.get("usage")?.get("prompt_tokens")?.as_u64()?;
    Some(Usage { prompt_tokens: prompt, ..Usage::default() })
}

/// The text of a Gemini `content` (`{"parts": [{"text"}]}`): its text parts joined by newlines.
fn gemini_text(content: Option<&Value>, param: &str) -> Result<String, GatewayError> {
    let parts = content.and_then(|c| c.get("parts")).and_then(Value::as_array);
    let texts: Option<Vec<&str>> =
        parts.map(|p| p.iter().filter_map(|x| x.get("text").and_then(Value::as_str)).collect());
    match texts {
        Some(t) if t.iter().any(|s| !s.is_empty()) => Ok(t.join("\n")),
        _ => Err(GatewayError::bad(param, format!("'{param}' must have parts with text"))),
    }
}

/// A Gemini `embedContent` (`{content, outputDimensionality}`) or `batchEmbedContents`
/// (`{requests: [{content, outputDimensionality}]}`) request as an OpenAI embeddings request for
/// `model` (float vectors; one `dimensions` for the batch, the first request's).
pub fn from_gemini(body: &Map<String, Value>, model: &str, batch: bool) -> Result<Map<String, Value>, GatewayError> {
    let mut out = Map::new();
    out.insert("model".to_string(), Value::String(model.to_string()));
    let (input, dims) = if batch {
        let reqs = body
            .get("requests")
            .and_then(Value::as_array)
            .filter(|r| !r.is_empty() && r.len() <= MAX_INPUTS)
            .ok_or_else(|| {
                GatewayError::bad("requests", format!("'requests' must be a list of 1 to {MAX_INPUTS} requests"))
            })?;
        let texts = reqs
            .iter()
            .map(|r| gemini_text(r.get("content"), "requests.content").map(Value::String))
            .collect::<Result<Vec<_>, _>>()?;
        let dims = reqs.first().and_then(|r| r.get("outputDimensionality")).cloned();
        (Value::Array(texts), dims)
    } else {
        (Value::String(gemini_text(body.get("content"), "content")?), body.get("outputDimensionality").cloned())
    };
    out.insert("input".to_string(), input);
    if let Some(d) = dims {
        out.insert("dimensions".to_string(), d);
    }
    out.insert("encoding_format".to_string(), Value::String("float".to_string()));
    Ok(out)
}

/// An OpenAI embeddings response in Gemini's shape: `{"embedding": {"values"}}`, or
/// `{"embeddings": [{"values"}]}` for a batch. `None`: not an embeddings response.
pub fn to_gemini(body: &[u8], batch: bool) -> Option<Vec<u8>> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let data = v.get("data")?.as_array()?;
    let values: Vec<Value> = data
        .iter()
        .map(|d| d.get("embedding").filter(|e| e.is_array()).map(|e| json!({"values": e})))
        .collect::<Option<_>>()?;
    let out = if batch { json!({"embeddings": values}) } else { json!({"embedding": values.into_iter().next()?}) };
    serde_json::to_vec(&out).ok()
}

#[cfg(test)]
#[path = "tests/embeddings_tests.rs"]
mod tests;
