//! What real clients read at the edges of a translated exchange: the prompt size announced at
//! the start of an Anthropic stream, and the creation time of OpenAI objects translated from
//! other dialects.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use serde_json::Value;
use tollgate_core::dialect::Dialect;
use tollgate_core::sse::Framer;
use tollgate_core::translate::{self, StreamPipe};

const ANTHROPIC_SHORT: &[u8] = include_bytes!("fixtures/anthropic_short.sse");
const OPENAI_SHORT: &[u8] = include_bytes!("fixtures/openai_short.sse");
const NOW: u64 = 1_700_000_000;

fn pipe(front: Dialect, upstream: Dialect) -> StreamPipe {
    StreamPipe::priced_at(front, upstream, "client-model", "up-model", true, None, NOW)
}

fn run(mut p: StreamPipe, bytes: &[u8]) -> String {
    let mut framer = Framer::default();
    let mut events = Vec::new();
    framer.push(bytes, &mut events).unwrap();
    framer.finish(&mut events);
    let mut out = Vec::new();
    for ev in &events {
        p.on_event(ev, &mut out);
    }
    p.finish(&mut out);
    String::from_utf8(out).unwrap()
}

/// The JSON data of every event in an SSE text (`[DONE]` left out).
fn datas(sse: &str) -> Vec<Value> {
    sse.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

fn message_start_usage(sse: &str) -> Value {
    let starts: Vec<Value> = datas(sse).into_iter().filter(|d| d["type"] == "message_start").collect();
    assert_eq!(starts.len(), 1, "{sse}");
    starts[0]["message"]["usage"].clone()
}

#[test]
fn message_start_carries_the_anthropic_upstreams_input_tokens() {
    let out = run(pipe(Dialect::Anthropic, Dialect::Anthropic).with_prompt_estimate(42), ANTHROPIC_SHORT);
    let u = message_start_usage(&out);
    assert_eq!(u["input_tokens"], 5, "{out}");
    assert_eq!(u["output_tokens"], 0);
}

#[test]
fn message_start_carries_the_estimate_when_the_upstream_says_nothing_yet() {
    let out = run(pipe(Dialect::Anthropic, Dialect::OpenAi).with_prompt_estimate(42), OPENAI_SHORT);
    let u = message_start_usage(&out);
    assert_eq!(u["input_tokens"], 42, "{out}");
    assert_eq!(u["cache_read_input_tokens"], 0);
}

#[test]
fn openai_chunks_from_an_anthropic_upstream_carry_the_time() {
    let out = run(pipe(Dialect::OpenAi, Dialect::Anthropic), ANTHROPIC_SHORT);
    let chunks = datas(&out);
    assert!(!chunks.is_empty());
    for c in &chunks {
        assert_eq!(c["created"], NOW, "{c}");
    }
}

#[test]
fn an_openai_completion_from_a_gemini_upstream_carries_the_time() {
    let body = br#"{"candidates":[{"content":{"parts":[{"text":"hi"}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":1,"totalTokenCount":6}}"#;
    let (out, _) = translate::response_at(Dialect::OpenAi, Dialect::Gemini, body, "m", "g", None, NOW).unwrap();
    let v: Value = serde_json::from_slice(&out.unwrap()).unwrap();
    assert_eq!(v["created"], NOW);
    assert_eq!(v["object"], "chat.completion");
}

#[test]
fn an_openai_upstreams_own_time_is_kept() {
    let body = br#"{"id":"x","object":"chat.completion","created":17,"model":"u","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}"#;
    let (out, _) = translate::response_at(Dialect::OpenAi, Dialect::OpenAi, body, "m", "u", None, NOW).unwrap();
    let v: Value = serde_json::from_slice(&out.unwrap()).unwrap();
    assert_eq!(v["created"], 17);
}

#[test]
fn a_stop_sequence_that_ended_the_turn_reaches_anthropic_clients() {
    // Streamed: Anthropic upstream -> Anthropic client.
    let stream = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"c\",\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n\
event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"one two \"}}\n\n\
event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"stop_sequence\",\"stop_sequence\":\"three\"},\"usage\":{\"output_tokens\":2}}\n\n\
event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    let out = run(pipe(Dialect::Anthropic, Dialect::Anthropic), stream.as_bytes());
    let deltas: Vec<Value> = datas(&out).into_iter().filter(|d| d["type"] == "message_delta").collect();
    assert_eq!(deltas.len(), 1, "{out}");
    assert_eq!(deltas[0]["delta"]["stop_reason"], "stop_sequence");
    assert_eq!(deltas[0]["delta"]["stop_sequence"], "three");
    // The same stream ended by `end_turn`: no stop sequence.
    let out = run(
        pipe(Dialect::Anthropic, Dialect::Anthropic),
        stream
            .replace("\"stop_sequence\",\"stop_sequence\":\"three\"", "\"end_turn\",\"stop_sequence\":null")
            .as_bytes(),
    );
    let deltas: Vec<Value> = datas(&out).into_iter().filter(|d| d["type"] == "message_delta").collect();
    assert_eq!(deltas[0]["delta"]["stop_reason"], "end_turn");
    assert_eq!(deltas[0]["delta"]["stop_sequence"], Value::Null);

    // Not streamed.
    let body = br#"{"id":"msg_1","type":"message","role":"assistant","model":"c","content":[{"type":"text","text":"one two "}],"stop_reason":"stop_sequence","stop_sequence":"three","usage":{"input_tokens":5,"output_tokens":2}}"#;
    let (out, _) = translate::response_at(Dialect::Anthropic, Dialect::Anthropic, body, "m", "c", None, NOW).unwrap();
    let v: Value = serde_json::from_slice(&out.unwrap()).unwrap();
    assert_eq!(v["stop_reason"], "stop_sequence");
    assert_eq!(v["stop_sequence"], "three");
    // From a vLLM-style OpenAI upstream that names the matched stop string.
    let body = br#"{"id":"x","object":"chat.completion","created":17,"model":"u","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop","stop_reason":"END"}]}"#;
    let (out, _) = translate::response_at(Dialect::Anthropic, Dialect::OpenAi, body, "m", "u", None, NOW).unwrap();
    let v: Value = serde_json::from_slice(&out.unwrap()).unwrap();
    assert_eq!(v["stop_reason"], "stop_sequence");
    assert_eq!(v["stop_sequence"], "END");
}

/// An Anthropic upstream's stream whose prompt was 5 new tokens, 7 written to its cache and 3
/// read from it.
const ANTHROPIC_CACHE_WRITE: &[u8] = b"event: message_start\n\
data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"c\",\"usage\":{\"input_tokens\":5,\"cache_creation_input_tokens\":7,\"cache_read_input_tokens\":3,\"output_tokens\":1}}}\n\n\
event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n\
event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":2}}\n\n\
event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

