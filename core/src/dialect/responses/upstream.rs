//! An upstream that speaks the Responses API: the pivot request sent as a Responses request
//! (stateless: `store: false`); its `response` object and its stream events read into the pivot.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::dialect::build::{jobj, jstr};
use crate::dialect::cursor::Cursor;
use crate::dialect::frame::Frame;
use crate::dialect::pivot::{self, Finish};
use crate::dialect::stream::{object_data, ChunkWriter, Obj, TextChunk, UpstreamStream};
use crate::dialect::{bad, ins};
use crate::errors::GatewayError;
use crate::sse::EventOf;
use crate::usage::Usage;

/// The upstream path of a Responses request.
pub fn upstream_path(base_path: &str) -> String {
    format!("{base_path}/responses")
}

/// The content of the pivot message `messages[i]` as Responses content parts (`input_text`/`input_image` for the
/// user, `output_text` for the assistant).
fn parts_from_pivot(content: Option<&Value>, assistant: bool, i: usize) -> Result<Value, GatewayError> {
    let text_type = if assistant { "output_text" } else { "input_text" };
    match content {
        None | Some(Value::Null) => Ok(Value::Array(Vec::new())),
        Some(Value::String(s)) => Ok(Value::Array(vec![jobj([("type", jstr(text_type)), ("text", jstr(s))])])),
        Some(Value::Array(parts)) => {
            let mut list = Vec::with_capacity(parts.len());
            for (k, part) in parts.iter().enumerate() {
                match part.get("type").and_then(Value::as_str) {
                    None | Some("text") => {
                        let t = part.get("text").and_then(Value::as_str).unwrap_or("");
                        list.push(jobj([("type", jstr(text_type)), ("text", jstr(t))]));
                    }
                    Some("image_url") if !assistant => {
                        let img = part.get("image_url");
                        let url = img.and_then(|i| i.get("url")).or(img).and_then(Value::as_str).unwrap_or("");
                        let detail = img.and_then(|i| i.get("detail")).and_then(Value::as_str).unwrap_or("auto");
                        list.push(jobj([
                            ("type", jstr("input_image")),
                            ("image_url", jstr(url)),
                            ("detail", jstr(detail)),
                        ]));
                    }
                    Some(other) => {
                        return Err(bad(
                            &format!("messages[{i}].content[{k}].type"),
                            format!("content parts of type '{other}' cannot be sent to a Responses API upstream"),
                        ))
                    }
                }
            }
            Ok(Value::Array(list))
        }
        Some(_) => Err(bad(&format!("messages[{i}].content"), "'content' must be a string or an array of parts")),
    }
}

/// `{"type": "message", "role": role, "content": content}`.
fn message(role: &str, content: Value) -> Value {
    jobj([("type", jstr("message")), ("role", jstr(role)), ("content", content)])
}

