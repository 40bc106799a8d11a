//! Google Gemini `generateContent` / `streamGenerateContent?alt=sse`: translation to and from
//! the pivot shape (OpenAI Chat Completions) for requests, responses and streams.
//!
//! The model and the stream flag live in the URL, not the body. Request fields are read in
//! camelCase (what the SDKs send) or snake_case (which the REST API also accepts).
//! Gemini function calls carry no id (or an optional one): ids `call_<n>` are minted by position.
//! A part's `thoughtSignature` travels on the pivot tool call as
//! `extra_content.google.thought_signature` (the convention of Google's OpenAI-compatible API).

use super::pivot::{
    self, content_texts, opt_array, opt_number, opt_object, opt_positive, opt_str, opt_strings, opt_uint,
    req_array, req_object, req_str, text_part, texts_to_content, Finish, PivotRequest,
};
use super::openai;
use crate::errors::GatewayError;
use crate::sse::Event;
use crate::usage::Usage;
use serde_json::{json, Map, Value};

/// `{base}/models/{model}:generateContent`, or `:streamGenerateContent?alt=sse` for streams.
pub fn upstream_path(base_path: &str, model: &str, stream: bool) -> String {
    let base = base_path.trim_end_matches('/');
    if stream {
        format!("{base}/models/{model}:streamGenerateContent?alt=sse")
    } else {
        format!("{base}/models/{model}:generateContent")
    }
}

/// Gemini `finishReason` -> pivot finish reason (STOP with function calls is decided by the caller).
pub fn finish_from_gemini(s: &str) -> Finish {
    match s {
        "MAX_TOKENS" => Finish::Length,
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT" | "IMAGE_RECITATION" => Finish::ContentFilter,
        // STOP, OTHER, LANGUAGE, MALFORMED_FUNCTION_CALL, FINISH_REASON_UNSPECIFIED, ...
        _ => Finish::Stop,
    }
}

/// Pivot finish reason -> Gemini `finishReason` (tool calls end with STOP).
pub fn finish_to_gemini(f: Finish) -> &'static str {
    match f {
        Finish::Stop | Finish::ToolCalls => "STOP",
        Finish::Length => "MAX_TOKENS",
        Finish::ContentFilter => "SAFETY",
    }
}

fn bad(param: &str, msg: impl Into<String>) -> GatewayError {
    GatewayError::bad(param, msg)
}

fn ins(m: &mut Map<String, Value>, k: &str, v: Value) {
    m.insert(k.to_string(), v);
}

fn snake(camel: &str) -> String {
    let mut s = String::with_capacity(camel.len().saturating_add(4));
    for c in camel.chars() {
        if c.is_ascii_uppercase() {
            s.push('_');
            s.push(c.to_ascii_lowercase());
        } else {
            s.push(c);
        }
    }
    s
}

/// A field by its camelCase name, or its snake_case twin.
fn field<'a>(o: &'a Map<String, Value>, camel: &str) -> Option<&'a Value> {
    o.get(camel).or_else(|| o.get(&snake(camel)))
}

fn vfield<'a>(v: &'a Value, camel: &str) -> Option<&'a Value> {
    v.as_object().and_then(|o| field(o, camel))
}

// ================================================================================================
// Requests: Gemini client -> pivot
// ================================================================================================

/// Validates a Gemini `generateContent` body (model and stream from the URL) and translates it
/// to an OpenAI chat body.
pub fn request_to_pivot(body: &Map<String, Value>, model: &str, stream: bool) -> Result<PivotRequest, GatewayError> {
    if model.is_empty() {
        return Err(GatewayError::missing("model"));
    }
    let contents = req_array(field(body, "contents"), "contents")?;
    if contents.is_empty() {
        return Err(bad("contents", "'contents' must contain at least one content"));
    }
    let mut messages: Vec<Value> = Vec::new();
    if let Some(sys) = system_to_pivot(field(body, "systemInstruction"))? {
        messages.push(json!({"role": "system", "content": sys}));
    }
    let mut calls = Calls::default();
    for (i, c) in contents.iter().enumerate() {
        content_to_pivot(i, c, &mut calls, &mut messages)?;
    }

    let mut out = Map::new();
    ins(&mut out, "model", json!(model));
    ins(&mut out, "messages", Value::Array(messages));
    let mut max_tokens = None;
    if let Some(g) = opt_object(field(body, "generationConfig"), "generationConfig")? {
        max_tokens = generation_to_pivot(g, &mut out)?;
    }
    let has_tools = tools_to_pivot(field(body, "tools"), &mut out)?;
    if let Some(tc) = opt_object(field(body, "toolConfig"), "toolConfig")? {
        if let Some(fc) = opt_object(field(tc, "functionCallingConfig"), "toolConfig.functionCallingConfig")? {
            let mode = opt_str(fc.get("mode"), "toolConfig.functionCallingConfig.mode")?.map(str::to_ascii_uppercase);
            let allowed = opt_strings(
                field(fc, "allowedFunctionNames"),
                "toolConfig.functionCallingConfig.allowedFunctionNames",
                false,
            )?
            .unwrap_or_default();
            let one = if allowed.len() == 1 { allowed.first() } else { None };
            let choice = match (mode.as_deref(), one) {
                (None | Some("ANY"), Some(name)) => Some(json!({"type": "function", "function": {"name": name}})),
                (Some("ANY"), None) => Some(json!("required")),
                (Some("NONE"), _) => Some(json!("none")),
                (Some("AUTO" | "VALIDATED" | "MODE_UNSPECIFIED"), _) => Some(json!("auto")),
                (None, None) => None,
                (Some(other), _) => {
                    return Err(bad(
                        "toolConfig.functionCallingConfig.mode",
                        format!("unknown function calling mode '{other}'"),
                    ))
                }
            };
            if let (Some(c), true) = (choice, has_tools) {
                ins(&mut out, "tool_choice", c);
            }
        }
    }
    if stream {
        ins(&mut out, "stream", Value::Bool(true));
        ins(&mut out, "stream_options", json!({"include_usage": true}));
    }
    Ok(PivotRequest { body: out, model: model.to_string(), stream, max_tokens })
}

