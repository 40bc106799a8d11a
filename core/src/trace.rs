//! Per-request attributes for tracing spans, under the OpenTelemetry GenAI semantic convention
//! names (`gen_ai.*`) plus a few of Tollgate's own (`tollgate.*`).
//!
//! The glue stores each one as filter state `wasm.tollgate.<name>` (PLAIN string): the request's
//! attributes when the response starts, the outcome's when it is known (the gateway answers
//! itself, or the upstream's response ends). Envoy's tracer finishes the span before the log
//! phase (verified in Envoy 1.40), so what the log phase stores comes too late for the span of a
//! response that never ended (a stream cut off, a client gone: the span has the request's
//! attributes only; access logs see them all). Custom tags read them, e.g.
//! `{tag: gen_ai.request.model, value: "%FILTER_STATE(wasm.tollgate.gen_ai.request.model:PLAIN)%"}`
//! (see envoy/tracing-otlp.yaml and the README, "Traces"). Values are what the billing record
//! says; attributes that do not apply to a request (no model, not forwarded) are not set.

use crate::dialect::Dialect;
use crate::endpoints::Endpoint;
use crate::errors::Code;
use crate::exchange::Exchange;
use crate::usage::Usage;
use serde_json::Value;

/// Filter-state names are this prefix plus the attribute name (Envoy adds `wasm.`).
pub const PREFIX: &str = "tollgate.";

/// Every attribute name, in the order `attributes` lists them.
pub const NAMES: [&str; 14] = [
    "gen_ai.operation.name",
    "gen_ai.provider.name",
    "gen_ai.system",
    "gen_ai.request.model",
    "gen_ai.response.model",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "error.type",
    "tollgate.front",
    "tollgate.usage.estimated",
    "tollgate.credits",
    "tollgate.limit.outcome",
    "tollgate.request_id",
    "tollgate.account_id",
];

/// The GenAI operation name of an endpoint (semantic convention values where one exists).
fn operation(e: &Endpoint) -> &'static str {
    match e {
        Endpoint::ChatCompletions | Endpoint::Messages | Endpoint::Responses => "chat",
        Endpoint::Gemini { .. } => "generate_content",
        other => other.name(),
    }
}

/// The GenAI provider name of an upstream dialect (`gcp.gemini` is the convention's value).
fn provider(d: Dialect) -> &'static str {
    match d {
        Dialect::OpenAi | Dialect::OpenAiResponses => "openai",
        Dialect::Anthropic => "anthropic",
        Dialect::Gemini => "gcp.gemini",
    }
}

/// What the limits did with the request: `admitted` (forwarded upstream), `rate`, `sandbox`,
/// `spend` (refused by that limit), `store` (refused because shared data failed), or
/// `not_checked` (refused before the limits: key, validation, routing).
pub fn limit_outcome(error: Option<Code>, forwarded: bool) -> &'static str {
    match error {
        Some(Code::RateLimitExceeded) => "rate",
        Some(Code::SandboxQuotaExceeded) => "sandbox",
        Some(Code::InsufficientFunds) => "spend",
        Some(Code::ServiceUnavailable) => "store",
        _ if forwarded => "admitted",
        _ => "not_checked",
    }
}

/// The attributes of an exchange whose bill is `bill` (`Exchange::bill`: usage, estimated,
/// micro-credits), as (name, value) pairs; `account` is the configured account id (never a key).
pub fn attributes(ex: &Exchange, bill: &(Usage, bool, u64), account: Option<&str>) -> Vec<(&'static str, String)> {
    let mut out = request_attributes(ex, account);
    out.extend(outcome_attributes(ex, bill));
    out
}

/// What is known once the request is routed and never changes after: the operation, provider,
/// models, front, request and account ids. Stored when the response starts, so that a span whose
/// response never ends normally still has them.
pub fn request_attributes(ex: &Exchange, account: Option<&str>) -> Vec<(&'static str, String)> {
    let forwarded = ex.model.is_some() && !ex.local_reply;
    let mut out = Vec::with_capacity(NAMES.len());
    out.push(("gen_ai.operation.name", operation(&ex.endpoint).to_string()));
    if forwarded {
        out.push(("gen_ai.provider.name", provider(ex.upstream).to_string()));
        out.push(("gen_ai.system", provider(ex.upstream).to_string()));
    }
    if let Some(m) = &ex.model {
        out.push(("gen_ai.request.model", m.clone()));
    }
    if let (true, Some(m)) = (forwarded, &ex.upstream_model) {
        out.push(("gen_ai.response.model", m.clone()));
    }
    out.push(("tollgate.front", ex.front.as_str().to_string()));
    out.push(("tollgate.request_id", ex.request_id.clone()));
    if let Some(a) = account {
        out.push(("tollgate.account_id", a.to_string()));
    }
    out
}

/// What is known at the end: usage, estimated or not, credits, the error and the limits' outcome.
pub fn outcome_attributes(ex: &Exchange, bill: &(Usage, bool, u64)) -> Vec<(&'static str, String)> {
    let (usage, estimated, micros) = bill;
    let forwarded = ex.model.is_some() && !ex.local_reply;
    let mut out = Vec::with_capacity(7);
    if ex.model.is_some() {
        out.push(("gen_ai.usage.input_tokens", usage.prompt_tokens.to_string()));
        out.push(("gen_ai.usage.output_tokens", usage.completion_tokens.to_string()));
    }
    if let Some(c) = ex.error {
        out.push(("error.type", c.as_str().to_string()));
    }
    out.push(("tollgate.usage.estimated", estimated.to_string()));
    out.push(("tollgate.credits", Value::from(*micros as f64 / 1e6).to_string()));
    out.push(("tollgate.limit.outcome", limit_outcome(ex.error, forwarded).to_string()));
    out
}

#[cfg(test)]
#[path = "tests/trace_tests.rs"]
mod tests;
