//! One error type for everything the gateway refuses or fails at, rendered in the caller's
//! dialect (OpenAI, Anthropic or Gemini error shape) with that dialect's status conventions.

use crate::dialect::Dialect;
use crate::reply::LocalReply;
use crate::sse::{write_json_str, write_u64};

/// What went wrong, as the gateway's own stable codes (the documented error codes of the platform the
/// gateway stands in for, plus a few of our own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// 400: a required field is absent.
    MissingField,
    /// 400: the model is unknown or of the wrong type for this endpoint.
    InvalidModel,
    /// 400: malformed JSON, wrong types, out-of-range values.
    BadRequest,
    /// 400: the prompt and `max_tokens` fit no context window the request may use.
    ContextLengthExceeded,
    /// 401: no key, malformed key, unknown key.
    Unauthorized,
    /// 402: spend cap reached.
    InsufficientFunds,
    /// 403: the key's account is inactive.
    Forbidden,
    /// 404: no such endpoint.
    NotFound,
    /// 405: the endpoint exists but not with this method.
    MethodNotAllowed,
    /// 413: the request body is larger than allowed.
    RequestTooLarge,
    /// 429: account-wide requests per minute exhausted.
    RateLimitExceeded,
    /// 429: per-key daily sandbox quota exhausted.
    SandboxQuotaExceeded,
    /// 500: a bug or misconfiguration on our side.
    InternalError,
    /// 502: the upstream failed or could not be reached.
    UpstreamError,
    /// 503: the gateway cannot decide (shared state unavailable).
    ServiceUnavailable,
}

impl Code {
    /// Every code (for defining one error stat per code).
    pub const ALL: [Code; 15] = [
        Code::MissingField,
        Code::InvalidModel,
        Code::BadRequest,
        Code::ContextLengthExceeded,
        Code::Unauthorized,
        Code::InsufficientFunds,
        Code::Forbidden,
        Code::NotFound,
        Code::MethodNotAllowed,
        Code::RequestTooLarge,
        Code::RateLimitExceeded,
        Code::SandboxQuotaExceeded,
        Code::InternalError,
        Code::UpstreamError,
        Code::ServiceUnavailable,
    ];

    /// The HTTP status this code is returned with.
    pub fn status(self) -> u16 {
        match self {
            Code::MissingField | Code::InvalidModel | Code::BadRequest | Code::ContextLengthExceeded => 400,
            Code::Unauthorized => 401,
            Code::InsufficientFunds => 402,
            Code::Forbidden => 403,
            Code::NotFound => 404,
            Code::MethodNotAllowed => 405,
            Code::RequestTooLarge => 413,
            Code::RateLimitExceeded | Code::SandboxQuotaExceeded => 429,
            Code::InternalError => 500,
            Code::UpstreamError => 502,
            Code::ServiceUnavailable => 503,
        }
    }

    /// The stable string code (the OpenAI shape's `code`).
    pub fn as_str(self) -> &'static str {
        match self {
            Code::MissingField => "missing_field",
            Code::InvalidModel => "invalid_model",
            Code::BadRequest => "bad_request",
            Code::ContextLengthExceeded => "context_length_exceeded",
            Code::Unauthorized => "unauthorized",
            Code::InsufficientFunds => "insufficient_funds",
            Code::Forbidden => "forbidden",
            Code::NotFound => "not_found",
            Code::MethodNotAllowed => "method_not_allowed",
            Code::RequestTooLarge => "request_entity_too_large",
            Code::RateLimitExceeded => "rate_limit_exceeded",
            Code::SandboxQuotaExceeded => "sandbox_quota_exceeded",
            Code::InternalError => "internal_error",
            Code::UpstreamError => "upstream_error",
            Code::ServiceUnavailable => "service_unavailable",
        }
    }

    /// The OpenAI error `type`.
    fn openai_type(self) -> &'static str {
        match self {
            Code::RateLimitExceeded | Code::SandboxQuotaExceeded => "rate_limit_error",
            Code::InsufficientFunds => "insufficient_quota",
            Code::InternalError | Code::UpstreamError | Code::ServiceUnavailable => "api_error",
            _ => "invalid_request_error",
        }
    }

    /// The Anthropic error `type` (their documented list).
    fn anthropic_type(self) -> &'static str {
        match self {
            Code::Unauthorized => "authentication_error",
            Code::Forbidden | Code::InsufficientFunds => "permission_error",
            Code::NotFound => "not_found_error",
            Code::RequestTooLarge => "request_too_large",
            Code::RateLimitExceeded | Code::SandboxQuotaExceeded => "rate_limit_error",
            Code::InternalError | Code::UpstreamError => "api_error",
            Code::ServiceUnavailable => "overloaded_error",
            _ => "invalid_request_error",
        }
    }

    /// The Gemini (google.rpc) error `status`.
    fn gemini_status(self) -> &'static str {
        match self {
            Code::Unauthorized => "UNAUTHENTICATED",
            Code::Forbidden | Code::InsufficientFunds => "PERMISSION_DENIED",
            Code::NotFound => "NOT_FOUND",
            Code::RateLimitExceeded | Code::SandboxQuotaExceeded => "RESOURCE_EXHAUSTED",
            Code::InternalError => "INTERNAL",
            Code::UpstreamError | Code::ServiceUnavailable => "UNAVAILABLE",
            _ => "INVALID_ARGUMENT",
        }
    }

    /// Whether an SDK should retry this error on its own (sent as `x-should-retry`).
    pub fn retryable(self) -> bool {
        matches!(
            self,
            Code::RateLimitExceeded
                | Code::SandboxQuotaExceeded
                | Code::UpstreamError
                | Code::ServiceUnavailable
                | Code::InternalError
        )
    }
}

