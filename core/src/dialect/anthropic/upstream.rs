//! An Anthropic upstream: the pivot request translated into a Messages request; its message
//! and its event stream read into the pivot.

use std::borrow::Cow;

use serde_json::{json, Map, Value};

use super::{bad, finish_from_stop_reason, ins, text_in};
use crate::dialect::build::{jobj, jstr, opt_array_at, opt_object_at, opt_str_at, req_object_at, req_str_at};
use crate::dialect::frame::Frame;
use crate::dialect::pivot::{self, content_texts, Finish};
use crate::dialect::stream::{object_data, ChunkWriter, TextChunk, UpstreamStream};
use crate::dialect::validate::{
    opt_array, opt_bool, opt_number, opt_object, opt_positive, opt_str, opt_strings, opt_uint, req_array, req_object,
    req_str,
};
use crate::errors::GatewayError;
use crate::sse::EventOf;
use crate::usage::Usage;

/// The path of the Messages endpoint under an upstream's base path (`/v1` -> `/v1/messages`).
pub fn upstream_path(base_path: &str) -> String {
    format!("{}/messages", base_path.trim_end_matches('/'))
}

/// An OpenAI chat body -> an Anthropic Messages body for an upstream speaking Anthropic.
/// `max_tokens` (required by Anthropic) comes from `max_completion_tokens`, `max_tokens`, or
/// `default_max_tokens`. System and developer messages are hoisted into `system`; consecutive
/// tool results (and the user message after them) share one user message.
#[inline(never)]
pub fn request_from_pivot(
    pivot: &Map<String, Value>,
    upstream_model: &str,
    default_max_tokens: u64,
) -> Result<Value, GatewayError> {
    let max_tokens = match opt_positive(pivot.get("max_completion_tokens"), "max_completion_tokens")? {
        Some(m) => m,
        None => opt_positive(pivot.get("max_tokens"), "max_tokens")?.unwrap_or(default_max_tokens.max(1)),
    };
    let msgs = req_array(pivot.get("messages"), "messages")?;
    let mut system: Vec<String> = Vec::new();
    let mut messages: Vec<Value> = Vec::new();
    // The last message is a user message opened by tool results: later results and the next
    // user message join it.
    let mut joinable = false;
    for (i, m) in msgs.iter().enumerate() {
        let obj = m
            .as_object()
            .ok_or_else(|| bad(&format!("messages[{i}]"), format!("'messages[{i}]' must be an object")))?;
        let role = req_str_at(obj.get("role"), format_args!("messages[{i}].role"))?;
        match role {
            "system" | "developer" => system.extend(content_texts(obj.get("content"))),
            "user" => {
                let content = user_from_pivot(obj.get("content"), i)?;
                if joinable {
                    let blocks = match content {
                        Value::String(s) if s.is_empty() => Vec::new(),
                        Value::String(s) => vec![text_block(Value::String(s))],
                        Value::Array(a) => a,
                        _ => Vec::new(),
                    };
                    append_blocks(&mut messages, blocks);
                } else {
                    messages.push(jobj([("role", jstr("user")), ("content", content)]));
                }
                joinable = false;
            }
            "assistant" => {
                if let Some(msg) = assistant_from_pivot(obj, i)? {
                    messages.push(msg);
                }
                joinable = false;
            }
            "tool" => {
                let id = req_str_at(obj.get("tool_call_id"), format_args!("messages[{i}].tool_call_id"))?;
                let content = match obj.get("content") {
                    Some(Value::String(s)) => Value::String(s.clone()),
                    c => Value::Array(content_texts(c).into_iter().map(|t| text_block(Value::String(t))).collect()),
                };
                let result = jobj([("type", jstr("tool_result")), ("tool_use_id", jstr(id)), ("content", content)]);
                if joinable {
                    append_blocks(&mut messages, vec![result]);
                } else {
                    messages.push(jobj([("role", jstr("user")), ("content", Value::Array(vec![result]))]));
                }
                joinable = true;
            }
            other => return Err(bad(&format!("messages[{i}].role"), format!("role '{other}' is not supported"))),
        }
    }

    // OpenAI accepts a conversation of system messages only; Anthropic refuses empty `messages`.
    if messages.is_empty() {
        return Err(bad("messages", "this model needs at least one user or assistant message"));
    }
    let mut out = Map::new();
    ins(&mut out, "model", jstr(upstream_model));
    ins(&mut out, "max_tokens", Value::from(max_tokens));
    match system.len() {
        0 => {}
        1 => ins(&mut out, "system", Value::String(system.into_iter().next().unwrap_or_default())),
        _ => ins(&mut out, "system", Value::Array(system.into_iter().map(|t| text_block(Value::String(t))).collect())),
    }
    ins(&mut out, "messages", Value::Array(messages));
    if let Some(stop) = opt_strings(pivot.get("stop"), "stop", true)? {
        if !stop.is_empty() {
            ins(&mut out, "stop_sequences", Value::from(stop));
        }
    }
    if let Some(t) = opt_number(pivot.get("temperature"), "temperature")? {
        // Anthropic's range is 0..1, OpenAI's 0..2.
        let clamped = if t.as_f64().is_some_and(|x| x > 1.0) { Value::from(1.0) } else { t.clone() };
        ins(&mut out, "temperature", clamped);
    }
    if let Some(n) = opt_number(pivot.get("top_p"), "top_p")? {
        ins(&mut out, "top_p", n.clone());
    }
    if let Some(k) = opt_uint(pivot.get("top_k"), "top_k")? {
        ins(&mut out, "top_k", Value::from(k));
    }
    if let Some(u) = opt_str(pivot.get("user"), "user")? {
        ins(&mut out, "metadata", jobj([("user_id", jstr(u))]));
    }
    let mut has_tools = false;
    if let Some(tools) = opt_array(pivot.get("tools"), "tools")? {
        let mut list = Vec::with_capacity(tools.len());
        for (i, t) in tools.iter().enumerate() {
            let f = req_object_at(t.get("function"), format_args!("tools[{i}].function"))?;
            let mut tool = Map::new();
            ins(&mut tool, "name", jstr(req_str_at(f.get("name"), format_args!("tools[{i}].function.name"))?));
            if let Some(d) = opt_str_at(f.get("description"), format_args!("tools[{i}].function.description"))? {
                ins(&mut tool, "description", jstr(d));
            }
            let schema = match opt_object_at(f.get("parameters"), format_args!("tools[{i}].function.parameters"))? {
                Some(s) => Value::Object(s.clone()),
                None => jobj([("type", jstr("object")), ("properties", Value::Object(Map::new()))]),
            };
            ins(&mut tool, "input_schema", schema);
            list.push(Value::Object(tool));
        }
        has_tools = !list.is_empty();
        if has_tools {
            ins(&mut out, "tools", Value::Array(list));
        }
    }
    let no_parallel = opt_bool(pivot.get("parallel_tool_calls"), "parallel_tool_calls")? == Some(false);
    if has_tools {
        let mut choice = match pivot.get("tool_choice") {
            None | Some(Value::Null) => {
                if no_parallel {
                    Some(type_object("auto"))
                } else {
                    None
                }
            }
            Some(Value::String(s)) => match s.as_str() {
                "auto" => Some(type_object("auto")),
                "required" => Some(type_object("any")),
                "none" => Some(type_object("none")),
                other => return Err(bad("tool_choice", format!("unknown tool_choice '{other}'"))),
            },
            Some(Value::Object(o)) => {
                let f = req_object(o.get("function"), "tool_choice.function")?;
                Some(jobj([
                    ("type", jstr("tool")),
                    ("name", jstr(req_str(f.get("name"), "tool_choice.function.name")?)),
                ]))
            }
            Some(_) => return Err(bad("tool_choice", "'tool_choice' must be a string or an object")),
        };
        if let Some(Value::Object(c)) = choice.as_mut() {
            if no_parallel && c.get("type").and_then(Value::as_str) != Some("none") {
                ins(c, "disable_parallel_tool_use", Value::Bool(true));
            }
        }
        if let Some(c) = choice {
            ins(&mut out, "tool_choice", c);
        }
    }
    // Structured output: a JSON schema is Anthropic's `output_config.format` (a bare JSON
    // object has no equivalent there and is dropped, as before).
    if let Some(rf) = opt_object(pivot.get("response_format"), "response_format")? {
        if rf.get("type").and_then(Value::as_str) == Some("json_schema") {
            if let Some(s) = rf.get("json_schema").and_then(|j| j.get("schema")).filter(|s| s.is_object()) {
                ins(
                    &mut out,
                    "output_config",
                    jobj([("format", jobj([("type", jstr("json_schema")), ("schema", s.clone())]))]),
                );
            }
        }
    }
    if opt_bool(pivot.get("stream"), "stream")? == Some(true) {
        ins(&mut out, "stream", Value::Bool(true));
    }
    Ok(Value::Object(out))
}

