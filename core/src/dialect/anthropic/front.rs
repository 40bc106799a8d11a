//! An Anthropic client: its Messages request validated and translated into the pivot; the
//! pivot's response written out as an Anthropic message (the stream: `front_stream`).

use std::fmt::Arguments;

use serde_json::{json, Map, Value};

use super::{bad, ins, stop_reason_of, stop_sequence_of};
use crate::dialect::build::{jobj, jstr, opt_bool_at, opt_object_at, opt_str_at, req_object_at, req_str_at};
use crate::dialect::pivot::{self, text_part, texts_to_content, Finish, PivotRequest};
use crate::dialect::validate::{
    opt_array, opt_bool, opt_number, opt_object, opt_positive, opt_str, opt_strings, opt_uint, req_array, req_object,
    req_str, required_model,
};
use crate::errors::GatewayError;
use crate::usage::Usage;

/// Validates an Anthropic Messages request and translates it to an OpenAI chat body.
#[inline(never)]
pub fn request_to_pivot(body: &Map<String, Value>) -> Result<PivotRequest, GatewayError> {
    let model = required_model(body)?;
    let max_tokens = match body.get("max_tokens") {
        None | Some(Value::Null) => return Err(GatewayError::missing("max_tokens")),
        v => opt_positive(v, "max_tokens")?.ok_or_else(|| GatewayError::missing("max_tokens"))?,
    };
    let stream = opt_bool(body.get("stream"), "stream")?.unwrap_or(false);

    let mut messages: Vec<Value> = Vec::new();
    if let Some(sys) = system_to_pivot(body.get("system"))? {
        messages.push(json!({"role": "system", "content": sys}));
    }
    let msgs = req_array(body.get("messages"), "messages")?;
    if msgs.is_empty() {
        return Err(bad("messages", "'messages' must contain at least one message"));
    }
    for (i, m) in msgs.iter().enumerate() {
        message_to_pivot(i, m, &mut messages)?;
    }

    let mut out = Map::new();
    ins(&mut out, "model", Value::String(model.clone()));
    ins(&mut out, "messages", Value::Array(messages));
    ins(&mut out, "max_tokens", json!(max_tokens));
    if let Some(stop) = opt_strings(body.get("stop_sequences"), "stop_sequences", false)? {
        if !stop.is_empty() {
            ins(&mut out, "stop", json!(stop));
        }
    }
    for field in ["temperature", "top_p"] {
        if let Some(n) = opt_number(body.get(field), field)? {
            ins(&mut out, field, n.clone());
        }
    }
    if let Some(k) = opt_uint(body.get("top_k"), "top_k")? {
        ins(&mut out, "top_k", json!(k));
    }
    if let Some(meta) = opt_object(body.get("metadata"), "metadata")? {
        if let Some(u) = opt_str(meta.get("user_id"), "metadata.user_id")? {
            ins(&mut out, "user", json!(u));
        }
    }
    // Structured output (`messages.parse(output_format=...)`): `output_config.format` is the
    // pivot's `response_format` json_schema; the config's other fields have no equivalent.
    if let Some(oc) = opt_object(body.get("output_config"), "output_config")? {
        if let Some(f) = opt_object(oc.get("format"), "output_config.format")? {
            let ty = req_str(f.get("type"), "output_config.format.type")?;
            if ty != "json_schema" {
                return Err(bad("output_config.format.type", format!("output format type '{ty}' is not supported")));
            }
            let schema = req_object(f.get("schema"), "output_config.format.schema")?;
            let rf = json!({"type": "json_schema", "json_schema": {"name": "output", "schema": schema}});
            ins(&mut out, "response_format", rf);
        }
    }
    let has_tools = tools_to_pivot(body.get("tools"), &mut out)?;
    if let Some(tc) = opt_object(body.get("tool_choice"), "tool_choice")? {
        let ty = req_str(tc.get("type"), "tool_choice.type")?;
        let choice = match ty {
            "auto" => json!("auto"),
            "any" => json!("required"),
            "none" => json!("none"),
            "tool" => json!({"type": "function", "function": {"name": req_str(tc.get("name"), "tool_choice.name")?}}),
            other => return Err(bad("tool_choice.type", format!("unknown tool_choice type '{other}'"))),
        };
        let no_parallel = opt_bool(tc.get("disable_parallel_tool_use"), "tool_choice.disable_parallel_tool_use")?;
        // OpenAI refuses tool_choice without tools.
        if has_tools {
            ins(&mut out, "tool_choice", choice);
            if no_parallel == Some(true) && ty != "none" {
                ins(&mut out, "parallel_tool_calls", Value::Bool(false));
            }
        }
    }
    if stream {
        ins(&mut out, "stream", Value::Bool(true));
        ins(&mut out, "stream_options", json!({"include_usage": true}));
    }
    Ok(PivotRequest { body: out, model, stream, max_tokens: Some(max_tokens) })
}

