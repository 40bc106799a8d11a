//! Per-exchange translation between the client's dialect (the front) and the upstream's, through
//! the OpenAI pivot: requests, non-streamed responses and streams. OpenAI to OpenAI keeps a fast
//! path that only renames the model and handles the usage chunk.

use serde_json::Value;

use crate::dialect::openai::{self, OpenAiStream};
use crate::dialect::pivot::{self, PivotRequest};
use crate::dialect::stream::{FrontStream, UpstreamStream};
use crate::dialect::{anthropic, gemini, responses, typed_reply, Dialect};
use crate::errors::{Code, GatewayError};
use crate::routing::Price;
use crate::sse::{ChunkOut, EventOf};
use crate::usage::{self, Usage};

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
                return Ok((openai::upstream_chat_body(req, wants_usage, upstream_model), path));
            }
            Ok((openai::pivot_chat_body(&req.body, upstream_model, req.stream), path))
        }
        Dialect::Anthropic => {
            let v = anthropic::request_from_pivot(&req.body, upstream_model, default_max_tokens)?;
            Ok((serde_json::to_vec(&v).ok(), anthropic::upstream_path(base_path)))
        }
        Dialect::Gemini => {
            let v = gemini::request_from_pivot(&req.body, upstream_model)?;
            Ok((serde_json::to_vec(&v).ok(), gemini::upstream_path(base_path, upstream_model, req.stream)))
        }
        Dialect::OpenAiResponses => {
            let v = responses::request_from_pivot(&req.body, upstream_model)?;
            Ok((serde_json::to_vec(&v).ok(), responses::upstream_path(base_path)))
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
    response_at(front, upstream, body, client_model, upstream_model, price, 0)
}

/// As `response_priced`; a Responses-front `response` says it was created at `created_at`
/// (seconds since the epoch).
pub fn response_at(
    front: Dialect,
    upstream: Dialect,
    body: &[u8],
    client_model: &str,
    upstream_model: &str,
    price: Option<&Price>,
    created_at: u64,
) -> Result<(Option<Vec<u8>>, Option<Usage>), GatewayError> {
    response_echoed(front, upstream, body, client_model, upstream_model, price, created_at, None)
}

/// As `response_at`; a Responses-front `response` repeats the request's settings in `echo`.
#[allow(clippy::too_many_arguments)]
pub fn response_echoed(
    front: Dialect,
    upstream: Dialect,
    body: &[u8],
    client_model: &str,
    upstream_model: &str,
    price: Option<&Price>,
    created_at: u64,
    echo: Option<&responses::Echo>,
) -> Result<(Option<Vec<u8>>, Option<Usage>), GatewayError> {
    if front == Dialect::OpenAi && upstream == Dialect::OpenAi {
        let rename = (client_model != upstream_model).then_some(client_model);
        return Ok(openai::rewrite_response(body, rename));
    }
    if upstream == Dialect::OpenAi {
        if let Some(done) = typed_reply::response(front, body, client_model, price) {
            return Ok(done);
        }
    }
    response_via_value(front, upstream, body, client_model, price, created_at, echo)
}

