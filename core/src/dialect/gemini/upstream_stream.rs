//! A Gemini upstream's stream (`alt=sse`) read into pivot chunks.

use std::borrow::Cow;

use serde_json::{json, Map, Value};

use super::upstream::{candidate_finish, error_message, read_parts, usage_from_gemini};
use super::{ins, text_in, vfield};
use crate::dialect::stream::{object_data, ChunkWriter, TextChunk, UpstreamStream};
use crate::sse::EventOf;
use crate::usage::Usage;

#[derive(Debug, Default, Clone)]
struct CandState {
    index: u64,
    calls: u64,
    finished: bool,
}

/// Gemini upstream stream (`alt=sse`: each event a whole `GenerateContentResponse`) -> OpenAI
/// chunks. Text parts become content deltas, each `functionCall` part one complete tool call
/// (id `call_<n>`, arguments whole), `finishReason` the finish chunk. `usageMetadata` is
/// cumulative: the latest replaces the previous; the usage chunk is emitted at `finish()`.
#[derive(Debug, Default)]
pub struct StreamToPivot {
    w: ChunkWriter,
    cands: Vec<CandState>,
    /// Never used: what `cand` would hand out if the list lost an entry (it cannot).
    spare: CandState,
    usage: Option<Usage>,
    error: Option<String>,
    /// The frame of the latest text event read by bytes.
    framed: text_in::Framed,
}

impl StreamToPivot {
    pub fn new() -> Self {
        Self::default()
    }

    /// Name this model in the chunks instead of the upstream's `modelVersion`.
    pub fn with_model(mut self, model: &str) -> Self {
        self.w.model_override = Some(model.to_string());
        self
    }

    /// The state of candidate `index`, created on first sight.
    fn cand(&mut self, index: u64) -> &mut CandState {
        if !self.cands.iter().any(|c| c.index == index) {
            self.cands.push(CandState { index, ..CandState::default() });
        }
        match self.cands.iter_mut().find(|c| c.index == index) {
            Some(c) => c,
            None => &mut self.spare,
        }
    }

    fn read_event(&mut self, ev: &EventOf<'_>, out: &mut Vec<Value>) {
        let Ok(mut v) = serde_json::from_slice::<Value>(ev.data.trim().as_bytes()) else {
            return;
        };
        if !v.is_object() {
            return;
        }
        if let Some(m) = error_message(&v) {
            self.error = Some(m);
            return;
        }
        if self.w.id.is_empty() {
            if let Some(id) = vfield(&v, "responseId").and_then(Value::as_str) {
                self.w.id = id.to_string();
            }
        }
        if let Some(m) = vfield(&v, "modelVersion").and_then(Value::as_str) {
            self.w.model = m.to_string();
        }
        if let Some(u) = vfield(&v, "usageMetadata").and_then(usage_from_gemini) {
            self.usage = Some(u); // cumulative: replace, never add
        }
        self.w.role(out);
        // Taken out of the event, not copied (nothing below reads them from it).
        let cands = match v.get_mut("candidates") {
            Some(Value::Array(a)) => std::mem::take(a),
            _ => Vec::new(),
        };
        for (pos, cand) in cands.iter().enumerate() {
            let index = cand.get("index").and_then(Value::as_u64).unwrap_or(pos as u64);
            let first_call = self.cand(index).calls;
            let said = read_parts(cand, first_call);
            let mut delta = Map::new();
            if !said.text.is_empty() {
                ins(&mut delta, "content", json!(said.text));
            }
            if !said.thoughts.is_empty() {
                ins(&mut delta, "reasoning_content", json!(said.thoughts));
            }
            let n_calls = said.calls.len() as u64;
            if !said.calls.is_empty() {
                let calls: Vec<Value> = said
                    .calls
                    .into_iter()
                    .zip(first_call..)
                    .map(|(mut c, k)| {
                        if let Some(o) = c.as_object_mut() {
                            ins(o, "index", json!(k));
                        }
                        c
                    })
                    .collect();
                ins(&mut delta, "tool_calls", Value::Array(calls));
            }
            let state = self.cand(index);
            state.calls = state.calls.saturating_add(n_calls);
            let had_calls = state.calls > 0;
            let already = state.finished;
            let finish = candidate_finish(cand, had_calls);
            if finish.is_some() {
                state.finished = true;
            }
            if !delta.is_empty() {
                self.w.push_at(out, index, Value::Object(delta), None);
            }
            if let (Some(f), false) = (finish, already) {
                self.w.push_at(out, index, json!({}), Some(f.as_openai()));
            }
        }
        if cands.is_empty() && vfield(&v, "promptFeedback").and_then(|p| vfield(p, "blockReason")).is_some() {
            let state = self.cand(0);
            if !state.finished {
                state.finished = true;
                self.w.push(out, json!({}), Some("content_filter"));
            }
        }
    }
}

impl UpstreamStream for StreamToPivot {
    fn on_event(&mut self, ev: &EventOf<'_>, out: &mut Vec<Value>) {
        self.read_event(ev, out);
    }

    /// End of the upstream stream (Gemini sends no end marker): the usage chunk, if known.
    fn finish(&mut self, out: &mut Vec<Value>) {
        self.w.usage_once(out, self.usage);
    }

    /// The latest cumulative usage.
    fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// The message of an error object the upstream sent in the stream, if any.
    fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// A text-only event after the role chunk: its text borrowed from the event, its id, model
    /// and usage noted as `read_event` notes them.
    fn text_event<'a>(&'a mut self, ev: &'a EventOf<'_>) -> Option<TextChunk<'a>> {
        if !self.w.role_sent() {
            return None;
        }
        let e = self.framed.text_event(object_data(ev)?)?;
        if let (true, Some(id)) = (self.w.id.is_empty(), e.id) {
            self.w.id = id.into_owned();
        }
        if let Some(m) = e.model {
            if self.w.model != m {
                self.w.model = m.into_owned();
            }
        }
        if let Some(u) = e.usage {
            self.usage = Some(u); // cumulative: replace, never add
        }
        Some(TextChunk { id: Cow::Borrowed(&self.w.id), text: e.text })
    }
}
