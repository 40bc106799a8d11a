//! Google Gemini `generateContent` / `streamGenerateContent?alt=sse`, translated to and from
//! the pivot shape (OpenAI Chat Completions). `front`: a Gemini client; `upstream`: a Gemini
//! upstream.
//!
//! The model and the stream flag live in the URL, not the body. Request fields are read in
//! camelCase (what the SDKs send) or snake_case (which the REST API also accepts).
//! Gemini function calls carry no id (or an optional one): ids `call_<n>` are minted by position.
//! A part's `thoughtSignature` travels on the pivot tool call as
//! `extra_content.google.thought_signature` (the convention of Google's OpenAI-compatible API).

mod front;
mod front_body;
mod front_stream;
mod text_in;
mod upstream;
mod upstream_stream;

pub use front::{request_to_pivot, response_from_pivot};
pub use front_body::write_response;
pub use front_stream::StreamFromPivot;
pub use upstream::{request_from_pivot, response_to_pivot, upstream_path, usage_from_gemini};
pub use upstream_stream::StreamToPivot;

use serde_json::{Map, Value};

use super::pivot::Finish;
use super::{bad, ins};

/// Gemini `finishReason` -> pivot finish reason (STOP with function calls is decided by the caller).
pub fn finish_from_gemini(s: &str) -> Finish {
    match s {
        "MAX_TOKENS" => Finish::Length,
        "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION" => Finish::ContentFilter,
        // STOP, OTHER, LANGUAGE, MALFORMED_FUNCTION_CALL, FINISH_REASON_UNSPECIFIED, ...
        _ => Finish::Stop,
    }
}

/// Pivot finish reason -> Gemini `finishReason` (tool calls end with STOP).
pub fn finish_to_gemini(f: Finish) -> &'static str {
    match f {
        Finish::Stop | Finish::ToolCalls => "STOP",
        Finish::Length => "MAX_TOKENS",
        Finish::ContentFilter => "SAFETY",
    }
}

fn snake(camel: &str) -> String {
    let mut s = String::with_capacity(camel.len().saturating_add(4));
    for c in camel.chars() {
        if c.is_ascii_uppercase() {
            s.push('_');
            s.push(c.to_ascii_lowercase());
        } else {
            s.push(c);
        }
    }
    s
}

/// A field by its camelCase name, or its snake_case twin.
fn field<'a>(o: &'a Map<String, Value>, camel: &str) -> Option<&'a Value> {
    if let Some(v) = o.get(camel) {
        return Some(v);
    }
    if !camel.bytes().any(|b| b.is_ascii_uppercase()) {
        return None; // its snake_case twin is itself
    }
    // The twin spelled on the stack (a name is short): no allocation per field looked up.
    let mut buf = [0u8; 48];
    let mut n = 0usize;
    for b in camel.bytes() {
        let lower = b.to_ascii_lowercase();
        let part: &[u8] = if b.is_ascii_uppercase() { &[b'_', lower] } else { &[b] };
        let Some(dst) = buf.get_mut(n..n + part.len()) else { return o.get(&snake(camel)) };
        dst.copy_from_slice(part);
        n += part.len();
    }
    match buf.get(..n).map(std::str::from_utf8) {
        Some(Ok(twin)) => o.get(twin),
        _ => o.get(&snake(camel)),
    }
}

fn vfield<'a>(v: &'a Value, camel: &str) -> Option<&'a Value> {
    v.as_object().and_then(|o| field(o, camel))
}

#[cfg(test)]
#[path = "../tests/gemini_tests.rs"]
mod tests;
