//! The deterministic demo "model": reply text, tokenizer and completion plan.
//!
//! Token rules (shared by all three APIs):
//! * a token is a whitespace-separated word (`str::split_whitespace`);
//! * prompt tokens = sum over all input messages (system prompt included,
//!   counted as one message) of `4 + max(1, words in its text)`; non-text
//!   content counts as zero words;
//! * completion tokens = number of content pieces emitted (one piece per word
//!   of the reply, or per synthetic `x-demo-chunks` piece), after the
//!   `max_tokens` cap; a tool call counts `argument fragments + 1`.

use std::borrow::Cow;

/// Per-message overhead in prompt tokens.
pub const MESSAGE_OVERHEAD: u64 = 4;
/// Maximum echoed characters of the user's message.
pub const ECHO_CHARS: usize = 200;

/// Tokens of a text (whitespace-separated words).
pub fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// Prompt tokens contributed by one message.
pub fn message_tokens(text: &str) -> u64 {
    MESSAGE_OVERHEAD + words(text).max(1)
}

/// The deterministic reply: `Hello from {model}! You said: {echo}`; or, when the request asks
/// for JSON matching a schema, `schema_reply` of it.
pub fn reply_text(model: &str, last_user: &str, schema: Option<&serde_json::Value>) -> String {
    match schema {
        Some(s) => schema_reply(s),
        None => format!("Hello from {model}! You said: {}", crate::util::truncate_chars(last_user, ECHO_CHARS)),
    }
}

/// A JSON object matching `schema`'s properties (strings `"demo"`, numbers 1, booleans true,
/// arrays and objects empty), words separated by single spaces so that a stream splits it and
/// joins it back unchanged.
pub fn schema_reply(schema: &serde_json::Value) -> String {
    use serde_json::Value;
    let mut fields = Vec::new();
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, p) in props {
            let v = match p.get("type").and_then(Value::as_str) {
                Some("integer" | "number") => "1",
                Some("boolean") => "true",
                Some("array") => "[]",
                Some("object") => "{}",
                _ => "\"demo\"",
            };
            fields.push(format!("{}: {v}", crate::util::json_str(name)));
        }
    }
    format!("{{{}}}", fields.join(", "))
}

enum Pieces {
    /// Words of the reply; every piece but the reply's last gets a trailing space.
    Words(Vec<String>),
    /// `x-demo-chunks`: "tok0 ", "tok1 ", ...
    Synthetic,
}

/// What the model emits for one request.
pub struct Plan {
    pieces: Pieces,
    count: usize,
    /// True when `max_tokens` cut the output short.
    pub truncated: bool,
}

impl Plan {
    /// `synthetic` is `x-demo-chunks`; `cap` is the request's max tokens.
    pub fn new(reply: &str, synthetic: Option<usize>, cap: Option<u64>) -> Plan {
        let (pieces, total) = match synthetic {
            Some(n) => (Pieces::Synthetic, n),
            None => {
                let w: Vec<&str> = reply.split_whitespace().collect();
                let last = w.len().saturating_sub(1);
                let v: Vec<String> = w
                    .iter()
                    .enumerate()
                    .map(|(i, s)| if i == last { (*s).to_string() } else { format!("{s} ") })
                    .collect();
                let n = v.len();
                (Pieces::Words(v), n)
            }
        };
        let count = match cap {
            Some(c) if (c as usize) < total => c as usize,
            _ => total,
        };
        Plan { pieces, count, truncated: count < total }
    }

    /// Number of pieces (= completion tokens).
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn tokens(&self) -> u64 {
        self.count as u64
    }

    pub fn piece(&self, i: usize) -> Cow<'_, str> {
        match &self.pieces {
            Pieces::Words(v) => Cow::Borrowed(v[i].as_str()),
            Pieces::Synthetic => Cow::Owned(format!("tok{i} ")),
        }
    }

    /// The whole emitted text (concatenation of the pieces).
    pub fn text(&self) -> String {
        let mut s = String::new();
        for i in 0..self.count {
            s.push_str(&self.piece(i));
        }
        s
    }
}

/// A tool call the model decided to make.
pub struct ToolCall {
    pub name: String,
    pub args: ToolArgs,
}

/// What the model answers: text pieces or a single tool call.
pub enum Reply {
    Text(Plan),
    Tool(ToolCall),
}

/// Tool-call arguments and their streamed fragments.
pub struct ToolArgs {
    pub has_location: bool,
}

impl ToolArgs {
    pub fn json(&self) -> &'static str {
        if self.has_location {
            r#"{"location":"Paris"}"#
        } else {
            "{}"
        }
    }

    pub fn fragments(&self) -> &'static [&'static str] {
        if self.has_location {
            &[r#"{"location":"#, r#""Paris""#, "}"]
        } else {
            &["{", "}"]
        }
    }

    /// Completion tokens reported for a tool call.
    pub fn tokens(&self) -> u64 {
        self.fragments().len() as u64 + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_words() {
        let p = Plan::new("Hello from m! You said: hi there", None, None);
        assert_eq!(p.len(), 7);
        assert_eq!(p.piece(0), "Hello ");
        assert_eq!(p.piece(6), "there");
        assert_eq!(p.text(), "Hello from m! You said: hi there");
        assert!(!p.truncated);
    }

    #[test]
    fn plan_cap_and_synthetic() {
        let p = Plan::new("a b c", None, Some(2));
        assert_eq!(p.text(), "a b ");
        assert!(p.truncated);
        let p = Plan::new("ignored", Some(3), None);
        assert_eq!(p.text(), "tok0 tok1 tok2 ");
        assert_eq!(p.tokens(), 3);
    }

    #[test]
    fn fragments_concat_to_args() {
        for has_location in [true, false] {
            let a = ToolArgs { has_location };
            assert_eq!(a.fragments().concat(), a.json());
        }
    }

    #[test]
    fn message_token_rule() {
        assert_eq!(message_tokens(""), 5);
        assert_eq!(message_tokens("two words"), 6);
    }
}
