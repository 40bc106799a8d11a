//! The pivot stream written out to an Anthropic client as Messages stream events.

use serde_json::{json, Map, Value};

use super::front::{anthropic_input_tokens, message_id, usage_to_anthropic};
use super::{ins, stop_reason_of, stop_sequence_of};
use crate::dialect::pivot::{self, Finish};
use crate::dialect::stream::{Choice, ChoiceFront, FrontState, TextChunk};
use crate::sse;
use crate::usage::Usage;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text(u64),
    /// (Anthropic block index, OpenAI tool-call index)
    Tool(u64, u64),
}

/// Pivot chunks -> the Anthropic event sequence: `message_start`, per block
/// `content_block_start` / `content_block_delta` / `content_block_stop`, then `message_delta`
/// and `message_stop`. OpenAI sends usage in a chunk after the finish chunk, so `message_delta`
/// (which carries the usage) waits for that chunk, `on_done` or `finish`.
#[derive(Debug)]
pub struct StreamFromPivot {
    client_model: String,
    id: String,
    st: FrontState,
    started: bool,
    next_block: u64,
    open: Option<Open>,
    tools_seen: Vec<u64>,
    credits: Option<Value>,
    /// The prompt's size for `message_start`, before the final usage (`prompt_hint`).
    prompt: Option<Usage>,
    /// The stop sequence that ended the message, when the upstream said which.
    stop_sequence: Option<String>,
}

impl StreamFromPivot {
    pub fn new(client_model: &str) -> Self {
        StreamFromPivot {
            client_model: client_model.to_string(),
            id: String::new(),
            st: FrontState::default(),
            started: false,
            next_block: 0,
            open: None,
            tools_seen: Vec::new(),
            credits: None,
            prompt: None,
            stop_sequence: None,
        }
    }

    /// The usage seen in the pivot stream.
    pub fn usage(&self) -> Option<Usage> {
        self.st.usage
    }

    /// Whether `message_stop` (or an error event) has been written.
    pub fn is_closed(&self) -> bool {
        self.st.closed
    }

    fn event(out: &mut Vec<u8>, name: &str, data: &Value) {
        sse::write_json(out, Some(name), data, b"\n");
    }

    fn start(&mut self, chunk: Option<&Value>, out: &mut Vec<u8>) {
        self.start_with_id(chunk.and_then(|c| c.get("id")).and_then(Value::as_str), out);
    }

