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

/// A field by its camelCase name, or its snake_case twin (the camelCase one first).
fn field<'a>(o: &'a Map<String, Value>, camel: &str) -> Option<&'a Value> {
    let uppers = camel.bytes().filter(u8::is_ascii_uppercase).count();
    if uppers == 0 {
        return o.get(camel); // its snake_case twin is itself
    }
    if o.len() > SMALL_OBJECT {
        return o.get(camel).or_else(|| o.get(&snake(camel)));
    }
    // A request's objects are small: one walk over the keys, each told apart by its length
    // first, the twin compared byte by byte without being spelled out.
    let twin_len = camel.len() + uppers;
    let mut twin = None;
    for (k, v) in o {
        if k == camel {
            return Some(v);
        }
        if twin.is_none() && k.len() == twin_len && is_snake_twin(k.as_bytes(), camel.as_bytes()) {
            twin = Some(v);
        }
    }
    twin
}

/// Objects up to this many members are searched by one walk over their keys (`field`).
const SMALL_OBJECT: usize = 16;

/// Whether `k` is `snake(camel)`: each ASCII capital as `_` and its lowercase, any other byte
/// as itself.
fn is_snake_twin(k: &[u8], camel: &[u8]) -> bool {
    let mut ks = k.iter();
    camel.iter().all(|&b| {
        if b.is_ascii_uppercase() {
            ks.next() == Some(&b'_') && ks.next() == Some(&b.to_ascii_lowercase())
        } else {
            ks.next() == Some(&b)
        }
    }) && ks.next().is_none()
}

fn vfield<'a>(v: &'a Value, camel: &str) -> Option<&'a Value> {
    v.as_object().and_then(|o| field(o, camel))
}

#[cfg(test)]
#[path = "../tests/gemini_tests.rs"]
mod tests;
