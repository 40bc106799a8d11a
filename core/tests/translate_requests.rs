//! Request translation: client dialect -> pivot, pivot -> upstream dialect, round trips,
//! validation errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use serde_json::{json, Map, Value};
use tollgate_core::dialect::{anthropic, gemini};
use tollgate_core::errors::Code;

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn anthropic_request() -> Value {
    json!({
        "model": "claude-front",
        "max_tokens": 1024,
        "system": "You are terse.",
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "What is in this picture, and what's the weather in Paris?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
            ]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "A cat. Checking the weather."},
                {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Paris", "days": 2}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01A", "content": "18C and sunny"},
                {"type": "text", "text": "Thanks!"}
            ]},
            {"role": "assistant", "content": "You're welcome."},
            {"role": "user", "content": "Bye"}
        ],
        "tools": [{
            "name": "get_weather",
            "description": "Current weather for a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city"]}
        }],
        "tool_choice": {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": true},
        "stop_sequences": ["END", "STOP"],
        "temperature": 0.5,
        "top_p": 0.9,
        "top_k": 40,
        "metadata": {"user_id": "user-123"},
        "stream": true
    })
}

#[test]
fn anthropic_request_to_pivot_maps_every_field() {
    let r = anthropic::request_to_pivot(&obj(anthropic_request())).unwrap();
    assert_eq!(r.model, "claude-front");
    assert!(r.stream);
    assert_eq!(r.max_tokens, Some(1024));
    let b = Value::Object(r.body);
    assert_eq!(b["max_tokens"], 1024);
    assert_eq!(b["stream"], true);
    assert_eq!(b["stream_options"], json!({"include_usage": true}));
    assert_eq!(b["stop"], json!(["END", "STOP"]));
    assert_eq!(b["temperature"], 0.5);
    assert_eq!(b["top_p"], 0.9);
    assert_eq!(b["top_k"], 40);
    assert_eq!(b["user"], "user-123");
    assert_eq!(b["tool_choice"], json!({"type": "function", "function": {"name": "get_weather"}}));
    assert_eq!(b["parallel_tool_calls"], false);
    assert_eq!(b["tools"][0]["type"], "function");
    assert_eq!(b["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(b["tools"][0]["function"]["parameters"]["required"], json!(["city"]));
    let m = b["messages"].as_array().unwrap();
    let roles: Vec<&str> = m.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["system", "user", "assistant", "tool", "user", "assistant", "user"]);
    assert_eq!(m[0]["content"], "You are terse.");
    assert_eq!(
        m[1]["content"][1],
        json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}})
    );
    assert_eq!(m[2]["content"], "A cat. Checking the weather.");
    let call = &m[2]["tool_calls"][0];
    assert_eq!(call["id"], "toolu_01A");
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value = serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"city": "Paris", "days": 2}));
    assert_eq!(m[3], json!({"role": "tool", "tool_call_id": "toolu_01A", "content": "18C and sunny"}));
    assert_eq!(m[4]["content"], json!([{"type": "text", "text": "Thanks!"}]));
}

#[test]
fn anthropic_round_trip_through_the_pivot() {
    let original = anthropic_request();
    let r = anthropic::request_to_pivot(&obj(original.clone())).unwrap();
    let back = anthropic::request_from_pivot(&r.body, "claude-front", 4096).unwrap();
    assert_eq!(back, original);
}