/// An error the gateway answers with.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayError {
    pub code: Code,
    pub message: String,
    /// The offending request field, where there is one.
    pub param: Option<String>,
    /// Seconds until a retry can succeed (sent as `Retry-After`).
    pub retry_after: Option<u64>,
    /// The same, to the millisecond (sent as `retry-after-ms`, which the OpenAI SDKs prefer).
    pub retry_after_ms: Option<u64>,
    /// A status other than the code's default (used for pass-through upstream statuses).
    pub status_override: Option<u16>,
}

impl GatewayError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        GatewayError {
            code,
            message: message.into(),
            param: None,
            retry_after: None,
            retry_after_ms: None,
            status_override: None,
        }
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// Retry after `ms` milliseconds: `Retry-After` in whole seconds rounded up (at least 1),
    /// `retry-after-ms` exact.
    pub fn with_retry_after_ms(mut self, ms: u64) -> Self {
        self.retry_after = Some(ms.div_ceil(1000).max(1));
        self.retry_after_ms = Some(ms.max(1));
        self
    }

    #[cold]
    #[inline(never)]
    pub fn missing(field: &str) -> Self {
        GatewayError::new(Code::MissingField, format!("'{field}' is a required field")).with_param(field)
    }

    #[cold]
    #[inline(never)]
    pub fn bad(field: &str, message: impl Into<String>) -> Self {
        GatewayError::new(Code::BadRequest, message).with_param(field)
    }

    pub fn status(&self) -> u16 {
        self.status_override.unwrap_or_else(|| self.code.status())
    }

    /// The error's body in the given dialect, written as bytes: the members in the order
    /// serde_json's sorted map gave them (`code`, `message`, `param`, `type` for OpenAI;
    /// `error` before `type` for Anthropic; `code`, `message`, `status` for Gemini), strings
    /// escaped as serde_json escapes them.
    pub fn body(&self, dialect: Dialect) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.message.len() + 96);
        match dialect {
            Dialect::OpenAi | Dialect::OpenAiResponses => {
                out.extend_from_slice(b"{\"error\":{\"code\":");
                write_json_str(&mut out, self.code.as_str());
                out.extend_from_slice(b",\"message\":");
                write_json_str(&mut out, &self.message);
                out.extend_from_slice(b",\"param\":");
                match &self.param {
                    Some(p) => write_json_str(&mut out, p),
                    None => out.extend_from_slice(b"null"),
                }
                out.extend_from_slice(b",\"type\":");
                write_json_str(&mut out, self.code.openai_type());
                out.extend_from_slice(b"}}");
            }
            Dialect::Anthropic => {
                out.extend_from_slice(b"{\"error\":{\"message\":");
                write_json_str(&mut out, &self.message);
                out.extend_from_slice(b",\"type\":");
                write_json_str(&mut out, self.code.anthropic_type());
                out.extend_from_slice(b"},\"type\":\"error\"}");
            }
            Dialect::Gemini => {
                out.extend_from_slice(b"{\"error\":{\"code\":");
                write_u64(&mut out, u64::from(self.status()));
                out.extend_from_slice(b",\"message\":");
                write_json_str(&mut out, &self.message);
                out.extend_from_slice(b",\"status\":");
                write_json_str(&mut out, self.code.gemini_status());
                out.extend_from_slice(b"}}");
            }
        }
        out
    }

    /// The Anthropic `event: error` frame for an error that happens after a stream began.
    pub fn anthropic_stream_event(&self) -> Vec<u8> {
        let mut out = b"event: error\ndata: ".to_vec();
        out.extend_from_slice(&self.body(Dialect::Anthropic));
        out.extend_from_slice(b"\n\n");
        out
    }

    /// A complete local reply: status, headers and body in the caller's dialect.
    pub fn reply(&self, dialect: Dialect) -> LocalReply {
        let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
        if let Some(secs) = self.retry_after {
            headers.push(("retry-after".to_string(), secs.to_string()));
            let ms = self.retry_after_ms.unwrap_or(secs.saturating_mul(1000));
            headers.push(("retry-after-ms".to_string(), ms.to_string()));
        }
        headers.push(("x-should-retry".to_string(), if self.code.retryable() { "true" } else { "false" }.to_string()));
        LocalReply { status: self.status(), headers, body: self.body(dialect) }
    }
}

#[cfg(test)]
#[path = "tests/errors_tests.rs"]
mod tests;