fn append_blocks(messages: &mut [Value], blocks: Vec<Value>) {
    if let Some(Value::Array(a)) = messages.last_mut().and_then(|m| m.get_mut("content")) {
        a.extend(blocks);
    }
}

/// `{"type": "text", "text": text}`.
fn text_block(text: Value) -> Value {
    jobj([("type", jstr("text")), ("text", text)])
}

/// `{"type": ty}`.
fn type_object(ty: &str) -> Value {
    jobj([("type", jstr(ty))])
}

/// The content of the user message `messages[i]`.
fn user_from_pivot(content: Option<&Value>, i: usize) -> Result<Value, GatewayError> {
    match content {
        None | Some(Value::Null) => Ok(Value::String(String::new())),
        Some(Value::String(s)) => Ok(Value::String(s.clone())),
        Some(Value::Array(parts)) => {
            let mut blocks = Vec::with_capacity(parts.len());
            for (j, part) in parts.iter().enumerate() {
                let ty = part.get("type").and_then(Value::as_str).unwrap_or("text");
                match ty {
                    "text" => {
                        let t = req_str_at(part.get("text"), format_args!("messages[{i}].content[{j}].text"))?;
                        blocks.push(text_block(jstr(t)));
                    }
                    "image_url" => {
                        let url = match part.get("image_url") {
                            Some(Value::String(s)) => s.as_str(),
                            iu => req_str_at(
                                iu.and_then(|i| i.get("url")),
                                format_args!("messages[{i}].content[{j}].image_url.url"),
                            )?,
                        };
                        let source = match pivot::split_data_url(url) {
                            Some((mime, data)) => base64_source(mime, data),
                            None => jobj([("type", jstr("url")), ("url", jstr(url))]),
                        };
                        blocks.push(jobj([("type", jstr("image")), ("source", source)]));
                    }
                    "file" => {
                        let data = req_str_at(
                            part.get("file").and_then(|f| f.get("file_data")),
                            format_args!("messages[{i}].content[{j}].file.file_data"),
                        )?;
                        let (mime, b64) = pivot::split_data_url(data).ok_or_else(|| {
                            bad(
                                &format!("messages[{i}].content[{j}].file.file_data"),
                                "only base64 data URLs are supported",
                            )
                        })?;
                        blocks.push(jobj([("type", jstr("document")), ("source", base64_source(mime, b64))]));
                    }
                    other => {
                        return Err(bad(
                            &format!("messages[{i}].content[{j}].type"),
                            format!("content part type '{other}' is not supported"),
                        ))
                    }
                }
            }
            Ok(Value::Array(blocks))
        }
        Some(_) => {
            let cp = format!("messages[{i}].content");
            Err(bad(&cp, format!("'{cp}' must be a string or an array")))
        }
    }
}

