//! The Gemini front's stream writer: pivot chunks out as Gemini SSE.

use serde_json::{json, Map, Value};

use super::front::{function_call_part, usage_to_gemini};
use super::{finish_to_gemini, ins};
use crate::dialect::pivot;
use crate::dialect::stream::{write_text_event, Choice, ChoiceFront, FrontState, TextChunk, TextTail};
use crate::sse;
use crate::usage::Usage;

#[derive(Debug, Default)]
struct ToolBuf {
    index: u64,
    name: String,
    args: String,
    signature: Option<String>,
}

/// Pivot chunks -> Gemini SSE (`data: {GenerateContentResponse}\r\n\r\n`).
///
/// Text deltas are written at once, one response object each. Tool-call argument fragments are
/// buffered per tool index; the calls go out as whole `functionCall` parts in the final object,
/// which also carries `finishReason` and `usageMetadata`. Because OpenAI sends usage in a chunk
/// after the finish chunk, the final object waits for the usage chunk, `on_done` or `finish`
/// (it is never split into a finish object plus a usage-only object). Only choice 0 is relayed.
#[derive(Debug)]
pub struct StreamFromPivot {
    client_model: String,
    id: String,
    st: FrontState,
    tools: Vec<ToolBuf>,
    /// A text event's bytes after its text, for the response id.
    tail: TextTail,
}

impl StreamFromPivot {
    pub fn new(client_model: &str) -> Self {
        StreamFromPivot {
            client_model: client_model.to_string(),
            id: String::new(),
            st: FrontState::default(),
            tools: Vec::new(),
            tail: TextTail::default(),
        }
    }

    /// The usage seen in the pivot stream.
    pub fn usage(&self) -> Option<Usage> {
        self.st.usage
    }

    /// Whether the final object (or an error) has been written.
    pub fn is_closed(&self) -> bool {
        self.st.closed
    }

    fn write(&self, out: &mut Vec<u8>, candidate: Value, usage: Option<&Usage>) {
        let mut obj = Map::new();
        ins(&mut obj, "candidates", json!([candidate]));
        if let Some(u) = usage {
            ins(&mut obj, "usageMetadata", usage_to_gemini(u));
        }
        ins(&mut obj, "modelVersion", json!(self.client_model));
        ins(&mut obj, "responseId", json!(self.id));
        sse::write_json(out, None, &Value::Object(obj), b"\r\n");
    }

    fn buffer_tool(&mut self, tc: &Value) {
        let k = tc.get("index").and_then(Value::as_u64).unwrap_or(0);
        let pos = match self.tools.iter().position(|t| t.index == k) {
            Some(p) => p,
            None => {
                self.tools.push(ToolBuf { index: k, ..ToolBuf::default() });
                self.tools.len().saturating_sub(1)
            }
        };
        let Some(buf) = self.tools.get_mut(pos) else { return };
        if let Some(n) = tc.pointer("/function/name").and_then(Value::as_str) {
            if buf.name.is_empty() {
                buf.name = n.to_string();
            }
        }
        if let Some(a) = tc.pointer("/function/arguments").and_then(Value::as_str) {
            buf.args.push_str(a);
        }
        if let Some(s) = tc.pointer("/extra_content/google/thought_signature").and_then(Value::as_str) {
            buf.signature = Some(s.to_string());
        }
    }

    fn close_message(&mut self, out: &mut Vec<u8>) {
        let mut parts: Vec<Value> = self
            .tools
            .iter()
            .map(|t| function_call_part(&t.name, Some(&Value::String(t.args.clone())), t.signature.as_deref()))
            .collect();
        if parts.is_empty() {
            parts.push(json!({"text": ""}));
        }
        let mut cand = Map::new();
        ins(&mut cand, "content", json!({"role": "model", "parts": parts}));
        if let Some(f) = self.st.finish {
            ins(&mut cand, "finishReason", json!(finish_to_gemini(f)));
        }
        ins(&mut cand, "index", json!(0));
        let usage = self.st.usage;
        self.write(out, Value::Object(cand), usage.as_ref());
    }
}

impl ChoiceFront for StreamFromPivot {
    fn state(&mut self) -> &mut FrontState {
        &mut self.st
    }

    fn chunk_seen(&mut self, chunk: &Value) {
        if self.id.is_empty() {
            self.id = pivot::bare_id(chunk.get("id").and_then(Value::as_str)).to_string();
        }
    }

    /// Text goes out at once, one response object per delta; tool-call fragments are buffered.
    fn choice(&mut self, _chunk: &Value, choice: &Choice, out: &mut Vec<u8>) {
        let text: String = choice.texts().collect();
        if !text.is_empty() {
            let cand = json!({"content": {"role": "model", "parts": [{"text": text}]}, "index": 0});
            self.write(out, cand, None);
        }
        for tc in choice.tool_calls() {
            self.buffer_tool(tc);
        }
    }

    /// The same bytes as `choice` of the chunk (keys in serde_json's order), written without
    /// building it.
    fn text(&mut self, chunk: &TextChunk, out: &mut Vec<u8>) {
        if self.id.is_empty() {
            self.id = pivot::bare_id(Some(&chunk.id)).to_string();
        }
        if chunk.text.is_empty() {
            return;
        }
        let (model, id) = (&self.client_model, &self.id);
        let tail = self.tail.get(id.as_bytes(), |t| {
            t.extend_from_slice(b"}],\"role\":\"model\"},\"index\":0}],\"modelVersion\":");
            sse::write_json_str(t, model);
            t.extend_from_slice(b",\"responseId\":");
            sse::write_json_str(t, id);
            t.extend_from_slice(b"}\r\n\r\n");
        });
        write_text_event(out, b"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":", &chunk.text, tail);
    }

    /// The final object: the buffered function calls, `finishReason`, `usageMetadata`.
    fn end(&mut self, out: &mut Vec<u8>) {
        self.close_message(out);
    }

    /// A Gemini error object as the last event.
    fn write_error(&mut self, message: &str, out: &mut Vec<u8>) {
        let e = json!({"error": {"code": 500, "message": message, "status": "INTERNAL"}});
        sse::write_json(out, None, &e, b"\r\n");
    }
}
