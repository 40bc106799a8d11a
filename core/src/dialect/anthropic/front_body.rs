//! The Anthropic message for a non-streamed OpenAI completion, written straight to bytes from
//! the typed read (`openai::completion`): the same bytes as `response_from_pivot` of the parsed
//! completion serialized (keys in serde_json's sorted order), without building either.

use serde_json::Number;

use super::front::{anthropic_input_tokens, message_id};
use super::stop_reason_of;
use crate::dialect::openai::completion::Completion;
use crate::dialect::pivot::Finish;
use crate::sse::{write_json_str, write_u64};

/// Writes the message; `credits` is `usage.credits_consumed` as the `Value` path would carry it.
pub fn write_response(c: &Completion, client_model: &str, credits: Option<&Number>) -> Vec<u8> {
    let choice = c.choices.first();
    let text = choice.map_or("", |ch| ch.text.as_ref());
    let refusal = choice.and_then(|ch| ch.refusal.as_deref()).filter(|r| !r.is_empty());
    let mut out = Vec::with_capacity(256 + text.len() + refusal.map_or(0, str::len) + client_model.len());
    out.extend_from_slice(b"{\"content\":[");
    let mut first = true;
    for t in [Some(text).filter(|t| !t.is_empty()), refusal].into_iter().flatten() {
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend_from_slice(b"{\"text\":");
        write_json_str(&mut out, t);
        out.extend_from_slice(b",\"type\":\"text\"}");
    }
    out.extend_from_slice(b"],\"id\":");
    write_json_str(&mut out, &message_id(c.id.as_deref()));
    out.extend_from_slice(b",\"model\":");
    write_json_str(&mut out, client_model);
    out.extend_from_slice(b",\"role\":\"assistant\",\"stop_reason\":");
    let finish = choice.and_then(|ch| ch.finish_reason.as_deref()).map(Finish::from_openai).unwrap_or(Finish::Stop);
    // The stop sequence that ended the choice (its `stop_reason`, see `stop_sequence_of`).
    match choice.and_then(|ch| ch.stop_reason.as_deref()) {
        Some(seq) if finish == Finish::Stop => {
            out.extend_from_slice(b"\"stop_sequence\",\"stop_sequence\":");
            write_json_str(&mut out, seq);
        }
        _ => {
            write_json_str(&mut out, stop_reason_of(finish));
            out.extend_from_slice(b",\"stop_sequence\":null");
        }
    }
    out.extend_from_slice(b",\"type\":\"message\",\"usage\":{\"cache_creation_input_tokens\":");
    let u = c.usage.as_ref().map(|u| u.usage).unwrap_or_default();
    write_u64(&mut out, u.cache_creation_tokens);
    out.extend_from_slice(b",\"cache_read_input_tokens\":");
    write_u64(&mut out, u.cached_tokens);
    if let Some(n) = credits {
        out.extend_from_slice(b",\"credits_consumed\":");
        // Writing a number to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut out, n);
    }
    out.extend_from_slice(b",\"input_tokens\":");
    write_u64(&mut out, anthropic_input_tokens(&u));
    out.extend_from_slice(b",\"output_tokens\":");
    write_u64(&mut out, u.completion_tokens);
    out.extend_from_slice(b"}}");
    out
}
