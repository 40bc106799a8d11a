//! Google Gemini `generateContent` / `streamGenerateContent` and Gemini-shaped errors.

use bytes::Bytes;
use hyper::StatusCode;
use serde_json::{json, Value};

use crate::body::{self, Resp};
use crate::controls::Controls;
use crate::openai::parse_object;
use crate::tokens::{self, Plan, Reply, ToolArgs, ToolCall};
use crate::util::{as_count, get_any, json_str, mentions_weather, rand_hex, to_json};

/// A parsed Gemini route: `/v1beta/models/{model}:{method}` (or `/v1/models/...`).
pub struct Route {
    pub model: String,
    pub stream: bool,
}

/// Recognise a Gemini path; `None` if it is not one.
pub fn route(path: &str) -> Option<Route> {
    let rest = path.strip_prefix("/v1beta/models/").or_else(|| path.strip_prefix("/v1/models/"))?;
    let (model, method) = rest.rsplit_once(':')?;
    if model.is_empty() {
        return None;
    }
    let stream = match method {
        "generateContent" => false,
        "streamGenerateContent" => true,
        _ => return None,
    };
    Some(Route { model: model.to_string(), stream })
}

/// Whether a path is Gemini's token counter, `/v1beta/models/{model}:countTokens`.
pub fn is_count_tokens(path: &str) -> bool {
    let rest = path.strip_prefix("/v1beta/models/").or_else(|| path.strip_prefix("/v1/models/"));
    rest.and_then(|r| r.strip_suffix(":countTokens")).is_some_and(|m| !m.is_empty() && !m.contains('/'))
}

fn status_name(code: u16) -> &'static str {
    match code {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    }
}

/// `{"error":{"code":..,"message":..,"status":..}}`
pub fn error(status: StatusCode, message: &str) -> Resp {
    let code = status.as_u16();
    body::json(status, &json!({"error": {"code": code, "message": message, "status": status_name(code)}}))
}

pub fn forced_error(status: StatusCode) -> Resp {
    error(status, &format!("demo backend forced error {}", status.as_u16()))
}

fn parts_text(content: &Value) -> String {
    let texts: Vec<&str> = content
        .get("parts")
        .and_then(Value::as_array)
        .map(|parts| parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect())
        .unwrap_or_default();
    texts.join(" ")
}

fn pick_tool(req: &Value, last_user: &str) -> Option<ToolCall> {
    let decls: Vec<&Value> = req
        .get("tools")?
        .as_array()?
        .iter()
        .filter_map(|t| get_any(t, &["functionDeclarations", "function_declarations"]))
        .filter_map(Value::as_array)
        .flatten()
        .collect();
    if decls.is_empty() {
        return None;
    }
    let config = get_any(req, &["toolConfig", "tool_config"])
        .and_then(|c| get_any(c, &["functionCallingConfig", "function_calling_config"]));
    let mode = config.and_then(|c| c.get("mode")).and_then(Value::as_str).map(str::to_ascii_uppercase);
    match mode.as_deref() {
        Some("NONE") => return None,
        Some("ANY") => {}
        _ if mentions_weather(last_user) => {}
        _ => return None,
    }
    let allowed = config
        .and_then(|c| get_any(c, &["allowedFunctionNames", "allowed_function_names"]))
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(Value::as_str);
    let decl_name = |d: &Value| d.get("name").and_then(Value::as_str).map(str::to_owned);
    let decl = match allowed {
        Some(n) => decls.iter().copied().find(|d| decl_name(d).as_deref() == Some(n)),
        None => decls.first().copied(),
    };
    let name = allowed.map(str::to_owned).or_else(|| decl.and_then(decl_name)).unwrap_or_else(|| "tool".into());
    let has_location = decl
        .and_then(|d| get_any(d, &["parameters", "parametersJsonSchema", "parameters_json_schema"]))
        .and_then(|p| p.pointer("/properties/location"))
        .is_some();
    Some(ToolCall { name, args: ToolArgs { has_location } })
}

/// A `usageMetadata` for `prompt` prompt and `completion` completion tokens: with
/// `x-demo-usage-details`, the cached prompt tokens and the thoughts apart (Gemini's
/// `candidatesTokenCount` does not count thoughts).
fn usage(ctl: &Controls, prompt: u64, completion: u64) -> Value {
    let mut u =
        json!({"promptTokenCount": prompt, "candidatesTokenCount": completion, "totalTokenCount": prompt + completion});
    if let Some(d) = ctl.usage_details {
        u["cachedContentTokenCount"] = json!(d.cached);
        u["thoughtsTokenCount"] = json!(d.reasoning);
        u["candidatesTokenCount"] = json!(completion.saturating_sub(d.reasoning));
    }
    u
}

/// The JSON schema a request asks the reply to match, if any.
fn response_schema(req: &Value) -> Option<&Value> {
    let g = get_any(req, &["generationConfig", "generation_config"])?;
    get_any(g, &["responseJsonSchema", "response_json_schema", "responseSchema", "response_schema"])
}

