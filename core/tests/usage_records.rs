//! Usage and billing through the whole pure exchange, for every upstream dialect's stream and
//! every front: the record's tokens equal the upstream's final (cumulative, never summed) usage
//! when the stream completes; a stream cut at any event boundary (upstream closes early, or the
//! client goes away) still bills, marked estimated, with non-zero tokens.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use serde_json::Value;
use tollgate_core::config::Config;
use tollgate_core::exchange::{BodyAction, Env, Exchange, HeadAction, Outcome, RequestHead};
use tollgate_core::keys;
use tollgate_core::limits::MemoryStore;
use tollgate_core::usage::{self, Usage};

const FIXTURES: [(&str, &str, &[u8]); 6] = [
    ("openai", "openai_text", include_bytes!("fixtures/openai_text.sse")),
    ("openai", "openai_tool", include_bytes!("fixtures/openai_tool.sse")),
    ("anthropic", "anthropic_text", include_bytes!("fixtures/anthropic_text.sse")),
    ("anthropic", "anthropic_tool", include_bytes!("fixtures/anthropic_tool.sse")),
    ("gemini", "gemini_text", include_bytes!("fixtures/gemini_text.sse")),
    ("gemini", "gemini_tool", include_bytes!("fixtures/gemini_tool.sse")),
];

/// The final usage each fixture reports, as the pivot counts it.
fn expected(name: &str) -> Usage {
    let u = |p, c, cached, r| Usage {
        prompt_tokens: p,
        completion_tokens: c,
        cached_tokens: cached,
        reasoning_tokens: r,
        cache_creation_tokens: 0,
    };
    match name {
        "openai_text" => u(19, 10, 4, 0),
        "openai_tool" => u(82, 33, 0, 0),
        // input 25 + cache read 10; output from the cumulative message_delta (15), not 1 + 15
        "anthropic_text" => u(35, 15, 10, 0),
        "anthropic_tool" => u(472, 89, 0, 0),
        // the last cumulative usageMetadata: candidates 7 + thoughts 12, not a sum over chunks
        "gemini_text" => u(8, 19, 3, 12),
        "gemini_tool" => u(40, 30, 0, 0),
        other => panic!("no expectation for {other}"),
    }
}

fn cfg() -> Config {
    let h = keys::to_hex(&keys::sha256(b"sk-test"));
    let j = format!(
        r#"{{"clusters":[{{"name":"c_openai","dialect":"openai"}},{{"name":"c_anthropic","dialect":"anthropic"}},{{"name":"c_gemini","dialect":"gemini"}}],
        "models":[{{"id":"m-openai","type":"text","cluster":"c_openai","price":{{"prompt_per_1k":1,"completion_per_1k":2}}}},
                  {{"id":"m-anthropic","type":"text","cluster":"c_anthropic","price":{{"prompt_per_1k":1,"completion_per_1k":2}}}},
                  {{"id":"m-gemini","type":"text","cluster":"c_gemini","price":{{"prompt_per_1k":1,"completion_per_1k":2}}}}],
        "accounts":[{{"id":"a","rpm":1000000,"spend_cap":1000000}}],
        "keys":[{{"id":"k","sha256":"{h}","account":"a"}}]}}"#
    );
    Config::parse(j.as_bytes()).unwrap()
}

const PROMPT: &str = "Tell me about the weather in Paris today, please.";