#[test]
fn anthropic_choices_and_shapes() {
    let base = |extra: Value| {
        let mut v = json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
            "tools": [{"name": "f", "input_schema": {"type": "object"}}]});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        Value::Object(anthropic::request_to_pivot(&obj(v)).unwrap().body)
    };
    assert_eq!(base(json!({"tool_choice": {"type": "auto"}}))["tool_choice"], "auto");
    assert_eq!(base(json!({"tool_choice": {"type": "any"}}))["tool_choice"], "required");
    assert_eq!(base(json!({"tool_choice": {"type": "none"}}))["tool_choice"], "none");
    let b = base(json!({"system": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}));
    assert_eq!(b["messages"][0]["content"], json!([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]));
    let b = base(json!({"messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "url", "url": "https://x/cat.jpg"}},
        {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "r1"}, {"type": "text", "text": "r2"}]}
    ]}, {"role": "assistant", "content": [{"type": "thinking", "thinking": "hmm", "signature": "s"}, {"type": "text", "text": "ok"}]}]}));
    let m = b["messages"].as_array().unwrap();
    assert_eq!(m[0]["role"], "tool");
    assert_eq!(m[0]["content"], json!([{"type": "text", "text": "r1"}, {"type": "text", "text": "r2"}]));
    assert_eq!(m[1]["content"], json!([{"type": "image_url", "image_url": {"url": "https://x/cat.jpg"}}]));
    assert_eq!(m[2], json!({"role": "assistant", "content": "ok"}), "thinking blocks are dropped");
    // no stream -> no stream fields
    assert!(b.get("stream").is_none() && b.get("stream_options").is_none());
}

#[test]
fn pivot_to_anthropic_from_a_plain_openai_request() {
    let pivot = obj(json!({
        "model": "gpt-x",
        "messages": [
            {"role": "system", "content": "sys"},
            {"role": "developer", "content": "dev"},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}},
                {"id": "call_2", "type": "function", "function": {"name": "g", "arguments": ""}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "one"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "two"}]}
        ],
        "max_completion_tokens": 77,
        "stop": "X",
        "temperature": 1.7,
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "tool_choice": "required",
        "parallel_tool_calls": false,
        "n": 1,
        "stream": true
    }));
    let a = anthropic::request_from_pivot(&pivot, "claude-up", 4096).unwrap();
    assert_eq!(a["model"], "claude-up");
    assert_eq!(a["max_tokens"], 77);
    assert_eq!(a["system"], json!([{"type": "text", "text": "sys"}, {"type": "text", "text": "dev"}]));
    assert_eq!(a["stop_sequences"], json!(["X"]));
    assert_eq!(a["temperature"], 1.0, "clamped to Anthropic's range");
    assert_eq!(a["tool_choice"], json!({"type": "any", "disable_parallel_tool_use": true}));
    assert_eq!(a["tools"][0]["input_schema"], json!({"type": "object", "properties": {}}));
    assert_eq!(a["stream"], true);
    let m = a["messages"].as_array().unwrap();
    assert_eq!(m.len(), 3);
    assert_eq!(m[1]["content"][1], json!({"type": "tool_use", "id": "call_2", "name": "g", "input": {}}));
    assert_eq!(
        m[2]["content"],
        json!([
            {"type": "tool_result", "tool_use_id": "call_1", "content": "one"},
            {"type": "tool_result", "tool_use_id": "call_2", "content": [{"type": "text", "text": "two"}]}
        ]),
        "consecutive tool results share one user message"
    );
    // default max tokens
    let p = obj(json!({"messages": [{"role": "user", "content": "x"}]}));
    assert_eq!(anthropic::request_from_pivot(&p, "c", 333).unwrap()["max_tokens"], 333);
    assert_eq!(anthropic::upstream_path("/v1"), "/v1/messages");
}

#[test]
fn anthropic_validation_errors() {
    let e = anthropic::request_to_pivot(&obj(json!({"model": "m", "messages": [{"role": "user", "content": "x"}]})))
        .unwrap_err();
    assert_eq!((e.code, e.param.as_deref()), (Code::MissingField, Some("max_tokens")));
    let cases = [
        (json!({"model": "m", "max_tokens": 1, "messages": "hi"}), "messages"),
        (
            json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": {"x": 1}}]}),
            "messages[2].content",
        ),
        (
            json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "base64", "media_type": 3, "data": "x"}}]}]}),
            "messages[0].content[0].source.media_type",
        ),
        (
            json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}], "stop_sequences": "END"}),
            "stop_sequences",
        ),
        (
            json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}], "tools": [{"name": "f", "input_schema": {}}], "tool_choice": {"type": "sometimes"}}),
            "tool_choice.type",
        ),
        (
            json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}], "metadata": {"user_id": 5}}),
            "metadata.user_id",
        ),
        (
            json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}], "stream": "yes"}),
            "stream",
        ),
        (json!({"model": "m", "max_tokens": 1.5, "messages": [{"role": "user", "content": "x"}]}), "max_tokens"),
    ];
    for (body, param) in cases {
        let e = anthropic::request_to_pivot(&obj(body.clone())).unwrap_err();
        assert_eq!((e.code, e.param.as_deref()), (Code::BadRequest, Some(param)), "{body}");
    }
    let e = anthropic::request_to_pivot(&obj(
        json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [{"type": "tool_result"}]}]}),
    ))
    .unwrap_err();
    assert_eq!((e.code, e.param.as_deref()), (Code::MissingField, Some("messages[0].content[0].tool_use_id")));
}

