//! The pivot stream written out to a Responses API client as the Responses stream events.

use serde_json::{json, Value};

use super::front::{call_item, message_item, output_text, response_id, response_object, status_of, Echo};
use super::usage_json;
use crate::dialect::ins;
use crate::dialect::stream::{Choice, ChoiceFront, FrontState, TextChunk};
use crate::sse;

/// The output item being written.
#[derive(Debug)]
enum Open {
    /// A message: its item id, output index and the text so far; `mid` is the bytes every text
    /// delta of it carries between its sequence number and its delta.
    Text { id: String, index: u64, text: String, mid: Vec<u8> },
    /// A function call: item id, output index, the pivot's tool-call index, call id, name and
    /// arguments so far.
    Tool { id: String, index: u64, pivot_index: u64, call_id: String, name: String, args: String },
}

/// Pivot chunks -> the Responses event sequence: `response.created`, `response.in_progress`,
/// per output item `response.output_item.added` .. `response.output_item.done` (a message with
/// one `output_text` part and its deltas, or a function call and its argument deltas), then
/// `response.completed` (or `response.incomplete`) with the usage. Every event carries its
/// `sequence_number`. The usage comes in a chunk after the finish chunk, so the last event
/// waits for it, `on_done` or `finish`.
#[derive(Debug)]
pub struct StreamFromPivot {
    client_model: String,
    created_at: u64,
    id: String,
    st: FrontState,
    started: bool,
    seq: u64,
    open: Option<Open>,
    /// The finished output items, for the final response.
    done: Vec<Value>,
    /// Pivot tool-call indexes whose item was opened.
    tools_seen: Vec<u64>,
    /// The request's settings every `response` snapshot repeats.
    echo: Option<Box<Echo>>,
}

impl StreamFromPivot {
    pub fn new(client_model: &str, created_at: u64) -> Self {
        StreamFromPivot {
            client_model: client_model.to_string(),
            created_at,
            id: String::new(),
            st: FrontState::default(),
            started: false,
            seq: 0,
            open: None,
            done: Vec::new(),
            tools_seen: Vec::new(),
            echo: None,
        }
    }

    /// The request's settings for the `response` snapshots to repeat.
    pub fn with_echo(mut self, echo: Option<Box<Echo>>) -> Self {
        self.echo = echo;
        self
    }

    /// One event: `data` with its `type` and `sequence_number`, as `event: {type}`.
    fn event(&mut self, out: &mut Vec<u8>, ty: &str, mut data: Value) {
        if let Some(o) = data.as_object_mut() {
            ins(o, "type", json!(ty));
            ins(o, "sequence_number", json!(self.seq));
        }
        self.seq = self.seq.saturating_add(1);
        sse::write_json(out, Some(ty), &data, b"\n");
    }

    fn next_index(&self) -> u64 {
        (self.done.len() as u64).saturating_add(u64::from(self.open.is_some()))
    }

    /// The response as it stands, with `status`.
    fn snapshot(&self, status: &str, output: Vec<Value>) -> Value {
        response_object(&self.id, self.created_at, &self.client_model, status, output, self.echo.as_deref())
    }

    /// `response.created` and `response.in_progress`, once; the id from the first chunk's.
    fn start(&mut self, pivot_id: Option<&str>, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        self.id = response_id(pivot_id);
        let r = self.snapshot("in_progress", Vec::new());
        self.event(out, "response.created", json!({"response": r}));
        let r = self.snapshot("in_progress", Vec::new());
        self.event(out, "response.in_progress", json!({"response": r}));
    }

    fn bare(&self) -> String {
        self.id.strip_prefix("resp_").unwrap_or(&self.id).to_string()
    }

    /// The open item's closing events; the finished item kept for the final response.
    fn close_item(&mut self, out: &mut Vec<u8>) {
        let Some(open) = self.open.take() else { return };
        match open {
            Open::Text { id, index, text, .. } => {
                let base = json!({"item_id": id, "output_index": index, "content_index": 0});
                let mut d = base.clone();
                if let Some(o) = d.as_object_mut() {
                    ins(o, "text", json!(text));
                    ins(o, "logprobs", json!([]));
                }
                self.event(out, "response.output_text.done", d);
                let mut d = base;
                if let Some(o) = d.as_object_mut() {
                    ins(o, "part", output_text(&text));
                }
                self.event(out, "response.content_part.done", d);
                let item = message_item(&id, "completed", vec![output_text(&text)]);
                self.event(out, "response.output_item.done", json!({"output_index": index, "item": item.clone()}));
                self.done.push(item);
            }
            Open::Tool { id, index, call_id, name, args, .. } => {
                let d = json!({"item_id": id, "output_index": index, "name": name, "arguments": args});
                self.event(out, "response.function_call_arguments.done", d);
                let item = call_item(&id, &call_id, &name, &args, "completed");
                self.event(out, "response.output_item.done", json!({"output_index": index, "item": item.clone()}));
                self.done.push(item);
            }
        }
    }