fn system_to_pivot(v: Option<&Value>) -> Result<Option<Value>, GatewayError> {
    let parts = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => return Ok(if s.is_empty() { None } else { Some(json!(s)) }),
        Some(Value::Object(o)) => req_array(o.get("parts"), "systemInstruction.parts")?,
        Some(_) => return Err(bad("systemInstruction", "'systemInstruction' must be a Content object")),
    };
    let mut texts = Vec::new();
    for (j, p) in parts.iter().enumerate() {
        let pp = format!("systemInstruction.parts[{j}]");
        let o = p.as_object().ok_or_else(|| bad(&pp, format!("'{pp}' must be an object")))?;
        texts.push(req_str(o.get("text"), &format!("{pp}.text"))?.to_string());
    }
    Ok(match texts_to_content(texts) {
        Value::Null => None,
        c => Some(c),
    })
}

/// Function calls seen so far in the request: ids minted by position, and the calls not yet
/// answered (a `functionResponse` without id answers the earliest unanswered call of its name).
#[derive(Default)]
struct Calls {
    minted: u64,
    pending: Vec<(String, String)>,
}

fn content_to_pivot(i: usize, c: &Value, calls: &mut Calls, out: &mut Vec<Value>) -> Result<(), GatewayError> {
    let p = format!("contents[{i}]");
    let obj = c.as_object().ok_or_else(|| bad(&p, format!("'{p}' must be an object")))?;
    let role = opt_str(obj.get("role"), &format!("{p}.role"))?.unwrap_or("user");
    let parts = req_array(obj.get("parts"), &format!("{p}.parts"))?;
    match role {
        "user" | "function" => user_to_pivot(&p, parts, calls, out),
        "model" => model_to_pivot(&p, parts, calls, out),
        other => Err(bad(&format!("{p}.role"), format!("role '{other}' must be 'user' or 'model'"))),
    }
}

fn part_obj<'a>(p: &'a Value, pp: &str) -> Result<&'a Map<String, Value>, GatewayError> {
    p.as_object().ok_or_else(|| bad(pp, format!("'{pp}' must be an object")))
}

fn media_to_part(o: &Map<String, Value>, pp: &str) -> Result<Option<Value>, GatewayError> {
    if let Some(d) = opt_object(field(o, "inlineData"), &format!("{pp}.inlineData"))? {
        let mime = req_str(field(d, "mimeType"), &format!("{pp}.inlineData.mimeType"))?;
        let data = req_str(d.get("data"), &format!("{pp}.inlineData.data"))?;
        let part = if mime.starts_with("image/") {
            json!({"type": "image_url", "image_url": {"url": pivot::data_url(mime, data)}})
        } else if let Some(fmt) = match mime {
            "audio/wav" | "audio/x-wav" => Some("wav"),
            "audio/mp3" | "audio/mpeg" => Some("mp3"),
            _ => None,
        } {
            json!({"type": "input_audio", "input_audio": {"data": data, "format": fmt}})
        } else {
            json!({"type": "file", "file": {"filename": "file", "file_data": pivot::data_url(mime, data)}})
        };
        return Ok(Some(part));
    }
    if let Some(f) = opt_object(field(o, "fileData"), &format!("{pp}.fileData"))? {
        let uri = req_str(field(f, "fileUri"), &format!("{pp}.fileData.fileUri"))?;
        let mime = opt_str(field(f, "mimeType"), &format!("{pp}.fileData.mimeType"))?;
        if mime.is_some_and(|m| !m.starts_with("image/")) {
            return Err(bad(&format!("{pp}.fileData.mimeType"), "only image files can be passed by URI"));
        }
        return Ok(Some(json!({"type": "image_url", "image_url": {"url": uri}})));
    }
    Ok(None)
}

fn user_to_pivot(p: &str, parts: &[Value], calls: &mut Calls, out: &mut Vec<Value>) -> Result<(), GatewayError> {
    let mut user_parts = Vec::new();
    let mut tool_msgs = Vec::new();
    for (j, part) in parts.iter().enumerate() {
        let pp = format!("{p}.parts[{j}]");
        let o = part_obj(part, &pp)?;
        if let Some(t) = o.get("text") {
            let t = opt_str(Some(t), &format!("{pp}.text"))?.unwrap_or("");
            if o.get("thought").and_then(Value::as_bool) != Some(true) {
                user_parts.push(text_part(t));
            }
        } else if let Some(fr) = opt_object(field(o, "functionResponse"), &format!("{pp}.functionResponse"))? {
            let np = format!("{pp}.functionResponse.name");
            let name = req_str(fr.get("name"), &np)?;
            let id = match opt_str(fr.get("id"), &format!("{pp}.functionResponse.id"))? {
                Some(id) => {
                    calls.pending.retain(|(_, pid)| pid != id);
                    id.to_string()
                }
                None => {
                    let pos = calls.pending.iter().position(|(n, _)| n == name).ok_or_else(|| {
                        bad(&np, format!("no earlier functionCall named '{name}' is left for this functionResponse"))
                    })?;
                    calls.pending.remove(pos).1
                }
            };
            let response = match opt_object(fr.get("response"), &format!("{pp}.functionResponse.response"))? {
                Some(r) => Value::Object(r.clone()),
                None => json!({}),
            };
            let content = serde_json::to_string(&response).unwrap_or_else(|_| "{}".to_string());
            tool_msgs.push(json!({"role": "tool", "tool_call_id": id, "content": content}));
        } else if let Some(media) = media_to_part(o, &pp)? {
            user_parts.push(media);
        } else if field(o, "functionCall").is_some() {
            return Err(bad(&pp, "functionCall parts belong in 'model' contents"));
        } else {
            return Err(bad(&pp, format!("'{pp}' has no supported data (text, inlineData, fileData, functionResponse)")));
        }
    }
    let had_tools = !tool_msgs.is_empty();
    out.extend(tool_msgs);
    if !user_parts.is_empty() {
        out.push(json!({"role": "user", "content": user_parts}));
    } else if !had_tools {
        out.push(json!({"role": "user", "content": ""}));
    }
    Ok(())
}