fn gemini_request() -> Value {
    json!({
        "systemInstruction": {"parts": [{"text": "You are terse."}]},
        "contents": [
            {"role": "user", "parts": [
                {"text": "What's in the picture and the weather in Paris?"},
                {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AAQ"}}
            ]},
            {"role": "model", "parts": [
                {"text": "A cat."},
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "sig-1"},
                {"functionCall": {"name": "get_weather", "args": {"city": "Lyon"}}}
            ]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"temp": 18}}},
                {"functionResponse": {"name": "get_weather", "response": {"temp": 21}}},
                {"text": "Thanks"}
            ]}
        ],
        "tools": [{"functionDeclarations": [{
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
        }]}],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}},
        "generationConfig": {
            "temperature": 0.4,
            "topP": 0.8,
            "topK": 20,
            "maxOutputTokens": 256,
            "stopSequences": ["END"],
            "candidateCount": 1,
            "responseMimeType": "application/json"
        }
    })
}

#[test]
fn gemini_request_to_pivot_maps_every_field() {
    let r = gemini::request_to_pivot(&obj(gemini_request()), "gemini-front", true).unwrap();
    assert_eq!((r.model.as_str(), r.stream, r.max_tokens), ("gemini-front", true, Some(256)));
    let b = Value::Object(r.body);
    assert_eq!(b["model"], "gemini-front");
    assert_eq!(b["max_tokens"], 256);
    assert_eq!(b["stop"], json!(["END"]));
    assert_eq!(b["temperature"], 0.4);
    assert_eq!(b["top_p"], 0.8);
    assert_eq!(b["top_k"], 20);
    assert_eq!(b["n"], 1);
    assert_eq!(b["response_format"], json!({"type": "json_object"}));
    assert_eq!(b["tool_choice"], json!({"type": "function", "function": {"name": "get_weather"}}));
    assert_eq!(b["stream_options"], json!({"include_usage": true}));
    assert_eq!(b["tools"][0]["function"]["parameters"]["properties"]["city"]["type"], "string");
    let m = b["messages"].as_array().unwrap();
    let roles: Vec<&str> = m.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["system", "user", "assistant", "tool", "tool", "user"]);
    assert_eq!(m[1]["content"][1]["image_url"]["url"], "data:image/jpeg;base64,/9j/4AAQ");
    let calls = m[2]["tool_calls"].as_array().unwrap();
    assert_eq!(calls[0]["id"], "call_0");
    assert_eq!(calls[1]["id"], "call_1");
    assert_eq!(calls[0]["extra_content"]["google"]["thought_signature"], "sig-1");
    // responses answer the calls of the same name in order
    assert_eq!(m[3]["tool_call_id"], "call_0");
    assert_eq!(serde_json::from_str::<Value>(m[3]["content"].as_str().unwrap()).unwrap(), json!({"temp": 18}));
    assert_eq!(m[4]["tool_call_id"], "call_1");
    assert_eq!(m[5]["content"], json!([{"type": "text", "text": "Thanks"}]));
}

#[test]
fn gemini_round_trip_through_the_pivot() {
    let original = gemini_request();
    let r = gemini::request_to_pivot(&obj(original.clone()), "gemini-front", false).unwrap();
    let back = gemini::request_from_pivot(&r.body, "gemini-up").unwrap();
    assert_eq!(back, original);
}