/// A pivot (OpenAI chat) body -> a Responses request for `upstream_model`.
#[inline(never)]
pub fn request_from_pivot(body: &Map<String, Value>, upstream_model: &str) -> Result<Value, GatewayError> {
    if body.get("n").and_then(Value::as_u64).unwrap_or(1) > 1 {
        return Err(bad("n", "a Responses API upstream returns one choice per request; 'n' must be 1"));
    }
    if !matches!(body.get("stop"), None | Some(Value::Null)) {
        return Err(bad("stop", "stop sequences cannot be sent to this model's upstream (the Responses API has none)"));
    }
    if body.get("logprobs").and_then(Value::as_bool) == Some(true) {
        return Err(bad("logprobs", "'logprobs' cannot be sent to this model's upstream"));
    }
    let mut input = Vec::new();
    let empty = Vec::new();
    let messages = body.get("messages").and_then(Value::as_array).unwrap_or(&empty);
    for (i, m) in messages.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        match role {
            "system" | "developer" | "user" => {
                let content = parts_from_pivot(m.get("content"), false, i)?;
                input.push(message(role, content));
            }
            "assistant" => {
                let content = parts_from_pivot(m.get("content"), true, i)?;
                if content.as_array().is_some_and(|c| !c.is_empty()) {
                    input.push(message("assistant", content));
                }
                let calls = m.get("tool_calls").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
                for tc in calls {
                    let f = tc.get("function");
                    let args = match f.and_then(|f| f.get("arguments")) {
                        Some(Value::String(s)) => s.clone(),
                        Some(v @ Value::Object(_)) => v.to_string(),
                        _ => "{}".to_string(),
                    };
                    input.push(jobj([
                        ("type", jstr("function_call")),
                        ("call_id", jstr(tc.get("id").and_then(Value::as_str).unwrap_or(""))),
                        ("name", jstr(f.and_then(|f| f.get("name")).and_then(Value::as_str).unwrap_or(""))),
                        ("arguments", Value::String(args)),
                    ]));
                }
            }
            "tool" => {
                input.push(jobj([
                    ("type", jstr("function_call_output")),
                    ("call_id", jstr(m.get("tool_call_id").and_then(Value::as_str).unwrap_or(""))),
                    ("output", Value::String(pivot::content_text(m.get("content")))),
                ]));
            }
            other => return Err(bad(&format!("messages[{i}].role"), format!("unknown role '{other}'"))),
        }
    }
    let mut out = Map::new();
    ins(&mut out, "model", jstr(upstream_model));
    ins(&mut out, "input", Value::Array(input));
    // The gateway keeps no state, and asks the upstream to keep none.
    ins(&mut out, "store", Value::Bool(false));
    let cap = body.get("max_completion_tokens").or_else(|| body.get("max_tokens")).and_then(Value::as_u64);
    if let Some(c) = cap {
        ins(&mut out, "max_output_tokens", Value::from(c));
    }
    for f in ["temperature", "top_p", "parallel_tool_calls", "user"] {
        if let Some(v) = body.get(f).filter(|v| !v.is_null()) {
            ins(&mut out, f, v.clone());
        }
    }
    if let Some(tools) = body.get("tools").and_then(Value::as_array) {
        let mut list = Vec::with_capacity(tools.len());
        for t in tools {
            let f = t.get("function");
            let mut tool = Map::new();
            ins(&mut tool, "type", jstr("function"));
            ins(&mut tool, "name", jstr(f.and_then(|f| f.get("name")).and_then(Value::as_str).unwrap_or("")));
            for k in ["description", "parameters", "strict"] {
                if let Some(v) = f.and_then(|f| f.get(k)).filter(|v| !v.is_null()) {
                    ins(&mut tool, k, v.clone());
                }
            }
            list.push(Value::Object(tool));
        }
        ins(&mut out, "tools", Value::Array(list));
    }
    match body.get("tool_choice") {
        Some(Value::String(s)) => ins(&mut out, "tool_choice", jstr(s)),
        Some(Value::Object(o)) => {
            let name = o.get("function").and_then(|f| f.get("name")).and_then(Value::as_str).unwrap_or("");
            ins(&mut out, "tool_choice", jobj([("type", jstr("function")), ("name", jstr(name))]));
        }
        _ => {}
    }
    if let Some(rf) = body.get("response_format").and_then(Value::as_object) {
        match rf.get("type").and_then(Value::as_str) {
            Some("json_schema") => {
                let mut f = Map::new();
                ins(&mut f, "type", jstr("json_schema"));
                if let Some(js) = rf.get("json_schema").and_then(Value::as_object) {
                    for (k, v) in js {
                        ins(&mut f, k, v.clone());
                    }
                }
                ins(&mut out, "text", jobj([("format", Value::Object(f))]));
            }
            Some("json_object") => ins(&mut out, "text", jobj([("format", jobj([("type", jstr("json_object"))]))])),
            _ => {}
        }
    }
    if let Some(e) = body.get("reasoning_effort").and_then(Value::as_str) {
        ins(&mut out, "reasoning", jobj([("effort", jstr(e))]));
    }
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        ins(&mut out, "stream", Value::Bool(true));
    }
    Ok(Value::Object(out))
}

