//! One request's trip through the gateway, as a pure state machine the glue drives:
//! request headers -> (request body) -> response headers -> response body chunks.
//! It decides; the glue applies (header edits, body replacement, local replies).

use crate::config::{AccountStatus, Config};
use crate::dialect::openai::{self, OpenAiStream};
use crate::dialect::Dialect;
use crate::endpoints::{self, Endpoint};
use crate::errors::{Code, GatewayError};
use crate::keys::{self, Presented};
use crate::sse::{Event, Framer};
use crate::usage::Usage;
use serde_json::{json, Value};

/// A reply the filter sends itself.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderEdit {
    Set(String, String),
    Remove(String),
}

fn set(k: &str, v: impl Into<String>) -> HeaderEdit {
    HeaderEdit::Set(k.to_string(), v.into())
}

fn remove(k: &str) -> HeaderEdit {
    HeaderEdit::Remove(k.to_string())
}

/// What the request headers tell the gateway.
#[derive(Debug, Default, Clone)]
pub struct RequestHead<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub authorization: Option<&'a str>,
    pub x_api_key: Option<&'a str>,
    pub x_goog_api_key: Option<&'a str>,
    /// The request has no body (headers ended the stream).
    pub end_of_stream: bool,
}

#[derive(Debug, PartialEq)]
pub enum HeadAction {
    Reply(LocalReply),
    /// Apply the edits, then buffer the whole body and call `on_request_body`.
    ReadBody(Vec<HeaderEdit>),
}

#[derive(Debug, PartialEq)]
pub enum BodyAction {
    Reply(LocalReply),
    /// Apply the edits; replace the body if given; let the request go upstream.
    Forward { edits: Vec<HeaderEdit>, body: Option<Vec<u8>> },
}

/// How the response body is handled, decided at response headers.
#[derive(Debug)]
enum ResponseMode {
    /// Not ours to touch (local replies, pass-through endpoints).
    Pass,
    /// Buffer the JSON body, rewrite at the end.
    BufferJson,
    /// Buffer the upstream's error body and answer with our own error at the end.
    UpstreamError { status: u16, code: Code },
    /// Translate SSE chunk by chunk.
    Stream { framer: Framer, translator: OpenAiStream },
}

/// What to do with a response body chunk.
#[derive(Debug, PartialEq)]
pub enum ChunkAction {
    /// Let it through unchanged.
    Pass,
    /// Hold it: the body is being buffered until the end.
    Buffer,
    /// Replace this chunk (or, at the end of a buffered body, the whole body) with these bytes.
    Replace(Vec<u8>),
}

/// One request.
#[derive(Debug)]
pub struct Exchange {
    pub endpoint: Endpoint,
    pub front: Dialect,
    pub key: Option<u32>,
    pub account: Option<usize>,
    /// The model the client asked for.
    pub model: Option<String>,
    pub upstream_model: Option<String>,
    pub cluster: Option<usize>,
    pub stream: bool,
    pub wants_usage: bool,
    /// Set when the filter answered by itself.
    pub local_reply: bool,
    pub status: u16,
    pub usage: Option<Usage>,
    mode: ResponseMode,
    buffered: usize,
}

impl Exchange {
    pub fn new() -> Self {
        Exchange {
            endpoint: Endpoint::Unknown,
            front: Dialect::OpenAi,
            key: None,
            account: None,
            model: None,
            upstream_model: None,
            cluster: None,
            stream: false,
            wants_usage: false,
            local_reply: false,
            status: 0,
            usage: None,
            mode: ResponseMode::Pass,
            buffered: 0,
        }
    }

    fn fail(&mut self, e: GatewayError) -> LocalReply {
        self.local_reply = true;
        self.status = e.status();
        e.reply(self.front)
    }

