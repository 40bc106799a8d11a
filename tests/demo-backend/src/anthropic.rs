//! Anthropic Messages API (`POST /v1/messages`) and Anthropic-shaped errors.

use hyper::StatusCode;
use serde_json::{json, Value};

use crate::body::{self, EventSink, Resp};
use crate::controls::Controls;
use crate::openai::{content_text, parse_object};
use crate::tokens::{self, Plan, Reply, ToolArgs, ToolCall};
use crate::util::{as_count, json_str, mentions_weather, rand_hex, to_json};

/// `{"type":"error","error":{"type":..,"message":..}}`
pub fn error(status: StatusCode, ty: &str, message: &str) -> Resp {
    body::json(status, &json!({"type": "error", "error": {"type": ty, "message": message}}))
}

pub fn forced_error(status: StatusCode) -> Resp {
    error(status, "api_error", &format!("demo backend forced error {}", status.as_u16()))
}

fn pick_tool(req: &Value, last_user: &str) -> Option<ToolCall> {
    let tools = req.get("tools")?.as_array().filter(|t| !t.is_empty())?;
    let choice = req.get("tool_choice");
    let choice_type = choice.and_then(|c| c.get("type")).and_then(Value::as_str);
    if choice_type == Some("none") {
        return None;
    }
    let named = match choice_type {
        Some("tool") => choice.and_then(|c| c.get("name")).and_then(Value::as_str),
        _ => None,
    };
    let forced = matches!(choice_type, Some("any" | "tool"));
    if !forced && !mentions_weather(last_user) {
        return None;
    }
    let tool_name = |t: &Value| t.get("name").and_then(Value::as_str).map(str::to_owned);
    let tool = match named {
        Some(n) => tools.iter().find(|t| tool_name(t).as_deref() == Some(n)),
        None => tools.first(),
    };
    let name = named.map(str::to_owned).or_else(|| tool.and_then(tool_name)).unwrap_or_else(|| "tool".into());
    let has_location = tool.and_then(|t| t.pointer("/input_schema/properties/location")).is_some();
    Some(ToolCall { name, args: ToolArgs { has_location } })
}

async fn event(sink: &mut EventSink, name: &str, data: &str) -> bool {
    sink.send(format!("event: {name}\ndata: {data}\n\n")).await
}

