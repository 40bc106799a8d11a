//! `tollgate-exchbench SCENARIO N`: drives the filter's pure request state machine (`Exchange`)
//! natively through N whole exchanges of a bench scenario, with demo-backend-shaped responses,
//! and prints the time per exchange. It is the profiling target for the filter's own work (run
//! it under `valgrind --tool=callgrind` for repeatable instruction counts): everything Envoy and
//! the proxy-wasm ABI do around it is measured by `make bench` instead.
//! Scenarios: openai, anthropic, openai-stream, anthropic-stream, bad-key.

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

fn main() {
    let mut args = std::env::args().skip(1);
    let scenario = args.next().unwrap_or_else(|| "openai".into());
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let cfg = match Config::parse(bench_config_json(0).as_bytes()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("config: {e}");
            std::process::exit(1);
        }
    };
    let store = MemoryStore::new();
    let (path, anthropic, stream, key) = match scenario.as_str() {
        "openai" => ("/v1/chat/completions", false, false, "sk-bench-unlimited"),
        "anthropic" => ("/v1/messages", true, false, "sk-bench-unlimited"),
        "openai-stream" => ("/v1/chat/completions", false, true, "sk-bench-unlimited"),
        "anthropic-stream" => ("/v1/messages", true, true, "sk-bench-unlimited"),
        "bad-key" => ("/v1/chat/completions", false, false, "sk-bench-not-a-key"),
        other => {
            eprintln!("unknown scenario {other}");
            std::process::exit(2);
        }
    };
    let body = format!(
        r#"{{"model":"qai-flash","max_tokens":{},"stream":{stream},"messages":[{{"role":"user","content":"Say hello to the benchmark, briefly please."}}]}}"#,
        if stream { 1000 } else { 64 }
    );
    let response = openai_response();
    let events = openai_stream(CHUNKS);
    let bearer = format!("Bearer {key}");
    let t0 = Instant::now();
    let mut out_bytes = 0usize;
    for i in 0..n {
        let env = Env { now_ms: 1_795_434_431_000 + i as u64 / 100, store: &store };
        let mut ex = Exchange::new();
        let head = RequestHead {
            method: "POST",
            path,
            authorization: if anthropic { None } else { Some(&bearer) },
            x_api_key: if anthropic { Some(key) } else { None },
            x_goog_api_key: None,
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
                    tollgate_core::exchange::ChunkAction::Replace(b) => out_bytes += b.len(),
                    tollgate_core::exchange::ChunkAction::Pass => out_bytes += ev.len(),
                    tollgate_core::exchange::ChunkAction::Buffer => {}
                }
            }
            if let tollgate_core::exchange::ChunkAction::Replace(b) = ex.on_response_chunk(b"", true, 1 << 23) {
                out_bytes += b.len();
            }
        } else {
            out_bytes += ex.on_response_headers(200, Some("application/json")).len();
            if let tollgate_core::exchange::ChunkAction::Replace(b) = ex.on_response_chunk(&response, true, 1 << 23) {
                out_bytes += b.len();
            }
        }
        ex.on_done(&cfg, &env);
    }
    let el = t0.elapsed();
    let _ = keys::sha256(b"");
    println!(
        "{{\"scenario\":\"{scenario}\",\"exchanges\":{n},\"ns_per_exchange\":{:.0},\"out_bytes\":{out_bytes}}}",
        el.as_nanos() as f64 / n as f64
    );
}
