//! A Gemini upstream: the pivot request translated into a `generateContent` request; its
//! response read into the pivot (its event stream: `upstream_stream.rs`).

use serde_json::{json, Map, Value};

use super::{bad, finish_from_gemini, ins, vfield};
use crate::dialect::build::{jobj, jstr, opt_array_at, opt_object_at, opt_str_at, req_object_at, req_str_at};
use crate::dialect::pivot::{self, content_texts, Finish};
use crate::dialect::validate::{
    opt_array, opt_number, opt_object, opt_positive, opt_strings, opt_uint, req_array, req_object, req_str,
};
use crate::errors::GatewayError;
use crate::usage::Usage;

/// `{base}/models/{model}:generateContent`, or `:streamGenerateContent?alt=sse` for streams.
pub fn upstream_path(base_path: &str, model: &str, stream: bool) -> String {
    let base = base_path.trim_end_matches('/');
    if stream {
        format!("{base}/models/{model}:streamGenerateContent?alt=sse")
    } else {
        format!("{base}/models/{model}:generateContent")
    }
}

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
        Some(Value::String(s)) => Ok(vec![jobj([("text", jstr(s))])]),
        Some(Value::Array(parts)) => {
            let mut out = Vec::with_capacity(parts.len());
            for (j, part) in parts.iter().enumerate() {
                match part.get("type").and_then(Value::as_str).unwrap_or("text") {
                    "text" => {
                        out.push(jobj([("text", jstr(req_str_at(part.get("text"), format_args!("{cp}[{j}].text"))?))]))
                    }
                    "image_url" => {
                        let url = match part.get("image_url") {
                            Some(Value::String(s)) => s.as_str(),
                            iu => req_str_at(iu.and_then(|i| i.get("url")), format_args!("{cp}[{j}].image_url.url"))?,
                        };
                        out.push(match pivot::split_data_url(url) {
                            Some((mime, data)) => inline_data(jstr(mime), data),
                            None => jobj([(
                                "fileData",
                                jobj([("mimeType", jstr(guess_image_mime(url))), ("fileUri", jstr(url))]),
                            )]),
                        });
                    }
                    "input_audio" => {
                        let a = req_object_at(part.get("input_audio"), format_args!("{cp}[{j}].input_audio"))?;
                        let data = req_str_at(a.get("data"), format_args!("{cp}[{j}].input_audio.data"))?;
                        let fmt =
                            opt_str_at(a.get("format"), format_args!("{cp}[{j}].input_audio.format"))?.unwrap_or("wav");
                        out.push(inline_data(Value::String(format!("audio/{fmt}")), data));
                    }
                    "file" => {
                        let fd = req_str_at(
                            part.get("file").and_then(|f| f.get("file_data")),
                            format_args!("{cp}[{j}].file.file_data"),
                        )?;
                        let (mime, data) = pivot::split_data_url(fd).ok_or_else(|| {
                            bad(&format!("{cp}[{j}].file.file_data"), "only base64 data URLs are supported")
                        })?;
                        out.push(inline_data(jstr(mime), data));
                    }
                    other => {
                        return Err(bad(
                            &format!("{cp}[{j}].type"),
                            format!("content part type '{other}' is not supported"),
                        ))
                    }
                }
            }
            Ok(out)
        }
        Some(_) => Err(bad(cp, format!("'{cp}' must be a string or an array"))),
    }
}

/// `{"inlineData": {"mimeType": mime, "data": data}}`.
fn inline_data(mime: Value, data: &str) -> Value {
    jobj([("inlineData", jobj([("mimeType", mime), ("data", jstr(data))]))])
}

/// A content of `role` made of `parts`.
fn content(role: &str, parts: Vec<Value>) -> Value {
    jobj([("role", jstr(role)), ("parts", Value::Array(parts))])
}

