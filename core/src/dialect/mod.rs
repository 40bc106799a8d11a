//! The API dialects Tollgate speaks, to clients (fronts) and to upstreams.
//! OpenAI Chat Completions is the pivot shape: every other dialect translates to and from it.

pub mod anthropic;
mod build;
mod cursor;
mod frame;
pub mod gemini;
pub mod guard;
pub mod openai;
pub mod pivot;
pub mod responses;
pub mod stream;
pub mod typed_reply;
pub mod validate;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::errors::GatewayError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    #[default]
    #[serde(rename = "openai")]
    OpenAi,
    Anthropic,
    Gemini,
    /// The OpenAI Responses API (`/v1/responses`), as a front and as an upstream.
    #[serde(rename = "openai-responses")]
    OpenAiResponses,
}

impl Dialect {
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::OpenAi => "openai",
            Dialect::Anthropic => "anthropic",
            Dialect::Gemini => "gemini",
            Dialect::OpenAiResponses => "openai-responses",
        }
    }
}

/// A 400 for `param` (the translators' shorthand).
#[cold]
#[inline(never)]
fn bad(param: &str, msg: impl Into<String>) -> GatewayError {
    GatewayError::bad(param, msg)
}

/// `m[k] = v`.
#[inline(never)]
fn ins(m: &mut Map<String, Value>, k: &str, v: Value) {
    m.insert(k.to_string(), v);
}

#[cfg(test)]
#[path = "tests/upstream_golden_tests.rs"]
mod upstream_golden_tests;

#[cfg(test)]
#[path = "tests/front_golden_tests.rs"]
mod front_golden_tests;
