//! One request's trip through the gateway, as a pure state machine the glue drives:
//! request headers -> (request body) -> response headers -> response body chunks.
//! It decides; the glue applies (header edits, body replacement, local replies).

use crate::config::{AccountStatus, Config};
use crate::dialect::{guard, openai};
use crate::dialect::pivot::PivotRequest;
use crate::dialect::{anthropic, gemini};
use crate::translate::{self, StreamPipe};
use crate::dialect::Dialect;
use crate::endpoints::{self, Endpoint};
use crate::errors::{Code, GatewayError};
use crate::keys::{self, Presented};
use crate::limits::{self, Counters, RateDecision, SpendScope};
use crate::media::{self, FieldScan};
use crate::routing::{Model, ModelType, Price};
use crate::sse::{Event, Framer};
use crate::usage::{self, Usage};
use serde_json::{json, Value};

/// At most this much of a request or response body goes into a billing record, for keys whose
/// configuration opts in to content logging (`log_content`).
pub const CONTENT_LOG_CAP: usize = 64 * 1024;

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

/// What the host provides for one decision: the time and the shared counter store.
pub struct Env<'a> {
    pub now_ms: u64,
    pub store: &'a dyn Counters,
}

/// What the request headers tell the gateway.
#[derive(Debug, Default, Clone)]
pub struct RequestHead<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub authorization: Option<&'a str>,
    pub x_api_key: Option<&'a str>,
    pub x_goog_api_key: Option<&'a str>,
    /// Envoy's `x-request-id`, for the billing record.
    pub request_id: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub content_length: Option<u64>,
    /// The request has no body (headers ended the stream).
    pub end_of_stream: bool,
}

#[derive(Debug, PartialEq)]
pub enum HeadAction {
    Reply(LocalReply),
    /// Apply the edits, then buffer the whole body and call `on_request_body`.
    ReadBody(Vec<HeaderEdit>),
}

/// What to do with a piece of a streamed upload (a multipart transcription).
#[derive(Debug, PartialEq)]
pub enum UploadAction {
    /// Keep buffering: the `model` field has not arrived yet.
    NeedMore,
    /// Routed: apply the edits, replace the buffered body if given, and let it all stream on.
    Forward { edits: Vec<HeaderEdit>, body: Option<Vec<u8>> },
    /// Let this piece through.
    Continue,
    Reply(LocalReply),
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
    /// A buffered chat response grew past `max_body_bytes`: refused with our 502, nothing of it
    /// reaches the client; later pieces are dropped.
    Refused,
    /// Translate SSE chunk by chunk. `events` and `out` are kept from chunk to chunk so their
    /// memory is reused.
    Stream { framer: Framer, pipe: Box<StreamPipe>, events: Vec<Event>, out: Vec<u8> },
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
    /// The dialect of the upstream cluster.
    pub upstream: Dialect,
    /// Set when the filter answered by itself.
    pub local_reply: bool,
    pub status: u16,
    pub usage: Option<Usage>,
    /// Times the counter store failed this request (fail closed: 503); the glue counts them.
    pub store_failures: u32,
    /// The account's rate window after this request (for the `x-ratelimit-*` headers).
    pub rate: Option<RateDecision>,
    /// Spend reserved at admission, to settle when the response ends.
    reserved: Option<(Vec<SpendScope>, u64)>,
    /// The admission estimate in micro-credits.
    pub estimate_micros: u64,
    /// Request body size, for estimates.
    request_bytes: usize,
    mode: ResponseMode,
    buffered: usize,
    /// The record's id, minted by the glue (never the client's own `x-request-id`), and
    /// returned to the client in `x-request-id`.
    pub request_id: String,
    /// The client's own `x-request-id`, sanitized and bounded (see `client_request_id`).
    pub client_request_id: Option<String>,
    /// When the request headers arrived, and the latest time the host gave (ms since the epoch).
    pub start_ms: u64,
    now_ms: u64,
    /// When the response began (headers from upstream, or our local reply).
    pub first_byte_ms: Option<u64>,
    /// The error code the client got, if any.
    pub error: Option<Code>,
    /// Prompt tokens estimated from the request (for records without usage).
    pub prompt_estimate: u64,
    /// Completion text bytes seen in a response without usage.
    text_bytes: u64,
    /// The response body ended normally (its last chunk was seen).
    pub response_done: bool,
    /// Billable units of a media request (images, seconds).
    pub units: Option<f64>,
    /// Request and response bytes, for keys that opt in to content logging.
    content: Option<(Vec<u8>, Vec<u8>)>,
    /// The model's price (for `credits_consumed`).
    price: Option<Price>,
    /// A multipart upload being streamed: its boundary, its declared length, bytes seen, and
    /// whether it was routed (forwarded) already.
    upload: Option<Upload>,
    /// Media units came from an estimate (a transcription response that reported no seconds).
    units_estimated: bool,
    /// A status to set on the held response headers (an invalid upstream body became our 502).
    status_override: Option<u16>,
    /// The request path without its `?key=` (set before anything else happens to the request).
    path_without_key: Option<String>,
    /// A buffered chat response refused as larger than `max_body_bytes`: the bytes of it the
    /// gateway read (the cap), billed on an estimate.
    cut_bytes: Option<u64>,
    /// A reply the glue must send from the response path (an oversized buffered response), once.
    response_reply: Option<LocalReply>,
    /// Completion tokens the admission estimate assumed (`max_tokens` or the model's default).
    completion_budget: u64,
    /// The routed cluster's configured credentials (`api_key`, `headers` values): never relayed
    /// in upstream text.
    redact: Vec<String>,
}

#[derive(Debug)]
struct Upload {
    boundary: String,
    declared: Option<u64>,
    seen: u64,
    forwarded: bool,
}

/// A JSON object being written (the billing record): `{` before the first field, `,` between.
struct Record(Vec<u8>);

impl Record {
    fn field<T: serde::Serialize + ?Sized>(&mut self, key: &str, value: &T) {
        self.0.push(if self.0.is_empty() { b'{' } else { b',' });
        self.0.push(b'"');
        self.0.extend_from_slice(key.as_bytes());
        self.0.extend_from_slice(b"\":");
        // Writing a string, number, bool or null to a Vec cannot fail.
        if serde_json::to_writer(&mut self.0, value).is_err() {
            self.0.extend_from_slice(b"null");
        }
    }
}

/// How far into an upload the `model` field may be looked for.
pub const UPLOAD_SCAN_LIMIT: usize = 1024 * 1024;