fn system_to_pivot(v: Option<&Value>) -> Result<Option<Value>, GatewayError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(Value::String(s.clone()))),
        Some(Value::Array(blocks)) => {
            let mut texts = Vec::with_capacity(blocks.len());
            for (i, b) in blocks.iter().enumerate() {
                let (o, ty) = block(b, format_args!("system[{i}]"))?;
                if ty != "text" {
                    return Err(bad(&format!("system[{i}].type"), "system blocks must be of type 'text'"));
                }
                texts.push(req_str_at(o.get("text"), format_args!("system[{i}].text"))?.to_string());
            }
            Ok(match texts_to_content(texts) {
                Value::Null => None,
                c => Some(c),
            })
        }
        Some(_) => Err(bad("system", "'system' must be a string or an array of text blocks")),
    }
}

enum Content<'a> {
    Text(&'a str),
    Blocks(&'a [Value]),
}

/// The content of a message or tool result at `at` (formatted only when refused).
fn content_of<'a>(v: Option<&'a Value>, at: Arguments) -> Result<Content<'a>, GatewayError> {
    match v {
        Some(Value::String(s)) => Ok(Content::Text(s)),
        Some(Value::Array(a)) => Ok(Content::Blocks(a)),
        None | Some(Value::Null) => Err(GatewayError::missing(&std::fmt::format(at))),
        Some(_) => {
            let param = std::fmt::format(at);
            Err(bad(&param, format!("'{param}' must be a string or an array of content blocks")))
        }
    }
}

/// A content block at `at`: its object and its `type`.
fn block<'a>(b: &'a Value, at: Arguments) -> Result<(&'a Map<String, Value>, &'a str), GatewayError> {
    let o = b.as_object().ok_or_else(|| {
        let param = std::fmt::format(at);
        bad(&param, format!("'{param}' must be an object"))
    })?;
    let ty = req_str_at(o.get("type"), format_args!("{at}.type"))?;
    Ok((o, ty))
}

fn message_to_pivot(i: usize, m: &Value, out: &mut Vec<Value>) -> Result<(), GatewayError> {
    let obj =
        m.as_object().ok_or_else(|| bad(&format!("messages[{i}]"), format!("'messages[{i}]' must be an object")))?;
    let role = req_str_at(obj.get("role"), format_args!("messages[{i}].role"))?;
    match role {
        "user" => user_to_pivot(i, obj.get("content"), out),
        "assistant" => assistant_to_pivot(i, obj.get("content"), out),
        _ => {
            let rp = format!("messages[{i}].role");
            Err(bad(&rp, format!("'{rp}' must be 'user' or 'assistant'")))
        }
    }
}