#[test]
fn gemini_modes_and_upper_case_schemas() {
    let base = |cfg: Value| {
        let v = json!({"contents": [{"parts": [{"text": "x"}]}],
            "tools": [{"functionDeclarations": [{"name": "f", "parameters": {"type": "OBJECT", "properties": {"a": {"type": "STRING"}}}}]}],
            "toolConfig": {"functionCallingConfig": cfg}});
        Value::Object(gemini::request_to_pivot(&obj(v), "g", false).unwrap().body)
    };
    assert_eq!(base(json!({"mode": "AUTO"}))["tool_choice"], "auto");
    assert_eq!(base(json!({"mode": "ANY"}))["tool_choice"], "required");
    assert_eq!(base(json!({"mode": "NONE"}))["tool_choice"], "none");
    let b = base(json!({"mode": "ANY", "allowedFunctionNames": ["f", "g"]}));
    assert_eq!(b["tool_choice"], "required");
    assert_eq!(
        b["tools"][0]["function"]["parameters"],
        json!({"type": "object", "properties": {"a": {"type": "string"}}})
    );
}

#[test]
fn pivot_to_gemini_from_a_plain_openai_request() {
    let pivot = obj(json!({
        "model": "gpt-x",
        "messages": [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": [{"type": "text", "text": "see"}, {"type": "image_url", "image_url": {"url": "https://x/a.png"}}]},
            {"role": "assistant", "content": "", "tool_calls": [{"id": "abc", "type": "function", "function": {"name": "f", "arguments": "{\"q\":1}"}}]},
            {"role": "tool", "tool_call_id": "abc", "content": "plain text result"}
        ],
        "max_tokens": 50,
        "stop": "Z",
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object", "additionalProperties": false, "properties": {"q": {"type": "integer"}}}}}],
        "tool_choice": "auto",
        "user": "u1"
    }));
    let g = gemini::request_from_pivot(&pivot, "gemini-up").unwrap();
    assert!(g.get("model").is_none(), "the model goes in the URL");
    assert_eq!(g["systemInstruction"], json!({"parts": [{"text": "sys"}]}));
    let c = g["contents"].as_array().unwrap();
    assert_eq!(c[0]["parts"][1], json!({"fileData": {"mimeType": "image/png", "fileUri": "https://x/a.png"}}));
    assert_eq!(c[1], json!({"role": "model", "parts": [{"functionCall": {"name": "f", "args": {"q": 1}}}]}));
    assert_eq!(
        c[2],
        json!({"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"content": "plain text result"}}}]})
    );
    assert_eq!(g["generationConfig"]["maxOutputTokens"], 50);
    assert_eq!(g["generationConfig"]["stopSequences"], json!(["Z"]));
    assert_eq!(g["generationConfig"]["responseMimeType"], "application/json");
    assert_eq!(g["generationConfig"]["responseJsonSchema"], json!({"type": "object"}));
    assert_eq!(
        g["tools"][0]["functionDeclarations"][0]["parameters"],
        json!({"type": "object", "properties": {"q": {"type": "integer"}}})
    );
    assert_eq!(g["toolConfig"], json!({"functionCallingConfig": {"mode": "AUTO"}}));
    // an unknown tool_call_id cannot be named
    let bad = obj(json!({"messages": [{"role": "tool", "tool_call_id": "nope", "content": "x"}]}));
    let e = gemini::request_from_pivot(&bad, "g").unwrap_err();
    assert_eq!(e.param.as_deref(), Some("messages[0].tool_call_id"));
}

#[test]
fn openai_upstreams_never_get_top_k() {
    // Anthropic and Gemini clients may send top_k; the pivot keeps it for Anthropic and Gemini
    // upstreams, but the real OpenAI API refuses it ("Unrecognized request argument supplied").
    use tollgate_core::dialect::Dialect;
    use tollgate_core::translate::upstream_request;
    let a = anthropic::request_to_pivot(&obj(anthropic_request())).unwrap();
    assert_eq!(a.body["top_k"], 40);
    let g = gemini::request_to_pivot(&obj(gemini_request()), "g", false).unwrap();
    assert!(g.body.contains_key("top_k"));
    for (front, pivot) in [(Dialect::Anthropic, &a), (Dialect::Gemini, &g)] {
        let (body, path) = upstream_request(front, Dialect::OpenAi, pivot, true, "up", "/v1", 4096).unwrap();
        let v: Value = serde_json::from_slice(&body.unwrap()).unwrap();
        assert_eq!(path, "/v1/chat/completions");
        assert!(v.get("top_k").is_none(), "{front:?}: {v}");
        assert_eq!(v["model"], "up");
        assert_eq!(v["temperature"], pivot.body["temperature"]);
        // The other upstreams still get it, in their own spelling.
        let (body, _) = upstream_request(front, Dialect::Anthropic, pivot, true, "up", "/v1", 4096).unwrap();
        let v: Value = serde_json::from_slice(&body.unwrap()).unwrap();
        assert_eq!(v["top_k"], pivot.body["top_k"]);
        let (body, _) = upstream_request(front, Dialect::Gemini, pivot, true, "up", "/v1beta", 4096).unwrap();
        let v: Value = serde_json::from_slice(&body.unwrap()).unwrap();
        assert_eq!(v["generationConfig"]["topK"], pivot.body["top_k"]);
    }
}

#[test]
fn cross_dialect_requests() {
    // Anthropic client -> Gemini upstream: tool results find their function names.
    let r = anthropic::request_to_pivot(&obj(anthropic_request())).unwrap();
    let g = gemini::request_from_pivot(&r.body, "g").unwrap();
    let c = g["contents"].as_array().unwrap();
    assert_eq!(
        c[1]["parts"][1],
        json!({"functionCall": {"name": "get_weather", "args": {"city": "Paris", "days": 2}}})
    );
    assert_eq!(
        c[2]["parts"][0]["functionResponse"],
        json!({"name": "get_weather", "response": {"content": "18C and sunny"}})
    );
    assert_eq!(c[2]["parts"][1], json!({"text": "Thanks!"}));
    assert_eq!(g["generationConfig"]["maxOutputTokens"], 1024);
    // Gemini client -> Anthropic upstream: minted ids pair calls and results.
    let r = gemini::request_to_pivot(&obj(gemini_request()), "g", false).unwrap();
    let a = anthropic::request_from_pivot(&r.body, "c", 4096).unwrap();
    let m = a["messages"].as_array().unwrap();
    assert_eq!(m[1]["content"][1]["id"], "call_0");
    assert_eq!(m[2]["content"][0]["tool_use_id"], "call_0");
    assert_eq!(m[2]["content"][1]["tool_use_id"], "call_1");
    assert_eq!(a["max_tokens"], 256);
    assert_eq!(a["tool_choice"], json!({"type": "tool", "name": "get_weather"}));
}

#[test]
fn gemini_validation_errors() {
    let e = gemini::request_to_pivot(&obj(json!({"generationConfig": {}})), "g", false).unwrap_err();
    assert_eq!((e.code, e.param.as_deref()), (Code::MissingField, Some("contents")));
    let cases = [
        (json!({"contents": "hi"}), "contents"),
        (json!({"contents": [{"role": "user", "parts": "hi"}]}), "contents[0].parts"),
        (
            json!({"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"temperature": "warm"}}),
            "generationConfig.temperature",
        ),
        (
            json!({"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"stopSequences": [1]}}),
            "generationConfig.stopSequences[0]",
        ),
        (json!({"contents": [{"parts": [{"text": "x"}]}], "tools": [{"googleSearch": {}}]}), "tools[0]"),
        (json!({"contents": [{"parts": [{"inlineData": {"data": "x"}}]}]}), "contents[0].parts[0].inlineData.mimeType"),
    ];
    for (body, param) in cases {
        let e = gemini::request_to_pivot(&obj(body.clone()), "g", false).unwrap_err();
        let want = if param.ends_with("mimeType") { Code::MissingField } else { Code::BadRequest };
        assert_eq!((e.code, e.param.as_deref()), (want, Some(param)), "{body}");
    }
}