fn model_to_pivot(p: &str, parts: &[Value], calls: &mut Calls, out: &mut Vec<Value>) -> Result<(), GatewayError> {
    let mut texts = Vec::new();
    let mut tool_calls = Vec::new();
    for (j, part) in parts.iter().enumerate() {
        let pp = format!("{p}.parts[{j}]");
        let o = part_obj(part, &pp)?;
        if let Some(t) = o.get("text") {
            let t = opt_str(Some(t), &format!("{pp}.text"))?.unwrap_or("");
            if o.get("thought").and_then(Value::as_bool) != Some(true) {
                texts.push(t.to_string());
            }
        } else if let Some(fc) = opt_object(field(o, "functionCall"), &format!("{pp}.functionCall"))? {
            let name = req_str(fc.get("name"), &format!("{pp}.functionCall.name"))?;
            let args = match opt_object(fc.get("args"), &format!("{pp}.functionCall.args"))? {
                Some(a) => Value::Object(a.clone()),
                None => json!({}),
            };
            let minted = format!("call_{}", calls.minted);
            calls.minted = calls.minted.saturating_add(1);
            let id = opt_str(fc.get("id"), &format!("{pp}.functionCall.id"))?.map(str::to_string).unwrap_or(minted);
            calls.pending.push((name.to_string(), id.clone()));
            let mut call = Map::new();
            ins(&mut call, "id", json!(id));
            ins(&mut call, "type", json!("function"));
            let arguments = serde_json::to_string(&args).unwrap_or_else(|_| "{}".to_string());
            ins(&mut call, "function", json!({"name": name, "arguments": arguments}));
            if let Some(sig) = opt_str(field(o, "thoughtSignature"), &format!("{pp}.thoughtSignature"))? {
                ins(&mut call, "extra_content", json!({"google": {"thought_signature": sig}}));
            }
            tool_calls.push(Value::Object(call));
        } else if o.get("thought").and_then(Value::as_bool) == Some(true) || field(o, "thoughtSignature").is_some() {
            // a bare thought or signature part: nothing for the pivot
        } else {
            return Err(bad(&pp, format!("'{pp}' has no supported data (text, functionCall)")));
        }
    }
    let mut msg = Map::new();
    ins(&mut msg, "role", json!("assistant"));
    let content = match texts_to_content(texts) {
        Value::Null if tool_calls.is_empty() => json!(""),
        c => c,
    };
    ins(&mut msg, "content", content);
    if !tool_calls.is_empty() {
        ins(&mut msg, "tool_calls", Value::Array(tool_calls));
    }
    out.push(Value::Object(msg));
    Ok(())
}