    /// `message_start`, once; its id from the first chunk's.
    fn start_with_id(&mut self, pivot_id: Option<&str>, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        self.id = message_id(pivot_id);
        let known = self.st.usage.or(self.prompt);
        let input = known.as_ref().map(anthropic_input_tokens).unwrap_or(0);
        let cached = known.map(|u| u.cached_tokens).unwrap_or(0);
        let written = known.map(|u| u.cache_creation_tokens).unwrap_or(0);
        let start = json!({
            "type": "message_start",
            "message": {
                "id": self.id,
                "type": "message",
                "role": "assistant",
                "model": self.client_model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": {
                    "input_tokens": input,
                    "cache_creation_input_tokens": written,
                    "cache_read_input_tokens": cached,
                    "output_tokens": 0,
                },
            },
        });
        Self::event(out, "message_start", &start);
    }

    fn close_block(&mut self, out: &mut Vec<u8>) {
        if let Some(open) = self.open.take() {
            let index = match open {
                Open::Text(i) | Open::Tool(i, _) => i,
            };
            Self::event(out, "content_block_stop", &json!({"type": "content_block_stop", "index": index}));
        }
    }

    fn new_block(&mut self) -> u64 {
        let i = self.next_block;
        self.next_block = self.next_block.saturating_add(1);
        i
    }

    fn text_delta(&mut self, text: &str, out: &mut Vec<u8>) {
        let index = match self.open {
            Some(Open::Text(i)) => i,
            _ => {
                self.close_block(out);
                let i = self.new_block();
                self.open = Some(Open::Text(i));
                let start =
                    json!({"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}});
                Self::event(out, "content_block_start", &start);
                i
            }
        };
        // The event every text delta is, written as bytes: the same bytes as `sse::write_json`
        // of `{"delta":{"text":..,"type":"text_delta"},"index":..,"type":"content_block_delta"}`.
        out.extend_from_slice(b"event: content_block_delta\ndata: {\"delta\":{\"text\":");
        sse::write_json_str(out, text);
        out.extend_from_slice(b",\"type\":\"text_delta\"},\"index\":");
        sse::write_u64(out, index);
        out.extend_from_slice(b",\"type\":\"content_block_delta\"}\n\n");
    }

    fn tool_fragment(&mut self, tc: &Value, out: &mut Vec<u8>) {
        let k = tc.get("index").and_then(Value::as_u64).unwrap_or(0);
        let f = tc.get("function");
        let index = match self.open {
            Some(Open::Tool(i, t)) if t == k => i,
            _ => {
                if self.tools_seen.contains(&k) {
                    return; // a late fragment of a closed tool block: Anthropic cannot reopen it
                }
                self.tools_seen.push(k);
                self.close_block(out);
                let i = self.new_block();
                self.open = Some(Open::Tool(i, k));
                let id =
                    tc.get("id").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| format!("toolu_{k}"));
                let name = f.and_then(|f| f.get("name")).and_then(Value::as_str).unwrap_or("");
                let start = json!({
                    "type": "content_block_start",
                    "index": i,
                    "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}},
                });
                Self::event(out, "content_block_start", &start);
                i
            }
        };
        if let Some(args) = f.and_then(|f| f.get("arguments")).and_then(Value::as_str).filter(|a| !a.is_empty()) {
            let d = json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": args}});
            Self::event(out, "content_block_delta", &d);
        }
    }

    fn close_message(&mut self, out: &mut Vec<u8>) {
        self.start(None, out);
        self.close_block(out);
        let mut usage = Map::new();
        if let Some(u) = &self.st.usage {
            usage = usage_to_anthropic(u);
        } else {
            ins(&mut usage, "output_tokens", json!(0));
        }
        if let Some(c) = &self.credits {
            ins(&mut usage, "credits_consumed", c.clone());
        }
        let (reason, seq) = match (self.st.finish, &self.stop_sequence) {
            (Some(Finish::Stop), Some(seq)) => (json!("stop_sequence"), json!(seq)),
            (f, _) => (f.map(|f| Value::String(stop_reason_of(f).to_string())).unwrap_or(Value::Null), Value::Null),
        };
        let md = json!({
            "type": "message_delta",
            "delta": {"stop_reason": reason, "stop_sequence": seq},
            "usage": usage,
        });
        Self::event(out, "message_delta", &md);
        Self::event(out, "message_stop", &json!({"type": "message_stop"}));
    }
}

impl ChoiceFront for StreamFromPivot {
    fn state(&mut self) -> &mut FrontState {
        &mut self.st
    }

    fn prompt_hint(&mut self, usage: Usage) {
        self.prompt = Some(usage);
    }

    /// `usage.credits_consumed`, carried with the usage.
    fn chunk_seen(&mut self, chunk: &Value) {
        if let (Some(_), Some(c)) = (pivot::usage_of(chunk), pivot::credits_of(chunk)) {
            self.credits = Some(c);
        }
    }

    fn choice(&mut self, chunk: &Value, choice: &Choice, out: &mut Vec<u8>) {
        self.start(Some(chunk), out);
        if choice.finish.is_some() {
            let first = chunk.get("choices").and_then(|c| c.get(0));
            self.stop_sequence = stop_sequence_of(first).map(str::to_string);
        }
        for t in choice.texts() {
            self.text_delta(t, out);
        }
        for tc in choice.tool_calls() {
            self.tool_fragment(tc, out);
        }
    }

    /// Text without a `Value`: the message id from the chunk's id, then the text delta.
    fn text(&mut self, chunk: &TextChunk, out: &mut Vec<u8>) {
        self.start_with_id(Some(&chunk.id), out);
        if !chunk.text.is_empty() {
            self.text_delta(&chunk.text, out);
        }
    }

    /// A message that called tools stops with `tool_use`; its open block is closed.
    fn finished(&mut self, out: &mut Vec<u8>) {
        if self.st.finish == Some(Finish::Stop) && !self.tools_seen.is_empty() {
            self.st.finish = Some(Finish::ToolCalls);
        }
        self.close_block(out);
    }

    /// `message_delta` (stop reason, usage) and `message_stop`.
    fn end(&mut self, out: &mut Vec<u8>) {
        self.close_message(out);
    }

    /// `event: error` (type `api_error`); nothing follows it.
    fn write_error(&mut self, message: &str, out: &mut Vec<u8>) {
        let e = json!({"type": "error", "error": {"type": "api_error", "message": message}});
        Self::event(out, "error", &e);
    }
}