/// A streamed request on `front` for the model of upstream dialect `up`.
fn request(front: &str, up: &str) -> (String, String, Option<String>) {
    let model = format!("m-{up}");
    match front {
        "openai" => (
            "/v1/chat/completions".into(),
            format!(r#"{{"model":"{model}","stream":true,"messages":[{{"role":"user","content":"{PROMPT}"}}]}}"#),
            Some("Bearer sk-test".into()),
        ),
        "anthropic" => (
            "/v1/messages".into(),
            format!(
                r#"{{"model":"{model}","max_tokens":100,"stream":true,"messages":[{{"role":"user","content":"{PROMPT}"}}]}}"#
            ),
            None,
        ),
        _ => (
            format!("/v1beta/models/{model}:streamGenerateContent?alt=sse"),
            format!(r#"{{"contents":[{{"role":"user","parts":[{{"text":"{PROMPT}"}}]}}]}}"#),
            None,
        ),
    }
}

/// Runs one exchange: the upstream sends `events` (SSE event texts), then closes (`closes`) or
/// the client disconnects (the body never ends). Returns the outcome and what the client got.
fn run(cfg: &Config, store: &MemoryStore, front: &str, up: &str, events: &[&str], closes: bool) -> (Outcome, Vec<u8>) {
    let (path, body, auth) = request(front, up);
    let env = Env { now_ms: 1_000_000, store };
    let mut ex = Exchange::new();
    let x_api_key = if front == "anthropic" { Some("sk-test") } else { None };
    let goog = if front == "gemini" { Some("sk-test") } else { None };
    let head = RequestHead {
        method: "POST",
        path: &path,
        authorization: auth.as_deref(),
        x_api_key,
        x_goog_api_key: goog,
        request_id: Some("rid-1"),
        ..Default::default()
    };
    assert!(matches!(ex.on_request_headers(cfg, &head, &env), HeadAction::ReadBody(_)));
    match ex.on_request_body(cfg, body.as_bytes(), &env) {
        BodyAction::Forward { .. } => {}
        BodyAction::Reply(r) => panic!("refused: {}", String::from_utf8_lossy(&r.body)),
        BodyAction::AskLimits => panic!("the local store never asks the limits service"),
    }
    ex.response_started(1_000_005);
    ex.on_response_headers(200, Some("text/event-stream"));
    let mut client = Vec::new();
    for (i, ev) in events.iter().enumerate() {
        let last = closes && i + 1 == events.len();
        let chunk = format!("{ev}\n\n");
        match ex.on_response_chunk(chunk.as_bytes(), last, 1 << 20) {
            // Passed through unchanged, as the glue lets it.
            tollgate_core::exchange::ChunkAction::Pass => client.extend_from_slice(chunk.as_bytes()),
            tollgate_core::exchange::ChunkAction::Replace(b) => client.extend_from_slice(&b),
            tollgate_core::exchange::ChunkAction::Buffer => {}
        }
    }
    if closes && events.is_empty() {
        if let tollgate_core::exchange::ChunkAction::Replace(b) = ex.on_response_chunk(b"", true, 1 << 20) {
            client.extend_from_slice(&b);
        }
    }
    let out = ex.on_done(cfg, &Env { now_ms: 1_000_020, store });
    (out, client)
}

fn events(raw: &[u8]) -> Vec<&str> {
    std::str::from_utf8(raw).unwrap().split("\n\n").map(str::trim).filter(|e| !e.is_empty()).collect()
}

fn record(o: &Outcome) -> Value {
    serde_json::from_slice(&o.record).unwrap()
}

#[test]
fn complete_streams_bill_the_upstream_usage_exactly_on_every_front() {
    let c = cfg();
    for (up, name, raw) in FIXTURES {
        for front in ["openai", "anthropic", "gemini"] {
            let store = MemoryStore::new();
            let (o, _) = run(&c, &store, front, up, &events(raw), true);
            let want = expected(name);
            assert_eq!(o.usage, want, "{name} to {front}");
            assert!(!o.estimated, "{name} to {front}");
            let r = record(&o);
            assert_eq!(r["prompt_tokens"], want.prompt_tokens, "{name} to {front}");
            assert_eq!(r["completion_tokens"], want.completion_tokens);
            assert_eq!(r["cached_tokens"], want.cached_tokens);
            assert_eq!(r["reasoning_tokens"], want.reasoning_tokens);
            assert_eq!(r["estimated"], false);
            assert_eq!(r["stream"], true);
            assert_eq!(r["front"], front);
            assert_eq!(r["upstream"], up);
            assert_eq!(r["cluster"], format!("c_{up}"));
            assert_eq!(r["client_request_id"], "rid-1"); // the record's own id is minted by the glue
            assert_eq!(r["key_id"], "k");
            assert_eq!(r["account_id"], "a");
            assert_eq!(r["status"], 200);
            assert_eq!(r["duration_ms"], 20);
            assert_eq!(r["ttfb_ms"], 5);
            let credits = (want.prompt_tokens as f64 + 2.0 * want.completion_tokens as f64) / 1000.0;
            assert!((r["credits"].as_f64().unwrap() - credits).abs() < 1e-9, "{r}");
            assert_eq!(o.micros, (credits * 1e6).round() as u64);
            let text = String::from_utf8_lossy(&o.record);
            assert!(!text.contains("sk-test"), "the key is never in a record");
            assert!(!text.contains("Paris"), "no prompt text unless the key opts in");
        }
    }
}

#[test]
fn streams_cut_at_every_event_boundary_bill_an_estimate() {
    let c = cfg();
    for (up, name, raw) in FIXTURES {
        let evs = events(raw);
        for front in ["openai", "anthropic", "gemini"] {
            for k in 0..evs.len() {
                for closes in [true, false] {
                    let store = MemoryStore::new();
                    let (o, _) = run(&c, &store, front, up, &evs[..k], closes);
                    let what = format!("{name} to {front}, first {k} events, upstream closes: {closes}");
                    let r = record(&o);
                    if o.estimated {
                        assert!(o.usage.prompt_tokens > 0, "{what}: {r}");
                        assert_eq!(r["estimated"], true, "{what}");
                        assert!(o.micros > 0, "{what}: an estimate is billed, never zero");
                    } else {
                        // Only a stream whose final usage already arrived is exact.
                        assert_eq!(o.usage, expected(name), "{what}");
                    }
                    assert_eq!(r["complete"], closes, "{what}");
                    // What the client got parses in its dialect's framing: whole events only.
                    let (_, client) = run(&c, &MemoryStore::new(), front, up, &evs[..k], closes);
                    let text = String::from_utf8(client).unwrap();
                    assert!(text.is_empty() || text.ends_with("\n\n") || text.ends_with("\r\n\r\n"), "{what}: {text}");
                }
            }
            // A stream cut before its last event is estimated (usage is final only at the end),
            // except where the final usage is already known.
            let store = MemoryStore::new();
            let (o, _) = run(&c, &store, front, up, &evs[..1], false);
            assert!(o.estimated, "{name} to {front}: one event then a disconnect");
        }
    }
}

#[test]
fn no_usage_at_all_is_estimated_from_the_text_that_passed() {
    let c = cfg();
    let evs = [
        r#"data: {"id":"x","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"content":"0123456789abcdefghij"},"finish_reason":null}]}"#,
        r#"data: {"id":"x","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
        "data: [DONE]",
    ];
    for front in ["openai", "anthropic", "gemini"] {
        let (o, _) = run(&c, &MemoryStore::new(), front, "openai", &evs, true);
        assert!(o.estimated, "{front}");
        // 20 bytes of text: 5 tokens
        assert_eq!(o.usage.completion_tokens, 5, "{front}");
        assert!(o.usage.prompt_tokens >= usage::tokens_from_bytes(PROMPT.len() as u64), "{front}: {:?}", o.usage);
    }
}

#[test]
fn anthropic_front_reports_credits_consumed_and_final_input_tokens() {
    let c = cfg();
    let (up, name, raw) = FIXTURES[0];
    let (o, client) = run(&c, &MemoryStore::new(), "anthropic", up, &events(raw), true);
    let text = String::from_utf8(client).unwrap();
    let delta = text.split("\n\n").find(|e| e.starts_with("event: message_delta")).expect("message_delta");
    let data: Value = serde_json::from_str(delta.split_once("data: ").unwrap().1).unwrap();
    let want = expected(name);
    let credits = data["usage"]["credits_consumed"].as_f64().unwrap();
    assert!((credits - o.micros as f64 / 1e6).abs() < 1e-9, "{data}");
    assert_eq!(data["usage"]["output_tokens"], want.completion_tokens);
    // input tokens exclude cache reads, as Anthropic counts them
    assert_eq!(data["usage"]["input_tokens"], want.prompt_tokens - want.cached_tokens);
}

#[test]
fn content_is_logged_only_for_keys_that_opt_in() {
    let h = keys::to_hex(&keys::sha256(b"sk-test"));
    let j = format!(
        r#"{{"clusters":[{{"name":"c_openai"}}],"models":[{{"id":"m-openai","type":"text","cluster":"c_openai"}}],
        "accounts":[{{"id":"a","rpm":100}}],"keys":[{{"id":"k","sha256":"{h}","account":"a","log_content":true}}]}}"#
    );
    let c = Config::parse(j.as_bytes()).unwrap();
    let (_, _, raw) = FIXTURES[0];
    let (o, _) = run(&c, &MemoryStore::new(), "openai", "openai", &events(raw), true);
    let r = record(&o);
    assert!(r["request_body"].as_str().unwrap().contains("Paris"), "{r}");
    assert!(r["response_body"].as_str().unwrap().contains("data: "), "{r}");
}

