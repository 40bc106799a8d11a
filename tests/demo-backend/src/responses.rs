//! OpenAI Responses API (`POST /v1/responses`), stateless: a `response` object, or its typed
//! stream events with `sequence_number`, with usage in `response.completed`.

use hyper::StatusCode;
use serde_json::{json, Map, Value};

use crate::body::{self, Resp};
use crate::controls::Controls;
use crate::openai::{bad_request, parse_object, pick_tool};
use crate::tokens::{self, Plan, Reply};
use crate::util::{as_count, rand_hex, to_json, unix_now};

/// Top-level fields of a Responses request (`--strict` refuses any other, as the real API does).
const FIELDS: &[&str] = &[
    "model",
    "input",
    "instructions",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "max_output_tokens",
    "temperature",
    "top_p",
    "text",
    "reasoning",
    "stream",
    "stream_options",
    "store",
    "user",
    "metadata",
    "previous_response_id",
    "conversation",
    "include",
    "truncation",
    "service_tier",
    "background",
    "prompt_cache_key",
    "safety_identifier",
];

/// `--strict`: the real API's 400 for a field it does not know.
pub fn strict(req: &Map<String, Value>) -> Option<Resp> {
    let k = req.keys().find(|k| !FIELDS.contains(&k.as_str()))?;
    Some(body::json(
        StatusCode::BAD_REQUEST,
        &json!({"error": {"message": format!("Unknown parameter: '{k}'."), "type": "invalid_request_error",
                "param": k, "code": "unknown_parameter"}}),
    ))
}

/// The text of an input item's `content` (a string, or its text parts).
fn item_text(item: &Value) -> String {
    match item.get("content").or_else(|| item.get("output")) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => {
            parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join(" ")
        }
        _ => item.get("arguments").and_then(Value::as_str).unwrap_or("").to_string(),
    }
}

fn usage(prompt: u64, completion: u64) -> Value {
    json!({
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + completion,
    })
}

fn response(id: &str, created: u64, model: &str, status: &str, output: Value, usage: Option<Value>) -> Value {
    let incomplete = if status == "incomplete" { json!({"reason": "max_output_tokens"}) } else { Value::Null };
    json!({
        "id": id, "object": "response", "created_at": created, "status": status, "error": null,
        "incomplete_details": incomplete, "model": model, "output": output, "usage": usage,
        "parallel_tool_calls": true, "tool_choice": "auto", "tools": [], "store": false,
    })
}

fn event(seq: &mut u64, ty: &str, mut data: Value) -> String {
    data["type"] = json!(ty);
    data["sequence_number"] = json!(*seq);
    *seq += 1;
    format!("event: {ty}\ndata: {}\n\n", to_json(&data))
}