/// Gemini schemas name types in upper case (`OBJECT`); JSON Schema wants lower case.
fn lower_types(v: &mut Value) {
    match v {
        Value::Object(o) => {
            for (k, child) in o.iter_mut() {
                match child {
                    Value::String(s) if k == "type" => {
                        if s.chars().all(|c| c.is_ascii_uppercase()) {
                            *s = s.to_ascii_lowercase();
                        }
                    }
                    _ => lower_types(child),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(lower_types),
        _ => {}
    }
}

fn tools_to_pivot(v: Option<&Value>, out: &mut Map<String, Value>) -> Result<bool, GatewayError> {
    let Some(tools) = opt_array(v, "tools")? else {
        return Ok(false);
    };
    let mut list = Vec::new();
    for (i, t) in tools.iter().enumerate() {
        let tp = format!("tools[{i}]");
        let o = t.as_object().ok_or_else(|| bad(&tp, format!("'{tp}' must be an object")))?;
        let decls = opt_array(field(o, "functionDeclarations"), &format!("{tp}.functionDeclarations"))?;
        let Some(decls) = decls else {
            let kind = o.keys().next().map(String::as_str).unwrap_or("empty");
            return Err(bad(&tp, format!("tool '{kind}' is not supported by this gateway; only functionDeclarations")));
        };
        for (j, d) in decls.iter().enumerate() {
            let dp = format!("{tp}.functionDeclarations[{j}]");
            let d = d.as_object().ok_or_else(|| bad(&dp, format!("'{dp}' must be an object")))?;
            let mut f = Map::new();
            ins(&mut f, "name", json!(req_str(d.get("name"), &format!("{dp}.name"))?));
            if let Some(desc) = opt_str(d.get("description"), &format!("{dp}.description"))? {
                ins(&mut f, "description", json!(desc));
            }
            if let Some(s) = opt_object(d.get("parameters"), &format!("{dp}.parameters"))? {
                let mut s = Value::Object(s.clone());
                lower_types(&mut s);
                ins(&mut f, "parameters", s);
            } else if let Some(s) = opt_object(field(d, "parametersJsonSchema"), &format!("{dp}.parametersJsonSchema"))? {
                ins(&mut f, "parameters", Value::Object(s.clone()));
            }
            list.push(json!({"type": "function", "function": f}));
        }
    }
    if list.is_empty() {
        return Ok(false);
    }
    ins(out, "tools", Value::Array(list));
    Ok(true)
}

/// `generationConfig` -> sampling fields. Returns `maxOutputTokens`.
fn generation_to_pivot(g: &Map<String, Value>, out: &mut Map<String, Value>) -> Result<Option<u64>, GatewayError> {
    let gp = |f: &str| format!("generationConfig.{f}");
    for (from, to) in [
        ("temperature", "temperature"),
        ("topP", "top_p"),
        ("presencePenalty", "presence_penalty"),
        ("frequencyPenalty", "frequency_penalty"),
    ] {
        if let Some(n) = opt_number(field(g, from), &gp(from))? {
            ins(out, to, n.clone());
        }
    }
    if let Some(k) = opt_uint(field(g, "topK"), &gp("topK"))? {
        ins(out, "top_k", json!(k));
    }
    if let Some(s) = opt_number(g.get("seed"), &gp("seed"))? {
        ins(out, "seed", s.clone());
    }
    let max = opt_positive(field(g, "maxOutputTokens"), &gp("maxOutputTokens"))?;
    if let Some(m) = max {
        ins(out, "max_tokens", json!(m));
    }
    if let Some(stop) = opt_strings(field(g, "stopSequences"), &gp("stopSequences"), false)? {
        if !stop.is_empty() {
            ins(out, "stop", json!(stop));
        }
    }
    if let Some(n) = opt_positive(field(g, "candidateCount"), &gp("candidateCount"))? {
        if n > openai::MAX_CHOICES {
            let max = openai::MAX_CHOICES;
            return Err(bad(&gp("candidateCount"), format!("'candidateCount' must be between 1 and {max}; got {n}")));
        }
        ins(out, "n", json!(n));
    }
    if opt_str(field(g, "responseMimeType"), &gp("responseMimeType"))? == Some("application/json") {
        let schema = match opt_object(field(g, "responseJsonSchema"), &gp("responseJsonSchema"))? {
            Some(s) => Some(Value::Object(s.clone())),
            None => opt_object(field(g, "responseSchema"), &gp("responseSchema"))?.map(|s| {
                let mut s = Value::Object(s.clone());
                lower_types(&mut s);
                s
            }),
        };
        let rf = match schema {
            Some(s) => json!({"type": "json_schema", "json_schema": {"name": "response", "schema": s}}),
            None => json!({"type": "json_object"}),
        };
        ins(out, "response_format", rf);
    }
    Ok(max)
}

// ================================================================================================
// Requests: pivot -> Gemini upstream
// ================================================================================================

/// JSON Schema keywords Gemini's `parameters` (an OpenAPI subset) refuses.
fn sanitize_schema(v: &mut Value) {
    match v {
        Value::Object(o) => {
            o.remove("$schema");
            o.remove("additionalProperties");
            o.remove("strict");
            for (k, child) in o.iter_mut() {
                if k == "properties" {
                    if let Value::Object(props) = child {
                        props.values_mut().for_each(sanitize_schema);
                    }
                } else {
                    sanitize_schema(child);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(sanitize_schema),
        _ => {}
    }
}

fn guess_image_mime(url: &str) -> &'static str {
    let path = url.split(['?', '#']).next().unwrap_or(url).to_ascii_lowercase();
    if path.ends_with(".png") {
        "image/png"
    } else if path.ends_with(".gif") {
        "image/gif"
    } else if path.ends_with(".webp") {
        "image/webp"
    } else {
        "image/jpeg"
    }
}

fn user_parts_from_pivot(content: Option<&Value>, cp: &str) -> Result<Vec<Value>, GatewayError> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![json!({"text": s})]),
        Some(Value::Array(parts)) => {
            let mut out = Vec::with_capacity(parts.len());
            for (j, part) in parts.iter().enumerate() {
                let pp = format!("{cp}[{j}]");
                match part.get("type").and_then(Value::as_str).unwrap_or("text") {
                    "text" => out.push(json!({"text": req_str(part.get("text"), &format!("{pp}.text"))?})),
                    "image_url" => {
                        let url = match part.get("image_url") {
                            Some(Value::String(s)) => s.as_str(),
                            iu => req_str(iu.and_then(|i| i.get("url")), &format!("{pp}.image_url.url"))?,
                        };
                        out.push(match pivot::split_data_url(url) {
                            Some((mime, data)) => json!({"inlineData": {"mimeType": mime, "data": data}}),
                            None => json!({"fileData": {"mimeType": guess_image_mime(url), "fileUri": url}}),
                        });
                    }
                    "input_audio" => {
                        let a = req_object(part.get("input_audio"), &format!("{pp}.input_audio"))?;
                        let data = req_str(a.get("data"), &format!("{pp}.input_audio.data"))?;
                        let fmt = opt_str(a.get("format"), &format!("{pp}.input_audio.format"))?.unwrap_or("wav");
                        out.push(json!({"inlineData": {"mimeType": format!("audio/{fmt}"), "data": data}}));
                    }
                    "file" => {
                        let fd = req_str(part.get("file").and_then(|f| f.get("file_data")), &format!("{pp}.file.file_data"))?;
                        let (mime, data) = pivot::split_data_url(fd)
                            .ok_or_else(|| bad(&format!("{pp}.file.file_data"), "only base64 data URLs are supported"))?;
                        out.push(json!({"inlineData": {"mimeType": mime, "data": data}}));
                    }
                    other => {
                        return Err(bad(&format!("{pp}.type"), format!("content part type '{other}' is not supported")))
                    }
                }
            }
            Ok(out)
        }
        Some(_) => Err(bad(cp, format!("'{cp}' must be a string or an array"))),
    }
}

/// An OpenAI chat body -> a Gemini `generateContent` body. The model (`upstream_model`) and the
/// stream flag go in the URL (`upstream_path`), not the body. System and developer messages
/// become `systemInstruction`; tool results become `functionResponse` parts named after the call
/// they answer; consecutive tool results (and the user message after them) share one content.
pub fn request_from_pivot(pivot: &Map<String, Value>, upstream_model: &str) -> Result<Value, GatewayError> {
    let _ = upstream_model; // in the URL
    let msgs = req_array(pivot.get("messages"), "messages")?;
    let mut system: Vec<String> = Vec::new();
    let mut contents: Vec<Value> = Vec::new();
    // (tool call id, function name) of the calls seen so far
    let mut names: Vec<(String, String)> = Vec::new();
    let mut joinable = false;
    for (i, m) in msgs.iter().enumerate() {
        let p = format!("messages[{i}]");
        let obj = m.as_object().ok_or_else(|| bad(&p, format!("'{p}' must be an object")))?;
        let role = req_str(obj.get("role"), &format!("{p}.role"))?;
        let cp = format!("{p}.content");
        match role {
            "system" | "developer" => system.extend(content_texts(obj.get("content"))),
            "user" => {
                let parts = user_parts_from_pivot(obj.get("content"), &cp)?;
                if joinable {
                    append_parts(&mut contents, parts);
                } else {
                    contents.push(json!({"role": "user", "parts": parts}));
                }
                joinable = false;
            }
            "assistant" => {
                let mut parts: Vec<Value> = content_texts(obj.get("content"))
                    .into_iter()
                    .filter(|t| !t.is_empty())
                    .map(|t| json!({"text": t}))
                    .collect();
                let calls = opt_array(obj.get("tool_calls"), &format!("{p}.tool_calls"))?;
                for (k, tc) in calls.map(|c| c.as_slice()).unwrap_or(&[]).iter().enumerate() {
                    let tp = format!("{p}.tool_calls[{k}]");
                    let f = req_object(tc.get("function"), &format!("{tp}.function"))?;
                    let name = req_str(f.get("name"), &format!("{tp}.function.name"))?;
                    if let Some(id) = opt_str(tc.get("id"), &format!("{tp}.id"))? {
                        names.push((id.to_string(), name.to_string()));
                    }
                    let args = match f.get("arguments") {
                        Some(Value::String(s)) => pivot::parse_arguments(s),
                        Some(o @ Value::Object(_)) => o.clone(),
                        _ => json!({}),
                    };
                    let mut part = Map::new();
                    ins(&mut part, "functionCall", json!({"name": name, "args": args}));
                    if let Some(sig) = tc.pointer("/extra_content/google/thought_signature").and_then(Value::as_str) {
                        ins(&mut part, "thoughtSignature", json!(sig));
                    }
                    parts.push(Value::Object(part));
                }
                if !parts.is_empty() {
                    contents.push(json!({"role": "model", "parts": parts}));
                }
                joinable = false;
            }
            "tool" => {
                let ip = format!("{p}.tool_call_id");
                let id = req_str(obj.get("tool_call_id"), &ip)?;
                let name = match names.iter().rev().find(|(cid, _)| cid == id) {
                    Some((_, n)) => n.clone(),
                    None => match obj.get("name").and_then(Value::as_str) {
                        Some(n) => n.to_string(),
                        None => return Err(bad(&ip, format!("no earlier tool call has the id '{id}'"))),
                    },
                };
                let text = pivot::content_text(obj.get("content"));
                let response = match serde_json::from_str::<Value>(&text) {
                    Ok(v @ Value::Object(_)) => v,
                    _ => json!({"content": text}),
                };
                let part = json!({"functionResponse": {"name": name, "response": response}});
                if joinable {
                    append_parts(&mut contents, vec![part]);
                } else {
                    contents.push(json!({"role": "user", "parts": [part]}));
                }
                joinable = true;
            }
            other => return Err(bad(&format!("{p}.role"), format!("role '{other}' is not supported"))),
        }
    }

    // OpenAI accepts a conversation of system messages only; Gemini refuses empty `contents`.
    if contents.is_empty() {
        return Err(bad("messages", "this model needs at least one user or assistant message"));
    }
    let mut out = Map::new();
    if !system.is_empty() {
        let parts: Vec<Value> = system.iter().map(|t| json!({"text": t})).collect();
        ins(&mut out, "systemInstruction", json!({"parts": parts}));
    }
    ins(&mut out, "contents", Value::Array(contents));

    let mut g = Map::new();
    for (from, to) in [
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
        ("seed", "seed"),
    ] {
        if let Some(n) = opt_number(pivot.get(from), from)? {
            ins(&mut g, to, n.clone());
        }
    }
    if let Some(k) = opt_uint(pivot.get("top_k"), "top_k")? {
        ins(&mut g, "topK", json!(k));
    }
    let max = match opt_positive(pivot.get("max_completion_tokens"), "max_completion_tokens")? {
        Some(m) => Some(m),
        None => opt_positive(pivot.get("max_tokens"), "max_tokens")?,
    };
    if let Some(m) = max {
        ins(&mut g, "maxOutputTokens", json!(m));
    }
    if let Some(stop) = opt_strings(pivot.get("stop"), "stop", true)? {
        if !stop.is_empty() {
            ins(&mut g, "stopSequences", json!(stop));
        }
    }
    if let Some(n) = opt_positive(pivot.get("n"), "n")? {
        ins(&mut g, "candidateCount", json!(n));
    }
    if let Some(rf) = opt_object(pivot.get("response_format"), "response_format")? {
        match rf.get("type").and_then(Value::as_str) {
            Some("json_object") => ins(&mut g, "responseMimeType", json!("application/json")),
            Some("json_schema") => {
                ins(&mut g, "responseMimeType", json!("application/json"));
                if let Some(s) = rf.get("json_schema").and_then(|j| j.get("schema")) {
                    ins(&mut g, "responseJsonSchema", s.clone());
                }
            }
            _ => {}
        }
    }
    if !g.is_empty() {
        ins(&mut out, "generationConfig", Value::Object(g));
    }

    let mut has_tools = false;
    if let Some(tools) = opt_array(pivot.get("tools"), "tools")? {
        let mut decls = Vec::with_capacity(tools.len());
        for (i, t) in tools.iter().enumerate() {
            let tp = format!("tools[{i}]");
            let f = req_object(t.get("function"), &format!("{tp}.function"))?;
            let mut d = Map::new();
            ins(&mut d, "name", json!(req_str(f.get("name"), &format!("{tp}.function.name"))?));
            if let Some(desc) = opt_str(f.get("description"), &format!("{tp}.function.description"))? {
                ins(&mut d, "description", json!(desc));
            }
            if let Some(s) = opt_object(f.get("parameters"), &format!("{tp}.function.parameters"))? {
                let mut s = Value::Object(s.clone());
                sanitize_schema(&mut s);
                ins(&mut d, "parameters", s);
            }
            decls.push(Value::Object(d));
        }
        has_tools = !decls.is_empty();
        if has_tools {
            ins(&mut out, "tools", json!([{"functionDeclarations": decls}]));
        }
    }
    if has_tools {
        let cfg = match pivot.get("tool_choice") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => match s.as_str() {
                "auto" => Some(json!({"mode": "AUTO"})),
                "required" => Some(json!({"mode": "ANY"})),
                "none" => Some(json!({"mode": "NONE"})),
                other => return Err(bad("tool_choice", format!("unknown tool_choice '{other}'"))),
            },
            Some(Value::Object(o)) => {
                let f = req_object(o.get("function"), "tool_choice.function")?;
                let name = req_str(f.get("name"), "tool_choice.function.name")?;
                Some(json!({"mode": "ANY", "allowedFunctionNames": [name]}))
            }
            Some(_) => return Err(bad("tool_choice", "'tool_choice' must be a string or an object")),
        };
        if let Some(c) = cfg {
            ins(&mut out, "toolConfig", json!({"functionCallingConfig": c}));
        }
    }
    Ok(Value::Object(out))
}

fn append_parts(contents: &mut [Value], parts: Vec<Value>) {
    if let Some(Value::Array(a)) = contents.last_mut().and_then(|c| c.get_mut("parts")) {
        a.extend(parts);
    }
}

// ================================================================================================
// Non-streamed responses
// ================================================================================================

/// Gemini `usageMetadata` -> Usage: prompt includes tool-use prompt tokens; completion is
/// candidates + thoughts (reasoning = thoughts); cached = cachedContentTokenCount.
pub fn usage_from_gemini(u: &Value) -> Option<Usage> {
    if !u.is_object() {
        return None;
    }
    let n = |k: &str| vfield(u, k).and_then(Value::as_u64).unwrap_or(0);
    let thoughts = n("thoughtsTokenCount");
    Some(Usage {
        prompt_tokens: n("promptTokenCount").saturating_add(n("toolUsePromptTokenCount")),
        completion_tokens: n("candidatesTokenCount").saturating_add(thoughts),
        cached_tokens: n("cachedContentTokenCount"),
        reasoning_tokens: thoughts,
    })
}

fn usage_to_gemini(u: &Usage) -> Value {
    let mut m = Map::new();
    ins(&mut m, "promptTokenCount", json!(u.prompt_tokens));
    ins(&mut m, "candidatesTokenCount", json!(u.completion_tokens.saturating_sub(u.reasoning_tokens)));
    ins(&mut m, "totalTokenCount", json!(u.total()));
    if u.cached_tokens > 0 {
        ins(&mut m, "cachedContentTokenCount", json!(u.cached_tokens));
    }
    if u.reasoning_tokens > 0 {
        ins(&mut m, "thoughtsTokenCount", json!(u.reasoning_tokens));
    }
    Value::Object(m)
}

/// A pivot tool call from a Gemini `functionCall` part.
fn tool_call(part: &Value, fc: &Value, id: String) -> Value {
    let args = fc.get("args").cloned().unwrap_or_else(|| json!({}));
    let mut call = Map::new();
    ins(&mut call, "id", json!(id));
    ins(&mut call, "type", json!("function"));
    ins(
        &mut call,
        "function",
        json!({
            "name": fc.get("name").and_then(Value::as_str).unwrap_or(""),
            "arguments": serde_json::to_string(&args).unwrap_or_else(|_| "{}".to_string()),
        }),
    );
    if let Some(sig) = vfield(part, "thoughtSignature").and_then(Value::as_str) {
        ins(&mut call, "extra_content", json!({"google": {"thought_signature": sig}}));
    }
    Value::Object(call)
}

/// What the parts of one candidate say: text, thoughts, tool calls.
struct Said {
    text: String,
    thoughts: String,
    calls: Vec<Value>,
}

/// Reads a candidate's parts; tool-call ids are minted from `first_call` on.
fn read_parts(cand: &Value, first_call: u64) -> Said {
    let mut said = Said { text: String::new(), thoughts: String::new(), calls: Vec::new() };
    let parts = cand.get("content").and_then(|c| c.get("parts")).and_then(Value::as_array);
    let mut n = first_call;
    for part in parts.map(|p| p.as_slice()).unwrap_or(&[]) {
        if let Some(t) = part.get("text").and_then(Value::as_str) {
            if part.get("thought").and_then(Value::as_bool) == Some(true) {
                said.thoughts.push_str(t);
            } else {
                said.text.push_str(t);
            }
        } else if let Some(fc) = vfield(part, "functionCall") {
            let id = fc.get("id").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| format!("call_{n}"));
            n = n.saturating_add(1);
            said.calls.push(tool_call(part, fc, id));
        }
    }
    said
}