/// Removes every usage report from an SSE event (OpenAI `usage`, Anthropic `usage` in
/// `message_start` and `message_delta`, Gemini `usageMetadata`).
fn strip_usage(ev: &str) -> String {
    let mut lines = Vec::new();
    for line in ev.lines() {
        match line.strip_prefix("data: ").map(serde_json::from_str::<Value>) {
            Some(Ok(mut v)) => {
                if let Some(o) = v.as_object_mut() {
                    o.remove("usage");
                    o.remove("usageMetadata");
                    if let Some(Value::Object(m)) = o.get_mut("message") {
                        m.remove("usage");
                    }
                }
                lines.push(format!("data: {v}"));
            }
            _ => lines.push(line.to_string()),
        }
    }
    lines.join("\n")
}

/// The estimator on the fixtures with their usage removed. The fixtures' token counts are
/// hand-made, so the figures printed here (`cargo test -- --nocapture`) describe the estimator
/// rather than prove its accuracy; tests/node/estimator.test.mjs measures it against a real
/// tokenizer.
#[test]
fn estimator_on_fixtures_without_usage() {
    let c = cfg();
    for (up, name, raw) in FIXTURES {
        let stripped: Vec<String> = events(raw).iter().map(|e| strip_usage(e)).collect();
        let evs: Vec<&str> = stripped.iter().map(String::as_str).collect();
        let (o, _) = run(&c, &MemoryStore::new(), "openai", up, &evs, true);
        let want = expected(name);
        println!(
            "{name}: estimated {} completion / {} prompt tokens; fixture says {} / {} (prompts differ: ours is a test prompt)",
            o.usage.completion_tokens, o.usage.prompt_tokens, want.completion_tokens, want.prompt_tokens
        );
        assert!(o.estimated, "{name}");
        assert!(o.usage.completion_tokens > 0, "{name}");
        assert!(o.usage.prompt_tokens > 0, "{name}");
    }
}

