//! Non-streamed response translation, both directions, with usage and finish reasons.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use serde_json::{json, Value};
use tollgate_core::dialect::{anthropic, gemini};
use tollgate_core::usage::Usage;

#[test]
fn anthropic_response_to_pivot() {
    let v = json!({
        "id": "msg_01H8fkx2N3p4q5r6s7t8u9v0wx",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-20250514",
        "content": [
            {"type": "thinking", "thinking": "Let me think.", "signature": "sig"},
            {"type": "text", "text": "I'll check."},
            {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}}
        ],
        "stop_reason": "tool_use",
        "stop_sequence": null,
        "usage": {"input_tokens": 10, "output_tokens": 30, "cache_creation_input_tokens": 5,
                  "cache_read_input_tokens": 20, "credits_consumed": 12}
    });
    let (c, usage) = anthropic::response_to_pivot(&v).unwrap();
    let want = Usage {
        prompt_tokens: 35,
        completion_tokens: 30,
        cached_tokens: 20,
        reasoning_tokens: 0,
        cache_creation_tokens: 5,
    };
    assert_eq!(usage, Some(want));
    assert_eq!(c["object"], "chat.completion");
    assert_eq!(c["model"], "claude-sonnet-4-20250514");
    assert_eq!(c["id"], "msg_01H8fkx2N3p4q5r6s7t8u9v0wx");
    let ch = &c["choices"][0];
    assert_eq!(ch["finish_reason"], "tool_calls");
    assert_eq!(ch["message"]["role"], "assistant");
    assert_eq!(ch["message"]["content"], "I'll check.");
    assert_eq!(ch["message"]["reasoning_content"], "Let me think.");
    let tc = &ch["message"]["tool_calls"][0];
    assert_eq!(tc["id"], "toolu_01");
    assert_eq!(tc["type"], "function");
    assert_eq!(tc["function"]["name"], "get_weather");
    assert_eq!(tc["function"]["arguments"], "{\"city\":\"Paris\"}");
    assert_eq!(
        c["usage"],
        json!({"prompt_tokens": 35, "completion_tokens": 30, "total_tokens": 65,
               "prompt_tokens_details": {"cached_tokens": 20, "cache_creation_tokens": 5},
               "completion_tokens_details": {"reasoning_tokens": 0}, "credits_consumed": 12})
    );
    assert_eq!(tollgate_core::usage::from_openai(&c), Some(want));

    let err = json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}});
    assert_eq!(anthropic::response_to_pivot(&err).unwrap_err(), "Overloaded");
    assert!(anthropic::response_to_pivot(&json!([1])).is_err());
}

fn openai_completion(finish: &str, tool_args: &str) -> Value {
    json!({
        "id": "chatcmpl-abc123",
        "object": "chat.completion",
        "created": 1709150000,
        "model": "gpt-4o",
        "choices": [{
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "The capital of France is Paris.",
                "tool_calls": [{"id": "call_9", "type": "function", "function": {"name": "lookup", "arguments": tool_args}}]
            },
            "finish_reason": finish
        }],
        "usage": {"prompt_tokens": 24, "completion_tokens": 10, "total_tokens": 34,
                  "prompt_tokens_details": {"cached_tokens": 4}, "completion_tokens_details": {"reasoning_tokens": 3}}
    })
}