fn candidate_finish(cand: &Value, has_calls: bool) -> Option<Finish> {
    let f = finish_from_gemini(vfield(cand, "finishReason").and_then(Value::as_str)?);
    Some(if f == Finish::Stop && has_calls { Finish::ToolCalls } else { f })
}

fn error_message(v: &Value) -> Option<String> {
    let e = v.get("error")?;
    Some(
        e.get("message")
            .and_then(Value::as_str)
            .or_else(|| e.get("status").and_then(Value::as_str))
            .unwrap_or("upstream error")
            .to_string(),
    )
}

/// A Gemini upstream's response -> an OpenAI `chat.completion` (one choice per candidate) and
/// the usage. `Err` carries the message of a Gemini error body or says why it is not a response.
pub fn response_to_pivot(v: &Value) -> Result<(Value, Option<Usage>), String> {
    if !v.is_object() {
        return Err("the Gemini response is not a JSON object".to_string());
    }
    if let Some(m) = error_message(v) {
        return Err(m);
    }
    let mut choices = Vec::new();
    let cands = v.get("candidates").and_then(Value::as_array);
    for (pos, cand) in cands.map(|c| c.as_slice()).unwrap_or(&[]).iter().enumerate() {
        let index = cand.get("index").and_then(Value::as_u64).unwrap_or(pos as u64);
        let said = read_parts(cand, 0);
        let finish = candidate_finish(cand, !said.calls.is_empty()).unwrap_or(Finish::Stop);
        let mut message = Map::new();
        ins(&mut message, "role", json!("assistant"));
        let content = if said.text.is_empty() && !said.calls.is_empty() { Value::Null } else { json!(said.text) };
        ins(&mut message, "content", content);
        ins(&mut message, "refusal", Value::Null);
        if !said.thoughts.is_empty() {
            ins(&mut message, "reasoning_content", json!(said.thoughts));
        }
        if !said.calls.is_empty() {
            ins(&mut message, "tool_calls", Value::Array(said.calls));
        }
        choices.push(json!({"index": index, "message": message, "logprobs": null, "finish_reason": finish.as_openai()}));
    }
    if choices.is_empty() {
        // No candidates: the prompt itself was blocked.
        if vfield(v, "promptFeedback").and_then(|p| vfield(p, "blockReason")).is_none() {
            return Err("the Gemini response has no candidates".to_string());
        }
        choices.push(json!({
            "index": 0,
            "message": {"role": "assistant", "content": "", "refusal": null},
            "logprobs": null,
            "finish_reason": "content_filter",
        }));
    }
    let usage = vfield(v, "usageMetadata").and_then(usage_from_gemini);
    let id = vfield(v, "responseId").and_then(Value::as_str).unwrap_or("");
    let model = vfield(v, "modelVersion").and_then(Value::as_str).unwrap_or("");
    Ok((pivot::completion(id, model, choices, usage.as_ref()), usage))
}

