//! OpenAI Chat Completions (`POST /v1/chat/completions`) and OpenAI-shaped errors.

use bytes::Bytes;
use hyper::StatusCode;
use serde_json::{json, Value};

use crate::body::{self, Resp};
use crate::controls::Controls;
use crate::tokens::{self, Plan, Reply, ToolArgs, ToolCall};
use crate::util::{as_count, json_str, mentions_weather, rand_hex, to_json, unix_now};

/// `{"error":{"message":..,"type":..,"code":..}}`
pub fn error(status: StatusCode, message: &str, ty: &str, code: &str) -> Resp {
    body::json(status, &json!({"error": {"message": message, "type": ty, "code": code}}))
}

/// A `--strict` refusal as api.openai.com words it: `param` and `code` may be null.
pub fn strict_error(r: &crate::strict::Refusal) -> Resp {
    body::json(
        StatusCode::BAD_REQUEST,
        &json!({"error": {"message": r.message, "type": "invalid_request_error", "param": r.param, "code": r.code}}),
    )
}

pub fn bad_request(message: &str) -> Resp {
    error(StatusCode::BAD_REQUEST, message, "invalid_request_error", "bad_request")
}

pub fn forced_error(status: StatusCode) -> Resp {
    error(status, &format!("demo backend forced error {}", status.as_u16()), "api_error", "demo_error")
}

/// Parse a JSON object body, or produce the 400 message.
pub fn parse_object(body: &[u8]) -> Result<Value, String> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err("request body must be a JSON object".into()),
        Err(e) => Err(format!("invalid JSON body: {e}")),
    }
}

/// Text of a message `content`: a string, or the text parts of an array.
pub fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => {
            let texts: Vec<&str> = parts
                .iter()
                .filter(|p| matches!(p.get("type").and_then(Value::as_str), None | Some("text" | "input_text")))
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect();
            texts.join(" ")
        }
        _ => String::new(),
    }
}

pub fn pick_tool(req: &Value, last_user: &str) -> Option<ToolCall> {
    let tools = req.get("tools")?.as_array().filter(|t| !t.is_empty())?;
    let choice = req.get("tool_choice");
    let named = choice.and_then(|c| c.get("function")).and_then(|f| f.get("name")).and_then(Value::as_str);
    let choice_str = choice.and_then(Value::as_str);
    if choice_str == Some("none") {
        return None;
    }
    let forced = choice_str == Some("required") || named.is_some();
    if !forced && !mentions_weather(last_user) {
        return None;
    }
    let fn_name = |t: &Value| t.get("function").and_then(|f| f.get("name")).and_then(Value::as_str).map(str::to_owned);
    let tool = match named {
        Some(n) => tools.iter().find(|t| fn_name(t).as_deref() == Some(n)),
        None => tools.first(),
    };
    let name = named.map(str::to_owned).or_else(|| tool.and_then(fn_name)).unwrap_or_else(|| "tool".into());
    let has_location = tool.and_then(|t| t.pointer("/function/parameters/properties/location")).is_some();
    Some(ToolCall { name, args: ToolArgs { has_location } })
}

fn usage(ctl: &Controls, prompt: u64, completion: u64) -> Value {
    let mut u = json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion});
    if let Some(d) = ctl.usage_details {
        u["prompt_tokens_details"] = json!({"cached_tokens": d.cached});
        u["completion_tokens_details"] = json!({"reasoning_tokens": d.reasoning});
    }
    u
}