    /// Request headers: classify, authenticate, answer local endpoints.
    pub fn on_request_headers(&mut self, cfg: &Config, head: &RequestHead) -> HeadAction {
        self.endpoint = endpoints::classify(head.method, head.path);
        self.front = self.endpoint.dialect();
        let query_key = None;
        let presented = keys::extract(head.authorization, head.x_api_key, head.x_goog_api_key, query_key);
        let key = match presented {
            Presented::Key(k, _) => k,
            Presented::Missing => {
                return HeadAction::Reply(self.fail(GatewayError::new(
                    Code::Unauthorized,
                    "Missing API key: pass it as 'Authorization: Bearer <key>' or 'x-api-key'",
                )))
            }
            Presented::Malformed(why) => {
                return HeadAction::Reply(self.fail(GatewayError::new(Code::Unauthorized, format!("Invalid API key: {why}"))))
            }
        };
        let Some(idx) = cfg.key_table.lookup(&keys::sha256(key.as_bytes())) else {
            return HeadAction::Reply(self.fail(GatewayError::new(Code::Unauthorized, "Invalid API key")));
        };
        let Some(rec) = cfg.key(idx) else {
            return HeadAction::Reply(self.fail(GatewayError::new(Code::InternalError, "key record missing")));
        };
        self.key = Some(idx);
        self.account = Some(rec.account);
        let active = cfg.account(rec.account).map(|a| a.status == AccountStatus::Active).unwrap_or(false);
        if !active {
            return HeadAction::Reply(self.fail(GatewayError::new(
                Code::Forbidden,
                "The account of this API key is inactive",
            )));
        }
        match &self.endpoint {
            Endpoint::ListModels => {
                let data: Vec<Value> = cfg.models.iter().map(model_json).collect();
                HeadAction::Reply(self.ok_json(&json!({"object": "list", "data": data})))
            }
            Endpoint::GetModel(id) => match cfg.model(id) {
                Some(m) => HeadAction::Reply(self.ok_json(&model_json(m))),
                None => {
                    let id = id.clone();
                    HeadAction::Reply(self.fail(
                        GatewayError::new(Code::NotFound, format!("The model '{id}' does not exist")).with_param("model"),
                    ))
                }
            },
            Endpoint::MethodNotAllowed => HeadAction::Reply(self.fail(GatewayError::new(
                Code::MethodNotAllowed,
                format!("Method {} is not allowed on {}", head.method, endpoints::split_query(head.path).0),
            ))),
            Endpoint::Unknown => HeadAction::Reply(self.fail(GatewayError::new(
                Code::NotFound,
                format!("Unknown endpoint {} {}", head.method, endpoints::split_query(head.path).0),
            ))),
            _ => {
                if head.end_of_stream {
                    return HeadAction::Reply(self.fail(GatewayError::new(
                        Code::BadRequest,
                        "The request body is empty; a JSON object is required",
                    )));
                }
                let mut edits = client_credential_removals();
                edits.push(remove("content-length"));
                edits.push(remove(&cfg.cluster_header));
                HeadAction::ReadBody(edits)
            }
        }
    }

    fn ok_json(&mut self, v: &Value) -> LocalReply {
        self.local_reply = true;
        self.status = 200;
        LocalReply {
            status: 200,
            headers: vec![("content-type".to_string(), "application/json".to_string())],
            body: serde_json::to_vec(v).unwrap_or_default(),
        }
    }

    /// Is the buffered request body over the configured cap?
    pub fn request_too_large(&mut self, cfg: &Config, size: usize) -> Option<LocalReply> {
        if size > cfg.max_body_bytes {
            let limit = cfg.max_body_bytes;
            return Some(self.fail(GatewayError::new(
                Code::RequestTooLarge,
                format!("The request body is larger than {limit} bytes"),
            )));
        }
        None
    }

    /// The whole request body: validate, route, rewrite.
    pub fn on_request_body(&mut self, cfg: &Config, body: &[u8]) -> BodyAction {
        match self.route(cfg, body) {
            Ok(a) => a,
            Err(e) => BodyAction::Reply(self.fail(e)),
        }
    }