#[test]
fn cache_writes_reach_anthropic_clients_and_count_as_prompt_tokens_elsewhere() {
    // Anthropic to Anthropic: `message_start` and the final `message_delta` say it as Anthropic did.
    let out = run(pipe(Dialect::Anthropic, Dialect::Anthropic).with_prompt_estimate(42), ANTHROPIC_CACHE_WRITE);
    let u = message_start_usage(&out);
    assert_eq!(
        (&u["input_tokens"], &u["cache_creation_input_tokens"], &u["cache_read_input_tokens"]),
        (&Value::from(5), &Value::from(7), &Value::from(3)),
        "{out}"
    );
    let deltas: Vec<Value> = datas(&out).into_iter().filter(|d| d["type"] == "message_delta").collect();
    assert_eq!(deltas.len(), 1, "{out}");
    let u = &deltas[0]["usage"];
    assert_eq!(
        (&u["input_tokens"], &u["cache_creation_input_tokens"], &u["cache_read_input_tokens"], &u["output_tokens"]),
        (&Value::from(5), &Value::from(7), &Value::from(3), &Value::from(2)),
        "{out}"
    );
    // To an OpenAI client: 15 prompt tokens, 3 of them cached, 7 written (an extension field).
    let out = run(pipe(Dialect::OpenAi, Dialect::Anthropic), ANTHROPIC_CACHE_WRITE);
    let usage: Vec<Value> = datas(&out).into_iter().filter_map(|d| d.get("usage").cloned()).collect();
    assert_eq!(usage.len(), 1, "{out}");
    assert_eq!(usage[0]["prompt_tokens"], 15);
    assert_eq!(usage[0]["prompt_tokens_details"], serde_json::json!({"cached_tokens": 3, "cache_creation_tokens": 7}));
    // Not streamed, Anthropic to Anthropic.
    let body =
        br#"{"id":"msg_1","type":"message","role":"assistant","model":"c","content":[{"type":"text","text":"Hi"}],
        "stop_reason":"end_turn","stop_sequence":null,
        "usage":{"input_tokens":5,"cache_creation_input_tokens":7,"cache_read_input_tokens":3,"output_tokens":2}}"#;
    let (out, u) = translate::response(Dialect::Anthropic, Dialect::Anthropic, body, "c", "c").unwrap();
    assert_eq!(u.map(|u| (u.prompt_tokens, u.cached_tokens, u.cache_creation_tokens)), Some((15, 3, 7)));
    let v: Value = serde_json::from_slice(&out.unwrap()).unwrap();
    assert_eq!(
        v["usage"],
        serde_json::json!({"input_tokens": 5, "cache_creation_input_tokens": 7, "cache_read_input_tokens": 3, "output_tokens": 2})
    );
}
