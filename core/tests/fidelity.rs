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
