//! Tests of `dialect/responses/` (in their own file, so test code is found by its path).
use serde_json::{json, Map, Value};

use super::*;
use crate::errors::Code;

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn refused(body: Value) -> (Code, Option<String>) {
    let e = request_to_pivot(&obj(body)).unwrap_err();
    (e.code, e.param)
}

#[test]
fn stateful_parameters_are_refused_by_name() {
    let p = |s: &str| Some(s.to_string());
    assert_eq!(
        refused(json!({"model": "m", "input": "x", "previous_response_id": "resp_1"})),
        (Code::BadRequest, p("previous_response_id"))
    );
    assert_eq!(refused(json!({"model": "m", "input": "x", "store": true})), (Code::BadRequest, p("store")));
    assert_eq!(
        refused(json!({"model": "m", "input": "x", "conversation": "conv_1"})),
        (Code::BadRequest, p("conversation"))
    );
    // `store: false` and a null previous_response_id are fine.
    let ok = request_to_pivot(&obj(json!({"model": "m", "input": "x", "store": false, "previous_response_id": null})));
    assert_eq!(ok.unwrap().body["messages"], json!([{"role": "user", "content": "x"}]));
}

#[test]
fn validation() {
    let p = |s: &str| Some(s.to_string());
    assert_eq!(refused(json!({"input": "x"})), (Code::MissingField, p("model")));
    assert_eq!(refused(json!({"model": "m"})), (Code::MissingField, p("input")));
    assert_eq!(refused(json!({"model": "m", "input": 3})), (Code::BadRequest, p("input")));
    assert_eq!(refused(json!({"model": "m", "input": []})), (Code::BadRequest, p("input")));
    assert_eq!(
        refused(json!({"model": "m", "input": "x", "max_output_tokens": 0})),
        (Code::BadRequest, p("max_output_tokens"))
    );
    assert_eq!(refused(json!({"model": "m", "input": "x", "temperature": 3})), (Code::BadRequest, p("temperature")));
    assert_eq!(
        refused(json!({"model": "m", "input": "x", "tools": [{"type": "web_search"}]})),
        (Code::BadRequest, p("tools[0].type"))
    );
    assert_eq!(
        refused(
            json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]})
        ),
        (Code::BadRequest, p("input[0].content[0].type"))
    );
    assert_eq!(
        refused(json!({"model": "m", "input": [{"type": "function_call_output", "output": "x"}]})),
        (Code::MissingField, p("input[0].call_id"))
    );
    assert_eq!(
        refused(json!({"model": "m", "input": "x", "text": {"format": {"type": "json_schema", "name": "n"}}})),
        (Code::MissingField, p("text.format.schema"))
    );
}

