//! Per-exchange translation between the client's dialect (the front) and the upstream's, through
//! the OpenAI pivot: requests, non-streamed responses and streams. OpenAI to OpenAI keeps a fast
//! path that only renames the model and handles the usage chunk.

use crate::dialect::openai::{self, OpenAiStream};
use crate::dialect::pivot::{self, PivotRequest};
use crate::dialect::{anthropic, gemini, Dialect};
use crate::errors::{Code, GatewayError};
use crate::sse::Event;
use crate::routing::Price;
use crate::usage::{self, Usage};
use serde_json::{Map, Value};

/// The upstream request body and path for a validated pivot request.
pub fn upstream_request(
    front: Dialect,
    upstream: Dialect,
    req: &PivotRequest,
    wants_usage: bool,
    upstream_model: &str,
    base_path: &str,
    default_max_tokens: u64,
) -> Result<(Option<Vec<u8>>, String), GatewayError> {
    match upstream {
        Dialect::OpenAi => {
            let path = format!("{base_path}/chat/completions");
            if front == Dialect::OpenAi {
                let chat = openai::ChatRequest {
                    body: req.body.clone(),
                    model: req.model.clone(),
                    stream: req.stream,
                    wants_usage,
                    max_tokens: req.max_tokens,
                };
                return Ok((openai::upstream_chat_body(&chat, upstream_model), path));
            }
            let mut body = req.body.clone();
            pivot::strip_pivot_only(&mut body);
            body.insert("model".to_string(), Value::String(upstream_model.to_string()));
            if req.stream {
                let mut opts = Map::new();
                opts.insert("include_usage".to_string(), Value::Bool(true));
                body.insert("stream_options".to_string(), Value::Object(opts));
            }
            Ok((serde_json::to_vec(&Value::Object(body)).ok(), path))
        }
        Dialect::Anthropic => {
            let v = anthropic::request_from_pivot(&req.body, upstream_model, default_max_tokens)?;
            Ok((serde_json::to_vec(&v).ok(), anthropic::upstream_path(base_path)))
        }
        Dialect::Gemini => {
            let v = gemini::request_from_pivot(&req.body, upstream_model)?;
            Ok((serde_json::to_vec(&v).ok(), gemini::upstream_path(base_path, upstream_model, req.stream)))
        }
    }
}

/// A non-streamed upstream response for the client: new body (`None`: unchanged) and usage.
/// `Err`: the upstream's body is not a response of its dialect (not JSON, an error object, or
/// a message without its content): the caller answers 502 `upstream_error` with this error.
pub fn response(
    front: Dialect,
    upstream: Dialect,
    body: &[u8],
    client_model: &str,
    upstream_model: &str,
) -> Result<(Option<Vec<u8>>, Option<Usage>), GatewayError> {
    response_priced(front, upstream, body, client_model, upstream_model, None)
}

/// `usage.credits_consumed` for Anthropic-front responses: the credits at `price`, rounded to
/// micro-credits.
pub fn set_credits(pivot_chunk: &mut Value, price: &Price, u: &Usage) {
    let c = (usage::credits(price, u) * 1e6).round() / 1e6;
    if let Some(Value::Object(o)) = pivot_chunk.get_mut("usage") {
        if let Some(n) = serde_json::Number::from_f64(c) {
            o.insert("credits_consumed".to_string(), Value::Number(n));
        }
    }
}

/// Our 502 for an upstream body that is not a response of its dialect.
fn invalid_response(reason: &str) -> GatewayError {
    GatewayError::new(Code::UpstreamError, format!("The generation service sent an invalid response ({reason})"))
}

/// As `response`; with a price, Anthropic-front responses carry `usage.credits_consumed`.
/// OpenAI to OpenAI keeps its fast path: a body that is not JSON there is `Ok((None, None))`
/// and the caller decides (it checks for JSON itself).
pub fn response_priced(
    front: Dialect,
    upstream: Dialect,
    body: &[u8],
    client_model: &str,
    upstream_model: &str,
    price: Option<&Price>,
) -> Result<(Option<Vec<u8>>, Option<Usage>), GatewayError> {
    if front == Dialect::OpenAi && upstream == Dialect::OpenAi {
        let rename = (client_model != upstream_model).then_some(client_model);
        return Ok(openai::rewrite_response(body, rename));
    }
    let v = serde_json::from_slice::<Value>(body).map_err(|_| invalid_response("not JSON"))?;
    let (pivot_v, usage) = match upstream {
        Dialect::OpenAi => {
            if v.get("choices").and_then(Value::as_array).is_none() {
                return Err(invalid_response("the OpenAI response has no 'choices'"));
            }
            let u = pivot::usage_of(&v);
            (v, u)
        }
        Dialect::Anthropic => anthropic::response_to_pivot(&v).map_err(|m| invalid_response(&m))?,
        Dialect::Gemini => gemini::response_to_pivot(&v).map_err(|m| invalid_response(&m))?,
    };
    let out = match front {
        Dialect::OpenAi => {
            let mut p = pivot_v;
            if let Some(o) = p.as_object_mut() {
                o.insert("model".to_string(), Value::String(client_model.to_string()));
            }
            p
        }
        Dialect::Anthropic => {
            let mut p = pivot_v;
            if let (Some(price), Some(u)) = (price, usage.as_ref()) {
                set_credits(&mut p, price, u);
            }
            anthropic::response_from_pivot(&p, client_model)
        }
        Dialect::Gemini => gemini::response_from_pivot(&pivot_v, client_model),
    };
    Ok((serde_json::to_vec(&out).ok(), usage))
}