/// `{"type": "base64", "media_type": mime, "data": data}`.
fn base64_source(mime: &str, data: &str) -> Value {
    jobj([("type", jstr("base64")), ("media_type", jstr(mime)), ("data", jstr(data))])
}

/// The assistant message `messages[i]` (`obj`), or `None` when it has nothing to send.
fn assistant_from_pivot(obj: &Map<String, Value>, i: usize) -> Result<Option<Value>, GatewayError> {
    let calls = opt_array_at(obj.get("tool_calls"), format_args!("messages[{i}].tool_calls"))?;
    // An empty assistant turn (OpenAI accepts `"content": ""`) is dropped: Anthropic refuses
    // empty content anywhere but in a final assistant message.
    if let (Some(Value::String(s)), None) = (obj.get("content"), calls) {
        if s.is_empty() {
            return Ok(None);
        }
        return Ok(Some(jobj([("role", jstr("assistant")), ("content", jstr(s))])));
    }
    let mut blocks: Vec<Value> = content_texts(obj.get("content"))
        .into_iter()
        .filter(|t| !t.is_empty())
        .map(|t| text_block(Value::String(t)))
        .collect();
    for (k, tc) in calls.map(|c| c.as_slice()).unwrap_or(&[]).iter().enumerate() {
        let f = req_object_at(tc.get("function"), format_args!("messages[{i}].tool_calls[{k}].function"))?;
        let name = req_str_at(f.get("name"), format_args!("messages[{i}].tool_calls[{k}].function.name"))?;
        let id = match opt_str_at(tc.get("id"), format_args!("messages[{i}].tool_calls[{k}].id"))? {
            Some(id) => jstr(id),
            None => Value::String(format!("toolu_{k}")),
        };
        let input = match f.get("arguments") {
            Some(Value::String(s)) => pivot::parse_arguments(s),
            Some(o @ Value::Object(_)) => o.clone(),
            _ => Value::Object(Map::new()),
        };
        blocks.push(jobj([("type", jstr("tool_use")), ("id", id), ("name", jstr(name)), ("input", input)]));
    }
    if blocks.is_empty() {
        return Ok(None);
    }
    Ok(Some(jobj([("role", jstr("assistant")), ("content", Value::Array(blocks))])))
}

