//! Token usage: what the upstream reported, in one shape for every dialect.

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Prompt tokens served from a cache (included in `prompt_tokens`).
    pub cached_tokens: u64,
    /// Reasoning tokens (included in `completion_tokens`).
    pub reasoning_tokens: u64,
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn openai_usage_with_details() {
        let v = json!({"usage": {"prompt_tokens": 25, "completion_tokens": 42, "total_tokens": 67,
            "prompt_tokens_details": {"cached_tokens": 5}, "completion_tokens_details": {"reasoning_tokens": 7}}});
        let got = from_openai(&v).unwrap();
        assert_eq!(got, Usage { prompt_tokens: 25, completion_tokens: 42, cached_tokens: 5, reasoning_tokens: 7 });
        assert_eq!(got.total(), 67);
        assert_eq!(from_openai(&json!({"usage": null})), None);
        assert_eq!(from_openai(&json!({})), None);
    }
}
