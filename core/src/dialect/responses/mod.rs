//! The OpenAI Responses API (`POST /v1/responses`), translated to and from the pivot shape
//! (OpenAI Chat Completions). `front`: a Responses client (its request into the pivot; the
//! pivot response and stream out as a `response` object and its typed events). `upstream`: a
//! cluster that only speaks the Responses API (the pivot request out to it; its response and
//! stream into the pivot). The gateway keeps no conversation state: requests that depend on a
//! stored response or conversation are refused.

mod front;
mod front_stream;
mod upstream;

pub use front::{request_to_pivot, response_from_pivot, Echo};
pub use front_stream::StreamFromPivot;
pub use upstream::{request_from_pivot, response_to_pivot, upstream_path, usage_from_responses, StreamToPivot};

use serde_json::{json, Value};

use crate::usage::Usage;

/// Usage -> the Responses `usage` object.
pub fn usage_json(u: &Usage) -> Value {
    json!({
        "input_tokens": u.prompt_tokens,
        "input_tokens_details": {"cached_tokens": u.cached_tokens},
        "output_tokens": u.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
        "total_tokens": u.total(),
    })
}

#[cfg(test)]
#[path = "../tests/responses_tests.rs"]
mod tests;
