//! OpenAI Chat Completions: the pivot shape the other dialects translate through. `front`: an
//! OpenAI client (its request validated; the pivot stream written out to it); `upstream`: an
//! OpenAI upstream (the request body sent to it; its response and stream read, including the
//! fast path from an OpenAI upstream to an OpenAI client that only renames the model and
//! handles the usage chunk).

mod front;
mod scan;
mod upstream;

pub use front::{parse_chat, parse_json_object, required_model, scan_chat, ChatRequest, ChatScan};
pub use upstream::{rewrite_response, upstream_chat_body, OpenAiStream};

/// The most choices (`n`, Gemini's `candidateCount`) one request may ask for: each one is a
/// whole completion, reserved and billed.
pub const MAX_CHOICES: u64 = 8;

#[cfg(test)]
#[path = "../tests/openai_tests.rs"]
mod tests;
