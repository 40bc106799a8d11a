//! A Gemini client: its `generateContent` request validated and translated into the pivot;
//! the pivot's response and stream written out as Gemini responses.

use serde_json::{json, Map, Value};

use super::{bad, field, finish_to_gemini, ins};
use crate::dialect::build::{checked, jobj, jstr, opt_array_at, opt_object_at, opt_str_at, req_str_at};
use crate::dialect::pivot::{self, text_part, texts_to_content, Finish, PivotRequest};
use crate::dialect::validate::{
    opt_array, opt_choices, opt_number, opt_object, opt_positive, opt_str, opt_strings, opt_uint, req_array,
};
use crate::errors::GatewayError;
use crate::usage::Usage;

/// Validates a Gemini `generateContent` body (model and stream from the URL) and translates it
/// to an OpenAI chat body.
#[inline(never)]
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
        let o = p.as_object().ok_or_else(|| {
            bad(&format!("systemInstruction.parts[{j}]"), format!("'systemInstruction.parts[{j}]' must be an object"))
        })?;
        texts.push(req_str_at(o.get("text"), format_args!("systemInstruction.parts[{j}].text"))?.to_string());
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
    let obj =
        c.as_object().ok_or_else(|| bad(&format!("contents[{i}]"), format!("'contents[{i}]' must be an object")))?;
    let role = opt_str_at(obj.get("role"), format_args!("contents[{i}].role"))?.unwrap_or("user");
    let parts = checked(obj.get("parts"), format_args!("contents[{i}].parts"), req_array)?;
    match role {
        "user" | "function" => user_to_pivot(i, parts, calls, out),
        "model" => model_to_pivot(i, parts, calls, out),
        other => Err(bad(&format!("contents[{i}].role"), format!("role '{other}' must be 'user' or 'model'"))),
    }
}

/// The part `contents[i].parts[j]` as an object.
fn part_obj(p: &Value, i: usize, j: usize) -> Result<&Map<String, Value>, GatewayError> {
    p.as_object().ok_or_else(|| {
        let pp = format!("contents[{i}].parts[{j}]");
        bad(&pp, format!("'{pp}' must be an object"))
    })
}

/// `{"type": "image_url", "image_url": {"url": url}}`.
fn image_url(url: Value) -> Value {
    jobj([("type", jstr("image_url")), ("image_url", jobj([("url", url)]))])
}

/// The media of the part `contents[i].parts[j]` (`o`), if it has any.
fn media_to_part(o: &Map<String, Value>, i: usize, j: usize) -> Result<Option<Value>, GatewayError> {
    if let Some(d) = opt_object_at(field(o, "inlineData"), format_args!("contents[{i}].parts[{j}].inlineData"))? {
        let mime = req_str_at(field(d, "mimeType"), format_args!("contents[{i}].parts[{j}].inlineData.mimeType"))?;
        let data = req_str_at(d.get("data"), format_args!("contents[{i}].parts[{j}].inlineData.data"))?;
        let part = if mime.starts_with("image/") {
            image_url(Value::String(pivot::data_url(mime, data)))
        } else if let Some(fmt) = match mime {
            "audio/wav" | "audio/x-wav" => Some("wav"),
            "audio/mp3" | "audio/mpeg" => Some("mp3"),
            _ => None,
        } {
            jobj([("type", jstr("input_audio")), ("input_audio", jobj([("data", jstr(data)), ("format", jstr(fmt))]))])
        } else {
            let file = jobj([("filename", jstr("file")), ("file_data", Value::String(pivot::data_url(mime, data)))]);
            jobj([("type", jstr("file")), ("file", file)])
        };
        return Ok(Some(part));
    }
    if let Some(f) = opt_object_at(field(o, "fileData"), format_args!("contents[{i}].parts[{j}].fileData"))? {
        let uri = req_str_at(field(f, "fileUri"), format_args!("contents[{i}].parts[{j}].fileData.fileUri"))?;
        let mime = opt_str_at(field(f, "mimeType"), format_args!("contents[{i}].parts[{j}].fileData.mimeType"))?;
        if mime.is_some_and(|m| !m.starts_with("image/")) {
            return Err(bad(
                &format!("contents[{i}].parts[{j}].fileData.mimeType"),
                "only image files can be passed by URI",
            ));
        }
        return Ok(Some(image_url(jstr(uri))));
    }
    Ok(None)
}