/// `response_echoed` through a parsed `Value`: every pair of dialects but OpenAI to OpenAI,
/// every shape of body.
pub(crate) fn response_via_value(
    front: Dialect,
    upstream: Dialect,
    body: &[u8],
    client_model: &str,
    price: Option<&Price>,
    created_at: u64,
    echo: Option<&responses::Echo>,
) -> Result<(Option<Vec<u8>>, Option<Usage>), GatewayError> {
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
        Dialect::OpenAiResponses => responses::response_to_pivot(&v).map_err(|m| invalid_response(&m))?,
    };
    let out = match front {
        Dialect::OpenAi => {
            let mut p = pivot_v;
            if let Some(o) = p.as_object_mut() {
                o.insert("model".to_string(), Value::String(client_model.to_string()));
                openai::stamp_created(o, created_at);
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
        Dialect::OpenAiResponses => responses::response_from_pivot(&pivot_v, client_model, created_at, echo),
    };
    Ok((serde_json::to_vec(&out).ok(), usage))
}

/// A stream translator: upstream SSE events in, client SSE bytes out.
pub enum StreamPipe {
    /// OpenAI to OpenAI.
    Fast(OpenAiStream),
    /// Any other pair: the upstream's half into pivot chunks, the front's half out of them.
    Translated(Box<Halves>),
}

/// The two halves of a translated stream, and what passed between them.
pub struct Halves {
    up: Box<dyn UpstreamStream>,
    down: Box<dyn FrontStream>,
    /// The pivot chunks of the current event (kept so their memory is reused).
    chunks: Vec<Value>,
    /// The latest usage a pivot chunk carried.
    usage: Option<Usage>,
    /// Completion text bytes that passed through (for estimates).
    text_bytes: u64,
    /// A finish reason arrived (the upstream ended the message).
    finished: bool,
    /// An error event went to the client: nothing follows it.
    error_sent: bool,
    /// Set for Anthropic fronts: `usage.credits_consumed` at this price.
    price: Option<Price>,
    /// The upstream's early prompt count went to the front.
    prompt_hinted: bool,
}

impl Halves {
    /// The chunks of the current event: noted (text bytes, finish, usage, priced for Anthropic
    /// fronts) and written out.
    fn relay(&mut self, out: &mut Vec<u8>) {
        for c in &mut self.chunks {
            self.text_bytes = self.text_bytes.saturating_add(usage::pivot_text_bytes(c));
            let finished = c
                .get("choices")
                .and_then(Value::as_array)
                .is_some_and(|cs| cs.iter().any(|ch| ch.get("finish_reason").is_some_and(Value::is_string)));
            if finished {
                self.finished = true;
            }
            if let Some(u) = pivot::usage_of(c) {
                self.usage = Some(u);
                if let Some(p) = &self.price {
                    set_credits(c, p, &u);
                }
            }
            self.down.on_chunk(c, out);
        }
        self.chunks.clear();
    }

    /// The upstream's prompt count, to the front once, as soon as the upstream reported one.
    fn hint_prompt(&mut self) {
        if !self.prompt_hinted {
            if let Some(u) = self.up.usage().filter(|u| u.prompt_tokens > 0) {
                self.prompt_hinted = true;
                self.down.prompt_hint(u);
            }
        }
    }

    fn error(&mut self, msg: &str, out: &mut Vec<u8>) {
        if !self.error_sent {
            self.error_sent = true;
            self.down.error(msg, out);
        }
    }
}

impl std::fmt::Debug for StreamPipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamPipe")
    }
}

/// The upstream half for an upstream of `dialect`, naming `client_model` in its chunks.
fn upstream_half(dialect: Dialect, client_model: &str) -> Box<dyn UpstreamStream> {
    match dialect {
        Dialect::OpenAi => Box::new(openai::StreamToPivot::new()),
        Dialect::Anthropic => Box::new(anthropic::StreamToPivot::new().with_model(client_model)),
        Dialect::Gemini => Box::new(gemini::StreamToPivot::new().with_model(client_model)),
        Dialect::OpenAiResponses => Box::new(responses::StreamToPivot::new().with_model(client_model)),
    }
}

