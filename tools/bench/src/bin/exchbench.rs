//! `tollgate-exchbench SCENARIO N`: drives the filter's pure request state machine (`Exchange`)
//! natively through N whole exchanges of a bench scenario, with demo-backend-shaped responses,
//! and prints the time per exchange. It is the profiling target for the filter's own work (run
//! it under `valgrind --tool=callgrind` for repeatable instruction counts): everything Envoy and
//! the proxy-wasm ABI do around it is measured by `make bench` instead. `EXCHBENCH_CONFIG=file`
//! runs it on another filter configuration (the demo's, which `make bench` uses).
//! Scenarios: openai, anthropic, gemini, responses (non-streamed, per client front),
//! openai-stream, anthropic-stream, gemini-stream, responses-stream (each front from an OpenAI
//! upstream), bad-key, and every other pair of stream dialects as FRONT-to-UPSTREAM-stream
//! (fronts openai, anthropic, gemini, responses; upstreams anthropic, gemini, responses: the
//! OpenAI Responses API), e.g. openai-to-anthropic-stream, responses-to-gemini-stream.

use std::time::Instant;
use tollgate_bench::bench_config_json;
use tollgate_core::config::Config;
use tollgate_core::exchange::{BodyAction, Env, Exchange, HeadAction, RequestHead};
use tollgate_core::keys;
use tollgate_core::limits::MemoryStore;

const CHUNKS: usize = 200;

fn openai_response() -> Vec<u8> {
    br#"{"id":"chatcmpl-ead72c824eba196607f618e8","object":"chat.completion","created":1795434431,"model":"qai-flash","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from qai-flash! You said: Say hello to the benchmark, briefly please."},"finish_reason":"stop","logprobs":null}],"usage":{"prompt_tokens":12,"completion_tokens":13,"total_tokens":25}}"#.to_vec()
}

/// The demo backend's OpenAI stream of `n` content chunks, one SSE event per element.
fn openai_stream(n: usize) -> Vec<Vec<u8>> {
    let head = r#"{"id":"chatcmpl-46bf38d2ba9b03bffbc75bb7","object":"chat.completion.chunk","created":1795434432,"model":"qai-flash","choices":["#;
    let mut v = vec![format!("data: {head}{{\"index\":0,\"delta\":{{\"role\":\"assistant\",\"content\":\"\"}},\"finish_reason\":null,\"logprobs\":null}}]}}\n\n")];
    for i in 0..n {
        v.push(format!("data: {head}{{\"index\":0,\"delta\":{{\"content\":\"tok{i} \"}},\"finish_reason\":null,\"logprobs\":null}}]}}\n\n"));
    }
    v.push(format!("data: {head}{{\"index\":0,\"delta\":{{}},\"finish_reason\":\"stop\",\"logprobs\":null}}]}}\n\n"));
    v.push(format!(
        "data: {head}],\"usage\":{{\"prompt_tokens\":12,\"completion_tokens\":{n},\"total_tokens\":{}}}}}\n\n",
        n + 12
    ));
    v.push("data: [DONE]\n\n".to_string());
    v.into_iter().map(String::into_bytes).collect()
}

/// An Anthropic upstream's stream of `n` text deltas.
fn anthropic_stream(n: usize) -> Vec<Vec<u8>> {
    let mut v = vec![
        r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_bench","type":"message","role":"assistant","model":"qai-flash","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":1}}}

"#.to_string(),
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n".to_string(),
    ];
    for i in 0..n {
        v.push(format!("event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"tok{i} \"}}}}\n\n"));
    }
    v.push("event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n".to_string());
    v.push(format!("event: message_delta\ndata: {{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"end_turn\",\"stop_sequence\":null}},\"usage\":{{\"output_tokens\":{n}}}}}\n\n"));
    v.push("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n".to_string());
    v.into_iter().map(String::into_bytes).collect()
}