/// A Responses `usage` object -> usage.
pub fn usage_from_responses(u: &Value) -> Option<Usage> {
    if !u.is_object() {
        return None;
    }
    let n = |v: Option<&Value>, k: &str| v.and_then(|v| v.get(k)).and_then(Value::as_u64).unwrap_or(0);
    Some(Usage {
        prompt_tokens: n(Some(u), "input_tokens"),
        completion_tokens: n(Some(u), "output_tokens"),
        cached_tokens: n(u.get("input_tokens_details"), "cached_tokens"),
        reasoning_tokens: n(u.get("output_tokens_details"), "reasoning_tokens"),
        cache_creation_tokens: 0,
    })
}

/// The pivot finish reason of a `response` object, given whether it called tools.
fn finish_of(r: &Value, called: bool) -> Finish {
    let reason = r.get("incomplete_details").and_then(|d| d.get("reason")).and_then(Value::as_str);
    match (r.get("status").and_then(Value::as_str), reason) {
        (Some("incomplete"), Some("content_filter")) => Finish::ContentFilter,
        (Some("incomplete"), _) => Finish::Length,
        _ if called => Finish::ToolCalls,
        _ => Finish::Stop,
    }
}

/// The message of an upstream error object.
fn error_message(v: &Value) -> String {
    let e = v.get("error").filter(|e| e.is_object()).unwrap_or(v);
    e.get("message").and_then(Value::as_str).unwrap_or("the upstream reported an error").to_string()
}

/// A Responses `response` object -> an OpenAI `chat.completion`, and its usage. `Err`: not a
/// completed or incomplete response (an error, a failed response, no `output`).
pub fn response_to_pivot(v: &Value) -> Result<(Value, Option<Usage>), String> {
    if v.get("error").is_some_and(|e| !e.is_null()) || v.get("status").and_then(Value::as_str) == Some("failed") {
        return Err(format!("the upstream reported an error: {}", error_message(v)));
    }
    let output = v.get("output").and_then(Value::as_array).ok_or("the Responses API response has no 'output'")?;
    let mut text = String::new();
    let mut refusal = String::new();
    let mut calls = Vec::new();
    for item in output {
        match item.get("type").and_then(Value::as_str) {
            Some("message") => {
                for part in item.get("content").and_then(Value::as_array).map_or(&[][..], Vec::as_slice) {
                    match part.get("type").and_then(Value::as_str) {
                        Some("output_text") => text.push_str(part.get("text").and_then(Value::as_str).unwrap_or("")),
                        Some("refusal") => refusal.push_str(part.get("refusal").and_then(Value::as_str).unwrap_or("")),
                        _ => {}
                    }
                }
            }
            Some("function_call") => calls.push(json!({
                "id": item.get("call_id").and_then(Value::as_str).unwrap_or(""),
                "type": "function",
                "function": {
                    "name": item.get("name").and_then(Value::as_str).unwrap_or(""),
                    "arguments": item.get("arguments").and_then(Value::as_str).unwrap_or("{}"),
                },
            })),
            _ => {}
        }
    }
    let usage = v.get("usage").and_then(usage_from_responses);
    let finish = finish_of(v, !calls.is_empty());
    let mut message = Map::new();
    ins(&mut message, "role", json!("assistant"));
    ins(&mut message, "content", if text.is_empty() && !calls.is_empty() { Value::Null } else { json!(text) });
    if !refusal.is_empty() {
        ins(&mut message, "refusal", json!(refusal));
    }
    if !calls.is_empty() {
        ins(&mut message, "tool_calls", Value::Array(calls));
    }
    let id = v.get("id").and_then(Value::as_str).unwrap_or("");
    let model = v.get("model").and_then(Value::as_str).unwrap_or("");
    let choice = json!({"index": 0, "message": message, "finish_reason": finish.as_openai(), "logprobs": null});
    Ok((pivot::completion(id, model, vec![choice], usage.as_ref()), usage))
}

/// A Responses stream read into pivot chunks: text and refusal deltas, function calls (their
/// item, then argument deltas), and at `response.completed` / `response.incomplete` the finish
/// chunk and the usage chunk. `response.failed` and `error` events are the stream's error.
#[derive(Debug, Default)]
pub struct StreamToPivot {
    w: ChunkWriter,
    /// Output index of each function call item -> its pivot tool-call index.
    calls: Vec<u64>,
    usage: Option<Usage>,
    finished: bool,
    error: Option<String>,
    /// The frame of the latest text delta read by bytes.
    framed: Framed,
}