/// The front half for a client of `dialect` (a Responses client's `response` says it was
/// created at `created_at` and repeats the request's settings in `echo`).
fn front_half(
    dialect: Dialect,
    client_model: &str,
    wants_usage: bool,
    created_at: u64,
    echo: Option<Box<responses::Echo>>,
) -> Box<dyn FrontStream> {
    match dialect {
        Dialect::OpenAi => Box::new(openai::StreamFromPivot::at(client_model, wants_usage, created_at)),
        Dialect::Anthropic => Box::new(anthropic::StreamFromPivot::new(client_model)),
        Dialect::Gemini => Box::new(gemini::StreamFromPivot::new(client_model)),
        Dialect::OpenAiResponses => Box::new(responses::StreamFromPivot::new(client_model, created_at).with_echo(echo)),
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
        Self::priced_at(front, upstream, client_model, upstream_model, wants_usage, price, 0)
    }

    /// As `priced`; a Responses client's `response` says it was created at `created_at`
    /// (seconds since the epoch).
    pub fn priced_at(
        front: Dialect,
        upstream: Dialect,
        client_model: &str,
        upstream_model: &str,
        wants_usage: bool,
        price: Option<Price>,
        created_at: u64,
    ) -> Self {
        Self::priced_echoed(front, upstream, client_model, upstream_model, wants_usage, price, created_at, None)
    }

    /// As `priced_at`; a Responses client's `response` snapshots repeat the request's settings
    /// in `echo`.
    #[allow(clippy::too_many_arguments)]
    pub fn priced_echoed(
        front: Dialect,
        upstream: Dialect,
        client_model: &str,
        upstream_model: &str,
        wants_usage: bool,
        price: Option<Price>,
        created_at: u64,
        echo: Option<Box<responses::Echo>>,
    ) -> Self {
        if front == Dialect::OpenAi && upstream == Dialect::OpenAi {
            let rename = (client_model != upstream_model).then(|| client_model.to_string());
            return StreamPipe::Fast(OpenAiStream::new(rename, wants_usage));
        }
        StreamPipe::Translated(Box::new(Halves {
            up: upstream_half(upstream, client_model),
            down: front_half(front, client_model, wants_usage, created_at, echo),
            chunks: Vec::new(),
            usage: None,
            text_bytes: 0,
            finished: false,
            error_sent: false,
            price: if front == Dialect::Anthropic { price } else { None },
            prompt_hinted: false,
        }))
    }

    /// The gateway's estimate of the prompt's tokens, for a front that announces the prompt
    /// size before the upstream reports it (Anthropic's `message_start`).
    pub fn with_prompt_estimate(mut self, tokens: u64) -> Self {
        if let StreamPipe::Translated(h) = &mut self {
            h.down.prompt_hint(Usage { prompt_tokens: tokens, ..Usage::default() });
        }
        self
    }

    /// Completion text bytes that passed through so far.
    pub fn text_bytes(&self) -> u64 {
        match self {
            StreamPipe::Fast(s) => s.completion_bytes,
            StreamPipe::Translated(h) => h.text_bytes,
        }
    }

    /// Whether the upstream finished the message and reported its final usage: when false at
    /// the end, the usage (if any) is partial and the record is an estimate.
    pub fn complete(&self) -> bool {
        match self {
            StreamPipe::Fast(s) => s.usage.is_some(),
            StreamPipe::Translated(h) => h.finished && h.usage.is_some(),
        }
    }

    pub fn usage(&self) -> Option<Usage> {
        match self {
            StreamPipe::Fast(s) => s.usage,
            StreamPipe::Translated(h) => h.usage,
        }
    }

    /// One upstream event.
    pub fn on_event(&mut self, ev: &EventOf<'_>, out: &mut Vec<u8>) {
        match self {
            StreamPipe::Fast(s) => s.on_event(ev, out),
            StreamPipe::Translated(h) => {
                let h = &mut **h;
                if let Some(t) = h.up.text_event(ev) {
                    // Most of a stream: text for choice 0, nothing else to relay.
                    h.text_bytes = h.text_bytes.saturating_add(t.text.len() as u64);
                    h.down.on_text(&t, out);
                    // No prompt hint here: a usage the event carried (Gemini's are cumulative)
                    // stays with the upstream half, and a front that announces the prompt size
                    // has already started (an OpenAI upstream's text chunks carry no usage; the
                    // other halves read text events only after their role chunk went out).
                    return;
                }
                h.up.on_event(ev, &mut h.chunks);
                h.hint_prompt();
                h.relay(out);
                if let Some(msg) = h.up.error().filter(|_| !h.error_sent).map(str::to_string) {
                    h.error(&msg, out);
                }
                if h.up.ended() {
                    h.down.on_done(out);
                }
            }
        }
    }

    /// One upstream event, into a chunk's output: an OpenAI-to-OpenAI event passed on
    /// unchanged is not copied (`ChunkOut`); any other is written as `on_event` writes it.
    pub fn on_event_out(&mut self, ev: &EventOf<'_>, out: &mut ChunkOut<'_, '_>) {
        match self {
            StreamPipe::Fast(s) => s.on_event_out(ev, out),
            StreamPipe::Translated(_) => self.on_event(ev, out.buf()),
        }
    }

    /// `finish` into a chunk's output (an OpenAI-to-OpenAI stream owes nothing at its end).
    pub fn finish_out(&mut self, out: &mut ChunkOut<'_, '_>) {
        if let StreamPipe::Translated(_) = self {
            self.finish(out.buf());
        }
    }

    /// End of the upstream stream.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if let StreamPipe::Translated(h) = self {
            let h = &mut **h;
            h.up.finish(&mut h.chunks);
            h.relay(out);
            if !h.error_sent {
                h.down.on_done(out);
            }
        }
    }

    /// An error after the stream began, in the client's dialect.
    pub fn error(&mut self, msg: &str, out: &mut Vec<u8>) {
        match self {
            StreamPipe::Fast(_) => openai::write_error(msg, out),
            StreamPipe::Translated(h) => h.error(msg, out),
        }
    }
}