/// Anthropic `usage` -> Usage. Prompt tokens include cache writes and reads.
pub fn usage_from_anthropic(u: &Value) -> Option<Usage> {
    if !u.is_object() {
        return None;
    }
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    let cache_read = n("cache_read_input_tokens");
    Some(Usage {
        prompt_tokens: n("input_tokens").saturating_add(n("cache_creation_input_tokens")).saturating_add(cache_read),
        completion_tokens: n("output_tokens"),
        cached_tokens: cache_read,
        reasoning_tokens: 0,
        cache_creation_tokens: n("cache_creation_input_tokens"),
    })
}

/// An Anthropic upstream's message -> an OpenAI `chat.completion` and the usage.
/// `Err` carries the message of an Anthropic error body or says why the body is not a message.
/// `usage.credits_consumed` (a platform extension: the credits the request cost) is carried through into the completion's `usage`.
pub fn response_to_pivot(v: &Value) -> Result<(Value, Option<Usage>), String> {
    let obj = v.as_object().ok_or("the Anthropic response is not a JSON object")?;
    if obj.get("type").and_then(Value::as_str) == Some("error") {
        return Err(error_message(v));
    }
    let content = obj.get("content").and_then(Value::as_array).ok_or("the Anthropic response has no 'content'")?;
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for b in content {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(b.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("thinking") => reasoning.push_str(b.get("thinking").and_then(Value::as_str).unwrap_or("")),
            Some("tool_use") => {
                let input = b.get("input").cloned().unwrap_or_else(|| json!({}));
                calls.push(json!({
                    "id": b.get("id").and_then(Value::as_str).unwrap_or(""),
                    "type": "function",
                    "function": {
                        "name": b.get("name").and_then(Value::as_str).unwrap_or(""),
                        "arguments": serde_json::to_string(&input).unwrap_or_else(|_| "{}".to_string()),
                    },
                }));
            }
            _ => {}
        }
    }
    let finish = obj.get("stop_reason").and_then(Value::as_str).map(finish_from_stop_reason).unwrap_or(Finish::Stop);
    let mut message = Map::new();
    ins(&mut message, "role", json!("assistant"));
    let content = if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text) };
    ins(&mut message, "content", content);
    ins(&mut message, "refusal", Value::Null);
    if !reasoning.is_empty() {
        ins(&mut message, "reasoning_content", Value::String(reasoning));
    }
    if !calls.is_empty() {
        ins(&mut message, "tool_calls", Value::Array(calls));
    }
    let mut choice = json!({"index": 0, "message": message, "logprobs": null, "finish_reason": finish.as_openai()});
    if let (Some(seq), Some(c)) =
        (stop_sequence(obj.get("stop_reason"), obj.get("stop_sequence")), choice.as_object_mut())
    {
        ins(c, "stop_reason", json!(seq));
    }
    let usage = obj.get("usage").and_then(usage_from_anthropic);
    let id = obj.get("id").and_then(Value::as_str).unwrap_or("");
    let model = obj.get("model").and_then(Value::as_str).unwrap_or("");
    let mut out = pivot::completion(id, model, vec![choice], usage.as_ref());
    if let (Some(c), Some(Value::Object(u))) = (pivot::credits_of(v), out.get_mut("usage")) {
        ins(u, "credits_consumed", c);
    }
    Ok((out, usage))
}