/// An OpenAI `chat.completion` -> the Gemini response the client expects (a candidate per choice).
pub fn response_from_pivot(v: &Value, client_model: &str) -> Value {
    let mut candidates = Vec::new();
    let choices = v.get("choices").and_then(Value::as_array);
    for (pos, choice) in choices.map(|c| c.as_slice()).unwrap_or(&[]).iter().enumerate() {
        let msg = choice.get("message");
        let mut parts = Vec::new();
        let text = pivot::content_text(msg.and_then(|m| m.get("content")));
        if !text.is_empty() {
            parts.push(json!({"text": text}));
        }
        let calls = msg.and_then(|m| m.get("tool_calls")).and_then(Value::as_array);
        for tc in calls.map(|c| c.as_slice()).unwrap_or(&[]) {
            parts.push(function_call_part(
                tc.pointer("/function/name").and_then(Value::as_str).unwrap_or(""),
                tc.pointer("/function/arguments"),
                tc.pointer("/extra_content/google/thought_signature").and_then(Value::as_str),
            ));
        }
        if parts.is_empty() {
            parts.push(json!({"text": ""}));
        }
        let finish = choice.get("finish_reason").and_then(Value::as_str).map(Finish::from_openai).unwrap_or(Finish::Stop);
        candidates.push(json!({
            "content": {"role": "model", "parts": parts},
            "finishReason": finish_to_gemini(finish),
            "index": choice.get("index").and_then(Value::as_u64).unwrap_or(pos as u64),
        }));
    }
    let mut out = Map::new();
    ins(&mut out, "candidates", Value::Array(candidates));
    if let Some(u) = pivot::usage_of(v) {
        ins(&mut out, "usageMetadata", usage_to_gemini(&u));
    }
    ins(&mut out, "modelVersion", json!(client_model));
    ins(&mut out, "responseId", json!(pivot::bare_id(v.get("id").and_then(Value::as_str))));
    Value::Object(out)
}