enum Up {
    OpenAi,
    Anthropic(anthropic::StreamToPivot),
    Gemini(gemini::StreamToPivot),
}

enum Down {
    OpenAi { model: String, wants_usage: bool, done: bool },
    Anthropic(anthropic::StreamFromPivot),
    Gemini(gemini::StreamFromPivot),
}

/// A stream translator: upstream SSE events in, client SSE bytes out.
pub enum StreamPipe {
    /// OpenAI to OpenAI.
    Fast(OpenAiStream),
    Translated { up: Box<Halves>, usage: Option<Usage>, error_sent: bool },
}

/// What a translated stream learned besides its output.
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    /// Completion text bytes that passed through (for estimates).
    text_bytes: u64,
    /// A finish reason arrived (the upstream ended the message).
    finished: bool,
}

/// The two halves of a translated stream.
pub struct Halves {
    up: Up,
    down: Down,
    seen: Seen,
    /// Set for Anthropic fronts: `usage.credits_consumed` at this price.
    price: Option<Price>,
}

impl Halves {
    /// Notes what a pivot chunk says, prices its usage for Anthropic fronts, and translates it.
    fn chunk(&mut self, c: &mut Value, usage: &mut Option<Usage>, out: &mut Vec<u8>) {
        self.seen.text_bytes = self.seen.text_bytes.saturating_add(usage::pivot_text_bytes(c));
        let finished = c
            .get("choices")
            .and_then(Value::as_array)
            .is_some_and(|cs| cs.iter().any(|ch| ch.get("finish_reason").is_some_and(Value::is_string)));
        if finished {
            self.seen.finished = true;
        }
        if let Some(u) = pivot::usage_of(c) {
            *usage = Some(u);
            if let (Some(p), Down::Anthropic(_)) = (&self.price, &self.down) {
                set_credits(c, p, &u);
            }
        }
        down_chunk(&mut self.down, c, out);
    }
}

impl std::fmt::Debug for StreamPipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamPipe")
    }
}

impl StreamPipe {
    pub fn new(front: Dialect, upstream: Dialect, client_model: &str, upstream_model: &str, wants_usage: bool) -> Self {
        Self::priced(front, upstream, client_model, upstream_model, wants_usage, None)
    }

    /// As `new`; with a price, Anthropic fronts get `usage.credits_consumed` in `message_delta`.
    pub fn priced(
        front: Dialect,
        upstream: Dialect,
        client_model: &str,
        upstream_model: &str,
        wants_usage: bool,
        price: Option<Price>,
    ) -> Self {
        if front == Dialect::OpenAi && upstream == Dialect::OpenAi {
            let rename = (client_model != upstream_model).then(|| client_model.to_string());
            return StreamPipe::Fast(OpenAiStream::new(rename, wants_usage));
        }
        let up = match upstream {
            Dialect::OpenAi => Up::OpenAi,
            Dialect::Anthropic => Up::Anthropic(anthropic::StreamToPivot::new().with_model(client_model)),
            Dialect::Gemini => Up::Gemini(gemini::StreamToPivot::new().with_model(client_model)),
        };
        let down = match front {
            Dialect::OpenAi => Down::OpenAi { model: client_model.to_string(), wants_usage, done: false },
            Dialect::Anthropic => Down::Anthropic(anthropic::StreamFromPivot::new(client_model)),
            Dialect::Gemini => Down::Gemini(gemini::StreamFromPivot::new(client_model)),
        };
        let price = if front == Dialect::Anthropic { price } else { None };
        StreamPipe::Translated { up: Box::new(Halves { up, down, seen: Seen::default(), price }), usage: None, error_sent: false }
    }

    /// Completion text bytes that passed through so far.
    pub fn text_bytes(&self) -> u64 {
        match self {
            StreamPipe::Fast(s) => s.completion_bytes,
            StreamPipe::Translated { up, .. } => up.seen.text_bytes,
        }
    }