/// Anthropic's `stop_sequence` when `stop_reason` says a stop sequence ended the turn.
fn stop_sequence<'a>(reason: Option<&Value>, seq: Option<&'a Value>) -> Option<&'a str> {
    if reason.and_then(Value::as_str) == Some("stop_sequence") {
        seq.and_then(Value::as_str)
    } else {
        None
    }
}

fn error_message(v: &Value) -> String {
    v.pointer("/error/message")
        .and_then(Value::as_str)
        .or_else(|| v.pointer("/error/type").and_then(Value::as_str))
        .unwrap_or("upstream error")
        .to_string()
}

/// Anthropic upstream stream -> OpenAI `chat.completion.chunk` values, one event at a time.
///
/// Emits the role chunk at `message_start`, content and tool-call deltas as blocks stream, the
/// finish chunk at `message_delta`, and the usage chunk (`choices: []`) at `message_stop` (or at
/// `finish()` when the stream ends without one). A stream cut short gets no finish chunk.
#[derive(Debug, Default)]
pub struct StreamToPivot {
    w: ChunkWriter,
    /// (Anthropic block index, OpenAI tool-call index) of tool_use blocks.
    tool_blocks: Vec<(u64, u64)>,
    next_tool: u64,
    input_tokens: Option<u64>,
    cache_creation: u64,
    cache_read: u64,
    output_tokens: u64,
    finish_sent: bool,
    error: Option<String>,
    /// The frame of the latest text delta read by bytes (the next one in it is read by
    /// comparing bytes).
    frame: Frame,
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

    fn take_usage(&mut self, u: &Value) {
        let n = |k: &str| u.get(k).and_then(Value::as_u64);
        if let Some(x) = n("input_tokens") {
            self.input_tokens = Some(x);
        }
        if let Some(x) = n("cache_creation_input_tokens") {
            self.cache_creation = x;
        }
        if let Some(x) = n("cache_read_input_tokens") {
            self.cache_read = x;
        }
        if let Some(x) = n("output_tokens") {
            // cumulative: the latest count replaces, never adds
            self.output_tokens = x;
        }
    }

    fn push(&mut self, out: &mut Vec<Value>, delta: Value, finish: Option<&str>) {
        self.w.push(out, delta, finish);
    }

    /// A delta of one text field (`content`, `reasoning_content`), when the text is a non-empty
    /// string.
    fn delta(&mut self, out: &mut Vec<Value>, field: &str, text: Option<&Value>) {
        if let Some(t) = text.and_then(Value::as_str).filter(|t| !t.is_empty()) {
            let mut d = Map::new();
            d.insert(field.to_string(), Value::String(t.to_string()));
            self.push(out, Value::Object(d), None);
        }
    }

