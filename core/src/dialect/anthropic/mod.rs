//! Anthropic Messages (`POST /v1/messages`), translated to and from the pivot shape (OpenAI
//! Chat Completions). `front`: an Anthropic client (its request into the pivot; the pivot
//! response and stream out in Anthropic's shape). `upstream`: an Anthropic upstream (the pivot
//! request out to it; its response and stream into the pivot).

mod front;
mod front_body;
mod front_stream;
mod text_in;
mod upstream;

pub use front::{request_to_pivot, response_from_pivot};
pub use front_body::write_response;
pub use front_stream::StreamFromPivot;
pub use upstream::{request_from_pivot, response_to_pivot, upstream_path, usage_from_anthropic, StreamToPivot};

use serde_json::Value;

use super::pivot::Finish;
use super::{bad, ins};

/// Anthropic `stop_reason` -> pivot finish reason.
pub fn finish_from_stop_reason(s: &str) -> Finish {
    match s {
        "max_tokens" | "model_context_window_exceeded" => Finish::Length,
        "tool_use" => Finish::ToolCalls,
        "refusal" => Finish::ContentFilter,
        // end_turn, stop_sequence, pause_turn
        _ => Finish::Stop,
    }
}

/// The stop sequence that ended a pivot choice: its `stop_reason` when a string (the field
/// vLLM-style OpenAI servers set to the matched stop string, and the Anthropic upstream half
/// sets from Anthropic's `stop_sequence`).
pub fn stop_sequence_of(choice: Option<&Value>) -> Option<&str> {
    choice.and_then(|c| c.get("stop_reason")).and_then(Value::as_str)
}

/// Pivot finish reason -> Anthropic `stop_reason`.
pub fn stop_reason_of(f: Finish) -> &'static str {
    match f {
        Finish::Stop => "end_turn",
        Finish::Length => "max_tokens",
        Finish::ToolCalls => "tool_use",
        Finish::ContentFilter => "refusal",
    }
}

#[cfg(test)]
#[path = "../tests/anthropic_tests.rs"]
mod tests;