/// The user message `messages[i]` (its `content`) appended to the pivot messages.
fn user_to_pivot(i: usize, content: Option<&Value>, out: &mut Vec<Value>) -> Result<(), GatewayError> {
    let blocks = match content_of(content, format_args!("messages[{i}].content"))? {
        Content::Text(s) => {
            out.push(json!({"role": "user", "content": s}));
            return Ok(());
        }
        Content::Blocks(b) => b,
    };
    let mut parts = Vec::new();
    let mut tool_msgs = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        let (o, ty) = block(b, format_args!("messages[{i}].content[{j}]"))?;
        match ty {
            "text" => {
                parts.push(text_part(req_str_at(o.get("text"), format_args!("messages[{i}].content[{j}].text"))?))
            }
            "image" => parts.push(image_to_part(o, format_args!("messages[{i}].content[{j}]"))?),
            "document" => parts.push(document_to_part(o, format_args!("messages[{i}].content[{j}]"))?),
            "tool_result" => tool_msgs.push(tool_result_to_pivot(o, i, j, &mut parts)?),
            "thinking" | "redacted_thinking" => {}
            "tool_use" => {
                return Err(bad(
                    &format!("messages[{i}].content[{j}].type"),
                    "'tool_use' blocks belong in assistant messages",
                ))
            }
            other => {
                return Err(bad(
                    &format!("messages[{i}].content[{j}].type"),
                    format!("content block type '{other}' is not supported"),
                ))
            }
        }
    }
    // Tool results answer the previous assistant turn: OpenAI wants them right after it.
    let had_tools = !tool_msgs.is_empty();
    out.extend(tool_msgs);
    if !parts.is_empty() {
        out.push(jobj([("role", jstr("user")), ("content", Value::Array(parts))]));
    } else if !had_tools {
        out.push(jobj([("role", jstr("user")), ("content", jstr(""))]));
    }
    Ok(())
}

/// The url of an image or document `source` at `{bp}.source` with a base64 `type`.
fn base64_url(src: &Map<String, Value>, bp: Arguments) -> Result<String, GatewayError> {
    Ok(pivot::data_url(
        req_str_at(src.get("media_type"), format_args!("{bp}.source.media_type"))?,
        req_str_at(src.get("data"), format_args!("{bp}.source.data"))?,
    ))
}

/// The image block at `bp` (`o`) as a pivot part.
fn image_to_part(o: &Map<String, Value>, bp: Arguments) -> Result<Value, GatewayError> {
    let src = req_object_at(o.get("source"), format_args!("{bp}.source"))?;
    let url = match req_str_at(src.get("type"), format_args!("{bp}.source.type"))? {
        "base64" => base64_url(src, bp)?,
        "url" => req_str_at(src.get("url"), format_args!("{bp}.source.url"))?.to_string(),
        other => {
            return Err(bad(&format!("{bp}.source.type"), format!("image source type '{other}' is not supported")))
        }
    };
    Ok(jobj([("type", jstr("image_url")), ("image_url", jobj([("url", Value::String(url))]))]))
}

/// The document block at `bp` (`o`) as a pivot part.
fn document_to_part(o: &Map<String, Value>, bp: Arguments) -> Result<Value, GatewayError> {
    let src = req_object_at(o.get("source"), format_args!("{bp}.source"))?;
    match req_str_at(src.get("type"), format_args!("{bp}.source.type"))? {
        "base64" => {
            let url = base64_url(src, bp)?;
            let name = opt_str_at(o.get("title"), format_args!("{bp}.title"))?.unwrap_or("document.pdf");
            let file = jobj([("filename", jstr(name)), ("file_data", Value::String(url))]);
            Ok(jobj([("type", jstr("file")), ("file", file)]))
        }
        "text" => Ok(text_part(req_str_at(src.get("data"), format_args!("{bp}.source.data"))?)),
        other => Err(bad(&format!("{bp}.source.type"), format!("document source type '{other}' is not supported"))),
    }
}

/// The `tool_result` block `messages[i].content[j]` (`o`) -> an OpenAI `tool` message. Images
/// in the result cannot go in a tool message: they join the user message that follows (`extra`).
fn tool_result_to_pivot(
    o: &Map<String, Value>,
    i: usize,
    j: usize,
    extra: &mut Vec<Value>,
) -> Result<Value, GatewayError> {
    let id = req_str_at(o.get("tool_use_id"), format_args!("messages[{i}].content[{j}].tool_use_id"))?;
    let content = match o.get("content") {
        None | Some(Value::Null) => Value::String(String::new()),
        Some(Value::String(s)) => Value::String(s.clone()),
        Some(Value::Array(blocks)) => {
            let mut texts = Vec::new();
            for (k, b) in blocks.iter().enumerate() {
                let (bo, ty) = block(b, format_args!("messages[{i}].content[{j}].content[{k}]"))?;
                match ty {
                    "text" => texts.push(
                        req_str_at(bo.get("text"), format_args!("messages[{i}].content[{j}].content[{k}].text"))?
                            .to_string(),
                    ),
                    "image" => extra.push(image_to_part(bo, format_args!("messages[{i}].content[{j}].content[{k}]"))?),
                    "document" => {
                        extra.push(document_to_part(bo, format_args!("messages[{i}].content[{j}].content[{k}]"))?)
                    }
                    other => {
                        return Err(bad(
                            &format!("messages[{i}].content[{j}].content[{k}].type"),
                            format!("tool_result block type '{other}' is not supported"),
                        ))
                    }
                }
            }
            match texts_to_content(texts) {
                Value::Null => Value::String(String::new()),
                c => c,
            }
        }
        Some(_) => {
            let cp = format!("messages[{i}].content[{j}].content");
            return Err(bad(&cp, format!("'{cp}' must be a string or an array of content blocks")));
        }
    };
    opt_bool_at(o.get("is_error"), format_args!("messages[{i}].content[{j}].is_error"))?;
    Ok(jobj([("role", jstr("tool")), ("tool_call_id", jstr(id)), ("content", content)]))
}