#[test]
fn request_translates_to_the_pivot() {
    let req = request_to_pivot(&obj(json!({
        "model": "m",
        "instructions": "be brief",
        "input": [
            {"role": "user", "content": [
                {"type": "input_text", "text": "weather?"},
                {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"}]},
            {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{\"location\":\"Paris\"}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"role": "developer", "content": "use metric"},
        ],
        "tools": [{"type": "function", "name": "get_weather", "description": "d",
                   "parameters": {"type": "object", "properties": {}}, "strict": true}],
        "tool_choice": {"type": "function", "name": "get_weather"},
        "max_output_tokens": 50,
        "temperature": 0.5,
        "top_p": 0.9,
        "text": {"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}, "strict": true}},
        "reasoning": {"effort": "low"},
        "stream": true,
    })))
    .unwrap();
    assert_eq!(req.model, "m");
    assert!(req.stream);
    assert_eq!(req.max_tokens, Some(50));
    assert_eq!(
        Value::Object(req.body),
        json!({
            "model": "m",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [
                    {"type": "text", "text": "weather?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}}]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
                {"role": "system", "content": "use metric"},
            ],
            "max_tokens": 50,
            "temperature": 0.5,
            "top_p": 0.9,
            "tools": [{"type": "function", "function": {"name": "get_weather", "description": "d",
                "parameters": {"type": "object", "properties": {}}, "strict": true}}],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": "object"}, "strict": true}},
            "reasoning_effort": "low",
            "stream": true,
            "stream_options": {"include_usage": true},
        })
    );
}

#[test]
fn response_from_the_pivot() {
    let pivot = json!({
        "id": "chatcmpl-xyz", "object": "chat.completion", "created": 0, "model": "up",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": "Let me see.",
            "tool_calls": [{"id": "call_9", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 4, "prompt_tokens_details": {"cached_tokens": 2},
                  "completion_tokens_details": {"reasoning_tokens": 1}},
    });
    let r = response_from_pivot(&pivot, "client", 1700000000, None);
    assert_eq!(r["id"], "resp_xyz");
    assert_eq!(r["object"], "response");
    assert_eq!(r["created_at"], 1700000000);
    assert_eq!(r["status"], "completed");
    assert_eq!(r["model"], "client");
    assert_eq!(
        r["output"],
        json!([
            {"id": "msg_xyz", "type": "message", "status": "completed", "role": "assistant",
             "content": [{"type": "output_text", "text": "Let me see.", "annotations": [], "logprobs": []}]},
            {"id": "fc_xyz_0", "type": "function_call", "status": "completed", "call_id": "call_9", "name": "f",
             "arguments": "{\"a\":1}"},
        ])
    );
    assert_eq!(
        r["usage"],
        json!({"input_tokens": 10, "input_tokens_details": {"cached_tokens": 2}, "output_tokens": 4,
               "output_tokens_details": {"reasoning_tokens": 1}, "total_tokens": 14})
    );
    let cut = json!({"id": "c", "choices": [{"index": 0, "finish_reason": "length", "message": {"content": "ab"}}]});
    let r = response_from_pivot(&cut, "client", 1, None);
    assert_eq!(
        (r["status"].clone(), r["incomplete_details"].clone()),
        (json!("incomplete"), json!({"reason": "max_output_tokens"}))
    );
    assert_eq!(r["usage"], Value::Null);
}

#[test]
fn the_request_settings_are_echoed_as_sent() {
    let fmt = json!({"type": "json_schema", "name": "w", "strict": true, "schema": {"type": "object"}});
    let tool = json!({"type": "function", "name": "f", "parameters": {"type": "object"}});
    let body = obj(json!({
        "model": "m", "input": "x", "instructions": "be brief", "max_output_tokens": 64, "temperature": 0.5,
        "top_p": 0.9, "tool_choice": {"type": "function", "name": "f"}, "tools": [tool],
        "parallel_tool_calls": false, "metadata": {"k": "v"}, "text": {"format": fmt, "verbosity": "low"},
        "reasoning": {"effort": "high"}, "user": "u1", "stream": true,
    }));
    assert!(request_to_pivot(&body).is_ok());
    let echo = Echo::from_request(body);
    let pivot = json!({"id": "chatcmpl-e", "choices": [{"index": 0, "finish_reason": "stop",
        "message": {"role": "assistant", "content": "ok"}}]});
    let r = response_from_pivot(&pivot, "client", 5, Some(&echo));
    let fields = ["instructions", "max_output_tokens", "temperature", "top_p", "tool_choice", "tools"];
    let got: Vec<Value> = fields.iter().map(|f| r[f].clone()).collect();
    assert_eq!(
        got,
        vec![
            json!("be brief"),
            json!(64),
            json!(0.5),
            json!(0.9),
            json!({"type": "function", "name": "f"}),
            json!([tool])
        ]
    );
    assert_eq!((r["parallel_tool_calls"].clone(), r["metadata"].clone()), (json!(false), json!({"k": "v"})));
    assert_eq!(r["text"], json!({"format": fmt, "verbosity": "low"}));
    assert_eq!(r["reasoning"], json!({"effort": "high", "summary": null}));
    // What the response has no place for stays out; the response's own fields are its own.
    assert_eq!((r["user"].clone(), r["stream"].clone(), r["input"].clone()), (Value::Null, Value::Null, Value::Null));
    assert_eq!(
        (r["model"].clone(), r["status"].clone(), r["store"].clone()),
        (json!("client"), json!("completed"), json!(false))
    );

    // Nothing set (or null, or a text without a format): the defaults.
    let bare = obj(json!({"model": "m", "input": "x", "instructions": null, "tools": null, "text": {}}));
    assert!(request_to_pivot(&bare).is_ok());
    let echo = Echo::from_request(bare);
    let r = response_from_pivot(&pivot, "client", 5, Some(&echo));
    assert_eq!(r, response_from_pivot(&pivot, "client", 5, None));
    let defaults: Vec<Value> =
        ["instructions", "max_output_tokens", "temperature", "top_p", "tool_choice", "tools", "parallel_tool_calls"]
            .iter()
            .map(|f| r[f].clone())
            .collect();
    assert_eq!(
        defaults,
        vec![Value::Null, Value::Null, Value::Null, Value::Null, json!("auto"), json!([]), json!(true)]
    );
    assert_eq!((r["text"].clone(), r["metadata"].clone()), (json!({"format": {"type": "text"}}), json!({})));
}

#[test]
fn every_streamed_snapshot_echoes_the_request_settings() {
    use crate::dialect::stream::FrontStream;
    let body = obj(json!({"model": "m", "input": "x", "instructions": "i", "max_output_tokens": 9,
        "text": {"format": {"type": "json_object"}}}));
    let echo = Echo::from_request(body);
    let mut s = StreamFromPivot::new("client", 5).with_echo(Some(Box::new(echo)));
    let mut out = Vec::new();
    s.on_chunk(
        &json!({"id": "c1", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "{}"}}]}),
        &mut out,
    );
    s.on_chunk(&json!({"id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}), &mut out);
    s.on_chunk(&json!({"id": "c1", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1}}), &mut out);
    let text = String::from_utf8(out).unwrap();
    let snapshots: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        .filter(|v| v.get("response").is_some())
        .map(|v| v["response"].clone())
        .collect();
    let seen: Vec<(Value, Value, Value, Value)> = snapshots
        .iter()
        .map(|r| (r["status"].clone(), r["instructions"].clone(), r["max_output_tokens"].clone(), r["text"].clone()))
        .collect();
    let fmt = json!({"format": {"type": "json_object"}});
    assert_eq!(
        seen,
        vec![
            (json!("in_progress"), json!("i"), json!(9), fmt.clone()),
            (json!("in_progress"), json!("i"), json!(9), fmt.clone()),
            (json!("completed"), json!("i"), json!(9), fmt),
        ]
    );
}

#[test]
fn pivot_request_to_a_responses_upstream() {
    let pivot = obj(json!({
        "model": "client",
        "messages": [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": [{"type": "text", "text": "hi"},
                {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
            {"role": "assistant", "content": "ok", "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "done"},
        ],
        "max_tokens": 40,
        "temperature": 0.2,
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        "tool_choice": "required",
        "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "object"}}},
        "reasoning_effort": "high",
        "stream": true,
        "stream_options": {"include_usage": true},
        "top_k": 5,
    }));
    let v = request_from_pivot(&pivot, "up-model").unwrap();
    assert_eq!(
        v,
        json!({
            "model": "up-model",
            "input": [
                {"type": "message", "role": "system", "content": [{"type": "input_text", "text": "sys"}]},
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"},
                    {"type": "input_image", "image_url": "https://x/y.png", "detail": "auto"}]},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "ok"}]},
                {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "call_1", "output": "done"},
            ],
            "store": false,
            "max_output_tokens": 40,
            "temperature": 0.2,
            "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
            "tool_choice": "required",
            "text": {"format": {"type": "json_schema", "name": "n", "schema": {"type": "object"}}},
            "reasoning": {"effort": "high"},
            "stream": true,
        })
    );
    let mut stop = pivot.clone();
    stop.insert("stop".into(), json!(["x"]));
    assert_eq!(request_from_pivot(&stop, "u").unwrap_err().param.as_deref(), Some("stop"));
    let mut n = pivot;
    n.insert("n".into(), json!(2));
    assert_eq!(request_from_pivot(&n, "u").unwrap_err().param.as_deref(), Some("n"));
}

#[test]
fn upstream_response_to_the_pivot() {
    let v = json!({
        "id": "resp_1", "object": "response", "status": "completed", "model": "up",
        "output": [
            {"type": "reasoning", "id": "rs", "summary": []},
            {"type": "message", "id": "m", "role": "assistant", "content": [{"type": "output_text", "text": "a"}, {"type": "output_text", "text": "b"}]},
            {"type": "function_call", "id": "fc", "call_id": "call_2", "name": "g", "arguments": "{\"x\":2}"},
        ],
        "usage": {"input_tokens": 7, "input_tokens_details": {"cached_tokens": 3}, "output_tokens": 5,
                  "output_tokens_details": {"reasoning_tokens": 2}, "total_tokens": 12},
    });
    let (p, u) = response_to_pivot(&v).unwrap();
    let u = u.unwrap();
    assert_eq!((u.prompt_tokens, u.completion_tokens, u.cached_tokens, u.reasoning_tokens), (7, 5, 3, 2));
    assert_eq!(p["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(p["choices"][0]["message"]["content"], "ab");
    assert_eq!(
        p["choices"][0]["message"]["tool_calls"],
        json!([{"id": "call_2", "type": "function", "function": {"name": "g", "arguments": "{\"x\":2}"}}])
    );
    assert_eq!(p["usage"]["prompt_tokens"], 7);
    let cut = json!({"status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"}, "output": []});
    assert_eq!(response_to_pivot(&cut).unwrap().0["choices"][0]["finish_reason"], "length");
    assert!(response_to_pivot(&json!({"error": {"message": "boom"}})).unwrap_err().contains("boom"));
    assert!(response_to_pivot(&json!({"id": "x"})).is_err());
}

#[test]
fn text_format_and_reasoning_reach_every_upstream() {
    let req = request_to_pivot(&obj(json!({
        "model": "m", "input": "x", "reasoning": {"effort": "low"},
        "text": {"format": {"type": "json_schema", "name": "w", "schema": {"type": "object", "properties": {"a": {"type": "string"}}}}},
    })))
    .unwrap();
    let schema = json!({"type": "object", "properties": {"a": {"type": "string"}}});
    let a = crate::dialect::anthropic::request_from_pivot(&req.body, "claude", 100).unwrap();
    assert_eq!(a["output_config"], json!({"format": {"type": "json_schema", "schema": schema}}));
    // Anthropic and Gemini have no `reasoning_effort`: it is not sent there.
    assert_eq!(a.get("reasoning_effort"), None);
    let g = crate::dialect::gemini::request_from_pivot(&req.body, "gem").unwrap();
    assert_eq!(g["generationConfig"]["responseJsonSchema"], schema);
    assert_eq!(g["generationConfig"]["responseMimeType"], "application/json");
    assert_eq!(g.get("reasoning_effort"), None);
    let r = request_from_pivot(&req.body, "up").unwrap();
    assert_eq!(r["text"]["format"], json!({"type": "json_schema", "name": "w", "schema": schema}));
    assert_eq!(r["reasoning"], json!({"effort": "low"}));
}
