//! One request's trip through the gateway, as a pure state machine the glue drives:
//! request headers -> (request body) -> response headers -> response body chunks -> done.
//! It decides; the glue applies (header edits, body replacement, local replies).
//!
//! The files follow the trip:
//! - `mod.rs`: the `Exchange` and the types it shares with the glue;
//! - `auth.rs`: the request headers (endpoint, key, account, the model list);
//! - `admit.rs`: the limits (requests per minute, sandbox quota, spend reservation, body caps);
//! - `route.rs`: the request body (validation, model, cluster, the upstream's request);
//! - `auto.rs`: a router model (`auto`) picking the model that serves;
//! - `upload.rs`: a streamed multipart upload (transcriptions);
//! - `response.rs` and `redact.rs`: the response path and the upstream's errors;
//! - `record.rs`: the bill, the settlement of the reservation and the billing record;
//! - `capture.rs`: request and response content, for keys that opt in.
//!
//! What things cost, and the reserve-then-settle policy, is `crate::pricing`.

use std::borrow::Cow;

mod admit;
mod auth;
mod auto;
mod capture;
mod count;
mod failover;
mod models;
mod policy;
mod record;
mod redact;
mod remote;
mod response;
mod route;
mod upload;

pub use self::admit::format_duration;
pub use self::capture::CONTENT_LOG_CAP;
pub use self::count::ESTIMATED_HEADER;
pub use self::failover::{
    failover_stat, fails_over, Attempt, FailoverCall, FallbackAnswer, FAILOVER_TIMEOUT_MS, MODEL_HEADER,
};
pub use self::record::{client_request_id, format_request_id, rfc3339};
pub use self::redact::redact_text;
pub use self::remote::LimitsCall;
pub use self::upload::UPLOAD_SCAN_LIMIT;
pub use crate::pricing::{estimate_micros, media_micros, usage_micros};
pub use crate::reply::LocalReply;

use self::policy::PolicyState;
use self::remote::RemoteState;
use self::response::ResponseMode;
use self::upload::Upload;
use crate::dialect::responses::Echo;
use crate::dialect::Dialect;
use crate::endpoints::Endpoint;
use crate::errors::{Code, GatewayError};
use crate::limits::{Counters, RateDecision};
use crate::pricing::{SettleFailure, SpendHold};
use crate::routing::Price;
use crate::usage::Usage;

/// An edit of the request's or the response's headers. Names and values are `Cow`s: the
/// constant ones (most names, `application/json`) are not allocated per request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderEdit {
    Set(Cow<'static, str>, Cow<'static, str>),
    Remove(Cow<'static, str>),
}

fn set(k: impl Into<Cow<'static, str>>, v: impl Into<Cow<'static, str>>) -> HeaderEdit {
    HeaderEdit::Set(k.into(), v.into())
}

fn remove(k: impl Into<Cow<'static, str>>) -> HeaderEdit {
    HeaderEdit::Remove(k.into())
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
    /// It carries an `anthropic-version` header (an Anthropic client): the model list and a
    /// model are answered in Anthropic's shape.
    pub anthropic_version: bool,
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
    Forward {
        edits: Vec<HeaderEdit>,
        body: Option<Vec<u8>>,
    },
    /// Let this piece through.
    Continue,
    Reply(LocalReply),
    /// Send `take_limits_call` to the limits service and hold the upload (keep buffering); feed
    /// the answer to `on_limits_answer`, then call `on_upload_body` again with what is buffered.
    AskLimits,
}