/// The assistant message `messages[i]` (its `content`) appended to the pivot messages.
fn assistant_to_pivot(i: usize, content: Option<&Value>, out: &mut Vec<Value>) -> Result<(), GatewayError> {
    let blocks = match content_of(content, format_args!("messages[{i}].content"))? {
        Content::Text(s) => {
            out.push(json!({"role": "assistant", "content": s}));
            return Ok(());
        }
        Content::Blocks(b) => b,
    };
    let mut texts = Vec::new();
    let mut calls = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        let (o, ty) = block(b, format_args!("messages[{i}].content[{j}]"))?;
        match ty {
            "text" => {
                texts.push(req_str_at(o.get("text"), format_args!("messages[{i}].content[{j}].text"))?.to_string())
            }
            "tool_use" => {
                let id = req_str_at(o.get("id"), format_args!("messages[{i}].content[{j}].id"))?;
                let name = req_str_at(o.get("name"), format_args!("messages[{i}].content[{j}].name"))?;
                let input = match opt_object_at(o.get("input"), format_args!("messages[{i}].content[{j}].input"))? {
                    Some(m) => Value::Object(m.clone()),
                    None => Value::Object(Map::new()),
                };
                let args = serde_json::to_string(&input).unwrap_or_else(|_| "{}".to_string());
                let function = jobj([("name", jstr(name)), ("arguments", Value::String(args))]);
                calls.push(jobj([("id", jstr(id)), ("type", jstr("function")), ("function", function)]));
            }
            "thinking" | "redacted_thinking" => {}
            "tool_result" => {
                return Err(bad(
                    &format!("messages[{i}].content[{j}].type"),
                    "'tool_result' blocks belong in user messages",
                ))
            }
            other => {
                return Err(bad(
                    &format!("messages[{i}].content[{j}].type"),
                    format!("content block type '{other}' is not supported in assistant messages"),
                ))
            }
        }
    }
    let mut msg = Map::new();
    ins(&mut msg, "role", jstr("assistant"));
    let content = match texts_to_content(texts) {
        Value::Null if calls.is_empty() => Value::String(String::new()),
        c => c,
    };
    ins(&mut msg, "content", content);
    if !calls.is_empty() {
        ins(&mut msg, "tool_calls", Value::Array(calls));
    }
    out.push(Value::Object(msg));
    Ok(())
}

/// `tools` -> OpenAI function tools. Returns whether any tool was added.
fn tools_to_pivot(v: Option<&Value>, out: &mut Map<String, Value>) -> Result<bool, GatewayError> {
    let Some(tools) = opt_array(v, "tools")? else {
        return Ok(false);
    };
    let mut list = Vec::with_capacity(tools.len());
    for (i, t) in tools.iter().enumerate() {
        let o = t.as_object().ok_or_else(|| bad(&format!("tools[{i}]"), format!("'tools[{i}]' must be an object")))?;
        if let Some(ty) = opt_str_at(o.get("type"), format_args!("tools[{i}].type"))? {
            if ty != "custom" {
                return Err(bad(
                    &format!("tools[{i}].type"),
                    format!("tool type '{ty}' is not supported by this gateway"),
                ));
            }
        }
        let name = req_str_at(o.get("name"), format_args!("tools[{i}].name"))?;
        let schema = req_object_at(o.get("input_schema"), format_args!("tools[{i}].input_schema"))?;
        let mut f = Map::new();
        ins(&mut f, "name", jstr(name));
        if let Some(d) = opt_str_at(o.get("description"), format_args!("tools[{i}].description"))? {
            ins(&mut f, "description", jstr(d));
        }
        ins(&mut f, "parameters", Value::Object(schema.clone()));
        list.push(jobj([("type", jstr("function")), ("function", Value::Object(f))]));
    }
    if list.is_empty() {
        return Ok(false);
    }
    ins(out, "tools", Value::Array(list));
    Ok(true)
}