#[test]
fn pivot_response_to_anthropic() {
    let a = anthropic::response_from_pivot(&openai_completion("tool_calls", "{\"q\":\"paris\"}"), "claude-front");
    assert_eq!(
        a,
        json!({
            "id": "msg_abc123",
            "type": "message",
            "role": "assistant",
            "model": "claude-front",
            "content": [
                {"type": "text", "text": "The capital of France is Paris."},
                {"type": "tool_use", "id": "call_9", "name": "lookup", "input": {"q": "paris"}}
            ],
            "stop_reason": "tool_use",
            "stop_sequence": null,
            "usage": {"input_tokens": 20, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 4, "output_tokens": 10}
        })
    );
    // unparseable or empty arguments become {}
    for args in ["", "{\"q\":", "null"] {
        let a = anthropic::response_from_pivot(&openai_completion("tool_calls", args), "c");
        assert_eq!(a["content"][1]["input"], json!({}), "{args:?}");
    }
    for (openai, anth) in [("stop", "end_turn"), ("length", "max_tokens"), ("content_filter", "refusal")] {
        let mut v = openai_completion(openai, "{}");
        v["choices"][0]["message"]["tool_calls"] = json!([]);
        assert_eq!(anthropic::response_from_pivot(&v, "c")["stop_reason"], anth);
    }
    // round trip: Anthropic -> pivot -> Anthropic keeps content, stop reason and usage
    let original = json!({
        "id": "msg_01", "type": "message", "role": "assistant", "model": "c",
        "content": [{"type": "text", "text": "Hi"}, {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": [1, 2]}}],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 7, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 2, "output_tokens": 9}
    });
    let (pivot, _) = anthropic::response_to_pivot(&original).unwrap();
    assert_eq!(anthropic::response_from_pivot(&pivot, "c"), original);
}

#[test]
fn gemini_response_to_pivot() {
    let v = json!({
        "candidates": [{
            "content": {"role": "model", "parts": [
                {"text": "thinking...", "thought": true},
                {"text": "Checking."},
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "sig"},
                {"functionCall": {"name": "get_time", "args": {}}}
            ]},
            "finishReason": "STOP",
            "index": 0
        }],
        "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5, "thoughtsTokenCount": 7,
                          "cachedContentTokenCount": 4, "totalTokenCount": 22},
        "modelVersion": "gemini-2.5-flash",
        "responseId": "resp-1"
    });
    let (c, usage) = gemini::response_to_pivot(&v).unwrap();
    assert_eq!(
        usage,
        Some(Usage {
            prompt_tokens: 10,
            completion_tokens: 12,
            cached_tokens: 4,
            reasoning_tokens: 7,
            cache_creation_tokens: 0
        })
    );
    assert_eq!(c["usage"]["total_tokens"], 22);
    assert_eq!(c["model"], "gemini-2.5-flash");
    assert_eq!(c["id"], "resp-1");
    let ch = &c["choices"][0];
    assert_eq!(ch["finish_reason"], "tool_calls", "STOP with function calls");
    assert_eq!(ch["message"]["content"], "Checking.");
    assert_eq!(ch["message"]["reasoning_content"], "thinking...");
    let calls = ch["message"]["tool_calls"].as_array().unwrap();
    assert_eq!(calls[0]["id"], "call_0");
    assert_eq!(calls[0]["function"]["arguments"], "{\"city\":\"Paris\"}");
    assert_eq!(calls[0]["extra_content"]["google"]["thought_signature"], "sig");
    assert_eq!(calls[1]["id"], "call_1");
    assert_eq!(calls[1]["function"]["name"], "get_time");

    for (reason, want) in [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("OTHER", "stop"),
    ] {
        let v = json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "x"}]}, "finishReason": reason, "index": 0}]});
        assert_eq!(gemini::response_to_pivot(&v).unwrap().0["choices"][0]["finish_reason"], want, "{reason}");
    }
    // a blocked prompt has no candidates
    let blocked = json!({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 3, "totalTokenCount": 3}});
    let (c, u) = gemini::response_to_pivot(&blocked).unwrap();
    assert_eq!(c["choices"][0]["finish_reason"], "content_filter");
    assert_eq!(u.unwrap().prompt_tokens, 3);
    let err = json!({"error": {"code": 400, "message": "API key not valid.", "status": "INVALID_ARGUMENT"}});
    assert_eq!(gemini::response_to_pivot(&err).unwrap_err(), "API key not valid.");
}

#[test]
fn pivot_response_to_gemini() {
    let g = gemini::response_from_pivot(&openai_completion("tool_calls", "{\"q\":\"paris\"}"), "gemini-front");
    assert_eq!(
        g,
        json!({
            "candidates": [{
                "content": {"role": "model", "parts": [
                    {"text": "The capital of France is Paris."},
                    {"functionCall": {"name": "lookup", "args": {"q": "paris"}}}
                ]},
                "finishReason": "STOP",
                "index": 0
            }],
            "usageMetadata": {"promptTokenCount": 24, "candidatesTokenCount": 7, "totalTokenCount": 34,
                              "cachedContentTokenCount": 4, "thoughtsTokenCount": 3},
            "modelVersion": "gemini-front",
            "responseId": "abc123"
        })
    );
    for (openai, want) in [("stop", "STOP"), ("length", "MAX_TOKENS"), ("content_filter", "SAFETY")] {
        let g = gemini::response_from_pivot(&openai_completion(openai, ""), "g");
        assert_eq!(g["candidates"][0]["finishReason"], want);
        assert_eq!(g["candidates"][0]["content"]["parts"][1]["functionCall"]["args"], json!({}));
    }
    // round trip: Gemini -> pivot -> Gemini
    let original = json!({
        "candidates": [{"content": {"role": "model", "parts": [{"text": "Hi"}, {"functionCall": {"name": "f", "args": {"a": 1}}, "thoughtSignature": "s"}]},
                        "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 2, "totalTokenCount": 7},
        "modelVersion": "g",
        "responseId": "r1"
    });
    let (pivot, _) = gemini::response_to_pivot(&original).unwrap();
    assert_eq!(gemini::response_from_pivot(&pivot, "g"), original);
}

#[test]
fn cross_dialect_responses() {
    // Gemini upstream -> Anthropic client
    let v = json!({"candidates": [{"content": {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {"x": 1}}}]},
                   "finishReason": "STOP", "index": 0}],
                   "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 4, "thoughtsTokenCount": 6, "totalTokenCount": 20}});
    let (pivot, _) = gemini::response_to_pivot(&v).unwrap();
    let a = anthropic::response_from_pivot(&pivot, "c");
    assert_eq!(a["stop_reason"], "tool_use");
    assert_eq!(a["content"], json!([{"type": "tool_use", "id": "call_0", "name": "f", "input": {"x": 1}}]));
    assert_eq!(a["usage"]["output_tokens"], 10);
    assert_eq!(a["usage"]["input_tokens"], 10);
    // Anthropic upstream -> Gemini client
    let v = json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "c",
                   "content": [{"type": "text", "text": "cut"}], "stop_reason": "max_tokens",
                   "usage": {"input_tokens": 3, "output_tokens": 8}});
    let (pivot, _) = anthropic::response_to_pivot(&v).unwrap();
    let g = gemini::response_from_pivot(&pivot, "g");
    assert_eq!(g["candidates"][0]["finishReason"], "MAX_TOKENS");
    assert_eq!(g["usageMetadata"]["totalTokenCount"], 11);
}