fn function_call_part(name: &str, args: Option<&Value>, sig: Option<&str>) -> Value {
    let args = match args {
        Some(Value::String(s)) => pivot::parse_arguments(s),
        Some(o @ Value::Object(_)) => o.clone(),
        _ => json!({}),
    };
    let mut part = Map::new();
    ins(&mut part, "functionCall", json!({"name": name, "args": args}));
    if let Some(s) = sig {
        ins(&mut part, "thoughtSignature", json!(s));
    }
    Value::Object(part)
}

// ================================================================================================
// Streams: Gemini upstream -> pivot chunks
// ================================================================================================

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
    id: String,
    model: String,
    model_override: Option<String>,
    role_sent: bool,
    cands: Vec<CandState>,
    /// Never used: what `cand` would hand out if the list lost an entry (it cannot).
    spare: CandState,
    usage: Option<Usage>,
    usage_sent: bool,
    error: Option<String>,
}

impl StreamToPivot {
    pub fn new() -> Self {
        Self::default()
    }

    /// Name this model in the chunks instead of the upstream's `modelVersion`.
    pub fn with_model(mut self, model: &str) -> Self {
        self.model_override = Some(model.to_string());
        self
    }

    /// The latest cumulative usage.
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// The message of an error object the upstream sent in the stream, if any.
    pub fn error(&self) -> Option<String> {
        self.error.clone()
    }