    fn read_event(&mut self, ev: &EventOf<'_>, out: &mut Vec<Value>) {
        let Ok(v) = serde_json::from_slice::<Value>(ev.data.trim().as_bytes()) else {
            return;
        };
        let ty = v.get("type").and_then(Value::as_str).or(ev.event.as_deref()).unwrap_or("");
        match ty {
            "message_start" => {
                let m = v.get("message");
                if let Some(id) = m.and_then(|m| m.get("id")).and_then(Value::as_str) {
                    self.w.id = id.to_string();
                }
                if let Some(model) = m.and_then(|m| m.get("model")).and_then(Value::as_str) {
                    self.w.model = model.to_string();
                }
                if let Some(u) = m.and_then(|m| m.get("usage")) {
                    self.take_usage(u);
                }
                self.w.role(out);
            }
            "content_block_start" => {
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                let Some(b) = v.get("content_block") else { return };
                match b.get("type").and_then(Value::as_str) {
                    Some("text") => self.delta(out, "content", b.get("text")),
                    Some("tool_use") => {
                        let k = self.next_tool;
                        self.next_tool = self.next_tool.saturating_add(1);
                        self.tool_blocks.push((index, k));
                        let call = json!({
                            "index": k,
                            "id": b.get("id").and_then(Value::as_str).unwrap_or(""),
                            "type": "function",
                            "function": {"name": b.get("name").and_then(Value::as_str).unwrap_or(""), "arguments": ""},
                        });
                        self.push(out, json!({"tool_calls": [call]}), None);
                        // Input given whole at the start (not the usual `{}` + deltas).
                        if let Some(input) = b.get("input").and_then(Value::as_object).filter(|o| !o.is_empty()) {
                            let args = serde_json::to_string(input).unwrap_or_default();
                            self.push(
                                out,
                                json!({"tool_calls": [{"index": k, "function": {"arguments": args}}]}),
                                None,
                            );
                        }
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                let Some(d) = v.get("delta") else { return };
                match d.get("type").and_then(Value::as_str) {
                    Some("text_delta") => self.delta(out, "content", d.get("text")),
                    Some("input_json_delta") => {
                        let pj = d.get("partial_json").and_then(Value::as_str).unwrap_or("");
                        let tool = self.tool_blocks.iter().find(|(b, _)| *b == index).map(|(_, k)| *k);
                        if let (Some(k), false) = (tool, pj.is_empty()) {
                            self.push(out, json!({"tool_calls": [{"index": k, "function": {"arguments": pj}}]}), None);
                        }
                    }
                    Some("thinking_delta") => self.delta(out, "reasoning_content", d.get("thinking")),
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(u) = v.get("usage") {
                    self.take_usage(u);
                }
                let reason = v.pointer("/delta/stop_reason").and_then(Value::as_str);
                if let (Some(r), false) = (reason, self.finish_sent) {
                    self.finish_sent = true;
                    let f = finish_from_stop_reason(r).as_openai();
                    self.push(out, json!({}), Some(f));
                    let seq = stop_sequence(v.pointer("/delta/stop_reason"), v.pointer("/delta/stop_sequence"));
                    if let (Some(seq), Some(Value::Object(c))) =
                        (seq, out.last_mut().and_then(|c| c.pointer_mut("/choices/0")))
                    {
                        ins(c, "stop_reason", json!(seq));
                    }
                }
            }
            "message_stop" => {
                let u = self.current_usage();
                self.w.usage_once(out, u);
            }
            "error" => self.error = Some(error_message(&v)),
            _ => {} // ping, content_block_stop, unknown events
        }
    }

    /// Usage so far: input tokens from `message_start`, cumulative output from the latest
    /// `message_delta`. `None` before any usage arrived.
    fn current_usage(&self) -> Option<Usage> {
        let input = self.input_tokens?;
        Some(Usage {
            prompt_tokens: input.saturating_add(self.cache_creation).saturating_add(self.cache_read),
            completion_tokens: self.output_tokens,
            cached_tokens: self.cache_read,
            reasoning_tokens: 0,
            cache_creation_tokens: self.cache_creation,
        })
    }
}

impl UpstreamStream for StreamToPivot {
    fn on_event(&mut self, ev: &EventOf<'_>, out: &mut Vec<Value>) {
        self.read_event(ev, out);
    }

    /// The usage chunk, if not sent yet (the stream ended without `message_stop`).
    fn finish(&mut self, out: &mut Vec<Value>) {
        let u = self.current_usage();
        self.w.usage_once(out, u);
    }

    fn usage(&self) -> Option<Usage> {
        self.current_usage()
    }

    /// A `text_delta` (most of a stream) after the role chunk: its text borrowed from the event.
    fn text_event<'a>(&'a mut self, ev: &'a EventOf<'_>) -> Option<TextChunk<'a>> {
        if !self.w.role_sent() {
            return None;
        }
        let text = text_in::text_delta_framed(object_data(ev)?, &mut self.frame)?;
        Some(TextChunk { id: Cow::Borrowed(&self.w.id), text })
    }

    fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }
}