impl StreamToPivot {
    pub fn new() -> Self {
        Self::default()
    }

    /// Name this model in the chunks instead of the upstream's.
    pub fn with_model(mut self, model: &str) -> Self {
        self.w.model_override = Some(model.to_string());
        self
    }

    fn tool_index(&self, output_index: u64) -> Option<u64> {
        self.calls.iter().position(|o| *o == output_index).map(|k| k as u64)
    }

    fn read_event(&mut self, ev: &EventOf<'_>, out: &mut Vec<Value>) {
        let Ok(v) = serde_json::from_slice::<Value>(ev.data.trim().as_bytes()) else {
            return;
        };
        let ty = v.get("type").and_then(Value::as_str).or(ev.event.as_deref()).unwrap_or("");
        let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("");
        match ty {
            "response.created" | "response.in_progress" => {
                let r = v.get("response");
                if let Some(id) = r.and_then(|r| r.get("id")).and_then(Value::as_str) {
                    self.w.id = id.to_string();
                }
                if let Some(m) = r.and_then(|r| r.get("model")).and_then(Value::as_str) {
                    self.w.model = m.to_string();
                }
            }
            "response.output_text.delta" if !s("delta").is_empty() => {
                self.w.push(out, json!({"content": s("delta")}), None);
            }
            "response.refusal.delta" if !s("delta").is_empty() => {
                self.w.push(out, json!({"refusal": s("delta")}), None);
            }
            "response.output_item.added" => {
                let item = v.get("item");
                if item.and_then(|i| i.get("type")).and_then(Value::as_str) != Some("function_call") {
                    return;
                }
                let Some(oi) = v.get("output_index").and_then(Value::as_u64) else { return };
                if self.tool_index(oi).is_some() {
                    return;
                }
                self.calls.push(oi);
                let k = self.calls.len() as u64 - 1;
                let g = |f: &str| item.and_then(|i| i.get(f)).and_then(Value::as_str).unwrap_or("");
                let tc = json!({"index": k, "id": g("call_id"), "type": "function",
                    "function": {"name": g("name"), "arguments": g("arguments")}});
                self.w.push(out, json!({"tool_calls": [tc]}), None);
            }
            "response.function_call_arguments.delta" if !s("delta").is_empty() => {
                let Some(k) = v.get("output_index").and_then(Value::as_u64).and_then(|o| self.tool_index(o)) else {
                    return;
                };
                let tc = json!({"index": k, "function": {"arguments": s("delta")}});
                self.w.push(out, json!({"tool_calls": [tc]}), None);
            }
            "response.completed" | "response.incomplete" => {
                let Some(r) = v.get("response") else { return };
                self.usage = r.get("usage").and_then(usage_from_responses);
                if !self.finished {
                    self.finished = true;
                    let finish = finish_of(r, !self.calls.is_empty());
                    self.w.push(out, json!({}), Some(finish.as_openai()));
                }
                self.w.usage_once(out, self.usage);
            }
            "response.failed" => {
                let r = v.get("response").cloned().unwrap_or(Value::Null);
                if let Some(u) = r.get("usage").and_then(usage_from_responses) {
                    self.usage = Some(u);
                }
                self.error.get_or_insert_with(|| format!("The generation service failed: {}", error_message(&r)));
            }
            "error" => {
                self.error.get_or_insert_with(|| format!("The generation service failed: {}", error_message(&v)));
            }
            _ => {}
        }
    }
}

impl UpstreamStream for StreamToPivot {
    fn on_event(&mut self, ev: &EventOf<'_>, out: &mut Vec<Value>) {
        if self.error.is_none() {
            self.read_event(ev, out);
        }
    }

    fn finish(&mut self, out: &mut Vec<Value>) {
        self.w.usage_once(out, self.usage);
    }

    fn usage(&self) -> Option<Usage> {
        self.usage
    }

    fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// A non-empty `response.output_text.delta` after the role chunk, while no error came: its
    /// text borrowed from the event.
    fn text_event<'a>(&'a mut self, ev: &'a EventOf<'_>) -> Option<TextChunk<'a>> {
        if self.error.is_some() || !self.w.role_sent() {
            return None;
        }
        let d = object_data(ev)?;
        let (ty, delta) = match scan_delta(d, &mut self.framed) {
            Some(Some((ty, delta))) => (ty, Cow::Borrowed(delta)),
            // Read whole without a `delta`: serde finds none either (`read_event` reads it).
            Some(None) => return None,
            None => {
                let Obj(e): Obj<TextDeltaIn<'a>> = serde_json::from_slice(d.as_bytes()).ok()?;
                (e.ty.map(|t| t == "response.output_text.delta"), e.delta)
            }
        };
        let ty = ty.or_else(|| ev.event.as_deref().map(|t| t == "response.output_text.delta"));
        if ty != Some(true) || delta.is_empty() {
            return None;
        }
        Some(TextChunk { id: Cow::Borrowed(&self.w.id), text: delta })
    }
}

/// `TextDeltaIn` by bytes, in the usual form (no escape in any string or key, integers only,
/// each member once): whether `type` says a text delta (`None`: no `type`), and the delta.
/// `Some(None)`: an object in the usual form without a `delta` (no text delta: serde's read
/// fails too); `None` for anything else (serde decides then). An event in the frame of the
/// latest one read this way, around another plain delta and with another sequence number, is
/// read by comparing bytes.
#[allow(clippy::option_option)]
fn scan_delta<'a>(data: &'a str, framed: &mut Framed) -> Option<Option<(Option<bool>, &'a str)>> {
    if let Some((a, b)) = framed.frame.text_span(data) {
        return Some(Some((framed.ty, data.get(a..b)?)));
    }
    let d = scan_spans(data)?;
    let Some(delta) = d.delta else { return Some(None) };
    framed.frame.remember_with_slot(data, delta.0, delta.1, d.seq.filter(|&(a, _)| a >= delta.1));
    framed.ty = d.ty;
    Some(Some((d.ty, data.get(delta.0..delta.1)?)))
}

/// The frame of the latest text delta read by bytes, and what its `type` said.
#[derive(Debug, Default)]
struct Framed {
    frame: Frame,
    ty: Option<bool>,
}

/// `scan_delta`'s read by bytes.
struct DeltaSpans {
    ty: Option<bool>,
    /// `None`: no `delta` member.
    delta: Option<(usize, usize)>,
    /// The span of an unsigned `sequence_number` (skipped: its value changes nothing).
    seq: Option<(usize, usize)>,
}

/// `scan_delta` by bytes, as spans. The read depends on the delta in no way but its being a
/// string without escapes or control characters, nor on the sequence number's value.
fn scan_spans(data: &str) -> Option<DeltaSpans> {
    let mut c = Cursor::new(data);
    let (mut ty, mut delta, mut seq) = (None, None, None);
    c.members(|c, key| {
        match key {
            b"type" if ty.is_none() => ty = Some(c.plain_bytes()? == b"response.output_text.delta"),
            b"delta" if delta.is_none() => delta = Some(c.plain_span()?),
            b"type" | b"delta" => return None,
            b"sequence_number" if c.peek().is_some_and(|b| b.is_ascii_digit()) => {
                let start = c.pos();
                c.integer()?;
                seq = Some((start, c.pos()));
            }
            _ => c.skip_value(0)?,
        }
        Some(())
    })?;
    c.end()?;
    Some(DeltaSpans { ty, delta, seq })
}

/// `{"type":"response.output_text.delta","delta":..}` (other members skipped), borrowed from
/// the event; `type` may be left to the SSE `event:` field, as in `read_event`. A `delta`
/// that is not a string or a repeated key fails the read (the event is then read whole).
#[derive(Deserialize)]
struct TextDeltaIn<'a> {
    #[serde(rename = "type", borrow)]
    ty: Option<Cow<'a, str>>,
    #[serde(borrow)]
    delta: Cow<'a, str>,
}

#[cfg(test)]
#[path = "../tests/responses_upstream_tests.rs"]
mod tests;
