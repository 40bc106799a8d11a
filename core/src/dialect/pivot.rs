//! Pieces shared by the translators to and from the pivot shape (OpenAI Chat Completions):
//! the translated request, finish reasons, chunk and completion builders and SSE writing.

use serde_json::{json, Map, Value};

use crate::usage::Usage;

/// A client request translated to an OpenAI Chat Completions body.
#[derive(Debug, Clone, PartialEq)]
pub struct PivotRequest {
    /// The OpenAI chat body. Its `model` is the client's model name: the caller swaps in the
    /// upstream's. On streams it carries `stream_options.include_usage: true`.
    pub body: Map<String, Value>,
    /// The model the client asked for.
    pub model: String,
    pub stream: bool,
    /// The completion token cap the client asked for, if any.
    pub max_tokens: Option<u64>,
}

/// Pivot fields that OpenAI Chat Completions does not have: the Anthropic and Gemini fronts keep
/// them for Anthropic and Gemini upstreams (`top_k`), and the real OpenAI API refuses a request
/// that carries one ("Unrecognized request argument supplied").
pub const PIVOT_ONLY_FIELDS: [&str; 1] = ["top_k"];

/// A pivot body as an OpenAI upstream takes it: without the pivot-only fields.
pub fn strip_pivot_only(body: &mut Map<String, Value>) {
    for f in PIVOT_ONLY_FIELDS {
        body.remove(f);
    }
}

/// Why a completion ended, in the pivot's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    Stop,
    Length,
    ToolCalls,
    ContentFilter,
}

impl Finish {
    pub fn as_openai(self) -> &'static str {
        match self {
            Finish::Stop => "stop",
            Finish::Length => "length",
            Finish::ToolCalls => "tool_calls",
            Finish::ContentFilter => "content_filter",
        }
    }

    /// An OpenAI `finish_reason`; unknown values count as `stop`.
    pub fn from_openai(s: &str) -> Finish {
        match s {
            "length" => Finish::Length,
            "tool_calls" | "function_call" => Finish::ToolCalls,
            "content_filter" => Finish::ContentFilter,
            _ => Finish::Stop,
        }
    }
}

/// The OpenAI `usage` object. Prompt tokens written to the upstream's cache (Anthropic's),
/// which OpenAI has no field for, are in `prompt_tokens_details.cache_creation_tokens` when there
/// are any, so an Anthropic front gets them back.
pub fn usage_json(u: &Usage) -> Value {
    let mut v = json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.total(),
        "prompt_tokens_details": {"cached_tokens": u.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
    });
    if u.cache_creation_tokens > 0 {
        if let Some(Value::Object(d)) = v.get_mut("prompt_tokens_details") {
            d.insert("cache_creation_tokens".into(), json!(u.cache_creation_tokens));
        }
    }
    v
}

/// A `chat.completion.chunk` with one choice (index 0).
pub fn chunk(id: &str, model: &str, delta: Value, finish: Option<&str>) -> Value {
    chunk_at(id, model, 0, delta, finish)
}

/// A `chat.completion.chunk` with one choice at `index`.
pub fn chunk_at(id: &str, model: &str, index: u64, delta: Value, finish: Option<&str>) -> Value {
    json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [{"index": index, "delta": delta, "logprobs": null, "finish_reason": finish}],
    })
}

/// The final usage chunk (`choices: []`), as OpenAI sends it with `include_usage`.
pub fn usage_chunk(id: &str, model: &str, u: &Usage) -> Value {
    json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [],
        "usage": usage_json(u),
    })
}

/// A `chat.completion` object.
pub fn completion(id: &str, model: &str, choices: Vec<Value>, usage: Option<&Usage>) -> Value {
    let mut v = json!({
        "id": id,
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": choices,
    });
    if let (Some(u), Some(obj)) = (usage, v.as_object_mut()) {
        obj.insert("usage".to_string(), usage_json(u));
    }
    v
}

/// `data:{mime};base64,{data}`.
pub fn data_url(mime: &str, data: &str) -> String {
    format!("data:{mime};base64,{data}")
}

/// Splits a base64 data URL into (media type, data). `None` for anything else.
pub fn split_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (head, data) = rest.split_once(',')?;
    let mime = head.strip_suffix(";base64")?;
    Some((if mime.is_empty() { "application/octet-stream" } else { mime }, data))
}

/// Tool-call arguments (a JSON text) as an object; empty or unparseable arguments become `{}`.
pub fn parse_arguments(args: &str) -> Value {
    match serde_json::from_slice::<Value>(args.as_bytes()) {
        Ok(v @ Value::Object(_)) => v,
        _ => Value::Object(Map::new()),
    }
}

/// The text of an OpenAI message `content`: the string, or its text parts concatenated.
pub fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => {
            let mut s = String::new();
            for p in parts {
                if let Some(t) = p.get("text").and_then(Value::as_str) {
                    s.push_str(t);
                }
            }
            s
        }
        _ => String::new(),
    }
}

/// The text parts of an OpenAI `content` (string -> one part). Non-text parts are skipped.
pub fn content_texts(content: Option<&Value>) -> Vec<String> {
    match content {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(parts)) => parts
            .iter()
            .filter(|p| matches!(p.get("type").and_then(Value::as_str), None | Some("text")))
            .filter_map(|p| p.get("text").and_then(Value::as_str).map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// `{"type":"text","text":..}` OpenAI content part.
pub fn text_part(text: &str) -> Value {
    json!({"type": "text", "text": text})
}

/// One text stays a string; several become an array of text parts; none is `null`.
pub fn texts_to_content(texts: Vec<String>) -> Value {
    match texts.len() {
        0 => Value::Null,
        1 => texts.into_iter().next().map(Value::String).unwrap_or(Value::Null),
        _ => Value::Array(texts.iter().map(|t| text_part(t)).collect()),
    }
}

/// Reads the pivot usage of a chat completion or chunk (`None` when absent).
pub fn usage_of(v: &Value) -> Option<Usage> {
    crate::usage::from_openai(v)
}

/// The `usage.credits_consumed` extension (credits the request cost, as some platforms report it), carried through when present.
pub fn credits_of(v: &Value) -> Option<Value> {
    v.get("usage").and_then(|u| u.get("credits_consumed")).filter(|c| c.is_number()).cloned()
}

/// A Gemini-style message id: the chunk or completion id, with OpenAI's `chatcmpl-` prefix off.
pub fn bare_id(id: Option<&str>) -> &str {
    let id = id.unwrap_or("");
    id.strip_prefix("chatcmpl-").unwrap_or(id)
}

#[cfg(test)]
#[path = "tests/pivot_tests.rs"]
mod tests;
