//! Token usage: what the upstream reported, in one shape for every dialect.

use crate::routing::Price;
use serde_json::{Map, Value};

mod scan;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Prompt tokens served from a cache (included in `prompt_tokens`).
    pub cached_tokens: u64,
    /// Reasoning tokens (included in `completion_tokens`).
    pub reasoning_tokens: u64,
    /// Prompt tokens written to the upstream's cache (Anthropic's `cache_creation_input_tokens`;
    /// included in `prompt_tokens`).
    pub cache_creation_tokens: u64,
}

impl Usage {
    pub fn total(&self) -> u64 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }
}

fn u(v: &Value, k: &str) -> u64 {
    v.get(k).and_then(Value::as_u64).unwrap_or(0)
}

/// Reads an OpenAI `usage` object (chat completion or stream chunk). `None` when absent or null.
pub fn from_openai(obj: &Value) -> Option<Usage> {
    let usage = obj.get("usage")?;
    if !usage.is_object() {
        return None;
    }
    Some(Usage {
        prompt_tokens: u(usage, "prompt_tokens"),
        completion_tokens: u(usage, "completion_tokens"),
        cached_tokens: usage.get("prompt_tokens_details").map(|d| u(d, "cached_tokens")).unwrap_or(0),
        reasoning_tokens: usage.get("completion_tokens_details").map(|d| u(d, "reasoning_tokens")).unwrap_or(0),
        cache_creation_tokens: usage.get("prompt_tokens_details").map(|d| u(d, "cache_creation_tokens")).unwrap_or(0),
    })
}

/// Credits for `u` at `price`: prompt and completion tokens at their per-1k prices; of those,
/// cached prompt tokens at `cached_prompt_per_1k`, prompt tokens written to the cache at
/// `cache_write_per_1k` and reasoning tokens at `reasoning_per_1k` when set (details larger than
/// their total count as the total, cached tokens first).
pub fn credits(price: &Price, u: &Usage) -> f64 {
    let cached = u.cached_tokens.min(u.prompt_tokens);
    let written = u.cache_creation_tokens.min(u.prompt_tokens - cached);
    let reasoning = u.reasoning_tokens.min(u.completion_tokens);
    (u.prompt_tokens - cached - written) as f64 * price.prompt_per_1k / 1000.0
        + cached as f64 * price.cached_per_1k() / 1000.0
        + written as f64 * price.cache_write_per_1k() / 1000.0
        + (u.completion_tokens - reasoning) as f64 * price.completion_per_1k / 1000.0
        + reasoning as f64 * price.reasoning_per_1k() / 1000.0
}

// ---- The estimator -------------------------------------------------------------------------
//
// Used when the upstream reports no usage (it omits it, the stream is cut short, the client
// disconnects, the upstream fails mid-stream). Tokens are estimated from the UTF-8 bytes of the
// text that passed through: one token per 4 bytes (rounded up), the usual figure for English
// with BPE tokenizers, plus 4 tokens of framing per prompt message and 3 for the reply. The
// error on the fixtures is measured by `estimator_error_on_fixtures` in core/tests.

/// Bytes of text per token.
pub const BYTES_PER_TOKEN: u64 = 4;
/// Framing tokens per prompt message (role markers).
pub const TOKENS_PER_MESSAGE: u64 = 4;
/// Framing tokens for the reply.
pub const REPLY_TOKENS: u64 = 3;

/// Tokens for `bytes` bytes of text.
pub fn tokens_from_bytes(bytes: u64) -> u64 {
    bytes.div_ceil(BYTES_PER_TOKEN)
}

/// Prompt tokens of a pivot (OpenAI chat) request: every string in `messages` and `tools`
/// (texts, tool arguments and schemas; image data URLs count at their length, an over-estimate).
pub fn estimate_prompt_tokens(body: &Map<String, Value>) -> u64 {
    let mut bytes = 0u64;
    let mut messages = 0u64;
    if let Some(Value::Array(ms)) = body.get("messages") {
        messages = ms.len() as u64;
        for m in ms {
            bytes = bytes.saturating_add(string_bytes(m, 0));
        }
    }
    if let Some(t) = body.get("tools") {
        bytes = bytes.saturating_add(string_bytes(t, 0));
    }
    tokens_from_bytes(bytes).saturating_add(messages.saturating_mul(TOKENS_PER_MESSAGE)).saturating_add(REPLY_TOKENS)
}

/// Total UTF-8 bytes of the strings in `v` (keys of objects included), bounded in depth.
fn string_bytes(v: &Value, depth: u32) -> u64 {
    if depth > crate::dialect::guard::MAX_JSON_DEPTH as u32 {
        return 0;
    }
    match v {
        Value::String(s) => s.len() as u64,
        Value::Array(a) => a.iter().map(|x| string_bytes(x, depth + 1)).fold(0u64, u64::saturating_add),
        Value::Object(o) => o
            .iter()
            .filter(|(k, _)| k.as_str() != "role" && k.as_str() != "type")
            .map(|(_, x)| string_bytes(x, depth + 1))
            .fold(0u64, u64::saturating_add),
        _ => 0,
    }
}

/// Completion text bytes in a pivot chunk or completion: `content`, `refusal`, `reasoning_content`
/// and tool-call `arguments`, in `delta` or `message` of every choice.
pub fn pivot_text_bytes(v: &Value) -> u64 {
    let Some(choices) = v.get("choices").and_then(Value::as_array) else { return 0 };
    let mut n = 0u64;
    for c in choices {
        let Some(m) = c.get("delta").or_else(|| c.get("message")) else { continue };
        for f in ["content", "refusal", "reasoning_content"] {
            if let Some(s) = m.get(f).and_then(Value::as_str) {
                n = n.saturating_add(s.len() as u64);
            }
        }
        if let Some(calls) = m.get("tool_calls").and_then(Value::as_array) {
            for tc in calls {
                let f = tc.get("function");
                for k in ["name", "arguments"] {
                    if let Some(s) = f.and_then(|f| f.get(k)).and_then(Value::as_str) {
                        n = n.saturating_add(s.len() as u64);
                    }
                }
            }
        }
    }
    n
}

/// Completion text bytes in raw JSON, without parsing it: the lengths of the string values of
/// `"content"`, `"text"`, `"refusal"`, `"arguments"` and `"partial_json"` keys, escapes counted
/// as the byte they stand for (approximately: `\uXXXX` counts 1). For the fast stream path.
pub fn text_len_hint(data: impl AsRef<[u8]>) -> u64 {
    scan::text_len(data.as_ref(), false).0
}

/// `text_len_hint`, and whether `"usage"` appears anywhere in `data` (as a key or not): both
/// from one look at the bytes.
pub fn text_len_and_usage_key(data: &[u8]) -> (u64, bool) {
    scan::text_len(data, true)
}

#[cfg(test)]
#[path = "tests/usage_tests.rs"]
mod tests;