/// The end of an exchange: what to bill and count, and the billing record.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub status: u16,
    pub error: Option<Code>,
    /// The client's model name, when the request named a known model.
    pub model: Option<String>,
    /// Billed usage: reported by the upstream, or estimated.
    pub usage: Usage,
    pub estimated: bool,
    /// Billed micro-credits.
    pub micros: u64,
    /// The response ended normally (the record's `complete`): false after an upstream reset,
    /// a stream cut short or a client gone.
    pub complete: bool,
    /// The billing record: one JSON object, no newline.
    pub record: Vec<u8>,
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
            upstream: Dialect::OpenAi,
            local_reply: false,
            status: 0,
            usage: None,
            store_failures: 0,
            rate: None,
            reserved: None,
            estimate_micros: 0,
            request_bytes: 0,
            mode: ResponseMode::Pass,
            buffered: 0,
            request_id: String::new(),
            client_request_id: None,
            start_ms: 0,
            now_ms: 0,
            first_byte_ms: None,
            error: None,
            prompt_estimate: 0,
            text_bytes: 0,
            response_done: false,
            units: None,
            content: None,
            price: None,
            upload: None,
            units_estimated: false,
            status_override: None,
            path_without_key: None,
            cut_bytes: None,
            response_reply: None,
            completion_budget: 0,
            redact: Vec::new(),
        }
    }

    /// The host's clock at the current callback.
    pub fn tick(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
    }

    /// The response began now (the upstream's headers arrived).
    pub fn response_started(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
        self.first_byte_ms.get_or_insert(now_ms);
    }

    fn fail(&mut self, e: GatewayError) -> LocalReply {
        if e.code == Code::ServiceUnavailable {
            self.store_failures = self.store_failures.saturating_add(1);
        }
        self.local_reply = true;
        self.status = e.status();
        self.error = Some(e.code);
        self.first_byte_ms.get_or_insert(self.now_ms);
        let mut r = e.reply(self.front);
        r.headers.extend(self.rate_headers());
        r
    }

    /// `x-ratelimit-*` headers (OpenAI's names) for responses that passed authentication.
    pub fn rate_headers(&self) -> Vec<(String, String)> {
        match &self.rate {
            Some(d) => vec![
                ("x-ratelimit-limit-requests".to_string(), d.limit.to_string()),
                ("x-ratelimit-remaining-requests".to_string(), d.remaining.to_string()),
                ("x-ratelimit-reset-requests".to_string(), format_duration(d.reset_after_ms)),
            ],
            None => Vec::new(),
        }
    }

    /// The account's requests-per-minute check. On rejection, the 429 to send.
    fn check_rpm(&mut self, cfg: &Config, env: &Env) -> Result<(), GatewayError> {
        let Some(account) = self.account.and_then(|a| cfg.account(a)) else {
            return Err(GatewayError::new(Code::InternalError, "account record missing"));
        };
        let (scope, limit, what) = self.rate_scope(account);
        let d = limits::check_rpm(env.store, &scope, limit, env.now_ms).map_err(store_error)?;
        self.rate = Some(d);
        if d.allowed {
            Ok(())
        } else {
            Err(GatewayError::new(
                Code::RateLimitExceeded,
                format!("Rate limit of {} {what} per minute reached for this account; retry after {} s", d.limit, d.retry_after_secs),
            )
            .with_retry_after_ms(d.reset_after_ms))
        }
    }

    /// The rate window this request counts in: image generations have their own (seed 001),
    /// kept under `rpm:img:{account}`; everything else shares the account's `rpm:{account}`.
    fn rate_scope<'c>(&self, account: &'c crate::config::Account) -> (std::borrow::Cow<'c, str>, u32, &'static str) {
        if self.endpoint == Endpoint::Images {
            (format!("img:{}", account.id).into(), account.image_rpm, "image generations")
        } else {
            (account.id.as_str().into(), account.rpm, "requests")
        }
    }

    /// Sandbox quota and spend caps, after the rate check admitted the request. A rejection
    /// refunds what earlier checks took, so a rejected request consumes no limit.
    fn check_model_limits(&mut self, cfg: &Config, env: &Env, model: &Model, units: f64, max_tokens: Option<u64>) -> Result<(), GatewayError> {
        let Some(key) = self.key.and_then(|k| cfg.key(k)) else {
            return Err(GatewayError::new(Code::InternalError, "key record missing"));
        };
        let account = self.account.and_then(|a| cfg.account(a));
        // Refunds are best effort: a failed refund leaves the slot taken (the safe direction).
        let scope = account.map(|a| self.rate_scope(a).0);
        let refund_rpm = || {
            if let Some(s) = &scope {
                let _ = limits::undo_rpm(env.store, s, env.now_ms);
            }
        };
        let mut took_daily = false;
        if model.sandbox {
            let d = match limits::check_daily(env.store, &key.id, key.sandbox_daily_quota, env.now_ms) {
                Ok(d) => d,
                Err(e) => {
                    refund_rpm();
                    return Err(store_error(e));
                }
            };
            if !d.allowed {
                refund_rpm();
                return Err(GatewayError::new(
                    Code::SandboxQuotaExceeded,
                    format!(
                        "The free {} tier allows {} calls per key per UTC day; wait until midnight UTC or switch to a paid model",
                        model.id, d.limit
                    ),
                )
                .with_retry_after(d.retry_after_secs));
            }
            took_daily = true;
        }
        let mut scopes = Vec::new();
        if let Some(cap) = key.spend_cap {
            scopes.push(SpendScope::key(&key.id, limits::credits_to_micros(cap)));
        }
        if let Some((a, cap)) = account.and_then(|a| Some((a, a.spend_cap?))) {
            scopes.push(SpendScope::account(&a.id, limits::credits_to_micros(cap)));
        }
        // The completion budget the reservation assumes (bounds an oversized response's bill).
        self.completion_budget = max_tokens.unwrap_or(u64::from(model.default_max_tokens));
        self.estimate_micros = match model.model_type {
            ModelType::Text => estimate_micros(model, self.request_bytes, units, max_tokens),
            _ => media_micros(model, &self.endpoint, units),
        };
        if scopes.is_empty() {
            return Ok(());
        }
        let undo_all = || {
            refund_rpm();
            if took_daily {
                let _ = limits::undo_daily(env.store, &key.id, env.now_ms);
            }
        };
        match limits::reserve(env.store, &scopes, self.estimate_micros) {
            Ok(d) if d.allowed => {
                self.reserved = Some((scopes, d.reserved_micros));
                Ok(())
            }
            Ok(_) => {
                undo_all();
                Err(GatewayError::new(
                    Code::InsufficientFunds,
                    "The spend cap of this key or account is reached (or this request's estimated cost exceeds what is left); raise the cap to continue",
                ))
            }
            Err(e) => {
                undo_all();
                Err(store_error(e))
            }
        }
    }

    /// The exchange is over (Envoy's log phase, also after a client disconnect): decide the billed
    /// usage (the upstream's, or an estimate marked as such when it reported none or the response
    /// was cut short), settle the spend reserved at admission with its cost, and write the record.
    pub fn on_done(&mut self, cfg: &Config, env: &Env) -> Outcome {
        self.now_ms = env.now_ms;
        if self.start_ms == 0 {
            // No request headers were seen (Envoy refused the request itself: headers too large,
            // bad HTTP): the request is dated now and lasted no time, never 1970.
            self.start_ms = env.now_ms;
        }
        let (billed, estimated, micros) = self.bill(cfg);
        if let Some((scopes, reserved)) = self.reserved.take() {
            let _ = limits::settle(env.store, &scopes, reserved, micros);
        }
        let record = self.record(cfg, &billed, estimated, micros);
        let complete = self.local_reply || self.response_done;
        Outcome { status: self.status, error: self.error, model: self.model.clone(), usage: billed, estimated, micros, complete, record }
    }

    /// What the exchange bills as it stands: the usage, whether it is an estimate, micro-credits.
    /// `on_done` bills this; the glue also reads it at the end of the response (span attributes,
    /// which Envoy's tracer reads before the log phase).
    pub fn bill(&self, cfg: &Config) -> (Usage, bool, u64) {
        let model = self.model.as_deref().and_then(|m| cfg.model(m));
        let (billed, estimated) = self.billed_usage();
        let forwarded = model.is_some() && !self.local_reply;
        // A response refused as oversized was still generated at the client's request: billed.
        let upstream_ok = forwarded && ((200..300).contains(&self.status) || self.cut_bytes.is_some());
        let micros = match model {
            Some(m) if upstream_ok && m.model_type == ModelType::Text => limits::credits_to_micros(usage::credits(&m.price, &billed)),
            Some(m) if upstream_ok => media_micros(m, &self.endpoint, self.units.unwrap_or(0.0)),
            _ => 0,
        };
        let estimated = estimated || (upstream_ok && self.units_estimated);
        (billed, estimated, micros)
    }

    /// The usage to bill and whether it is an estimate.
    fn billed_usage(&self) -> (Usage, bool) {
        let forwarded = self.model.is_some() && !self.local_reply;
        let text = self.endpoint.model_type() == Some(ModelType::Text);
        if let (true, true, Some(read)) = (forwarded, text, self.cut_bytes) {
            // Refused as oversized: its usage (at the end of the body) was never seen. Bill the
            // prompt estimate and the bytes read at 4 bytes a token, at most the completion
            // budget the request authorised (its max_tokens, or the model's default): an upstream
            // that honours it cannot have generated more, and JSON bytes (padding, logprobs,
            // syntax) are not tokens.
            let completion = usage::tokens_from_bytes(read).min(self.completion_budget);
            let u = Usage { prompt_tokens: self.prompt_estimate, completion_tokens: completion, ..Usage::default() };
            return (u, true);
        }
        if !forwarded || !text || !(200..300).contains(&self.status) {
            return (self.usage.unwrap_or_default(), false);
        }
        let complete = match &self.mode {
            ResponseMode::Stream { pipe, .. } => pipe.complete(),
            _ => self.response_done && self.usage.is_some(),
        };
        if let (true, Some(u)) = (complete, self.usage) {
            return (u, false);
        }
        let text_bytes = match &self.mode {
            ResponseMode::Stream { pipe, .. } => pipe.text_bytes(),
            _ => self.text_bytes,
        };
        let partial = self.usage.unwrap_or_default();
        let prompt = if partial.prompt_tokens > 0 { partial.prompt_tokens } else { self.prompt_estimate };
        let completion = partial.completion_tokens.max(usage::tokens_from_bytes(text_bytes));
        (Usage { prompt_tokens: prompt, completion_tokens: completion, ..partial }, true)
    }

    /// The billing record: who, what, how much, how long. Never the key, never content unless
    /// the key opts in.
    fn record(&mut self, cfg: &Config, u: &Usage, estimated: bool, micros: u64) -> Vec<u8> {
        let key = self.key.and_then(|k| cfg.key(k));
        let account = self.account.and_then(|a| cfg.account(a));
        let cluster = self.cluster.and_then(|c| cfg.clusters.get(c));
        let forwarded = self.model.is_some() && !self.local_reply;
        let end = self.now_ms.max(self.start_ms);
        let content = self.content.take();
        let content = content.as_ref().map(|(req, resp)| (String::from_utf8_lossy(req), String::from_utf8_lossy(resp)));
        // Written field by field, in the sorted key order a parsed-and-written object has.
        let mut r = Record(Vec::with_capacity(640));
        r.field("account_id", &account.map(|a| a.id.as_str()));
        r.field("cached_tokens", &u.cached_tokens);
        r.field("client_request_id", &self.client_request_id);
        r.field("cluster", &cluster.filter(|_| forwarded).map(|c| c.name.as_str()));
        r.field("complete", &(self.local_reply || self.response_done));
        r.field("completion_tokens", &u.completion_tokens);
        r.field("credits", &Value::from(micros as f64 / 1e6));
        r.field("duration_ms", &end.saturating_sub(self.start_ms));
        r.field("endpoint", self.endpoint.name());
        r.field("error", &self.error.map(|c| c.as_str()));
        r.field("estimated", &estimated);
        r.field("front", self.front.as_str());
        r.field("key_id", &key.map(|k| k.id.as_str()));
        r.field("model", &self.model);
        r.field("prompt_tokens", &u.prompt_tokens);
        r.field("reasoning_tokens", &u.reasoning_tokens);
        if let Some((req, _)) = &content {
            r.field("request_body", req.as_ref());
        }
        r.field("request_id", self.request_id.as_str());
        if let Some((_, resp)) = &content {
            r.field("response_body", resp.as_ref());
        }
        r.field("status", &self.status);
        r.field("stream", &self.stream);
        r.field("time", rfc3339(self.start_ms).as_str());
        r.field("ttfb_ms", &self.first_byte_ms.map(|t| t.saturating_sub(self.start_ms)));
        r.field("units", &self.units.filter(|_| forwarded).map(Value::from).unwrap_or(Value::Null));
        r.field("upstream", &forwarded.then(|| self.upstream.as_str()));
        r.field("upstream_model", &self.upstream_model.as_deref().filter(|_| forwarded));
        r.0.push(b'}');
        r.0
    }

    fn capture_response(&mut self, bytes: &[u8]) {
        if let Some((_, resp)) = &mut self.content {
            let room = CONTENT_LOG_CAP.saturating_sub(resp.len());
            resp.extend_from_slice(bytes.get(..room.min(bytes.len())).unwrap_or(&[]));
        }
    }

    /// Request headers: classify, authenticate, answer local endpoints.
    pub fn on_request_headers(&mut self, cfg: &Config, head: &RequestHead, env: &Env) -> HeadAction {
        self.start_ms = env.now_ms;
        self.now_ms = env.now_ms;
        self.client_request_id = head.request_id.and_then(client_request_id);
        self.endpoint = endpoints::classify(head.method, head.path);
        self.front = self.endpoint.dialect();
        // A `?key=` leaves the path on every path, known or not, whatever the method (the glue
        // applies it before anything else, so the key reaches neither the upstream nor a log).
        self.path_without_key = endpoints::without_query_param(head.path, "key");
        // Gemini's ways of passing a key (`?key=`, `x-goog-api-key`) count only on Gemini paths
        // (known ones, and unknown ones under Gemini's namespace, which then get their 404).
        let gemini = self.front == Dialect::Gemini || endpoints::in_gemini_namespace(head.path);
        let query_key = if gemini { endpoints::query_param(head.path, "key") } else { None };
        let goog = if gemini { head.x_goog_api_key } else { None };
        let presented = keys::extract(head.authorization, head.x_api_key, goog, query_key);
        let key = match presented {
            Presented::Key(k, _) => k,
            Presented::Missing => {
                return HeadAction::Reply(self.fail(GatewayError::new(
                    Code::Unauthorized,
                    "Missing API key: pass it as 'Authorization: Bearer <key>' or 'x-api-key' (or 'x-goog-api-key' on Gemini paths)",
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
        if rec.log_content {
            self.content = Some((Vec::new(), Vec::new()));
        }
        let active = cfg.account(rec.account).map(|a| a.status == AccountStatus::Active).unwrap_or(false);
        if !active {
            return HeadAction::Reply(self.fail(GatewayError::new(
                Code::Forbidden,
                "The account of this API key is inactive",
            )));
        }
        if matches!(
            self.endpoint,
            Endpoint::ListModels | Endpoint::GetModel(_) | Endpoint::GeminiListModels | Endpoint::GeminiGetModel(_)
        ) {
            if let Err(e) = self.check_rpm(cfg, env) {
                return HeadAction::Reply(self.fail(e));
            }
        }
        match &self.endpoint {
            Endpoint::ListModels => {
                let data: Vec<Value> = cfg.models.iter().map(model_json).collect();
                HeadAction::Reply(self.ok_json(&json!({"object": "list", "data": data})))
            }
            Endpoint::GeminiListModels => {
                let models: Vec<Value> = cfg.models.iter().map(gemini_model_json).collect();
                HeadAction::Reply(self.ok_json(&json!({ "models": models })))
            }
            Endpoint::GeminiGetModel(id) | Endpoint::GetModel(id) if cfg.model(id.trim_start_matches("models/")).is_none() => {
                let id = id.clone();
                HeadAction::Reply(self.fail(
                    GatewayError::new(Code::NotFound, format!("The model '{id}' does not exist")).with_param("model"),
                ))
            }
            Endpoint::GeminiGetModel(id) => match cfg.model(id.trim_start_matches("models/")) {
                Some(m) => HeadAction::Reply(self.ok_json(&gemini_model_json(m))),
                None => HeadAction::Reply(self.fail(GatewayError::new(Code::NotFound, "model not found"))),
            },
            Endpoint::GetModel(id) => match cfg.model(id) {
                Some(m) => HeadAction::Reply(self.ok_json(&model_json(m))),
                None => {
                    let id = id.clone();
                    HeadAction::Reply(self.fail(
                        GatewayError::new(Code::NotFound, format!("The model '{id}' does not exist")).with_param("model"),
                    ))
                }
            },
            Endpoint::MethodNotAllowed => {
                self.note_rate(cfg, env);
                HeadAction::Reply(self.fail(GatewayError::new(
                    Code::MethodNotAllowed,
                    format!("Method {} is not allowed on {}", head.method, endpoints::split_query(head.path).0),
                )))
            }
            Endpoint::Unknown => {
                self.note_rate(cfg, env);
                HeadAction::Reply(self.fail(GatewayError::new(
                    Code::NotFound,
                    format!("Unknown endpoint {} {}", head.method, endpoints::split_query(head.path).0),
                )))
            }
            _ => {
                // What the headers already decide is refused before a byte of the body is read:
                // an account over its rate (a read-only look; the request is counted only once
                // its body is valid, so refusals still consume nothing), a declared length over
                // this endpoint's cap.
                if let Err(e) = self.peek_rpm(cfg, env) {
                    return HeadAction::Reply(self.fail(e));
                }
                if self.endpoint != Endpoint::Transcriptions {
                    let cap = self.body_cap(cfg);
                    if let Some(n) = head.content_length.filter(|n| *n > cap as u64) {
                        return HeadAction::Reply(self.fail(too_large_body(cap, n)));
                    }
                }
                if head.end_of_stream {
                    return HeadAction::Reply(self.fail(GatewayError::new(
                        Code::BadRequest,
                        "The request body is empty; a JSON object is required",
                    )));
                }
                let mut edits = client_credential_removals();
                edits.push(remove(&cfg.cluster_header));
                if self.endpoint == Endpoint::Transcriptions {
                    if let Err(e) = self.start_upload(cfg, head) {
                        return HeadAction::Reply(self.fail(e));
                    }
                } else {
                    edits.push(remove("content-length"));
                }
                HeadAction::ReadBody(edits)
            }
        }
    }

    fn ok_json(&mut self, v: &Value) -> LocalReply {
        self.local_reply = true;
        self.status = 200;
        self.first_byte_ms.get_or_insert(self.now_ms);
        let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
        headers.extend(self.rate_headers());
        LocalReply { status: 200, headers, body: serde_json::to_vec(v).unwrap_or_default() }
    }

    /// A multipart upload: refused at once when its declared length is over the cap (before a
    /// byte of it is read), else streamed and counted.
    fn start_upload(&mut self, cfg: &Config, head: &RequestHead) -> Result<(), GatewayError> {
        if let Some(n) = head.content_length.filter(|n| *n > cfg.max_upload_bytes) {
            return Err(too_large_upload(cfg.max_upload_bytes, n));
        }
        let boundary = head.content_type.and_then(media::multipart_boundary).ok_or_else(|| {
            GatewayError::bad("file", "Transcriptions take a multipart/form-data body with the fields 'model' and 'file'")
        })?;
        self.upload = Some(Upload { boundary, declared: head.content_length, seen: 0, forwarded: false });
        Ok(())
    }

    /// Whether the glue should hold the response headers until the body is read: a buffered chat
    /// response, whose status becomes 502 if the upstream's body turns out not to be JSON.
    pub fn hold_response_headers(&self) -> bool {
        matches!(self.mode, ResponseMode::BufferJson) && self.endpoint.is_chat()
    }

    /// Whether response pieces are held until the end of the body (a buffered JSON response or an
    /// upstream error): the glue then counts them (`on_response_buffered`) instead of copying them.
    pub fn buffers_response(&self) -> bool {
        matches!(self.mode, ResponseMode::BufferJson | ResponseMode::UpstreamError { .. } | ResponseMode::Refused)
    }

    /// An upstream error whose response has no body (its headers ended the stream, as Envoy's
    /// own 503 for a cluster it does not have): the error reply in the caller's dialect, with the
    /// status already chosen, since there is no body phase to write it in. `details` is Envoy's
    /// `response.code_details`; `cluster_not_found` names the misconfiguration.
    pub fn bodyless_error_reply(&self, cfg: &Config, details: Option<&str>) -> Option<LocalReply> {
        let ResponseMode::UpstreamError { status, code } = self.mode else { return None };
        let missing = self.cluster.and_then(|c| cfg.clusters.get(c)).filter(|_| details == Some("cluster_not_found"));
        let e = match missing {
            Some(c) => GatewayError::new(
                Code::UpstreamError,
                format!("The gateway is misconfigured: its cluster '{}' is not defined in Envoy (clusters[].name must name an Envoy cluster)", c.name),
            ),
            None => upstream_error(status, code, b"", &self.redact),
        };
        let mut r = e.reply(self.front);
        if missing.is_some() {
            // A retry meets the same configuration.
            no_retry(&mut r);
        }
        r.headers.extend(self.rate_headers());
        Some(r)
    }

    /// A reply to send from the response path instead of the upstream's response, once (a
    /// buffered chat response over `max_body_bytes`; its headers are still held).
    pub fn take_response_reply(&mut self) -> Option<LocalReply> {
        self.response_reply.take()
    }

    /// The request path with its `?key=` removed, once: the glue sets it before replying or
    /// forwarding, so the key reaches neither the upstream nor Envoy's access log.
    pub fn take_path_without_key(&mut self) -> Option<String> {
        self.path_without_key.take()
    }

    /// Whether the response was refused as larger than `max_body_bytes` (no retry should follow).
    pub fn refused_oversized(&self) -> bool {
        self.cut_bytes.is_some()
    }

    /// The status the held response headers must get, once.
    pub fn take_status_override(&mut self) -> Option<u16> {
        self.status_override.take()
    }

    /// Whether a streamed upload was routed already (its pieces are only counted now).
    pub fn upload_routed(&self) -> bool {
        self.upload.as_ref().is_some_and(|u| u.forwarded)
    }

    /// Whether this request's body is a streamed upload (see `on_upload_body`).
    pub fn is_upload(&self) -> bool {
        self.upload.is_some()
    }

    /// A piece of a streamed upload. Before routing, `buffered` is the whole body so far (the
    /// host buffers it while the answer is `NeedMore`) and `size` its length; after, `size` is the
    /// new piece's length (the piece itself is not needed). Bytes are counted, never kept.
    pub fn on_upload_body(&mut self, cfg: &Config, buffered: &[u8], size: usize, end_of_stream: bool, env: &Env) -> UploadAction {
        self.now_ms = env.now_ms;
        let max = cfg.max_upload_bytes;
        let Some(up) = self.upload.as_mut() else { return UploadAction::Continue };
        if up.forwarded {
            up.seen = up.seen.saturating_add(size as u64);
            if up.seen > max {
                let e = too_large_upload(max, up.seen);
                return UploadAction::Reply(self.fail(e));
            }
            let counted = up.seen.max(up.declared.unwrap_or(0));
            return match self.grow_upload_reservation(cfg, env, counted) {
                Ok(()) => UploadAction::Continue,
                Err(e) => UploadAction::Reply(self.fail(e)),
            };
        }
        up.seen = size as u64;
        if up.seen > max {
            let e = too_large_upload(max, up.seen);
            return UploadAction::Reply(self.fail(e));
        }
        match media::scan_field(buffered, &up.boundary, "model", end_of_stream) {
            FieldScan::NeedMore if buffered.len() < UPLOAD_SCAN_LIMIT => UploadAction::NeedMore,
            FieldScan::NeedMore | FieldScan::Absent => {
                let e = GatewayError::missing("model");
                let e = GatewayError { message: format!("{} (a form field, before the file)", e.message), ..e };
                UploadAction::Reply(self.fail(e))
            }
            FieldScan::Found { value, start, end } => match self.route_upload(cfg, buffered, &value, start, end, env) {
                Ok(a) => a,
                Err(e) => UploadAction::Reply(self.fail(e)),
            },
        }
    }

    /// After routing, each counted piece of an upload raises its estimate (seconds from the bytes
    /// counted so far) and reserves the difference on the spend caps, so a chunked upload that
    /// was admitted on its first bytes cannot outgrow its reservation: once the estimate no
    /// longer fits, 402 `insufficient_funds` mid-upload (the reservation is released at the end).
    fn grow_upload_reservation(&mut self, cfg: &Config, env: &Env, counted: u64) -> Result<(), GatewayError> {
        let units = media::estimated_upload_seconds(counted);
        if self.units.is_some_and(|u| u >= units) {
            return Ok(());
        }
        let Some(model) = self.model.as_deref().and_then(|m| cfg.model(m)) else { return Ok(()) };
        let needed = media_micros(model, &self.endpoint, units);
        self.units = Some(units);
        let Some((scopes, reserved)) = self.reserved.as_mut() else { return Ok(()) };
        let Some(more) = needed.checked_sub(*reserved).filter(|m| *m > 0) else { return Ok(()) };
        match limits::reserve(env.store, scopes, more) {
            Ok(d) if d.allowed => {
                *reserved = reserved.saturating_add(d.reserved_micros);
                Ok(())
            }
            Ok(_) => Err(GatewayError::new(
                Code::InsufficientFunds,
                format!(
                    "The spend cap of this key or account is reached: the upload so far ({counted} bytes, about {units} s of audio) costs more than is left; raise the cap to continue"
                ),
            )),
            Err(e) => Err(store_error(e)),
        }
    }

    fn route_upload(&mut self, cfg: &Config, buffered: &[u8], name: &str, start: usize, end: usize, env: &Env) -> Result<UploadAction, GatewayError> {
        let model = self.resolve_model(cfg, name, Some(ModelType::Audio))?;
        if !media::task_matches(&self.endpoint, model) {
            return Err(wrong_task(name, &self.endpoint));
        }
        let declared = self.upload.as_ref().and_then(|u| u.declared);
        let seen = self.upload.as_ref().map(|u| u.seen).unwrap_or(0);
        let units = media::estimated_upload_seconds(declared.unwrap_or(seen));
        self.units = Some(units);
        // An estimate until the response reports the seconds it transcribed.
        self.units_estimated = true;
        // Named and valid: a refusal by the limits below is counted and recorded under it.
        self.model = Some(name.to_string());
        self.check_rpm(cfg, env)?;
        self.check_model_limits(cfg, env, model, units, None)?;
        let cluster = cfg
            .cluster_of(model)
            .ok_or_else(|| GatewayError::new(Code::InternalError, "the model's cluster is not configured"))?;
        self.cluster = Some(model.cluster);
        self.upstream_model = Some(model.upstream_model.clone());
        self.upstream = cluster.dialect;
        self.price = Some(model.price);
        let mut body = None;
        let mut length = declared;
        if model.upstream_model != name {
            let mut b = Vec::with_capacity(buffered.len() + model.upstream_model.len());
            b.extend_from_slice(buffered.get(..start).unwrap_or(&[]));
            b.extend_from_slice(model.upstream_model.as_bytes());
            b.extend_from_slice(buffered.get(end..).unwrap_or(&[]));
            length = declared.map(|n| (n + b.len() as u64).saturating_sub(buffered.len() as u64));
            body = Some(b);
        }
        if let Some(u) = self.upload.as_mut() {
            u.forwarded = true;
        }
        let path = format!("{}{}", cluster.base_path, self.endpoint.upstream_suffix());
        let mut edits = self.upstream_edits(cfg, cluster, path);
        match length {
            Some(n) => edits.push(set("content-length", n.to_string())),
            None => edits.push(remove("content-length")),
        }
        Ok(UploadAction::Forward { edits, body })
    }

    /// Routing headers for the upstream: cluster, path, the cluster's credential and headers.
    fn upstream_edits(&mut self, cfg: &Config, cluster: &crate::config::Cluster, path: String) -> Vec<HeaderEdit> {
        self.redact.clear();
        self.redact.extend(cluster.api_key.iter().chain(cluster.headers.iter().map(|(_, v)| v)).filter(|v| !v.is_empty()).cloned());
        let mut edits = vec![
            set(&cfg.cluster_header, cluster.name.clone()),
            set(":path", path),
            remove("accept-encoding"),
            remove("anthropic-version"),
            remove("anthropic-beta"),
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
        edits
    }

    /// Is the buffered request body over this endpoint's cap? The glue asks at every piece, so
    /// a body is refused as soon as what is buffered passes it.
    pub fn request_too_large(&mut self, cfg: &Config, size: usize) -> Option<LocalReply> {
        let cap = self.body_cap(cfg);
        if size > cap {
            return Some(self.fail(too_large_body(cap, size as u64)));
        }
        None
    }

    /// The largest body this request's endpoint buffers: `max_body_bytes` for chat (base64
    /// images), `max_media_body_bytes` (at most that) for image, video and speech JSON, whose
    /// fields are a prompt or a text of a few thousand characters.
    pub fn body_cap(&self, cfg: &Config) -> usize {
        match self.endpoint {
            Endpoint::Images | Endpoint::Videos | Endpoint::Speech => cfg.max_media_body_bytes.min(cfg.max_body_bytes),
            _ => cfg.max_body_bytes,
        }
    }

    /// The account's rate, read at the request headers without counting: a 429 when it is
    /// already used up (the store failing: 503, as for the real check).
    fn peek_rpm(&mut self, cfg: &Config, env: &Env) -> Result<(), GatewayError> {
        let Some(account) = self.account.and_then(|a| cfg.account(a)) else {
            return Err(GatewayError::new(Code::InternalError, "account record missing"));
        };
        let (scope, limit, what) = self.rate_scope(account);
        let d = limits::peek_rpm(env.store, &scope, limit, env.now_ms).map_err(store_error)?;
        // Kept for the rate headers: a reply before the request is counted (400, 413) reports
        // the window as read here.
        self.rate = Some(d);
        if d.allowed {
            return Ok(());
        }
        Err(GatewayError::new(
            Code::RateLimitExceeded,
            format!("Rate limit of {} {what} per minute reached for this account; retry after {} s", d.limit, d.retry_after_secs),
        )
        .with_retry_after_ms(d.reset_after_ms))
    }

    /// The account's window, read without counting, for the rate headers of a reply that is not
    /// counted (404, 405 of an authenticated request); a store failure just leaves them out.
    fn note_rate(&mut self, cfg: &Config, env: &Env) {
        if let Some(account) = self.account.and_then(|a| cfg.account(a)) {
            let (scope, limit, _) = self.rate_scope(account);
            if let Ok(d) = limits::peek_rpm(env.store, &scope, limit, env.now_ms) {
                self.rate = Some(d);
            }
        }
    }

    /// The path could not be rid of its `?key=` (the host refused the edit): nothing goes
    /// upstream, the client gets a 500 in its dialect.
    pub fn path_strip_failed(&mut self) -> LocalReply {
        self.fail(GatewayError::new(Code::InternalError, "The gateway could not process this request's path"))
    }

    /// The whole request body: validate, route, rewrite.
    pub fn on_request_body(&mut self, cfg: &Config, body: &[u8], env: &Env) -> BodyAction {
        self.now_ms = env.now_ms;
        self.request_bytes = body.len();
        if let Some((req, _)) = &mut self.content {
            req.extend_from_slice(body.get(..CONTENT_LOG_CAP.min(body.len())).unwrap_or(&[]));
        }
        match self.route(cfg, body, env) {
            Ok(a) => a,
            Err(e) => BodyAction::Reply(self.fail(e)),
        }
    }

    fn route(&mut self, cfg: &Config, raw: &[u8], env: &Env) -> Result<BodyAction, GatewayError> {
        // Every path reads the body the same way, and the upstream cannot read it another way.
        guard::check(raw)?;
        if self.endpoint == Endpoint::ChatCompletions {
            if let Some(a) = self.route_chat_unchanged(cfg, raw, env) {
                return a;
            }
        }
        let want_type = self.endpoint.model_type();
        let mut chat: Option<PivotRequest> = match &self.endpoint {
            Endpoint::ChatCompletions => {
                let req = openai::parse_chat(raw)?;
                self.wants_usage = req.wants_usage;
                Some(PivotRequest { body: req.body, model: req.model, stream: req.stream, max_tokens: req.max_tokens })
            }
            Endpoint::Messages => Some(anthropic::request_to_pivot(&openai::parse_json_object(raw)?)?),
            Endpoint::Gemini { model, stream } => {
                Some(gemini::request_to_pivot(&openai::parse_json_object(raw)?, model, *stream)?)
            }
            _ => None,
        };
        // A media body, parsed once: validated here, rewritten below if it must change.
        let mut media_body = None;
        let (client_model, units, max_tokens) = match &chat {
            Some(req) => {
                self.resolve_model(cfg, &req.model, want_type)?;
                self.stream = req.stream;
                self.prompt_estimate = usage::estimate_prompt_tokens(&req.body);
                // Choices (OpenAI `n`, Gemini `candidateCount`, validated): each is a completion.
                let choices = req.body.get("n").and_then(Value::as_u64).unwrap_or(1);
                (req.model.clone(), choices as f64, req.max_tokens)
            }
            None => {
                let body = openai::parse_json_object(raw)?;
                let name = openai::required_model(&body)?;
                let model = self.resolve_model(cfg, &name, want_type)?;
                if !media::task_matches(&self.endpoint, model) {
                    return Err(wrong_task(&name, &self.endpoint));
                }
                let units = media::validate(&self.endpoint, &body, model)?;
                self.units = Some(units);
                media_body = Some(body);
                (name, units, None)
            }
        };
        let model = cfg.model(&client_model).ok_or_else(|| GatewayError::new(Code::InternalError, "model vanished"))?;
        // Named and valid: a refusal by the limits below is counted and recorded under it.
        self.model = Some(client_model.clone());
        self.check_rpm(cfg, env)?;
        self.check_model_limits(cfg, env, model, units, max_tokens)?;
        // A spend reservation is an upper bound the upstream is held to: without a budget from
        // the client, the reserved one goes upstream (in the upstream dialect's field).
        let mut capped = false;
        if let Some(req) = chat.as_mut().filter(|r| r.max_tokens.is_none() && self.reserved.is_some()) {
            req.body.insert("max_tokens".to_string(), Value::from(model.default_max_tokens));
            capped = true;
        }
        let cluster = cfg
            .cluster_of(model)
            .ok_or_else(|| GatewayError::new(Code::InternalError, "the model's cluster is not configured"))?;
        self.cluster = Some(model.cluster);
        self.upstream_model = Some(model.upstream_model.clone());
        self.upstream = cluster.dialect;
        self.price = Some(model.price);
        let (new_body, path) = match &chat {
            Some(req) => {
                let (body, path) = translate::upstream_request(
                    self.front,
                    cluster.dialect,
                    req,
                    self.wants_usage,
                    &model.upstream_model,
                    &cluster.base_path,
                    u64::from(model.default_max_tokens),
                )?;
                // `None` is "the client's bytes as they came": not once a budget was added.
                let body = match body {
                    None if capped => serde_json::to_vec(&req.body).ok(),
                    b => b,
                };
                (body, path)
            }
            None => {
                let mut body = media_body.unwrap_or_default();
                // Seed 002's TTS names the text `text`; the upstream's speech API wants `input`.
                let tts_text = self.endpoint == Endpoint::Speech && !body.contains_key("input") && body.contains_key("text");
                let body = if model.upstream_model != client_model || tts_text {
                    body.insert("model".to_string(), Value::String(model.upstream_model.clone()));
                    if tts_text {
                        if let Some(t) = body.remove("text") {
                            body.insert("input".to_string(), t);
                        }
                    }
                    serde_json::to_vec(&Value::Object(body)).ok()
                } else {
                    None
                };
                (body, format!("{}{}", cluster.base_path, self.endpoint.upstream_suffix()))
            }
        };
        self.model = Some(client_model);

        let mut edits = self.upstream_edits(cfg, cluster, path);
        let len = new_body.as_ref().map(Vec::len).unwrap_or(raw.len());
        edits.push(set("content-length", len.to_string()));
        edits.push(set("content-type", "application/json"));
        Ok(BodyAction::Forward { edits, body: new_body })
    }

    /// The common case of an OpenAI chat request to an OpenAI upstream whose body goes on as it
    /// came (the model keeps its name; a stream already asks for usage): read with
    /// `openai::scan_chat`, never built. `None`: take the general path, which decides the same
    /// way for these requests and words every error.
    fn route_chat_unchanged(&mut self, cfg: &Config, raw: &[u8], env: &Env) -> Option<Result<BodyAction, GatewayError>> {
        let scan = openai::scan_chat(raw)?;
        let model = cfg.model(&scan.model).filter(|m| m.model_type == ModelType::Text)?;
        let cluster = cfg.cluster_of(model).filter(|c| c.dialect == Dialect::OpenAi)?;
        if model.upstream_model != scan.model || (scan.stream && !scan.wants_usage) {
            return None;
        }
        self.wants_usage = scan.wants_usage;
        self.stream = scan.stream;
        self.prompt_estimate = scan.prompt_estimate;
        // Named and valid: a refusal by the limits below is counted and recorded under it.
        self.model = Some(scan.model);
        if let Err(e) = self.check_rpm(cfg, env) {
            return Some(Err(e));
        }
        if let Err(e) = self.check_model_limits(cfg, env, model, scan.n as f64, scan.max_tokens) {
            return Some(Err(e));
        }
        // Reserved without a client budget: the reserved one goes upstream (see `route`), added
        // at byte level after the opening brace (the object has `model`, so a comma follows;
        // `scan_chat` saw no budget key at all, so none is repeated).
        let body = match (scan.max_tokens, &self.reserved) {
            (None, Some(_)) => {
                let at = raw.iter().position(|b| *b == b'{').map_or(0, |p| p + 1);
                let field = format!("\"max_tokens\":{},", model.default_max_tokens);
                let mut b = Vec::with_capacity(raw.len() + field.len());
                b.extend_from_slice(raw.get(..at).unwrap_or_default());
                b.extend_from_slice(field.as_bytes());
                b.extend_from_slice(raw.get(at..).unwrap_or_default());
                Some(b)
            }
            _ => None,
        };
        self.cluster = Some(model.cluster);
        self.upstream_model = Some(model.upstream_model.clone());
        self.upstream = cluster.dialect;
        self.price = Some(model.price);
        let path = format!("{}/chat/completions", cluster.base_path);
        let mut edits = self.upstream_edits(cfg, cluster, path);
        edits.push(set("content-length", body.as_ref().map_or(raw.len(), Vec::len).to_string()));
        edits.push(set("content-type", "application/json"));
        Some(Ok(BodyAction::Forward { edits, body }))
    }

    fn resolve_model<'c>(&self, cfg: &'c Config, name: &str, want: Option<ModelType>) -> Result<&'c Model, GatewayError> {
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
        let mut edits: Vec<HeaderEdit> = self.rate_headers().into_iter().map(|(k, v)| HeaderEdit::Set(k, v)).collect();
        edits.extend(self.response_edits(status, content_type));
        edits
    }

    fn response_edits(&mut self, status: u16, content_type: Option<&str>) -> Vec<HeaderEdit> {
        self.status = status;
        if let Some(code) = upstream_failure(status) {
            self.status = code.0;
            self.error = Some(code.1);
            self.mode = ResponseMode::UpstreamError { status, code: code.1 };
            return vec![
                set(":status", code.0.to_string()),
                set("content-type", "application/json"),
                remove("content-length"),
                remove("content-encoding"),
                // As on every gateway error (README, "Errors"): not the upstream's own advice.
                set("x-should-retry", if code.1.retryable() { "true" } else { "false" }),
            ];
        }
        let is_json = content_type.map(|c| c.contains("json")).unwrap_or(false);
        if !self.endpoint.is_chat() {
            // Media bodies pass untouched (images can be megabytes of base64); a transcription's
            // small JSON is read for the seconds it bills.
            self.mode = if self.endpoint == Endpoint::Transcriptions && is_json { ResponseMode::BufferJson } else { ResponseMode::Pass };
            return Vec::new();
        }
        let is_sse = content_type.map(|c| c.trim_start().to_ascii_lowercase().starts_with("text/event-stream")).unwrap_or(false);
        if is_sse {
            let pipe = StreamPipe::priced(
                self.front,
                self.upstream,
                self.model.as_deref().unwrap_or(""),
                self.upstream_model.as_deref().unwrap_or(""),
                self.wants_usage,
                self.price,
            );
            self.mode = ResponseMode::Stream { framer: Framer::default(), pipe: Box::new(pipe), events: Vec::new(), out: Vec::new() };
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
        if end_of_stream {
            self.response_done = true;
        }
        let action = self.response_chunk(chunk, end_of_stream, max_body);
        if self.content.is_some() {
            match &action {
                ChunkAction::Pass => self.capture_response(chunk),
                ChunkAction::Replace(b) => {
                    let b = b.clone();
                    self.capture_response(&b);
                }
                ChunkAction::Buffer => {}
            }
        }
        action
    }

    fn response_chunk(&mut self, chunk: &[u8], end_of_stream: bool, max_body: usize) -> ChunkAction {
        match &mut self.mode {
            ResponseMode::Pass => ChunkAction::Pass,
            ResponseMode::Refused => ChunkAction::Replace(Vec::new()),
            ResponseMode::BufferJson => {
                if !end_of_stream {
                    self.buffered = self.buffered.saturating_add(chunk.len());
                    return self.over_cap(self.buffered, max_body, false).unwrap_or(ChunkAction::Buffer);
                }
                if let Some(a) = self.over_cap(chunk.len(), max_body, true) {
                    return a;
                }
                if self.endpoint == Endpoint::Transcriptions {
                    match media::transcription_seconds(chunk) {
                        Some(s) => {
                            self.units = Some(s);
                            self.units_estimated = false;
                        }
                        None => self.units_estimated = true,
                    }
                    return ChunkAction::Pass;
                }
                let translated = translate::response_priced(
                    self.front,
                    self.upstream,
                    chunk,
                    self.model.as_deref().unwrap_or(""),
                    self.upstream_model.as_deref().unwrap_or(""),
                    self.price.as_ref(),
                );
                let (out, usage) = match translated {
                    Ok(x) => x,
                    Err(mut e) => {
                        // Not a response of the upstream's dialect: our 502, with the reason
                        // (credentials redacted), instead of the body passed on unbilled.
                        e.message = redact_text(&e.message, &self.redact);
                        self.status = e.status();
                        self.error = Some(e.code);
                        self.status_override = Some(e.status());
                        return ChunkAction::Replace(e.body(self.front));
                    }
                };
                if usage.is_none() {
                    if out.is_none() && serde_json::from_slice::<serde::de::IgnoredAny>(chunk).is_err() {
                        // Not JSON at all: the client gets our 502 in its dialect, not the garbage.
                        let e = GatewayError::new(Code::UpstreamError, "The generation service sent an invalid response (not JSON)");
                        self.status = e.status();
                        self.error = Some(e.code);
                        self.status_override = Some(e.status());
                        return ChunkAction::Replace(e.body(self.front));
                    }
                    self.text_bytes = usage::text_len_hint(chunk);
                }
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
                let e = upstream_error(*status, *code, chunk, &self.redact);
                ChunkAction::Replace(e.body(self.front))
            }
            ResponseMode::Stream { framer, pipe, events, out } => {
                events.clear();
                out.clear();
                let pushed = framer.push(chunk, events);
                if end_of_stream {
                    framer.finish(events);
                }
                out.reserve(chunk.len() + 64);
                for ev in events.iter() {
                    pipe.on_event(ev, out);
                }
                if pushed.is_err() {
                    pipe.error("The upstream sent an oversized stream event", out);
                }
                if end_of_stream {
                    pipe.finish(out);
                }
                if let Some(u) = pipe.usage() {
                    self.usage = Some(u);
                }
                // Upstream error text relayed in an error event never carries the cluster's
                // credentials (checked only when the output mentions an error).
                if !self.redact.is_empty() && error_finder().find(out).is_some() {
                    redact_bytes(out, &self.redact);
                }
                // Byte for byte what came in (whole events that pass unchanged): let the chunk
                // through rather than replace it with a copy of itself.
                if out.as_slice() == chunk {
                    return ChunkAction::Pass;
                }
                ChunkAction::Replace(std::mem::take(out))
            }
        }
    }
}

impl Exchange {
    /// A non-final piece of a buffered response, when the host keeps the whole body so far and
    /// hands over only its size (`total`): counted, not copied. `Buffer` until the end, unless it
    /// is past `max_body` (see `over_cap`).
    pub fn on_response_buffered(&mut self, total: usize, max_body: usize) -> ChunkAction {
        match self.mode {
            ResponseMode::BufferJson => {
                self.buffered = total;
                self.over_cap(total, max_body, false).unwrap_or(ChunkAction::Buffer)
            }
            ResponseMode::Refused => ChunkAction::Replace(Vec::new()),
            _ => ChunkAction::Buffer,
        }
    }

    /// A buffered response of `total` bytes past `max_body` is never half-passed. A chat
    /// response (its headers are held) is refused: 502 `upstream_error` in the caller's dialect,
    /// none of the upstream's bytes reach the client (mid-body the glue sends it as a local
    /// reply, `take_response_reply`; at the end it replaces the body), and the record bills an
    /// estimate (see `billed_usage`). A transcription's JSON (passed untouched anyway) is let
    /// through whole and billed on the upload-size estimate, marked as such.
    fn over_cap(&mut self, total: usize, max_body: usize, end_of_stream: bool) -> Option<ChunkAction> {
        if total <= max_body {
            return None;
        }
        if !self.endpoint.is_chat() {
            self.mode = ResponseMode::Pass;
            self.units_estimated = true;
            return Some(ChunkAction::Pass);
        }
        let e = GatewayError::new(
            Code::UpstreamError,
            format!("The generation service's response is larger than {max_body} bytes; ask for a shorter completion (max_tokens)"),
        );
        self.status = e.status();
        self.error = Some(e.code);
        self.cut_bytes = Some(max_body as u64);
        self.mode = ResponseMode::Refused;
        if end_of_stream {
            self.status_override = Some(e.status());
        } else {
            let mut r = e.reply(self.front);
            // A retry would be generated, refused and billed again: SDKs must not retry it.
            no_retry(&mut r);
            r.headers.extend(self.rate_headers());
            self.response_reply = Some(r);
        }
        Some(ChunkAction::Replace(e.body(self.front)))
    }
}

impl Default for Exchange {
    fn default() -> Self {
        Exchange::new()
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

/// Our error for an upstream failure, carrying the upstream's own message with the cluster's
/// credentials (`redact`) replaced by `[redacted]`. An upstream 401/403 refused the gateway's own
/// credential: its body (which may quote that credential) is never relayed.
fn upstream_error(status: u16, code: Code, body: &[u8], redact: &[String]) -> GatewayError {
    if status == 401 || status == 403 {
        return GatewayError::new(
            Code::UpstreamError,
            format!("The generation service refused the gateway's credential (upstream status {status}); the gateway's upstream configuration must be fixed"),
        );
    }
    let detail = upstream_message(body, redact);
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

/// The message of an error body in any dialect, or its text; credentials redacted before it is
/// cut (so no prefix of one survives the cut).
fn upstream_message(body: &[u8], redact: &[String]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        let m = v
            .pointer("/error/message")
            .or_else(|| v.get("message"))
            .or_else(|| v.get("error"))
            .and_then(Value::as_str);
        if let Some(m) = m {
            return truncate(&redact_text(m, redact), 500);
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        "no details".to_string()
    } else {
        truncate(&redact_text(text, redact), 500)
    }
}

/// `text` with every occurrence of each of `secrets` replaced by `[redacted]`.
pub fn redact_text(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), "[redacted]");
        }
    }
    out
}

/// A searcher for `error`, built once (building one per chunk costs more than the search).
fn error_finder() -> &'static memchr::memmem::Finder<'static> {
    static FINDER: std::sync::OnceLock<memchr::memmem::Finder<'static>> = std::sync::OnceLock::new();
    FINDER.get_or_init(|| memchr::memmem::Finder::new(b"error"))
}

/// `redact_text` on bytes, in place: each credential as it is and as it reads inside a JSON
/// string (where a `"` or `\` in it is escaped).
fn redact_bytes(buf: &mut Vec<u8>, secrets: &[String]) {
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        redact_needle(buf, s.as_bytes());
        let escaped = serde_json::to_string(s).unwrap_or_default();
        if let Some(inner) = escaped.get(1..escaped.len().saturating_sub(1)).filter(|e| *e != s.as_str()) {
            redact_needle(buf, inner.as_bytes());
        }
    }
}

fn redact_needle(buf: &mut Vec<u8>, needle: &[u8]) {
    if needle.is_empty() || memchr::memmem::find(buf, needle).is_none() {
        return;
    }
    let mut out = Vec::with_capacity(buf.len());
    let mut rest: &[u8] = buf;
    while let Some(i) = memchr::memmem::find(rest, needle) {
        out.extend_from_slice(rest.get(..i).unwrap_or(&[]));
        out.extend_from_slice(b"[redacted]");
        rest = rest.get(i.saturating_add(needle.len())..).unwrap_or(&[]);
    }
    out.extend_from_slice(rest);
    *buf = out;
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

fn store_error(e: limits::LimitError) -> GatewayError {
    GatewayError::new(e.code(), "The gateway cannot check this request's limits right now; retry shortly")
}

/// `1s`, `12s`, `250ms`: the OpenAI style of `x-ratelimit-reset-requests`.
pub fn format_duration(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else {
        format!("{}s", ms.div_ceil(1000))
    }
}

/// Admission estimate: prompt tokens from the body size (about 4 bytes a token, an upper bound
/// for most text in JSON), completion tokens from `max_tokens` or the model's default times the
/// choices asked for (`units` for text: `n`, at least 1); per unit (image, second of video) for
/// media.
pub fn estimate_micros(model: &Model, request_bytes: usize, units: f64, max_tokens: Option<u64>) -> u64 {
    let p = model.price;
    let credits = match model.model_type {
        ModelType::Text => {
            let prompt = (request_bytes as f64 / 4.0).ceil();
            let completion = max_tokens.unwrap_or(u64::from(model.default_max_tokens)) as f64 * units.max(1.0);
            prompt * p.prompt_per_1k / 1000.0 + completion * p.completion_per_1k / 1000.0
        }
        ModelType::Image => units.max(1.0) * p.per_image,
        ModelType::Video | ModelType::Audio => units.max(0.0) * p.per_second,
    };
    limits::credits_to_micros(credits)
}

/// Credits of a media request, in micro-credits: per image, per second (video, transcription),
/// per 1000 characters (speech).
pub fn media_micros(model: &Model, endpoint: &Endpoint, units: f64) -> u64 {
    let p = model.price;
    let units = units.max(0.0);
    let credits = match (model.model_type, endpoint) {
        (ModelType::Image, _) => units * p.per_image,
        (ModelType::Audio, Endpoint::Speech) => units * p.per_1k_chars / 1000.0,
        _ => units * p.per_second,
    };
    limits::credits_to_micros(credits)
}

/// Tells the SDKs not to retry a reply whose error would otherwise be retryable.
fn no_retry(r: &mut LocalReply) {
    for (k, v) in r.headers.iter_mut() {
        if k == "x-should-retry" {
            *v = "false".to_string();
        }
    }
}

fn too_large_body(max: usize, got: u64) -> GatewayError {
    GatewayError::new(
        Code::RequestTooLarge,
        format!("The request body is larger than {max} bytes ({got} bytes), the limit of this endpoint"),
    )
}

/// A request id in the UUID shape Envoy's own have (version 4, variant 1), from 128 bits the
/// glue draws: the record's `request_id`, which the client cannot choose.
pub fn format_request_id(hi: u64, lo: u64) -> String {
    let hi = (hi & !0xf000) | 0x4000;
    let lo = (lo & !(0xc000 << 48)) | (0x8000 << 48);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0xffff,
        lo >> 48,
        lo & 0xffff_ffff_ffff
    )
}

/// The client's `x-request-id`, kept in the record as `client_request_id`: at most 128
/// characters of `[A-Za-z0-9._:/+=@-]`, others replaced by `_`; empty or blank: none.
pub fn client_request_id(raw: &str) -> Option<String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    let keep = |c: char| c.is_ascii_alphanumeric() || "._:/+=@-".contains(c);
    Some(raw.chars().take(128).map(|c| if keep(c) { c } else { '_' }).collect())
}

fn too_large_upload(max: u64, got: u64) -> GatewayError {
    GatewayError::new(
        Code::RequestTooLarge,
        format!("The upload is larger than the limit of {max} bytes ({got} bytes)"),
    )
}

fn wrong_task(name: &str, endpoint: &Endpoint) -> GatewayError {
    GatewayError::new(Code::InvalidModel, format!("The model '{name}' cannot be used on the {} endpoint", endpoint.name()))
        .with_param("model")
}

/// The actual cost of reported usage.
pub fn usage_micros(model: &Model, u: &Usage) -> u64 {
    limits::credits_to_micros(usage::credits(&model.price, u))
}

/// `2026-11-23T10:00:00.123Z` for milliseconds since the Unix epoch (UTC).
pub fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z", rem / 3600, rem % 3600 / 60, rem % 60, ms % 1000)
}

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

fn client_credential_removals() -> Vec<HeaderEdit> {
    vec![remove("authorization"), remove("x-api-key"), remove("x-goog-api-key")]
}

fn gemini_model_json(m: &Model) -> Value {
    let methods: &[&str] = if m.model_type == ModelType::Text { &["generateContent", "streamGenerateContent"] } else { &[] };
    json!({"name": format!("models/{}", m.id), "displayName": m.id, "version": "1", "supportedGenerationMethods": methods})
}

fn model_json(m: &Model) -> Value {
    json!({"id": m.id, "object": "model", "created": 0, "owned_by": m.owned_by, "type": m.model_type.as_str()})
}

#[cfg(test)]
#[path = "tests/exchange_tests.rs"]
mod tests;