pub async fn generate(ctl: &Controls, route: Route, query: &str, body: &[u8]) -> Resp {
    let req = match parse_object(body) {
        Ok(v) => v,
        Err(m) => return error(StatusCode::BAD_REQUEST, &m),
    };
    let Some(contents) = req.get("contents").and_then(Value::as_array) else {
        return error(StatusCode::BAD_REQUEST, "contents: field required");
    };
    let model = route.model;
    let mut prompt_tokens: u64 = contents.iter().map(|c| tokens::message_tokens(&parts_text(c))).sum();
    if let Some(sys) = get_any(&req, &["systemInstruction", "system_instruction"]) {
        prompt_tokens += tokens::message_tokens(&parts_text(sys));
    }
    let last_user = contents
        .iter()
        .rev()
        .find(|c| matches!(c.get("role").and_then(Value::as_str), None | Some("user")))
        .map(parts_text)
        .unwrap_or_default();
    let cap = get_any(&req, &["generationConfig", "generation_config"])
        .and_then(|g| as_count(get_any(g, &["maxOutputTokens", "max_output_tokens"])));
    let reply = match pick_tool(&req, &last_user) {
        Some(t) => Reply::Tool(t),
        None => Reply::Text(Plan::new(&tokens::reply_text(&model, &last_user, response_schema(&req)), ctl.chunks, cap)),
    };
    let response_id = rand_hex(22);

    let (finish, total) = match &reply {
        Reply::Text(p) => (if p.truncated { "MAX_TOKENS" } else { "STOP" }, p.tokens()),
        Reply::Tool(t) => ("STOP", t.args.tokens()),
    };
    let fixed = ctl.usage_fixed;
    let (prompt_tokens, total) = ctl.usage(prompt_tokens, total);
    let function_call_part = |t: &ToolCall| {
        let args: Value = serde_json::from_str(t.args.json()).unwrap_or_else(|_| json!({}));
        json!({"functionCall": {"name": t.name, "args": args}})
    };

    if !route.stream {
        let part = match &reply {
            Reply::Text(p) => json!({"text": p.text()}),
            Reply::Tool(t) => function_call_part(t),
        };
        let mut resp = json!({
            "candidates": [{
                "content": {"role": "model", "parts": [part]},
                "finishReason": finish,
                "index": 0,
            }],
        });
        if !ctl.no_usage {
            resp["usageMetadata"] = usage(ctl, prompt_tokens, total);
        }
        resp["modelVersion"] = json!(model);
        resp["responseId"] = json!(response_id);
        return body::with_usage(body::json(StatusCode::OK, &resp), prompt_tokens, total);
    }

    // `alt=sse` -> Server-Sent Events with CRLF separators; otherwise Gemini
    // streams one JSON array, element by element.
    let sse = query.split('&').any(|kv| kv.eq_ignore_ascii_case("alt=sse"));
    let content_type = if sse { "text/event-stream" } else { "application/json" };
    let ctl = ctl.clone();
    let resp = body::stream(content_type, ctl.chunk_delay, move |mut sink| async move {
        let tail = format!(",\"modelVersion\":{},\"responseId\":\"{response_id}\"}}", json_str(&model));
        // One whole GenerateContentResponse per piece, cumulative usage.
        let object = |part: &str, last: bool, so_far: u64| -> String {
            let mut s = String::with_capacity(256 + part.len());
            s.push_str("{\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[");
            s.push_str(part);
            s.push_str("]}");
            if last {
                s.push_str(",\"finishReason\":\"");
                s.push_str(finish);
                s.push('"');
            }
            s.push_str(",\"index\":0}]");
            if !ctl.no_usage {
                s.push_str(",\"usageMetadata\":");
                s.push_str(&to_json(&usage(&ctl, prompt_tokens, so_far)));
            }
            s.push_str(&tail);
            s
        };
        let mut first = true;
        let frame = |obj: String, first: &mut bool| -> Bytes {
            let f = if sse {
                format!("data: {obj}\r\n\r\n")
            } else if *first {
                format!("[{obj}")
            } else {
                format!(",\r\n{obj}")
            };
            *first = false;
            Bytes::from(f)
        };

        match &reply {
            Reply::Text(plan) => {
                let n = plan.len();
                let emit = ctl.emit_count(n);
                if n == 0 && ctl.cut_after.is_none() {
                    let obj = object("{\"text\":\"\"}", true, fixed.map_or(0, |(_, c)| c));
                    if !sink.send(frame(obj, &mut first)).await {
                        return;
                    }
                }
                for i in 0..emit {
                    let part = format!("{{\"text\":{}}}", json_str(&plan.piece(i)));
                    let last = i + 1 == n && ctl.cut_after.is_none();
                    // Cumulative usage; with `x-demo-usage-fixed` it reaches exactly C at the end.
                    let so_far = match fixed {
                        Some((_, c)) if i + 1 == n => c,
                        Some((_, c)) => (i as u64 + 1).min(c),
                        None => i as u64 + 1,
                    };
                    let obj = object(&part, last, so_far);
                    if !sink.send(frame(obj, &mut first)).await {
                        return;
                    }
                }
            }
            Reply::Tool(t) => {
                // The whole call is one event (counted as one content chunk).
                if ctl.cut_after != Some(0) {
                    let part = to_json(&function_call_part(t));
                    let obj = object(&part, ctl.cut_after.is_none(), total);
                    if !sink.send(frame(obj, &mut first)).await {
                        return;
                    }
                }
            }
        }
        if ctl.cut_after.is_some() {
            sink.abort().await;
            return;
        }
        if !sse {
            let close: &'static [u8] = if first { b"[]" } else { b"]" };
            sink.send(Bytes::from_static(close)).await;
        }
    });
    body::with_usage(resp, prompt_tokens, total)
}