pub async fn chat(ctl: &Controls, body: &[u8]) -> Resp {
    let req = match parse_object(body) {
        Ok(v) => v,
        Err(m) => return bad_request(&m),
    };
    let Some(messages) = req.get("messages").and_then(Value::as_array) else {
        return bad_request("'messages' must be an array");
    };
    let model = req.get("model").and_then(Value::as_str).unwrap_or("demo-model").to_string();
    let prompt_tokens: u64 = messages.iter().map(|m| tokens::message_tokens(&content_text(m.get("content")))).sum();
    let last_user = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .map(|m| content_text(m.get("content")))
        .unwrap_or_default();
    let stream = req.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let include_usage =
        !ctl.no_usage && req.pointer("/stream_options/include_usage").and_then(Value::as_bool).unwrap_or(false);
    let cap = as_count(req.get("max_completion_tokens")).or(as_count(req.get("max_tokens")));
    let tool = pick_tool(&req, &last_user);
    let id = format!("chatcmpl-{}", rand_hex(24));
    let created = unix_now();

    if !stream {
        let (message, finish, completion) = match &tool {
            Some(t) => (
                json!({"role": "assistant", "content": null, "tool_calls": [{
                    "id": format!("call_{}", rand_hex(24)),
                    "type": "function",
                    "function": {"name": t.name, "arguments": t.args.json()},
                }]}),
                "tool_calls",
                t.args.tokens(),
            ),
            None => {
                let plan = Plan::new(
                    &tokens::reply_text(&model, &last_user, req.pointer("/response_format/json_schema/schema")),
                    ctl.chunks,
                    cap,
                );
                let finish = if plan.truncated { "length" } else { "stop" };
                (json!({"role": "assistant", "content": plan.text()}), finish, plan.tokens())
            }
        };
        let mut resp = json!({
            "id": id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": null}],
        });
        let (prompt_tokens, completion) = ctl.usage(prompt_tokens, completion);
        if !ctl.no_usage {
            resp["usage"] = usage(ctl, prompt_tokens, completion);
        }
        return body::with_usage(body::json(StatusCode::OK, &resp), prompt_tokens, completion);
    }

    let ctl = ctl.clone();
    let reply = match tool {
        Some(t) => Reply::Tool(t),
        None => Reply::Text(Plan::new(
            &tokens::reply_text(&model, &last_user, req.pointer("/response_format/json_schema/schema")),
            ctl.chunks,
            cap,
        )),
    };
    let completion = match &reply {
        Reply::Tool(t) => t.args.tokens(),
        Reply::Text(p) => p.tokens(),
    };
    let (prompt_tokens, completion) = ctl.usage(prompt_tokens, completion);
    let resp = body::stream("text/event-stream", ctl.chunk_delay, move |mut sink| async move {
        let head = format!(
            "data: {{\"id\":\"{id}\",\"object\":\"chat.completion.chunk\",\"created\":{created},\"model\":{},\"choices\":[{{\"index\":0,\"delta\":",
            json_str(&model)
        );
        let chunk = |delta: &str, finish: &str| -> Bytes {
            let mut s = String::with_capacity(head.len() + delta.len() + 48);
            s.push_str(&head);
            s.push_str(delta);
            s.push_str(",\"finish_reason\":");
            s.push_str(finish);
            s.push_str(",\"logprobs\":null}]}\n\n");
            Bytes::from(s)
        };

        let finish = match &reply {
            Reply::Text(plan) => {
                if !sink.send(chunk(r#"{"role":"assistant","content":""}"#, "null")).await {
                    return;
                }
                for i in 0..ctl.emit_count(plan.len()) {
                    let delta = format!("{{\"content\":{}}}", json_str(&plan.piece(i)));
                    if !sink.send(chunk(&delta, "null")).await {
                        return;
                    }
                }
                if plan.truncated {
                    "\"length\""
                } else {
                    "\"stop\""
                }
            }
            Reply::Tool(t) => {
                let first = json!({"role": "assistant", "content": null, "tool_calls": [{
                    "index": 0,
                    "id": format!("call_{}", rand_hex(24)),
                    "type": "function",
                    "function": {"name": t.name, "arguments": ""},
                }]});
                if !sink.send(chunk(&to_json(&first), "null")).await {
                    return;
                }
                let frags = t.args.fragments();
                for frag in &frags[..ctl.emit_count(frags.len())] {
                    let delta = format!(
                        "{{\"tool_calls\":[{{\"index\":0,\"function\":{{\"arguments\":{}}}}}]}}",
                        json_str(frag)
                    );
                    if !sink.send(chunk(&delta, "null")).await {
                        return;
                    }
                }
                "\"tool_calls\""
            }
        };
        if ctl.cut_after.is_some() {
            sink.abort().await;
            return;
        }
        if !sink.send(chunk("{}", finish)).await {
            return;
        }
        if include_usage {
            let u = json!({
                "id": id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [],
                "usage": usage(&ctl, prompt_tokens, completion),
            });
            if !sink.send(format!("data: {}\n\n", to_json(&u))).await {
                return;
            }
        }
        sink.send(Bytes::from_static(b"data: [DONE]\n\n")).await;
    });
    body::with_usage(resp, prompt_tokens, completion)
}
