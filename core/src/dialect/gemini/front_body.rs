//! The Gemini response for a non-streamed OpenAI completion, written straight to bytes from
//! the typed read (`openai::completion`): the same bytes as `response_from_pivot` of the parsed
//! completion serialized (keys in serde_json's sorted order), without building either.

use super::finish_to_gemini;
use crate::dialect::openai::completion::Completion;
use crate::dialect::pivot::{self, Finish};
use crate::sse::{write_json_str, write_u64};

/// Writes the response: a candidate per choice, the usage when the completion has one.
pub fn write_response(c: &Completion, client_model: &str) -> Vec<u8> {
    let text_len: usize = c.choices.iter().map(|ch| ch.text.len()).sum();
    let mut out = Vec::with_capacity(256 + text_len + 96 * c.choices.len() + client_model.len());
    out.extend_from_slice(b"{\"candidates\":[");
    for (pos, ch) in c.choices.iter().enumerate() {
        if pos > 0 {
            out.push(b',');
        }
        // No tool calls (the typed read covers none): the text, or one empty text part.
        out.extend_from_slice(b"{\"content\":{\"parts\":[{\"text\":");
        write_json_str(&mut out, &ch.text);
        out.extend_from_slice(b"}],\"role\":\"model\"},\"finishReason\":");
        let finish = ch.finish_reason.as_deref().map(Finish::from_openai).unwrap_or(Finish::Stop);
        write_json_str(&mut out, finish_to_gemini(finish));
        out.extend_from_slice(b",\"index\":");
        write_u64(&mut out, ch.index.unwrap_or(pos as u64));
        out.push(b'}');
    }
    out.extend_from_slice(b"],\"modelVersion\":");
    write_json_str(&mut out, client_model);
    out.extend_from_slice(b",\"responseId\":");
    write_json_str(&mut out, pivot::bare_id(c.id.as_deref()));
    if let Some(u) = c.usage.as_ref().map(|u| u.usage) {
        out.extend_from_slice(b",\"usageMetadata\":{");
        if u.cached_tokens > 0 {
            out.extend_from_slice(b"\"cachedContentTokenCount\":");
            write_u64(&mut out, u.cached_tokens);
            out.push(b',');
        }
        out.extend_from_slice(b"\"candidatesTokenCount\":");
        write_u64(&mut out, u.completion_tokens.saturating_sub(u.reasoning_tokens));
        out.extend_from_slice(b",\"promptTokenCount\":");
        write_u64(&mut out, u.prompt_tokens);
        if u.reasoning_tokens > 0 {
            out.extend_from_slice(b",\"thoughtsTokenCount\":");
            write_u64(&mut out, u.reasoning_tokens);
        }
        out.extend_from_slice(b",\"totalTokenCount\":");
        write_u64(&mut out, u.total());
        out.push(b'}');
    }
    out.push(b'}');
    out
}
