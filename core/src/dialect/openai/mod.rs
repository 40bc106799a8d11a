//! OpenAI Chat Completions: the pivot shape the other dialects translate through. `front`: an
//! OpenAI client (its request validated; the pivot stream written out to it); `upstream`: an
//! OpenAI upstream (the request body sent to it; its response and stream read, including the
//! fast path from an OpenAI upstream to an OpenAI client that only renames the model and
//! handles the usage chunk).

mod chunk;
pub mod completion;
mod front;
mod pivot_write;
mod scan;
mod upstream;

pub use super::validate::{parse_json_object, required_model, MAX_CHOICES};
pub use front::{parse_chat, scan_chat, stamp_created, write_error, ChatRequest, ChatScan, StreamFromPivot};
pub use pivot_write::pivot_chat_body;
pub use upstream::{rewrite_response, upstream_chat_body, OpenAiStream, StreamToPivot};

#[cfg(test)]
#[path = "../tests/openai_tests.rs"]
mod tests;