    fn route(&mut self, cfg: &Config, raw: &[u8]) -> Result<BodyAction, GatewayError> {
        let want_type = self.endpoint.model_type();
        let (client_model, new_body) = match self.endpoint {
            Endpoint::ChatCompletions => {
                let req = openai::parse_chat(raw)?;
                let model = self.resolve_model(cfg, &req.model, want_type)?;
                self.stream = req.stream;
                self.wants_usage = req.wants_usage;
                let body = openai::upstream_chat_body(&req, &model.upstream_model);
                (req.model, body)
            }
            _ => {
                let mut body = openai::parse_json_object(raw)?;
                let name = openai::required_model(&body)?;
                let model = self.resolve_model(cfg, &name, want_type)?;
                let body = if model.upstream_model != name {
                    body.insert("model".to_string(), Value::String(model.upstream_model.clone()));
                    serde_json::to_vec(&Value::Object(body)).ok()
                } else {
                    None
                };
                (name, body)
            }
        };
        let model = cfg.model(&client_model).ok_or_else(|| GatewayError::new(Code::InternalError, "model vanished"))?;
        let cluster = cfg
            .cluster_of(model)
            .ok_or_else(|| GatewayError::new(Code::InternalError, "the model's cluster is not configured"))?;
        self.cluster = Some(model.cluster);
        self.upstream_model = Some(model.upstream_model.clone());
        self.model = Some(client_model);

        let mut edits = vec![
            set(&cfg.cluster_header, cluster.name.clone()),
            set(":path", format!("{}{}", cluster.base_path, self.endpoint.upstream_suffix())),
            remove("accept-encoding"),
        ];
        if let Some(a) = &cluster.authority {
            edits.push(set(":authority", a.clone()));
        }
        if let Some(k) = &cluster.api_key {
            match cluster.dialect {
                Dialect::OpenAi => edits.push(set("authorization", format!("Bearer {k}"))),
                Dialect::Anthropic => {
                    edits.push(set("x-api-key", k.clone()));
                    edits.push(set("anthropic-version", "2023-06-01"));
                }
                Dialect::Gemini => edits.push(set("x-goog-api-key", k.clone())),
            }
        }
        for (k, v) in &cluster.headers {
            edits.push(set(k, v.clone()));
        }
        let len = new_body.as_ref().map(Vec::len).unwrap_or(raw.len());
        edits.push(set("content-length", len.to_string()));
        edits.push(set("content-type", "application/json"));
        Ok(BodyAction::Forward { edits, body: new_body })
    }

    fn resolve_model<'c>(
        &self,
        cfg: &'c Config,
        name: &str,
        want: Option<crate::routing::ModelType>,
    ) -> Result<&'c crate::routing::Model, GatewayError> {
        let model = cfg.model(name).ok_or_else(|| {
            GatewayError::new(
                Code::InvalidModel,
                format!("The model '{name}' does not exist; GET /v1/models lists the available models"),
            )
            .with_param("model")
        })?;
        if let Some(t) = want {
            if model.model_type != t {
                return Err(GatewayError::new(
                    Code::InvalidModel,
                    format!(
                        "The model '{name}' is a {} model and cannot be used on the {} endpoint",
                        model.model_type.as_str(),
                        t.as_str()
                    ),
                )
                .with_param("model"));
            }
        }
        Ok(model)
    }

    /// Response headers: choose how to handle the body, and fix status and headers now (they
    /// cannot change once the body flows).
    pub fn on_response_headers(&mut self, status: u16, content_type: Option<&str>) -> Vec<HeaderEdit> {
        if self.local_reply || self.model.is_none() {
            self.mode = ResponseMode::Pass;
            return Vec::new();
        }
        self.status = status;
        if let Some(code) = upstream_failure(status) {
            self.status = code.0;
            self.mode = ResponseMode::UpstreamError { status, code: code.1 };
            return vec![
                set(":status", code.0.to_string()),
                set("content-type", "application/json"),
                remove("content-length"),
                remove("content-encoding"),
            ];
        }
        let is_sse = content_type.map(|c| c.trim_start().to_ascii_lowercase().starts_with("text/event-stream")).unwrap_or(false);
        let client_model = self
            .model
            .clone()
            .filter(|m| Some(m) != self.upstream_model.as_ref());
        if is_sse {
            self.mode = ResponseMode::Stream { framer: Framer::default(), translator: OpenAiStream::new(client_model, self.wants_usage) };
            vec![remove("content-length")]
        } else if content_type.map(|c| c.contains("json")).unwrap_or(false) {
            self.mode = ResponseMode::BufferJson;
            vec![remove("content-length")]
        } else {
            self.mode = ResponseMode::Pass;
            Vec::new()
        }
    }

    /// A response body chunk. `whole` is the full buffered body when `end_of_stream` in a
    /// buffering mode; otherwise the current chunk.
    pub fn on_response_chunk(&mut self, chunk: &[u8], end_of_stream: bool, max_body: usize) -> ChunkAction {
        match &mut self.mode {
            ResponseMode::Pass => ChunkAction::Pass,
            ResponseMode::BufferJson => {
                if !end_of_stream {
                    self.buffered = self.buffered.saturating_add(chunk.len());
                    return if self.buffered > max_body { ChunkAction::Pass } else { ChunkAction::Buffer };
                }
                let client_model = self.model.clone().filter(|m| Some(m) != self.upstream_model.as_ref());
                let (out, usage) = openai::rewrite_response(chunk, client_model.as_deref());
                self.usage = usage;
                match out {
                    Some(b) => ChunkAction::Replace(b),
                    None => ChunkAction::Pass,
                }
            }
            ResponseMode::UpstreamError { status, code } => {
                if !end_of_stream {
                    return ChunkAction::Buffer;
                }
                let e = upstream_error(*status, *code, chunk);
                ChunkAction::Replace(e.body(self.front))
            }
            ResponseMode::Stream { framer, translator } => {
                let mut events: Vec<Event> = Vec::new();
                let pushed = framer.push(chunk, &mut events);
                if end_of_stream {
                    framer.finish(&mut events);
                }
                let mut out = Vec::with_capacity(chunk.len() + 64);
                for ev in &events {
                    translator.on_event(ev, &mut out);
                }
                if pushed.is_err() {
                    let e = GatewayError::new(Code::UpstreamError, "The upstream sent an oversized stream event");
                    write_stream_error(&mut out, &e, self.front);
                }
                if translator.usage.is_some() {
                    self.usage = translator.usage;
                }
                ChunkAction::Replace(out)
            }
        }
    }
}