/// An OpenAI chat body -> a Gemini `generateContent` body. The model (`upstream_model`) and the
/// stream flag go in the URL (`upstream_path`), not the body. System and developer messages
/// become `systemInstruction`; tool results become `functionResponse` parts named after the call
/// they answer; consecutive tool results (and the user message after them) share one content.
#[inline(never)]
pub fn request_from_pivot(pivot: &Map<String, Value>, upstream_model: &str) -> Result<Value, GatewayError> {
    let _ = upstream_model; // in the URL
    let msgs = req_array(pivot.get("messages"), "messages")?;
    let mut system: Vec<String> = Vec::new();
    let mut contents: Vec<Value> = Vec::new();
    // (tool call id, function name) of the calls seen so far
    let mut names: Vec<(String, String)> = Vec::new();
    let mut joinable = false;
    for (i, m) in msgs.iter().enumerate() {
        let obj = m
            .as_object()
            .ok_or_else(|| bad(&format!("messages[{i}]"), format!("'messages[{i}]' must be an object")))?;
        let role = req_str_at(obj.get("role"), format_args!("messages[{i}].role"))?;
        match role {
            "system" | "developer" => system.extend(content_texts(obj.get("content"))),
            "user" => {
                let parts = match obj.get("content") {
                    None | Some(Value::Null) => Vec::new(),
                    c => user_parts_from_pivot(c, &format!("messages[{i}].content"))?,
                };
                if joinable {
                    append_parts(&mut contents, parts);
                } else {
                    contents.push(content("user", parts));
                }
                joinable = false;
            }
            "assistant" => {
                let mut parts: Vec<Value> = content_texts(obj.get("content"))
                    .into_iter()
                    .filter(|t| !t.is_empty())
                    .map(|t| jobj([("text", Value::String(t))]))
                    .collect();
                let calls = opt_array_at(obj.get("tool_calls"), format_args!("messages[{i}].tool_calls"))?;
                for (k, tc) in calls.map(|c| c.as_slice()).unwrap_or(&[]).iter().enumerate() {
                    let f = req_object_at(tc.get("function"), format_args!("messages[{i}].tool_calls[{k}].function"))?;
                    let name = req_str_at(f.get("name"), format_args!("messages[{i}].tool_calls[{k}].function.name"))?;
                    if let Some(id) = opt_str_at(tc.get("id"), format_args!("messages[{i}].tool_calls[{k}].id"))? {
                        names.push((id.to_string(), name.to_string()));
                    }
                    let args = match f.get("arguments") {
                        Some(Value::String(s)) => pivot::parse_arguments(s),
                        Some(o @ Value::Object(_)) => o.clone(),
                        _ => Value::Object(Map::new()),
                    };
                    let call = jobj([("name", jstr(name)), ("args", args)]);
                    parts.push(match tc.pointer("/extra_content/google/thought_signature").and_then(Value::as_str) {
                        Some(sig) => jobj([("functionCall", call), ("thoughtSignature", jstr(sig))]),
                        None => jobj([("functionCall", call)]),
                    });
                }
                if !parts.is_empty() {
                    contents.push(content("model", parts));
                }
                joinable = false;
            }
            "tool" => {
                let id = req_str_at(obj.get("tool_call_id"), format_args!("messages[{i}].tool_call_id"))?;
                let name = match names.iter().rev().find(|(cid, _)| cid == id) {
                    Some((_, n)) => n.clone(),
                    None => match obj.get("name").and_then(Value::as_str) {
                        Some(n) => n.to_string(),
                        None => {
                            return Err(bad(
                                &format!("messages[{i}].tool_call_id"),
                                format!("no earlier tool call has the id '{id}'"),
                            ))
                        }
                    },
                };
                let text = pivot::content_text(obj.get("content"));
                let response = match serde_json::from_slice::<Value>(text.as_bytes()) {
                    Ok(v @ Value::Object(_)) => v,
                    _ => jobj([("content", Value::String(text))]),
                };
                let part = jobj([("functionResponse", jobj([("name", Value::String(name)), ("response", response)]))]);
                if joinable {
                    append_parts(&mut contents, vec![part]);
                } else {
                    contents.push(content("user", vec![part]));
                }
                joinable = true;
            }
            other => return Err(bad(&format!("messages[{i}].role"), format!("role '{other}' is not supported"))),
        }
    }

    // OpenAI accepts a conversation of system messages only; Gemini refuses empty `contents`.
    if contents.is_empty() {
        return Err(bad("messages", "this model needs at least one user or assistant message"));
    }
    let mut out = Map::new();
    if !system.is_empty() {
        let parts: Vec<Value> = system.into_iter().map(|t| jobj([("text", Value::String(t))])).collect();
        ins(&mut out, "systemInstruction", jobj([("parts", Value::Array(parts))]));
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
        ins(&mut g, "topK", Value::from(k));
    }
    let max = match opt_positive(pivot.get("max_completion_tokens"), "max_completion_tokens")? {
        Some(m) => Some(m),
        None => opt_positive(pivot.get("max_tokens"), "max_tokens")?,
    };
    if let Some(m) = max {
        ins(&mut g, "maxOutputTokens", Value::from(m));
    }
    if let Some(stop) = opt_strings(pivot.get("stop"), "stop", true)? {
        if !stop.is_empty() {
            ins(&mut g, "stopSequences", Value::from(stop));
        }
    }
    if let Some(n) = opt_positive(pivot.get("n"), "n")? {
        ins(&mut g, "candidateCount", Value::from(n));
    }
    if let Some(rf) = opt_object(pivot.get("response_format"), "response_format")? {
        match rf.get("type").and_then(Value::as_str) {
            Some("json_object") => ins(&mut g, "responseMimeType", jstr("application/json")),
            Some("json_schema") => {
                ins(&mut g, "responseMimeType", jstr("application/json"));
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
            let f = req_object_at(t.get("function"), format_args!("tools[{i}].function"))?;
            let mut d = Map::new();
            ins(&mut d, "name", jstr(req_str_at(f.get("name"), format_args!("tools[{i}].function.name"))?));
            if let Some(desc) = opt_str_at(f.get("description"), format_args!("tools[{i}].function.description"))? {
                ins(&mut d, "description", jstr(desc));
            }
            if let Some(s) = opt_object_at(f.get("parameters"), format_args!("tools[{i}].function.parameters"))? {
                let mut s = Value::Object(s.clone());
                sanitize_schema(&mut s);
                ins(&mut d, "parameters", s);
            }
            decls.push(Value::Object(d));
        }
        has_tools = !decls.is_empty();
        if has_tools {
            ins(&mut out, "tools", Value::Array(vec![jobj([("functionDeclarations", Value::Array(decls))])]));
        }
    }
    if has_tools {
        let cfg = match pivot.get("tool_choice") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => match s.as_str() {
                "auto" => Some(jobj([("mode", jstr("AUTO"))])),
                "required" => Some(jobj([("mode", jstr("ANY"))])),
                "none" => Some(jobj([("mode", jstr("NONE"))])),
                other => return Err(bad("tool_choice", format!("unknown tool_choice '{other}'"))),
            },
            Some(Value::Object(o)) => {
                let f = req_object(o.get("function"), "tool_choice.function")?;
                let name = req_str(f.get("name"), "tool_choice.function.name")?;
                Some(jobj([("mode", jstr("ANY")), ("allowedFunctionNames", Value::Array(vec![jstr(name)]))]))
            }
            Some(_) => return Err(bad("tool_choice", "'tool_choice' must be a string or an object")),
        };
        if let Some(c) = cfg {
            ins(&mut out, "toolConfig", jobj([("functionCallingConfig", c)]));
        }
    }
    Ok(Value::Object(out))
}

fn append_parts(contents: &mut [Value], parts: Vec<Value>) {
    if let Some(Value::Array(a)) = contents.last_mut().and_then(|c| c.get_mut("parts")) {
        a.extend(parts);
    }
}

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
        cache_creation_tokens: 0,
    })
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
pub(super) struct Said {
    pub(super) text: String,
    pub(super) thoughts: String,
    pub(super) calls: Vec<Value>,
}

/// Reads a candidate's parts; tool-call ids are minted from `first_call` on.
pub(super) fn read_parts(cand: &Value, first_call: u64) -> Said {
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

pub(super) fn candidate_finish(cand: &Value, has_calls: bool) -> Option<Finish> {
    let f = finish_from_gemini(vfield(cand, "finishReason").and_then(Value::as_str)?);
    Some(if f == Finish::Stop && has_calls { Finish::ToolCalls } else { f })
}

pub(super) fn error_message(v: &Value) -> Option<String> {
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
        choices
            .push(json!({"index": index, "message": message, "logprobs": null, "finish_reason": finish.as_openai()}));
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