/// The estimator (`usage::tokens_from_bytes`) against a real tokenizer's counts (OpenAI's
/// o200k_base, counted by tests/estimator/corpus.mjs) on prose in six languages, code, JSON,
/// Markdown, numbers and emoji. `cargo test --test usage_records -- --nocapture` prints the
/// table the README quotes. Bounds: the corpus total within 15%, each text within 60%.
#[test]
fn estimator_against_a_real_tokenizer() {
    let corpus: Vec<Value> = serde_json::from_str(include_str!("fixtures/estimator_corpus.json")).unwrap();
    let (mut real_total, mut est_total) = (0u64, 0u64);
    for e in &corpus {
        let text = e["text"].as_str().unwrap();
        let real = e["o200k_tokens"].as_u64().unwrap();
        let est = usage::tokens_from_bytes(text.len() as u64);
        let err = (est as f64 - real as f64) / real as f64;
        println!("{:<24} o200k {real:>4}  estimate {est:>4}  {:+4.0}%", e["kind"].as_str().unwrap(), err * 100.0);
        assert!(err.abs() <= 0.6, "{}: {err}", e["kind"]);
        real_total += real;
        est_total += est;
    }
    let err = (est_total as f64 - real_total as f64) / real_total as f64;
    println!("corpus total: o200k {real_total}, estimate {est_total}, {:+.1}%", err * 100.0);
    assert!(err.abs() <= 0.15, "{err}");
}