    fn text_delta(&mut self, text: &str, out: &mut Vec<u8>) {
        if !matches!(self.open, Some(Open::Text { .. })) {
            self.close_item(out);
            let index = self.next_index();
            let id = format!("msg_{}_{index}", self.bare());
            let item = message_item(&id, "in_progress", Vec::new());
            self.event(out, "response.output_item.added", json!({"output_index": index, "item": item}));
            let part = json!({"item_id": id, "output_index": index, "content_index": 0, "part": output_text("")});
            self.event(out, "response.content_part.added", part);
            // `,"item_id":..,"output_index":..,"content_index":0,"delta":`
            let mut mid = b",\"item_id\":".to_vec();
            sse::write_json_str(&mut mid, &id);
            mid.extend_from_slice(b",\"output_index\":");
            sse::write_u64(&mut mid, index);
            mid.extend_from_slice(b",\"content_index\":0,\"delta\":");
            self.open = Some(Open::Text { id, index, text: String::new(), mid });
        }
        let seq = self.seq;
        if let Some(Open::Text { text: all, mid, .. }) = &mut self.open {
            all.push_str(text);
            // `{"type":..,"sequence_number":..,"item_id":..,"output_index":..,"content_index":0,
            // "delta":..,"logprobs":[]}` in this order, written as bytes.
            const HEAD: &[u8] =
                b"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":";
            const TAIL: &[u8] = b",\"logprobs\":[]}\n\n";
            out.reserve(HEAD.len() + 20 + mid.len() + text.len() + 2 + TAIL.len());
            out.extend_from_slice(HEAD);
            sse::write_u64(out, seq);
            out.extend_from_slice(mid);
            sse::write_json_str(out, text);
            out.extend_from_slice(TAIL);
            self.seq = self.seq.saturating_add(1);
        }
    }

    fn tool_fragment(&mut self, tc: &Value, out: &mut Vec<u8>) {
        let k = tc.get("index").and_then(Value::as_u64).unwrap_or(0);
        let f = tc.get("function");
        let same = matches!(&self.open, Some(Open::Tool { pivot_index, .. }) if *pivot_index == k);
        if !same {
            if self.tools_seen.contains(&k) {
                return; // a late fragment of a finished call: its item cannot be reopened
            }
            self.tools_seen.push(k);
            self.close_item(out);
            let index = self.next_index();
            let id = format!("fc_{}_{index}", self.bare());
            let call_id =
                tc.get("id").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| format!("call_{k}"));
            let name = f.and_then(|f| f.get("name")).and_then(Value::as_str).unwrap_or("").to_string();
            let item = call_item(&id, &call_id, &name, "", "in_progress");
            self.event(out, "response.output_item.added", json!({"output_index": index, "item": item}));
            self.open = Some(Open::Tool { id, index, pivot_index: k, call_id, name, args: String::new() });
        }
        let Some(frag) = f.and_then(|f| f.get("arguments")).and_then(Value::as_str).filter(|a| !a.is_empty()) else {
            return;
        };
        let mut d = None;
        if let Some(Open::Tool { id, index, args, .. }) = &mut self.open {
            args.push_str(frag);
            d = Some(json!({"item_id": id, "output_index": index, "delta": frag}));
        }
        if let Some(d) = d {
            self.event(out, "response.function_call_arguments.delta", d);
        }
    }

    /// The last event: `response.completed` (or `response.incomplete`, or `response.failed` for
    /// a stream that ended without a finish reason), with the output and the usage.
    fn close(&mut self, out: &mut Vec<u8>) {
        self.start(None, out);
        self.close_item(out);
        let output = std::mem::take(&mut self.done);
        let (ty, status, details) = match self.st.finish {
            None => ("response.failed", "failed", Value::Null),
            f => {
                let (status, details) = status_of(f);
                (if status == "completed" { "response.completed" } else { "response.incomplete" }, status, details)
            }
        };
        let mut r = self.snapshot(status, output);
        if let Some(o) = r.as_object_mut() {
            ins(o, "incomplete_details", details);
            if let Some(u) = &self.st.usage {
                ins(o, "usage", usage_json(u));
            }
            if self.st.finish.is_none() {
                let msg = "The generation service ended the stream before the response was complete";
                ins(o, "error", json!({"code": "server_error", "message": msg}));
            }
        }
        self.event(out, ty, json!({"response": r}));
    }
}

impl ChoiceFront for StreamFromPivot {
    fn state(&mut self) -> &mut FrontState {
        &mut self.st
    }

    fn choice(&mut self, chunk: &Value, choice: &Choice, out: &mut Vec<u8>) {
        self.start(chunk.get("id").and_then(Value::as_str), out);
        for t in choice.texts() {
            self.text_delta(t, out);
        }
        for tc in choice.tool_calls() {
            self.tool_fragment(tc, out);
        }
    }

    /// Text without a `Value`: the response id from the chunk's id, then the text delta.
    fn text(&mut self, chunk: &TextChunk, out: &mut Vec<u8>) {
        self.start(Some(&chunk.id), out);
        if !chunk.text.is_empty() {
            self.text_delta(&chunk.text, out);
        }
    }

    /// The open item is finished with the message.
    fn finished(&mut self, out: &mut Vec<u8>) {
        self.close_item(out);
    }

    fn end(&mut self, out: &mut Vec<u8>) {
        self.close(out);
    }

    /// An `error` event, then `response.failed` with the error; nothing follows them.
    fn write_error(&mut self, message: &str, out: &mut Vec<u8>) {
        self.start(None, out);
        self.event(out, "error", json!({"code": "server_error", "message": message, "param": null}));
        let output = std::mem::take(&mut self.done);
        let mut r = self.snapshot("failed", output);
        if let Some(o) = r.as_object_mut() {
            ins(o, "error", json!({"code": "server_error", "message": message}));
        }
        self.event(out, "response.failed", json!({"response": r}));
    }
}
