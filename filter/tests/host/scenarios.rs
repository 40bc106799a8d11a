//! The bench scenarios as whole exchanges through the fake host: requests in each front's shape,
//! responses in each upstream's shape (as the demo backend sends them).
#![allow(dead_code, clippy::unwrap_used, clippy::indexing_slicing)]

use super::host::{Envoy, KEY};

/// The demo backend's OpenAI stream of `n` content chunks, one SSE event per element.
pub fn openai_stream(n: usize) -> Vec<Vec<u8>> {
    let head = r#"{"id":"c2","object":"chat.completion.chunk","created":1,"model":"gpt-x","choices":["#;
    let mut v = vec![format!("data: {head}{{\"index\":0,\"delta\":{{\"role\":\"assistant\",\"content\":\"\"}},\"finish_reason\":null}}]}}\n\n")];
    for i in 0..n {
        v.push(format!(
            "data: {head}{{\"index\":0,\"delta\":{{\"content\":\"tok{i} \"}},\"finish_reason\":null}}]}}\n\n"
        ));
    }
    v.push(format!("data: {head}{{\"index\":0,\"delta\":{{}},\"finish_reason\":\"stop\"}}]}}\n\n"));
    v.push(format!(
        "data: {head}],\"usage\":{{\"prompt_tokens\":12,\"completion_tokens\":{n},\"total_tokens\":{}}}}}\n\n",
        n + 12
    ));
    v.push("data: [DONE]\n\n".to_string());
    v.into_iter().map(String::into_bytes).collect()
}

pub const OPENAI_REPLY: &str = r#"{"id":"c1","object":"chat.completion","created":1,"model":"gpt-x","choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}"#;
pub const ANTHROPIC_REPLY: &str = r#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-x","content":[{"type":"text","text":"hello"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":5}}"#;

/// A bench scenario: front, model, stream, and the number of content events of a stream.
#[derive(Clone, Copy, Debug)]
pub enum Scenario {
    OpenAiChat,
    OpenAiToAnthropic,
    AnthropicToOpenAi,
    OpenAiStream(usize),
    AnthropicStream(usize),
    GeminiToOpenAi,
    BadKey,
}

impl Scenario {
    pub fn name(self) -> String {
        match self {
            Scenario::OpenAiChat => "openai chat -> openai".into(),
            Scenario::OpenAiToAnthropic => "openai chat -> anthropic".into(),
            Scenario::AnthropicToOpenAi => "anthropic front -> openai".into(),
            Scenario::OpenAiStream(n) => format!("openai stream {n} events"),
            Scenario::AnthropicStream(n) => format!("anthropic stream {n} events"),
            Scenario::GeminiToOpenAi => "gemini front -> openai".into(),
            Scenario::BadKey => "bad key (401)".into(),
        }
    }
}

/// Runs one whole exchange of `scenario` on `envoy` and returns the client's status.
pub fn run(envoy: &mut Envoy, scenario: Scenario) -> u32 {
    let bearer = format!("Bearer {KEY}");
    let mut s = envoy.stream();
    let common = [
        ("content-type", "application/json"),
        ("user-agent", "bench"),
        ("accept", "application/json"),
        ("x-request-id", "r1"),
    ];
    let (path, model, stream, anthropic_front, key) = match scenario {
        Scenario::OpenAiChat => ("/v1/chat/completions", "gpt-x", false, false, bearer.as_str()),
        Scenario::OpenAiToAnthropic => ("/v1/chat/completions", "claude-x", false, false, bearer.as_str()),
        Scenario::AnthropicToOpenAi => ("/v1/messages", "gpt-x", false, true, KEY),
        Scenario::OpenAiStream(_) => ("/v1/chat/completions", "gpt-x", true, false, bearer.as_str()),
        Scenario::AnthropicStream(_) => ("/v1/messages", "gpt-x", true, true, KEY),
        Scenario::GeminiToOpenAi => ("/v1beta/models/gpt-x:generateContent", "gpt-x", false, false, KEY),
        Scenario::BadKey => ("/v1/chat/completions", "gpt-x", false, false, "Bearer sk-wrong"),
    };
    let mut headers: Vec<(&str, &str)> =
        vec![(":method", "POST"), (":path", path), (":authority", "gw"), (":scheme", "http")];
    headers.extend(common);
    match scenario {
        Scenario::GeminiToOpenAi => headers.push(("x-goog-api-key", key)),
        _ if anthropic_front => headers.extend([("x-api-key", key), ("anthropic-version", "2023-06-01")]),
        _ => headers.push(("authorization", key)),
    }
    s.request_headers(&headers, false);
    let body = match scenario {
        Scenario::GeminiToOpenAi => {
            r#"{"contents":[{"role":"user","parts":[{"text":"Say hello to the benchmark"}]}]}"#.to_string()
        }
        _ if anthropic_front => format!(
            r#"{{"model":"{model}","max_tokens":64,"stream":{stream},"messages":[{{"role":"user","content":"Say hello to the benchmark"}}]}}"#
        ),
        _ => format!(
            r#"{{"model":"{model}","max_tokens":64,"stream":{stream},"messages":[{{"role":"user","content":"Say hello to the benchmark"}}]}}"#
        ),
    };
    s.request_body(body.as_bytes(), true);
    if s.local_reply().is_none() {
        match scenario {
            Scenario::OpenAiStream(n) | Scenario::AnthropicStream(n) => {
                s.response_headers(
                    &[(":status", "200"), ("content-type", "text/event-stream"), ("date", "x"), ("server", "demo")],
                    false,
                );
                for ev in openai_stream(n) {
                    s.response_body(&ev, false);
                }
                s.response_body(b"", true);
            }
            _ => {
                let reply =
                    if matches!(scenario, Scenario::OpenAiToAnthropic) { ANTHROPIC_REPLY } else { OPENAI_REPLY };
                let len = reply.len().to_string();
                s.response_headers(
                    &[
                        (":status", "200"),
                        ("content-type", "application/json"),
                        ("content-length", &len),
                        ("date", "x"),
                        ("server", "demo"),
                    ],
                    false,
                );
                s.response_body(reply.as_bytes(), true);
            }
        }
    }
    s.finish();
    s.client_status()
}