pub async fn create(ctl: &Controls, body: &[u8]) -> Resp {
    let req = match parse_object(body) {
        Ok(v) => v,
        Err(m) => return bad_request(&m),
    };
    let items: Vec<Value> = match req.get("input") {
        Some(Value::String(s)) => vec![json!({"role": "user", "content": s})],
        Some(Value::Array(a)) => a.clone(),
        _ => return bad_request("'input' must be a string or an array"),
    };
    let model = req.get("model").and_then(Value::as_str).unwrap_or("demo-model").to_string();
    let mut prompt_tokens: u64 = items.iter().map(|i| tokens::message_tokens(&item_text(i))).sum();
    if let Some(i) = req.get("instructions").and_then(Value::as_str) {
        prompt_tokens += tokens::message_tokens(i);
    }
    let last_user = items
        .iter()
        .rev()
        .find(|i| i.get("role").and_then(Value::as_str) == Some("user"))
        .map(item_text)
        .unwrap_or_default();
    // The tools and choice in chat's shape, to pick a call the way the chat endpoint does.
    let tools: Vec<Value> = req
        .get("tools")
        .and_then(Value::as_array)
        .map(|t| t.iter().map(|t| json!({"type": "function", "function": t})).collect())
        .unwrap_or_default();
    let choice = match req.get("tool_choice") {
        Some(Value::Object(o)) => json!({"type": "function", "function": {"name": o.get("name")}}),
        Some(v) => v.clone(),
        None => Value::Null,
    };
    let tool = pick_tool(&json!({"tools": tools, "tool_choice": choice}), &last_user);
    let cap = as_count(req.get("max_output_tokens"));
    let schema = req.pointer("/text/format/schema");
    let stream = req.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let id = format!("resp_{}", rand_hex(24));
    let created = unix_now();
    let reply = match tool {
        Some(t) => Reply::Tool(t),
        None => Reply::Text(Plan::new(&tokens::reply_text(&model, &last_user, schema), ctl.chunks, cap)),
    };
    let completion = match &reply {
        Reply::Tool(t) => t.args.tokens(),
        Reply::Text(p) => p.tokens(),
    };
    let (prompt_tokens, completion) = ctl.usage(prompt_tokens, completion);
    let msg_id = format!("msg_{}", rand_hex(24));
    let fc_id = format!("fc_{}", rand_hex(24));
    let call_id = format!("call_{}", rand_hex(24));
    let (item, status) = match &reply {
        Reply::Text(p) => (
            json!({"id": msg_id, "type": "message", "status": "completed", "role": "assistant",
                   "content": [{"type": "output_text", "text": p.text(), "annotations": []}]}),
            if p.truncated { "incomplete" } else { "completed" },
        ),
        Reply::Tool(t) => (
            json!({"id": fc_id, "type": "function_call", "status": "completed", "call_id": call_id,
                   "name": t.name, "arguments": t.args.json()}),
            "completed",
        ),
    };
    let usage = (!ctl.no_usage).then(|| usage(prompt_tokens, completion));

    if !stream {
        let r = response(&id, created, &model, status, json!([item]), usage);
        return body::with_usage(body::json(StatusCode::OK, &r), prompt_tokens, completion);
    }

    let ctl = ctl.clone();
    let resp = body::stream("text/event-stream", ctl.chunk_delay, move |mut sink| async move {
        let mut seq = 0u64;
        let start = response(&id, created, &model, "in_progress", json!([]), None);
        for ty in ["response.created", "response.in_progress"] {
            if !sink.send(event(&mut seq, ty, json!({"response": start}))).await {
                return;
            }
        }
        let mut added = item.clone();
        added["status"] = json!("in_progress");
        match &reply {
            Reply::Text(plan) => {
                added["content"] = json!([]);
                let head = [
                    event(&mut seq, "response.output_item.added", json!({"output_index": 0, "item": added})),
                    event(
                        &mut seq,
                        "response.content_part.added",
                        json!({"item_id": msg_id, "output_index": 0,
                        "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}}),
                    ),
                ];
                for e in head {
                    if !sink.send(e).await {
                        return;
                    }
                }
                for i in 0..ctl.emit_count(plan.len()) {
                    let d = json!({"item_id": msg_id, "output_index": 0, "content_index": 0,
                        "delta": plan.piece(i), "logprobs": []});
                    if !sink.send(event(&mut seq, "response.output_text.delta", d)).await {
                        return;
                    }
                }
                if ctl.cut_after.is_some() {
                    sink.abort().await;
                    return;
                }
                let text = plan.text();
                let tail = [
                    event(
                        &mut seq,
                        "response.output_text.done",
                        json!({"item_id": msg_id, "output_index": 0,
                        "content_index": 0, "text": text, "logprobs": []}),
                    ),
                    event(
                        &mut seq,
                        "response.content_part.done",
                        json!({"item_id": msg_id, "output_index": 0,
                        "content_index": 0, "part": {"type": "output_text", "text": text, "annotations": []}}),
                    ),
                ];
                for e in tail {
                    if !sink.send(e).await {
                        return;
                    }
                }
            }
            Reply::Tool(t) => {
                added["arguments"] = json!("");
                if !sink
                    .send(event(&mut seq, "response.output_item.added", json!({"output_index": 0, "item": added})))
                    .await
                {
                    return;
                }
                let frags = t.args.fragments();
                for frag in &frags[..ctl.emit_count(frags.len())] {
                    let d = json!({"item_id": fc_id, "output_index": 0, "delta": frag});
                    if !sink.send(event(&mut seq, "response.function_call_arguments.delta", d)).await {
                        return;
                    }
                }
                if ctl.cut_after.is_some() {
                    sink.abort().await;
                    return;
                }
                let d = json!({"item_id": fc_id, "output_index": 0, "arguments": t.args.json()});
                if !sink.send(event(&mut seq, "response.function_call_arguments.done", d)).await {
                    return;
                }
            }
        }
        if !sink.send(event(&mut seq, "response.output_item.done", json!({"output_index": 0, "item": item}))).await {
            return;
        }
        let done = response(&id, created, &model, status, json!([item]), usage);
        let ty = if status == "incomplete" { "response.incomplete" } else { "response.completed" };
        sink.send(event(&mut seq, ty, json!({"response": done}))).await;
    });
    body::with_usage(resp, prompt_tokens, completion)
}