    /// Whether the upstream finished the message and reported its final usage: when false at
    /// the end, the usage (if any) is partial and the record is an estimate.
    pub fn complete(&self) -> bool {
        match self {
            StreamPipe::Fast(s) => s.usage.is_some(),
            StreamPipe::Translated { up, usage, .. } => up.seen.finished && usage.is_some(),
        }
    }

    pub fn usage(&self) -> Option<Usage> {
        match self {
            StreamPipe::Fast(s) => s.usage,
            StreamPipe::Translated { usage, .. } => *usage,
        }
    }

    /// One upstream event.
    pub fn on_event(&mut self, ev: &Event, out: &mut Vec<u8>) {
        match self {
            StreamPipe::Fast(s) => s.on_event(ev, out),
            StreamPipe::Translated { up, usage, error_sent } => {
                let mut chunks = Vec::new();
                let mut done = false;
                let mut invalid = false;
                match &mut up.up {
                    Up::OpenAi => {
                        let d = ev.data.trim();
                        if d == "[DONE]" {
                            done = true;
                        } else if let Ok(v) = serde_json::from_str::<Value>(d) {
                            chunks.push(v);
                        } else if !d.is_empty() {
                            invalid = true;
                        }
                    }
                    Up::Anthropic(t) => t.on_event(ev, &mut chunks),
                    Up::Gemini(t) => t.on_event(ev, &mut chunks),
                }
                for c in &mut chunks {
                    up.chunk(c, usage, out);
                }
                let err = match &up.up {
                    Up::Anthropic(t) => t.error(),
                    Up::Gemini(t) => t.error(),
                    Up::OpenAi if invalid => Some("The generation service sent an invalid stream event".to_string()),
                    Up::OpenAi => None,
                };
                if let (Some(msg), false) = (err, *error_sent) {
                    *error_sent = true;
                    down_error(&mut up.down, &msg, out);
                }
                if done {
                    down_done(&mut up.down, out);
                }
            }
        }
    }

    /// End of the upstream stream.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if let StreamPipe::Translated { up, usage, error_sent } = self {
            let mut chunks = Vec::new();
            match &mut up.up {
                Up::OpenAi => {}
                Up::Anthropic(t) => t.finish(&mut chunks),
                Up::Gemini(t) => t.finish(&mut chunks),
            }
            for c in &mut chunks {
                up.chunk(c, usage, out);
            }
            if !*error_sent {
                down_done(&mut up.down, out);
            }
        }
    }

    /// An error after the stream began, in the client's dialect.
    pub fn error(&mut self, msg: &str, out: &mut Vec<u8>) {
        match self {
            StreamPipe::Fast(_) => write_openai_error(msg, out),
            StreamPipe::Translated { up, error_sent, .. } => {
                if !*error_sent {
                    *error_sent = true;
                    down_error(&mut up.down, msg, out);
                }
            }
        }
    }
}

fn write_openai_error(msg: &str, out: &mut Vec<u8>) {
    let e = GatewayError::new(crate::errors::Code::UpstreamError, msg);
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(&e.body(Dialect::OpenAi));
    out.extend_from_slice(b"\n\n");
}

fn down_chunk(down: &mut Down, c: &Value, out: &mut Vec<u8>) {
    match down {
        Down::OpenAi { model, wants_usage, .. } => {
            let mut v = c.clone();
            let Some(o) = v.as_object_mut() else { return };
            let has_usage = o.get("usage").is_some_and(Value::is_object);
            let no_choices = o.get("choices").and_then(Value::as_array).is_none_or(|a| a.is_empty());
            if has_usage && !*wants_usage {
                if no_choices {
                    return;
                }
                o.remove("usage");
            }
            o.insert("model".to_string(), Value::String(model.clone()));
            if let Ok(b) = serde_json::to_vec(&v) {
                out.extend_from_slice(b"data: ");
                out.extend_from_slice(&b);
                out.extend_from_slice(b"\n\n");
            }
        }
        Down::Anthropic(s) => s.on_chunk(c, out),
        Down::Gemini(s) => s.on_chunk(c, out),
    }
}

fn down_done(down: &mut Down, out: &mut Vec<u8>) {
    match down {
        Down::OpenAi { done, .. } => {
            if !*done {
                *done = true;
                out.extend_from_slice(b"data: [DONE]\n\n");
            }
        }
        Down::Anthropic(s) => s.on_done(out),
        Down::Gemini(s) => s.on_done(out),
    }
}

fn down_error(down: &mut Down, msg: &str, out: &mut Vec<u8>) {
    match down {
        Down::OpenAi { .. } => write_openai_error(msg, out),
        Down::Anthropic(s) => s.error(msg, out),
        Down::Gemini(s) => s.error(msg, out),
    }
}
