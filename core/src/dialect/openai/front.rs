//! An OpenAI client: its Chat Completions request validated (in full, or by the fast scan).

use serde_json::{Map, Value};

use super::scan;
use crate::dialect::pivot::PivotRequest;
use crate::dialect::stream::{write_text_event, FrontStream, TextChunk, TextTail};
use crate::dialect::validate::{
    number_in, opt_bool, opt_choices, opt_include_usage, opt_positive, parse_json_object, required_model,
};
use crate::dialect::Dialect;
use crate::errors::{Code, GatewayError};
use crate::sse;
use crate::usage;

/// A validated chat request.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    pub body: Map<String, Value>,
    pub model: String,
    pub stream: bool,
    /// The client itself asked for the usage chunk (`stream_options.include_usage`).
    pub wants_usage: bool,
    pub max_tokens: Option<u64>,
}

/// The one direction the two request types are converted in: an OpenAI client's request is
/// already a pivot request (its `wants_usage` is kept by the caller).
impl From<ChatRequest> for PivotRequest {
    fn from(r: ChatRequest) -> Self {
        PivotRequest { body: r.body, model: r.model, stream: r.stream, max_tokens: r.max_tokens }
    }
}

/// The scalar fields after `messages`, in the order they are validated: the token cap.
struct Scalars<'a> {
    temperature: Option<&'a Value>,
    top_p: Option<&'a Value>,
    presence_penalty: Option<&'a Value>,
    frequency_penalty: Option<&'a Value>,
    n: Option<&'a Value>,
    max_completion_tokens: Option<&'a Value>,
    max_tokens: Option<&'a Value>,
    stop: Option<&'a Value>,
}

/// Validates the scalars; returns the completion token cap and the number of choices (`n`).
fn check_scalars(s: &Scalars) -> Result<(Option<u64>, u64), GatewayError> {
    number_in(s.temperature, "temperature", 0.0, 2.0)?;
    number_in(s.top_p, "top_p", 0.0, 1.0)?;
    number_in(s.presence_penalty, "presence_penalty", -2.0, 2.0)?;
    number_in(s.frequency_penalty, "frequency_penalty", -2.0, 2.0)?;
    let n = opt_choices(s.n, "n")?.unwrap_or(1);
    let max_tokens = match opt_positive(s.max_completion_tokens, "max_completion_tokens")? {
        Some(m) => Some(m),
        None => opt_positive(s.max_tokens, "max_tokens")?,
    };
    match s.stop {
        None | Some(Value::Null) | Some(Value::String(_)) => {}
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => {}
        Some(_) => return Err(GatewayError::bad("stop", "'stop' must be a string or an array of strings")),
    }
    Ok((max_tokens, n))
}

/// Validates a Chat Completions request body.
pub fn parse_chat(raw: &[u8]) -> Result<ChatRequest, GatewayError> {
    let body = parse_json_object(raw)?;
    let model = required_model(&body)?;
    match body.get("messages") {
        None | Some(Value::Null) => return Err(GatewayError::missing("messages")),
        Some(Value::Array(msgs)) => {
            if msgs.is_empty() {
                return Err(GatewayError::bad("messages", "'messages' must contain at least one message"));
            }
            for (i, m) in msgs.iter().enumerate() {
                let role = m.as_object().and_then(|o| o.get("role")).and_then(Value::as_str);
                if role.is_none() {
                    return Err(GatewayError::bad(
                        &format!("messages[{i}].role"),
                        format!("'messages[{i}]' must be an object with a string 'role'"),
                    ));
                }
            }
        }
        Some(_) => return Err(GatewayError::bad("messages", "'messages' must be an array")),
    }
    let stream = opt_bool(body.get("stream"), "stream")?.unwrap_or(false);
    let wants_usage = opt_include_usage(body.get("stream_options"))?;
    let (max_tokens, _) = check_scalars(&Scalars {
        temperature: body.get("temperature"),
        top_p: body.get("top_p"),
        presence_penalty: body.get("presence_penalty"),
        frequency_penalty: body.get("frequency_penalty"),
        n: body.get("n"),
        max_completion_tokens: body.get("max_completion_tokens"),
        max_tokens: body.get("max_tokens"),
        stop: body.get("stop"),
    })?;
    Ok(ChatRequest { body, model, stream, wants_usage, max_tokens })
}

/// What the routing path needs from a valid chat request, read without building the body.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatScan {
    pub model: String,
    pub stream: bool,
    pub wants_usage: bool,
    /// The body has a `stream_options` member (of any value).
    pub has_stream_options: bool,
    pub max_tokens: Option<u64>,
    /// Choices asked for (`n`, 1 when absent).
    pub n: u64,
    /// `usage::estimate_prompt_tokens` of the body.
    pub prompt_estimate: u64,
}