#[derive(Debug, PartialEq)]
pub enum BodyAction {
    Reply(LocalReply),
    /// Apply the edits; replace the body if given; let the request go upstream.
    Forward {
        edits: Vec<HeaderEdit>,
        body: Option<Vec<u8>>,
    },
    /// Send `take_limits_call` to the limits service and hold the request; feed the answer to
    /// `on_limits_answer`, then call `on_request_body` again with the same body.
    AskLimits,
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

/// One request. Its public fields are the ones the glue reads or sets (the minted request id, the
/// status Envoy sent when it answered before the filter saw the request); the rest is read
/// through methods.
#[derive(Debug)]
pub struct Exchange {
    pub(crate) endpoint: Endpoint,
    pub(crate) front: Dialect,
    key: Option<u32>,
    pub account: Option<usize>,
    /// The model the client asked for.
    pub(crate) model: Option<String>,
    pub(crate) upstream_model: Option<String>,
    cluster: Option<usize>,
    stream: bool,
    wants_usage: bool,
    /// A Responses client's request settings, for its `response` object to repeat.
    echo: Option<Box<Echo>>,
    /// The dialect of the upstream cluster.
    pub(crate) upstream: Dialect,
    /// Set when the filter answered by itself.
    pub local_reply: bool,
    pub status: u16,
    usage: Option<Usage>,
    /// Times the counter store failed this request (fail closed: 503); reported on the `Outcome`.
    store_failures: u32,
    /// The account's rate window after this request (for the `x-ratelimit-*` headers).
    rate: Option<RateDecision>,
    /// Spend reserved at admission, to settle when the response ends.
    reserved: Option<SpendHold>,
    /// The admission estimate in micro-credits.
    estimate_micros: u64,
    /// Request body size, for estimates.
    request_bytes: usize,
    mode: ResponseMode,
    buffered: usize,
    /// The record's id, minted by the glue (never the client's own `x-request-id`), and
    /// returned to the client in `x-request-id`.
    pub request_id: String,
    /// The client's own `x-request-id`, sanitized and bounded (see `client_request_id`).
    client_request_id: Option<String>,
    /// When the request headers arrived, and the latest time the host gave (ms since the epoch).
    pub start_ms: u64,
    now_ms: u64,
    /// When the response began (headers from upstream, or our local reply).
    first_byte_ms: Option<u64>,
    /// The error code the client got, if any.
    pub(crate) error: Option<Code>,
    /// Prompt tokens estimated from the request (for records without usage).
    prompt_estimate: u64,
    /// Completion text bytes seen in a response without usage.
    text_bytes: u64,
    /// The response body ended normally (its last chunk was seen).
    response_done: bool,
    /// Billable units of a media request (images, seconds).
    units: Option<f64>,
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
    /// The limits service's part (`limits.store: "remote"`).
    remote: RemoteState,
    /// The candidate a router model (`auto`) chose to serve the request.
    chosen: Option<String>,
    /// What a failover needs (a chat request to a model with `fallbacks`).
    failover: Option<Box<failover::Failover>>,
    /// The per-key and per-account policies' part (key rpm, tokens per minute).
    policy: PolicyState,
}

/// The end of an exchange: what to bill and count, and the billing record.
#[derive(Debug, Clone, Default, PartialEq)]
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
    /// Times the counter store failed this request's limits (answered 503); the glue adds them to
    /// `tollgate.limits.store_failures`.
    pub store_failures: u32,
    /// Settlements of the spend reservation that did not land (0 or 1); the glue adds them to
    /// `tollgate.limits.settle_failures` and logs `settle_failure` at warn.
    pub settle_failures: u32,
    /// What the failed settlement left: the reservation still held on the caps, and the cost the
    /// spent totals miss.
    pub settle_failure: Option<SettleFailure>,
    /// Calls to the limits service that failed for this request (`tollgate.limits.remote_failures`).
    pub remote_failures: u32,
    /// Limits decided on this Envoy's own counters because the service failed
    /// (`tollgate.limits.remote_fallbacks`).
    pub remote_fallbacks: u32,
    /// The settlement of the hold on the limits service, for the glue to send from the root
    /// context (it outlives the request).
    pub remote_settlement: Option<LimitsCall>,
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
            echo: None,
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
            remote: RemoteState::default(),
            chosen: None,
            failover: None,
            policy: PolicyState::default(),
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

    pub(super) fn fail(&mut self, e: GatewayError) -> LocalReply {
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

    /// The error code the client got, if any.
    pub fn error(&self) -> Option<Code> {
        self.error
    }

    /// Whether the authenticated key logs content (its record keeps prompt and completion).
    pub fn logs_content(&self, cfg: &crate::config::Config) -> bool {
        self.key.and_then(|k| cfg.key(k)).is_some_and(|k| k.log_content())
    }

    /// The caller's dialect (from the endpoint).
    pub fn front(&self) -> Dialect {
        self.front
    }

    /// The routed cluster's dialect (OpenAI until routed).
    pub fn upstream(&self) -> Dialect {
        self.upstream
    }

    /// The request asked for a stream.
    pub fn stream(&self) -> bool {
        self.stream
    }

    /// An OpenAI stream request asked for usage (`stream_options.include_usage`).
    pub fn wants_usage(&self) -> bool {
        self.wants_usage
    }

    /// The admission estimate in micro-credits (what the spend caps reserved, if any).
    pub fn estimate_micros(&self) -> u64 {
        self.estimate_micros
    }

    /// Prompt tokens estimated from the request (billed when the upstream reports none).
    pub fn prompt_estimate(&self) -> u64 {
        self.prompt_estimate
    }

    /// `x-ratelimit-*` headers (OpenAI's names) for responses that passed authentication.
    pub fn rate_headers(&self) -> Vec<(String, String)> {
        let mut headers = match &self.rate {
            Some(d) => vec![
                ("x-ratelimit-limit-requests".to_string(), d.limit.to_string()),
                ("x-ratelimit-remaining-requests".to_string(), d.remaining.to_string()),
                ("x-ratelimit-reset-requests".to_string(), format_duration(d.reset_after_ms)),
            ],
            None => Vec::new(),
        };
        headers.extend(self.token_headers());
        headers
    }

    /// The request path with its `?key=` removed, once: the glue sets it before replying or
    /// forwarding, so the key reaches neither the upstream nor Envoy's access log.
    pub fn take_path_without_key(&mut self) -> Option<String> {
        self.path_without_key.take()
    }

    /// The path could not be rid of its `?key=` (the host refused the edit): nothing goes
    /// upstream, the client gets a 500 in its dialect.
    pub fn path_strip_failed(&mut self) -> LocalReply {
        self.fail(GatewayError::new(Code::InternalError, "The gateway could not process this request's path"))
    }

    /// The host refused an edit the request depends on (a credential removed, the route set, the
    /// body rewritten): nothing goes upstream, the client gets a 500 in its dialect.
    pub fn host_failed(&mut self) -> LocalReply {
        self.fail(GatewayError::new(Code::InternalError, "The gateway could not prepare this request for its upstream"))
    }
}

impl Default for Exchange {
    fn default() -> Self {
        Exchange::new()
    }
}

#[cfg(test)]
mod tests;