/// Usage -> Anthropic `usage` (input tokens exclude cache reads and writes, as Anthropic counts them).
pub(super) fn usage_to_anthropic(u: &Usage) -> Map<String, Value> {
    let mut m = Map::new();
    ins(&mut m, "input_tokens", json!(anthropic_input_tokens(u)));
    ins(&mut m, "cache_creation_input_tokens", json!(u.cache_creation_tokens));
    ins(&mut m, "cache_read_input_tokens", json!(u.cached_tokens));
    ins(&mut m, "output_tokens", json!(u.completion_tokens));
    m
}

/// Anthropic's `input_tokens`: the prompt tokens neither read from nor written to the cache.
pub(super) fn anthropic_input_tokens(u: &Usage) -> u64 {
    u.prompt_tokens.saturating_sub(u.cached_tokens).saturating_sub(u.cache_creation_tokens)
}

/// The Anthropic message id for a pivot id (`msg_` and the bare id).
pub(super) fn message_id(pivot_id: Option<&str>) -> String {
    let bare = pivot::bare_id(pivot_id);
    if bare.starts_with("msg_") {
        bare.to_string()
    } else if bare.is_empty() {
        "msg_tollgate".to_string()
    } else {
        format!("msg_{bare}")
    }
}

/// An OpenAI `chat.completion` -> the Anthropic message the client expects (first choice).
pub fn response_from_pivot(v: &Value, client_model: &str) -> Value {
    let choice = v.get("choices").and_then(|c| c.get(0));
    let msg = choice.and_then(|c| c.get("message"));
    let mut content: Vec<Value> = Vec::new();
    let text = pivot::content_text(msg.and_then(|m| m.get("content")));
    if !text.is_empty() {
        content.push(json!({"type": "text", "text": text}));
    }
    if let Some(r) = msg.and_then(|m| m.get("refusal")).and_then(Value::as_str).filter(|r| !r.is_empty()) {
        content.push(json!({"type": "text", "text": r}));
    }
    let calls = msg.and_then(|m| m.get("tool_calls")).and_then(Value::as_array);
    for (k, tc) in calls.map(|c| c.as_slice()).unwrap_or(&[]).iter().enumerate() {
        let f = tc.get("function");
        let input = match f.and_then(|f| f.get("arguments")) {
            Some(Value::String(s)) => pivot::parse_arguments(s),
            Some(o @ Value::Object(_)) => o.clone(),
            _ => json!({}),
        };
        let id = tc.get("id").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| format!("toolu_{k}"));
        content.push(json!({
            "type": "tool_use",
            "id": id,
            "name": f.and_then(|f| f.get("name")).and_then(Value::as_str).unwrap_or(""),
            "input": input,
        }));
    }
    let mut finish = choice
        .and_then(|c| c.get("finish_reason"))
        .and_then(Value::as_str)
        .map(Finish::from_openai)
        .unwrap_or(Finish::Stop);
    if finish == Finish::Stop && calls.is_some_and(|c| !c.is_empty()) {
        finish = Finish::ToolCalls;
    }
    let mut usage = usage_to_anthropic(&pivot::usage_of(v).unwrap_or_default());
    if let Some(c) = pivot::credits_of(v) {
        ins(&mut usage, "credits_consumed", c);
    }
    let (stop_reason, stop_sequence) = match stop_sequence_of(choice) {
        Some(seq) if finish == Finish::Stop => ("stop_sequence", json!(seq)),
        _ => (stop_reason_of(finish), Value::Null),
    };
    json!({
        "id": message_id(v.get("id").and_then(Value::as_str)),
        "type": "message",
        "role": "assistant",
        "model": client_model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": usage,
    })
}