pub async fn messages(ctl: &Controls, body: &[u8]) -> Resp {
    let req = match parse_object(body) {
        Ok(v) => v,
        Err(m) => return error(StatusCode::BAD_REQUEST, "invalid_request_error", &m),
    };
    let Some(messages) = req.get("messages").and_then(Value::as_array) else {
        return error(StatusCode::BAD_REQUEST, "invalid_request_error", "messages: field required");
    };
    let model = req.get("model").and_then(Value::as_str).unwrap_or("demo-model").to_string();
    let mut input_tokens: u64 = messages.iter().map(|m| tokens::message_tokens(&content_text(m.get("content")))).sum();
    if let Some(system) = req.get("system") {
        input_tokens += tokens::message_tokens(&content_text(Some(system)));
    }
    let last_user = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .map(|m| content_text(m.get("content")))
        .unwrap_or_default();
    let stream = req.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let cap = as_count(req.get("max_tokens"));
    // As Anthropic: the reply ends before the first of `stop_sequences` it contains.
    let mut stop_sequence: Option<String> = None;
    let reply = match pick_tool(&req, &last_user) {
        Some(t) => Reply::Tool(t),
        None => {
            let mut text = tokens::reply_text(&model, &last_user, req.pointer("/output_config/format/schema"));
            let stops = req.get("stop_sequences").and_then(Value::as_array);
            let hit = stops
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .filter(|s| !s.is_empty())
                .filter_map(|s| text.find(s).map(|at| (at, s)))
                .min_by_key(|(at, _)| *at);
            if let Some((at, s)) = hit {
                text.truncate(at);
                stop_sequence = Some(s.to_string());
            }
            Reply::Text(Plan::new(&text, ctl.chunks, cap))
        }
    };
    let (stop_reason, output_tokens) = match &reply {
        Reply::Text(p) if p.truncated => ("max_tokens", p.tokens()),
        Reply::Text(p) if stop_sequence.is_some() => ("stop_sequence", p.tokens()),
        Reply::Text(p) => ("end_turn", p.tokens()),
        Reply::Tool(t) => ("tool_use", t.args.tokens()),
    };
    let stop_sequence = if stop_reason == "stop_sequence" { stop_sequence } else { None };
    let (input_tokens, output_tokens) = ctl.usage(input_tokens, output_tokens);
    let id = format!("msg_{}", rand_hex(24));

    if !stream {
        let content = match &reply {
            Reply::Text(p) => json!([{"type": "text", "text": p.text()}]),
            Reply::Tool(t) => {
                let input: Value = serde_json::from_str(t.args.json()).unwrap_or_else(|_| json!({}));
                json!([{"type": "tool_use", "id": format!("toolu_{}", rand_hex(24)), "name": t.name, "input": input}])
            }
        };
        let mut resp = json!({
            "id": id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": stop_sequence,
        });
        if !ctl.no_usage {
            resp["usage"] = usage(ctl, input_tokens, output_tokens);
        }
        return body::with_usage(body::json(StatusCode::OK, &resp), input_tokens, output_tokens);
    }

    let ctl = ctl.clone();
    let resp = body::stream("text/event-stream", ctl.chunk_delay, move |mut sink| async move {
        let mut message = json!({
            "id": id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": null,
            "stop_sequence": null,
        });
        if !ctl.no_usage {
            message["usage"] = usage(&ctl, input_tokens, 1);
        }
        let start = json!({"type": "message_start", "message": message});
        if !event(&mut sink, "message_start", &to_json(&start)).await {
            return;
        }
        let block = match &reply {
            Reply::Text(_) => json!({"type": "text", "text": ""}),
            Reply::Tool(t) => json!({
                "type": "tool_use",
                "id": format!("toolu_{}", rand_hex(24)),
                "name": t.name,
                "input": {},
            }),
        };
        let block_start = json!({"type": "content_block_start", "index": 0, "content_block": block});
        if !event(&mut sink, "content_block_start", &to_json(&block_start)).await {
            return;
        }
        if !event(&mut sink, "ping", r#"{"type":"ping"}"#).await {
            return;
        }
        let delta = |ty: &str, field: &str, value: &str| {
            format!(
                "{{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"{ty}\",\"{field}\":{}}}}}",
                json_str(value)
            )
        };
        match &reply {
            Reply::Text(plan) => {
                for i in 0..ctl.emit_count(plan.len()) {
                    let d = delta("text_delta", "text", &plan.piece(i));
                    if !event(&mut sink, "content_block_delta", &d).await {
                        return;
                    }
                }
            }
            Reply::Tool(t) => {
                let frags = t.args.fragments();
                for frag in &frags[..ctl.emit_count(frags.len())] {
                    let d = delta("input_json_delta", "partial_json", frag);
                    if !event(&mut sink, "content_block_delta", &d).await {
                        return;
                    }
                }
            }
        }
        if ctl.cut_after.is_some() {
            sink.abort().await;
            return;
        }
        if !event(&mut sink, "content_block_stop", r#"{"type":"content_block_stop","index":0}"#).await {
            return;
        }
        let mut md = json!({
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
        });
        if !ctl.no_usage {
            md["usage"] = json!({"output_tokens": output_tokens});
        }
        if !event(&mut sink, "message_delta", &to_json(&md)).await {
            return;
        }
        event(&mut sink, "message_stop", r#"{"type":"message_stop"}"#).await;
    });
    body::with_usage(resp, input_tokens, output_tokens)
}

/// An Anthropic `usage` for `prompt` prompt tokens in all: with `x-demo-usage-details`, the
/// cache reads and writes apart (Anthropic's `input_tokens` counts neither).
fn usage(ctl: &Controls, prompt: u64, output: u64) -> Value {
    match ctl.usage_details {
        Some(d) => json!({
            "input_tokens": prompt.saturating_sub(d.cached).saturating_sub(d.cache_write),
            "cache_creation_input_tokens": d.cache_write,
            "cache_read_input_tokens": d.cached,
            "output_tokens": output,
        }),
        None => json!({"input_tokens": prompt, "output_tokens": output}),
    }
}