impl Default for Exchange {
    fn default() -> Self {
        Exchange::new()
    }
}

fn write_stream_error(out: &mut Vec<u8>, e: &GatewayError, front: Dialect) {
    match front {
        Dialect::Anthropic => out.extend_from_slice(&e.anthropic_stream_event()),
        _ => {
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(&e.body(front));
            out.extend_from_slice(b"\n\n");
        }
    }
}

/// Upstream statuses the gateway does not pass through: (status to send, code).
fn upstream_failure(status: u16) -> Option<(u16, Code)> {
    match status {
        200..=399 => None,
        400 | 422 => Some((400, Code::BadRequest)),
        413 => Some((413, Code::RequestTooLarge)),
        429 => Some((429, Code::RateLimitExceeded)),
        _ => Some((502, Code::UpstreamError)),
    }
}

/// Our error for an upstream failure, carrying the upstream's own message.
fn upstream_error(status: u16, code: Code, body: &[u8]) -> GatewayError {
    let detail = upstream_message(body);
    let msg = match code {
        Code::UpstreamError => format!("The generation service failed (upstream status {status}): {detail}"),
        _ => detail,
    };
    let mut e = GatewayError::new(code, msg);
    if code == Code::RateLimitExceeded {
        e.message = format!("The generation service is rate limited: {}", e.message);
    }
    e
}

/// The message of an error body in any dialect, or its text.
fn upstream_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        let m = v
            .pointer("/error/message")
            .or_else(|| v.get("message"))
            .or_else(|| v.get("error"))
            .and_then(Value::as_str);
        if let Some(m) = m {
            return truncate(m, 500);
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        "no details".to_string()
    } else {
        truncate(text, 500)
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", s.get(..end).unwrap_or(""))
}

fn client_credential_removals() -> Vec<HeaderEdit> {
    vec![remove("authorization"), remove("x-api-key"), remove("x-goog-api-key")]
}

fn model_json(m: &crate::routing::Model) -> Value {
    json!({"id": m.id, "object": "model", "created": 0, "owned_by": m.owned_by, "type": m.model_type.as_str()})
}