/// A Gemini upstream's stream (`alt=sse`) of `n` text parts, the usage on the last.
fn gemini_stream(n: usize) -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    for i in 0..n {
        v.push(format!("data: {{\"candidates\":[{{\"content\":{{\"parts\":[{{\"text\":\"tok{i} \"}}],\"role\":\"model\"}},\"index\":0}}],\"usageMetadata\":{{\"promptTokenCount\":12,\"totalTokenCount\":12}},\"modelVersion\":\"qai-flash\"}}\r\n\r\n"));
    }
    v.push(format!("data: {{\"candidates\":[{{\"content\":{{\"parts\":[{{\"text\":\"\"}}],\"role\":\"model\"}},\"finishReason\":\"STOP\",\"index\":0}}],\"usageMetadata\":{{\"promptTokenCount\":12,\"candidatesTokenCount\":{n},\"totalTokenCount\":{}}},\"modelVersion\":\"qai-flash\"}}\r\n\r\n", n + 12));
    v.into_iter().map(String::into_bytes).collect()
}

/// An OpenAI Responses upstream's stream (as the demo backend sends it: keys sorted, a
/// `sequence_number` on each event) of `n` text deltas, the usage in `response.completed`.
fn responses_stream(n: usize) -> Vec<Vec<u8>> {
    let resp = |status: &str, output: &str, usage: &str| {
        format!(
            r#"{{"created_at":1795434432,"error":null,"id":"resp_bench","incomplete_details":null,"model":"qai-flash","object":"response","output":{output},"parallel_tool_calls":true,"status":"{status}","store":false,"tool_choice":"auto","tools":[],"usage":{usage}}}"#
        )
    };
    let mut seq = 0u64;
    let mut ev = |ty: &str, fields: String| {
        let sep = if fields.is_empty() { "" } else { "," };
        let e = format!("event: {ty}\ndata: {{{fields}{sep}\"sequence_number\":{seq},\"type\":\"{ty}\"}}\n\n");
        seq += 1;
        e
    };
    let start = resp("in_progress", "[]", "null");
    let mut v = vec![
        ev("response.created", format!(r#""response":{start}"#)),
        ev("response.in_progress", format!(r#""response":{start}"#)),
        ev("response.output_item.added", r#""item":{"content":[],"id":"msg_bench","role":"assistant","status":"in_progress","type":"message"},"output_index":0"#.to_string()),
        ev("response.content_part.added", r#""content_index":0,"item_id":"msg_bench","output_index":0,"part":{"annotations":[],"text":"","type":"output_text"}"#.to_string()),
    ];
    let mut text = String::new();
    for i in 0..n {
        let d = format!("tok{i} ");
        v.push(ev(
            "response.output_text.delta",
            format!(r#""content_index":0,"delta":"{d}","item_id":"msg_bench","logprobs":[],"output_index":0"#),
        ));
        text.push_str(&d);
    }
    v.push(ev(
        "response.output_text.done",
        format!(r#""content_index":0,"item_id":"msg_bench","logprobs":[],"output_index":0,"text":"{text}""#),
    ));
    let part = format!(r#"{{"annotations":[],"text":"{text}","type":"output_text"}}"#);
    v.push(ev(
        "response.content_part.done",
        format!(r#""content_index":0,"item_id":"msg_bench","output_index":0,"part":{part}"#),
    ));
    let item =
        format!(r#"{{"content":[{part}],"id":"msg_bench","role":"assistant","status":"completed","type":"message"}}"#);
    v.push(ev("response.output_item.done", format!(r#""item":{item},"output_index":0"#)));
    let usage = format!(
        r#"{{"input_tokens":12,"input_tokens_details":{{"cached_tokens":0}},"output_tokens":{n},"output_tokens_details":{{"reasoning_tokens":0}},"total_tokens":{}}}"#,
        n + 12
    );
    let done = resp("completed", &format!("[{item}]"), &usage);
    v.push(ev("response.completed", format!(r#""response":{done}"#)));
    v.into_iter().map(String::into_bytes).collect()
}

/// The bench configuration with one model more per upstream dialect: `qai-anthropic` on an
/// Anthropic cluster, `qai-gemini` on a Gemini cluster.
fn config_json() -> String {
    bench_config_json(0).replacen(
        r#"{"clusters":[{"name":"demo_text","dialect":"openai"}],"models":["#,
        r#"{"clusters":[{"name":"demo_text","dialect":"openai"},{"name":"up_anthropic","dialect":"anthropic"},{"name":"up_gemini","dialect":"gemini"},{"name":"up_responses","dialect":"openai-responses"}],"models":[{"id":"qai-responses","type":"text","cluster":"up_responses","price":{"prompt_per_1k":0.1,"completion_per_1k":0.2}},{"id":"qai-anthropic","type":"text","cluster":"up_anthropic","price":{"prompt_per_1k":0.1,"completion_per_1k":0.2}},{"id":"qai-gemini","type":"text","cluster":"up_gemini","price":{"prompt_per_1k":0.1,"completion_per_1k":0.2}},"#,
        1,
    )
}

/// The client's dialect in a scenario.
#[derive(Clone, Copy, PartialEq)]
enum Front {
    OpenAi,
    Anthropic,
    Gemini,
    /// OpenAI's Responses API (`/v1/responses`).
    Responses,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let scenario = args.next().unwrap_or_else(|| "openai".into());
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(10_000);
    // EXCHBENCH_CONFIG=file: another configuration (e.g. the demo's, as `make bench` runs it).
    let json = match std::env::var_os("EXCHBENCH_CONFIG") {
        Some(path) => std::fs::read_to_string(path).unwrap_or_default(),
        None => config_json(),
    };
    let cfg = match Config::parse(json.as_bytes()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("config: {e}");
            std::process::exit(1);
        }
    };
    let store = MemoryStore::new();
    let k = "sk-bench-unlimited";
    // (client front, model, streamed, key, the upstream's stream)
    let (front, model, stream, key, events) = match scenario.as_str() {
        "openai" => (Front::OpenAi, "qai-flash", false, k, Vec::new()),
        "anthropic" => (Front::Anthropic, "qai-flash", false, k, Vec::new()),
        "gemini" => (Front::Gemini, "qai-flash", false, k, Vec::new()),
        "openai-stream" => (Front::OpenAi, "qai-flash", true, k, openai_stream(CHUNKS)),
        "anthropic-stream" => (Front::Anthropic, "qai-flash", true, k, openai_stream(CHUNKS)),
        "openai-to-anthropic-stream" => (Front::OpenAi, "qai-anthropic", true, k, anthropic_stream(CHUNKS)),
        "openai-to-gemini-stream" => (Front::OpenAi, "qai-gemini", true, k, gemini_stream(CHUNKS)),
        "gemini-stream" => (Front::Gemini, "qai-flash", true, k, openai_stream(CHUNKS)),
        "anthropic-to-gemini-stream" => (Front::Anthropic, "qai-gemini", true, k, gemini_stream(CHUNKS)),
        "gemini-to-anthropic-stream" => (Front::Gemini, "qai-anthropic", true, k, anthropic_stream(CHUNKS)),
        "anthropic-to-anthropic-stream" => (Front::Anthropic, "qai-anthropic", true, k, anthropic_stream(CHUNKS)),
        "gemini-to-gemini-stream" => (Front::Gemini, "qai-gemini", true, k, gemini_stream(CHUNKS)),
        "openai-to-responses-stream" => (Front::OpenAi, "qai-responses", true, k, responses_stream(CHUNKS)),
        "anthropic-to-responses-stream" => (Front::Anthropic, "qai-responses", true, k, responses_stream(CHUNKS)),
        "gemini-to-responses-stream" => (Front::Gemini, "qai-responses", true, k, responses_stream(CHUNKS)),
        "responses" => (Front::Responses, "qai-flash", false, k, Vec::new()),
        "responses-stream" => (Front::Responses, "qai-flash", true, k, openai_stream(CHUNKS)),
        "responses-to-anthropic-stream" => (Front::Responses, "qai-anthropic", true, k, anthropic_stream(CHUNKS)),
        "responses-to-gemini-stream" => (Front::Responses, "qai-gemini", true, k, gemini_stream(CHUNKS)),
        "responses-to-responses-stream" => (Front::Responses, "qai-responses", true, k, responses_stream(CHUNKS)),
        "bad-key" => (Front::OpenAi, "qai-flash", false, "sk-bench-not-a-key", Vec::new()),
        other => {
            eprintln!("unknown scenario {other}");
            std::process::exit(2);
        }
    };
    let anthropic = front == Front::Anthropic;
    let gemini_path =
        format!("/v1beta/models/{model}:{}", if stream { "streamGenerateContent?alt=sse" } else { "generateContent" });
    let path = match front {
        Front::OpenAi => "/v1/chat/completions",
        Front::Anthropic => "/v1/messages",
        Front::Gemini => gemini_path.as_str(),
        Front::Responses => "/v1/responses",
    };
    let body = match front {
        Front::Gemini => r#"{"contents":[{"role":"user","parts":[{"text":"Say hello to the benchmark, briefly please."}]}],"generationConfig":{"maxOutputTokens":1000}}"#.to_string(),
        Front::Responses => format!(
            r#"{{"model":"{model}","max_output_tokens":{},"stream":{stream},"input":"Say hello to the benchmark, briefly please."}}"#,
            if stream { 1000 } else { 64 }
        ),
        _ => format!(
            r#"{{"model":"{model}","max_tokens":{},"stream":{stream},"messages":[{{"role":"user","content":"Say hello to the benchmark, briefly please."}}]}}"#,
            if stream { 1000 } else { 64 }
        ),
    };
    let response = openai_response();
    let bearer = format!("Bearer {key}");
    // EXCHBENCH_DUMP=1: the client's bytes of the first exchange's stream on stderr, then its
    // billing record.
    let dump = std::env::var_os("EXCHBENCH_DUMP").is_some();
    let t0 = Instant::now();
    let mut out_bytes = 0usize;
    for i in 0..n {
        let env = Env { now_ms: 1_795_434_431_000 + i as u64 / 100, store: &store };
        let mut ex = Exchange::new();
        let head = RequestHead {
            method: "POST",
            path,
            authorization: if matches!(front, Front::OpenAi | Front::Responses) { Some(&bearer) } else { None },
            x_api_key: if anthropic { Some(key) } else { None },
            x_goog_api_key: if front == Front::Gemini { Some(key) } else { None },
            ..Default::default()
        };
        match ex.on_request_headers(&cfg, &head, &env) {
            HeadAction::Reply(r) => {
                out_bytes += r.body.len();
                continue;
            }
            HeadAction::ReadBody(e) => out_bytes += e.len(),
        }
        match ex.on_request_body(&cfg, body.as_bytes(), &env) {
            BodyAction::Reply(r) => {
                out_bytes += r.body.len();
                continue;
            }
            BodyAction::Forward { body, .. } => out_bytes += body.map_or(0, |b| b.len()),
            BodyAction::AskLimits => continue,
        }
        if stream {
            out_bytes += ex.on_response_headers(200, Some("text/event-stream")).len();
            for ev in &events {
                match ex.on_response_chunk(ev, false, 1 << 23) {
                    tollgate_core::exchange::ChunkAction::Replace(b) => {
                        out_bytes += b.len();
                        if dump && i == 0 {
                            eprint!("{}", String::from_utf8_lossy(&b));
                        }
                        // As the glue does once the host has copied them.
                        ex.recycle_output(b);
                    }
                    tollgate_core::exchange::ChunkAction::Pass => {
                        out_bytes += ev.len();
                        if dump && i == 0 {
                            eprint!("{}", String::from_utf8_lossy(ev));
                        }
                    }
                    tollgate_core::exchange::ChunkAction::Buffer => {}
                }
            }
            if let tollgate_core::exchange::ChunkAction::Replace(b) = ex.on_response_chunk(b"", true, 1 << 23) {
                out_bytes += b.len();
                if dump && i == 0 {
                    eprint!("{}", String::from_utf8_lossy(&b));
                }
            }
        } else {
            out_bytes += ex.on_response_headers(200, Some("application/json")).len();
            if let tollgate_core::exchange::ChunkAction::Replace(b) = ex.on_response_chunk(&response, true, 1 << 23) {
                out_bytes += b.len();
            }
        }
        let done = ex.on_done(&cfg, &env);
        if dump && i == 0 {
            // The billing record and the billed figures after the client's bytes.
            eprint!(
                "\n--- record (status {}, estimated {}, complete {}, micros {}): {}\n",
                done.status,
                done.estimated,
                done.complete,
                done.micros,
                String::from_utf8_lossy(&done.record)
            );
        }
    }
    let el = t0.elapsed();
    let _ = keys::sha256(b"");
    println!(
        "{{\"scenario\":\"{scenario}\",\"exchanges\":{n},\"ns_per_exchange\":{:.0},\"out_bytes\":{out_bytes}}}",
        el.as_nanos() as f64 / n as f64
    );
}