/// The fast read of a Chat Completions body: `Some` only when `parse_chat` accepts it, with the
/// same model, flags, token cap and prompt estimate. Anything unusual (an error of any kind, an
/// escaped or repeated key inside a message, a very wide message object) gives `None`, and the
/// caller takes `parse_chat`, which decides (and words every error) exactly as always.
pub fn scan_chat(raw: &[u8]) -> Option<ChatScan> {
    if raw.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return None;
    }
    let top: scan::Top = serde_json::from_slice(raw).ok()?;
    let model = match top.model {
        Some(Value::String(s)) if !s.is_empty() => s,
        _ => return None,
    };
    let (messages, bytes) = top.messages?;
    let stream = opt_bool(top.stream.as_ref(), "stream").ok()?.unwrap_or(false);
    let wants_usage = opt_include_usage(top.stream_options.as_ref()).ok()?;
    let has_stream_options = top.stream_options.is_some();
    // A budget key sent as `null` reads as no budget: if one must be added upstream, the general
    // path replaces it (a byte-level insert would repeat the key).
    let null_budget = top.max_tokens.is_some() || top.max_completion_tokens.is_some();
    let (max_tokens, n) = check_scalars(&Scalars {
        temperature: top.temperature.as_ref(),
        top_p: top.top_p.as_ref(),
        presence_penalty: top.presence_penalty.as_ref(),
        frequency_penalty: top.frequency_penalty.as_ref(),
        n: top.n.as_ref(),
        max_completion_tokens: top.max_completion_tokens.as_ref(),
        max_tokens: top.max_tokens.as_ref(),
        stop: top.stop.as_ref(),
    })
    .ok()?;
    if null_budget && max_tokens.is_none() {
        return None;
    }
    let bytes = bytes.saturating_add(top.tools_bytes);
    let prompt_estimate = usage::tokens_from_bytes(bytes)
        .saturating_add(messages.saturating_mul(usage::TOKENS_PER_MESSAGE))
        .saturating_add(usage::REPLY_TOKENS);
    Some(ChatScan { model, stream, wants_usage, has_stream_options, max_tokens, n, prompt_estimate })
}

/// Pivot chunks written out to an OpenAI client: the client's model name on each, the usage
/// chunk only for a client that asked for it (`stream_options.include_usage`), `[DONE]` once;
/// a chunk translated from another dialect (`created: 0`) says it was created at `created`.
#[derive(Debug)]
pub struct StreamFromPivot {
    model: String,
    wants_usage: bool,
    done: bool,
    created: u64,
    /// A text chunk's bytes after its text, for the chunk's id.
    tail: TextTail,
}

impl StreamFromPivot {
    pub fn new(client_model: &str, wants_usage: bool) -> Self {
        Self::at(client_model, wants_usage, 0)
    }

    /// As `new`; chunks without a creation time get `created` (seconds since the epoch).
    pub fn at(client_model: &str, wants_usage: bool, created: u64) -> Self {
        StreamFromPivot {
            model: client_model.to_string(),
            wants_usage,
            done: false,
            created,
            tail: TextTail::default(),
        }
    }
}

/// Sets `created` to `at` on an OpenAI object that has none (absent or 0), as the objects
/// translated from Anthropic or Gemini have.
pub fn stamp_created(o: &mut Map<String, Value>, at: u64) {
    if at > 0 && o.get("created").and_then(Value::as_u64).unwrap_or(0) == 0 {
        o.insert("created".to_string(), Value::from(at));
    }
}

/// An error event in OpenAI's stream shape: our error object as the event's data.
pub fn write_error(message: &str, out: &mut Vec<u8>) {
    let e = GatewayError::new(Code::UpstreamError, message);
    sse::write_event(out, None, &e.body(Dialect::OpenAi), b"\n");
}

impl FrontStream for StreamFromPivot {
    fn on_chunk(&mut self, chunk: &Value, out: &mut Vec<u8>) {
        let mut v = chunk.clone();
        let Some(o) = v.as_object_mut() else { return };
        let has_usage = o.get("usage").is_some_and(Value::is_object);
        let no_choices = o.get("choices").and_then(Value::as_array).is_none_or(|a| a.is_empty());
        if has_usage && !self.wants_usage {
            if no_choices {
                return;
            }
            o.remove("usage");
        }
        o.insert("model".to_string(), Value::String(self.model.clone()));
        stamp_created(o, self.created);
        sse::write_json(out, None, &v, b"\n");
    }

    /// The same bytes as `on_chunk` of the chunk (keys in serde_json's order), written without
    /// building it.
    fn on_text(&mut self, chunk: &TextChunk, out: &mut Vec<u8>) {
        let (created, model) = (self.created, &self.model);
        let tail = self.tail.get(chunk.id.as_bytes(), |t| {
            t.extend_from_slice(b"},\"finish_reason\":null,\"index\":0,\"logprobs\":null}],\"created\":");
            sse::write_u64(t, created);
            t.extend_from_slice(b",\"id\":");
            sse::write_json_str(t, &chunk.id);
            t.extend_from_slice(b",\"model\":");
            sse::write_json_str(t, model);
            t.extend_from_slice(b",\"object\":\"chat.completion.chunk\"}\n\n");
        });
        write_text_event(out, b"data: {\"choices\":[{\"delta\":{\"content\":", &chunk.text, tail);
    }

    fn on_done(&mut self, out: &mut Vec<u8>) {
        if !self.done {
            self.done = true;
            out.extend_from_slice(b"data: [DONE]\n\n");
        }
    }

    fn error(&mut self, message: &str, out: &mut Vec<u8>) {
        write_error(message, out);
    }
}