/// The user (or function) content `contents[i]` (its `parts`) appended to the pivot messages.
fn user_to_pivot(i: usize, parts: &[Value], calls: &mut Calls, out: &mut Vec<Value>) -> Result<(), GatewayError> {
    let mut user_parts = Vec::new();
    let mut tool_msgs = Vec::new();
    for (j, part) in parts.iter().enumerate() {
        let o = part_obj(part, i, j)?;
        if let Some(t) = o.get("text") {
            let t = opt_str_at(Some(t), format_args!("contents[{i}].parts[{j}].text"))?.unwrap_or("");
            if o.get("thought").and_then(Value::as_bool) != Some(true) {
                user_parts.push(text_part(t));
            }
        } else if let Some(fr) =
            opt_object_at(field(o, "functionResponse"), format_args!("contents[{i}].parts[{j}].functionResponse"))?
        {
            let name = req_str_at(fr.get("name"), format_args!("contents[{i}].parts[{j}].functionResponse.name"))?;
            let id = match opt_str_at(fr.get("id"), format_args!("contents[{i}].parts[{j}].functionResponse.id"))? {
                Some(id) => {
                    calls.pending.retain(|(_, pid)| pid != id);
                    id.to_string()
                }
                None => {
                    let pos = calls.pending.iter().position(|(n, _)| n == name).ok_or_else(|| {
                        bad(
                            &format!("contents[{i}].parts[{j}].functionResponse.name"),
                            format!("no earlier functionCall named '{name}' is left for this functionResponse"),
                        )
                    })?;
                    calls.pending.remove(pos).1
                }
            };
            let response = match opt_object_at(
                fr.get("response"),
                format_args!("contents[{i}].parts[{j}].functionResponse.response"),
            )? {
                Some(r) => Value::Object(r.clone()),
                None => Value::Object(Map::new()),
            };
            let content = serde_json::to_string(&response).unwrap_or_else(|_| "{}".to_string());
            tool_msgs.push(jobj([
                ("role", jstr("tool")),
                ("tool_call_id", Value::String(id)),
                ("content", Value::String(content)),
            ]));
        } else if let Some(media) = media_to_part(o, i, j)? {
            user_parts.push(media);
        } else if field(o, "functionCall").is_some() {
            return Err(bad(&format!("contents[{i}].parts[{j}]"), "functionCall parts belong in 'model' contents"));
        } else {
            let pp = format!("contents[{i}].parts[{j}]");
            return Err(bad(
                &pp,
                format!("'{pp}' has no supported data (text, inlineData, fileData, functionResponse)"),
            ));
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

/// The model content `contents[i]` (its `parts`) appended to the pivot messages.
fn model_to_pivot(i: usize, parts: &[Value], calls: &mut Calls, out: &mut Vec<Value>) -> Result<(), GatewayError> {
    let mut texts = Vec::new();
    let mut tool_calls = Vec::new();
    for (j, part) in parts.iter().enumerate() {
        let o = part_obj(part, i, j)?;
        if let Some(t) = o.get("text") {
            let t = opt_str_at(Some(t), format_args!("contents[{i}].parts[{j}].text"))?.unwrap_or("");
            if o.get("thought").and_then(Value::as_bool) != Some(true) {
                texts.push(t.to_string());
            }
        } else if let Some(fc) =
            opt_object_at(field(o, "functionCall"), format_args!("contents[{i}].parts[{j}].functionCall"))?
        {
            let name = req_str_at(fc.get("name"), format_args!("contents[{i}].parts[{j}].functionCall.name"))?;
            let args = match opt_object_at(fc.get("args"), format_args!("contents[{i}].parts[{j}].functionCall.args"))?
            {
                Some(a) => Value::Object(a.clone()),
                None => Value::Object(Map::new()),
            };
            let minted = format!("call_{}", calls.minted);
            calls.minted = calls.minted.saturating_add(1);
            let id = opt_str_at(fc.get("id"), format_args!("contents[{i}].parts[{j}].functionCall.id"))?
                .map(str::to_string)
                .unwrap_or(minted);
            calls.pending.push((name.to_string(), id.clone()));
            let mut call = Map::new();
            ins(&mut call, "id", Value::String(id));
            ins(&mut call, "type", jstr("function"));
            let arguments = serde_json::to_string(&args).unwrap_or_else(|_| "{}".to_string());
            ins(&mut call, "function", jobj([("name", jstr(name)), ("arguments", Value::String(arguments))]));
            if let Some(sig) =
                opt_str_at(field(o, "thoughtSignature"), format_args!("contents[{i}].parts[{j}].thoughtSignature"))?
            {
                ins(&mut call, "extra_content", jobj([("google", jobj([("thought_signature", jstr(sig))]))]));
            }
            tool_calls.push(Value::Object(call));
        } else if o.get("thought").and_then(Value::as_bool) == Some(true) || field(o, "thoughtSignature").is_some() {
            // a bare thought or signature part: nothing for the pivot
        } else {
            let pp = format!("contents[{i}].parts[{j}]");
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
pub(super) fn lower_types(v: &mut Value) {
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
        let o = t.as_object().ok_or_else(|| bad(&format!("tools[{i}]"), format!("'tools[{i}]' must be an object")))?;
        let decls = opt_array_at(field(o, "functionDeclarations"), format_args!("tools[{i}].functionDeclarations"))?;
        let Some(decls) = decls else {
            let kind = o.keys().next().map(String::as_str).unwrap_or("empty");
            return Err(bad(
                &format!("tools[{i}]"),
                format!("tool '{kind}' is not supported by this gateway; only functionDeclarations"),
            ));
        };
        for (j, d) in decls.iter().enumerate() {
            let d = d.as_object().ok_or_else(|| {
                let dp = format!("tools[{i}].functionDeclarations[{j}]");
                bad(&dp, format!("'{dp}' must be an object"))
            })?;
            let mut f = Map::new();
            let name = req_str_at(d.get("name"), format_args!("tools[{i}].functionDeclarations[{j}].name"))?;
            ins(&mut f, "name", jstr(name));
            if let Some(desc) =
                opt_str_at(d.get("description"), format_args!("tools[{i}].functionDeclarations[{j}].description"))?
            {
                ins(&mut f, "description", jstr(desc));
            }
            if let Some(s) =
                opt_object_at(d.get("parameters"), format_args!("tools[{i}].functionDeclarations[{j}].parameters"))?
            {
                let mut s = Value::Object(s.clone());
                lower_types(&mut s);
                ins(&mut f, "parameters", s);
            } else if let Some(s) = opt_object_at(
                field(d, "parametersJsonSchema"),
                format_args!("tools[{i}].functionDeclarations[{j}].parametersJsonSchema"),
            )? {
                ins(&mut f, "parameters", Value::Object(s.clone()));
            }
            list.push(jobj([("type", jstr("function")), ("function", Value::Object(f))]));
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
    for (from, to, param) in [
        ("temperature", "temperature", "generationConfig.temperature"),
        ("topP", "top_p", "generationConfig.topP"),
        ("presencePenalty", "presence_penalty", "generationConfig.presencePenalty"),
        ("frequencyPenalty", "frequency_penalty", "generationConfig.frequencyPenalty"),
    ] {
        if let Some(n) = opt_number(field(g, from), param)? {
            ins(out, to, n.clone());
        }
    }
    if let Some(k) = opt_uint(field(g, "topK"), "generationConfig.topK")? {
        ins(out, "top_k", json!(k));
    }
    if let Some(s) = opt_number(g.get("seed"), "generationConfig.seed")? {
        ins(out, "seed", s.clone());
    }
    let max = opt_positive(field(g, "maxOutputTokens"), "generationConfig.maxOutputTokens")?;
    if let Some(m) = max {
        ins(out, "max_tokens", json!(m));
    }
    if let Some(stop) = opt_strings(field(g, "stopSequences"), "generationConfig.stopSequences", false)? {
        if !stop.is_empty() {
            ins(out, "stop", json!(stop));
        }
    }
    if let Some(n) = opt_choices(field(g, "candidateCount"), "generationConfig.candidateCount")? {
        ins(out, "n", json!(n));
    }
    if opt_str(field(g, "responseMimeType"), "generationConfig.responseMimeType")? == Some("application/json") {
        let schema = match opt_object(field(g, "responseJsonSchema"), "generationConfig.responseJsonSchema")? {
            Some(s) => Some(Value::Object(s.clone())),
            None => opt_object(field(g, "responseSchema"), "generationConfig.responseSchema")?.map(|s| {
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

pub(super) fn usage_to_gemini(u: &Usage) -> Value {
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
        let finish =
            choice.get("finish_reason").and_then(Value::as_str).map(Finish::from_openai).unwrap_or(Finish::Stop);
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

pub(super) fn function_call_part(name: &str, args: Option<&Value>, sig: Option<&str>) -> Value {
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