    fn model(&self) -> &str {
        self.model_override.as_deref().unwrap_or(&self.model)
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

    /// One upstream event -> zero or more pivot chunks.
    pub fn on_event(&mut self, ev: &Event, out: &mut Vec<Value>) {
        let Ok(v) = serde_json::from_str::<Value>(ev.data.trim()) else {
            return;
        };
        if !v.is_object() {
            return;
        }
        if let Some(m) = error_message(&v) {
            self.error = Some(m);
            return;
        }
        if self.id.is_empty() {
            if let Some(id) = vfield(&v, "responseId").and_then(Value::as_str) {
                self.id = id.to_string();
            }
        }
        if let Some(m) = vfield(&v, "modelVersion").and_then(Value::as_str) {
            self.model = m.to_string();
        }
        if let Some(u) = vfield(&v, "usageMetadata").and_then(usage_from_gemini) {
            self.usage = Some(u); // cumulative: replace, never add
        }
        if !self.role_sent {
            self.role_sent = true;
            out.push(pivot::chunk(&self.id, self.model(), json!({"role": "assistant", "content": ""}), None));
        }
        let cands = v.get("candidates").and_then(Value::as_array).cloned().unwrap_or_default();
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
                out.push(pivot::chunk_at(&self.id, self.model(), index, Value::Object(delta), None));
            }
            if let (Some(f), false) = (finish, already) {
                out.push(pivot::chunk_at(&self.id, self.model(), index, json!({}), Some(f.as_openai())));
            }
        }
        if cands.is_empty() && vfield(&v, "promptFeedback").and_then(|p| vfield(p, "blockReason")).is_some() {
            let state = self.cand(0);
            if !state.finished {
                state.finished = true;
                out.push(pivot::chunk(&self.id, self.model(), json!({}), Some("content_filter")));
            }
        }
    }

    /// End of the upstream stream (Gemini sends no end marker): the usage chunk, if known.
    pub fn finish(&mut self, out: &mut Vec<Value>) {
        if self.usage_sent {
            return;
        }
        if let Some(u) = self.usage {
            self.usage_sent = true;
            out.push(pivot::usage_chunk(&self.id, self.model(), &u));
        }
    }
}

// ================================================================================================
// Streams: pivot chunks -> Gemini client
// ================================================================================================

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
    tools: Vec<ToolBuf>,
    finish: Option<Finish>,
    usage: Option<Usage>,
    closed: bool,
}

impl StreamFromPivot {
    pub fn new(client_model: &str) -> Self {
        StreamFromPivot {
            client_model: client_model.to_string(),
            id: String::new(),
            tools: Vec::new(),
            finish: None,
            usage: None,
            closed: false,
        }
    }

    /// The usage seen in the pivot stream.
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// Whether the final object (or an error) has been written.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    fn write(&self, out: &mut Vec<u8>, candidate: Value, usage: Option<&Usage>) {
        let mut obj = Map::new();
        ins(&mut obj, "candidates", json!([candidate]));
        if let Some(u) = usage {
            ins(&mut obj, "usageMetadata", usage_to_gemini(u));
        }
        ins(&mut obj, "modelVersion", json!(self.client_model));
        ins(&mut obj, "responseId", json!(self.id));
        pivot::write_sse(out, None, &Value::Object(obj), "\r\n");
    }

    /// One pivot chunk -> Gemini SSE bytes.
    pub fn on_chunk(&mut self, chunk: &Value, out: &mut Vec<u8>) {
        if self.closed {
            return;
        }
        if self.id.is_empty() {
            self.id = pivot::bare_id(chunk.get("id").and_then(Value::as_str)).to_string();
        }
        if let Some(u) = pivot::usage_of(chunk) {
            self.usage = Some(u);
        }
        let choice = chunk
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|c| c.iter().find(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0) == 0));
        if let Some(choice) = choice {
            let delta = choice.get("delta");
            let mut text = String::new();
            for f in ["content", "refusal"] {
                if let Some(t) = delta.and_then(|d| d.get(f)).and_then(Value::as_str) {
                    text.push_str(t);
                }
            }
            if !text.is_empty() {
                let cand = json!({"content": {"role": "model", "parts": [{"text": text}]}, "index": 0});
                self.write(out, cand, None);
            }
            if let Some(calls) = delta.and_then(|d| d.get("tool_calls")).and_then(Value::as_array) {
                for tc in calls {
                    self.buffer_tool(tc);
                }
            }
            if let Some(fr) = choice.get("finish_reason").and_then(Value::as_str) {
                self.finish = Some(Finish::from_openai(fr));
            }
        }
        if self.finish.is_some() && self.usage.is_some() {
            self.end(out);
        }
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

    /// The pivot stream's `[DONE]`: writes the final object if still pending.
    pub fn on_done(&mut self, out: &mut Vec<u8>) {
        self.end(out);
    }

    /// End of stream: writes the final object if still pending (without `finishReason` when the
    /// stream never said why it ended).
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.end(out);
    }

    fn end(&mut self, out: &mut Vec<u8>) {
        if self.closed {
            return;
        }
        self.closed = true;
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
        if let Some(f) = self.finish {
            ins(&mut cand, "finishReason", json!(finish_to_gemini(f)));
        }
        ins(&mut cand, "index", json!(0));
        let usage = self.usage;
        self.write(out, Value::Object(cand), usage.as_ref());
    }

    /// An error after the stream began: a Gemini error object as the last event.
    pub fn error(&mut self, message: &str, out: &mut Vec<u8>) {
        if self.closed {
            return;
        }
        self.closed = true;
        let e = json!({"error": {"code": 500, "message": message, "status": "INTERNAL"}});
        pivot::write_sse(out, None, &e, "\r\n");
    }
}

#[cfg(test)]
#[path = "tests/gemini_tests.rs"]
mod tests;
