//! `demo-backend`: the bundled demo LLM generation backend of the Tollgate
//! gateway and the mock upstream for integration tests and benchmarks.
//!
//! Speaks OpenAI Chat Completions and Responses, Anthropic Messages and Gemini
//! generateContent (plus a few OpenAI media endpoints) with deterministic
//! replies, and honours `x-demo-*` test-control headers (see `controls.rs`).

mod anthropic;
mod body;
mod capture;
mod controls;
mod embeddings;
mod gemini;
mod media;
mod openai;
mod responses;
mod strict;
mod tokens;
mod util;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::http::request::Parts;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use body::Resp;
use capture::Capture;
use controls::Controls;

/// Largest request body accepted.
const MAX_BODY: usize = 64 << 20;

const USAGE: &str = "\
usage: demo-backend [--listen ADDR] [--port-file PATH] [--no-capture] [--capture-log PATH]
                    [--threads N] [--name NAME] [--strict]

  --listen ADDR      address to listen on (default 127.0.0.1:8000; port 0 = ephemeral)
  --port-file PATH   after binding, write the actual port number to PATH
  --no-capture       do not record requests for GET /__demo/requests (benchmarks)
  --capture-log PATH append every request (all headers, whole body) to PATH as a JSON line
  --threads N        tokio worker threads (default: number of CPUs)
  --name NAME        this instance's name (e.g. the Envoy cluster it serves), sent back in
                     `x-demo-backend` on every response and kept with each captured request
  --strict           refuse what the real APIs refuse (unknown fields, missing required fields,
                     bad roles, wrong types) with their error shapes and statuses";

struct Config {
    listen: String,
    port_file: Option<PathBuf>,
    capture: bool,
    capture_log: Option<PathBuf>,
    threads: Option<usize>,
    name: String,
    strict: bool,
}

fn parse_args(args: impl Iterator<Item = String>) -> Result<Option<Config>, String> {
    let mut cfg = Config {
        listen: "127.0.0.1:8000".into(),
        port_file: None,
        capture: true,
        capture_log: None,
        threads: None,
        name: "demo".into(),
        strict: false,
    };
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value =
            |name: &str| inline.clone().or_else(|| args.next()).ok_or_else(|| format!("{name} needs a value"));
        match flag.as_str() {
            "--listen" => cfg.listen = value("--listen")?,
            "--port-file" => cfg.port_file = Some(PathBuf::from(value("--port-file")?)),
            "--no-capture" => cfg.capture = false,
            "--strict" => cfg.strict = true,
            "--name" => {
                let v = value("--name")?;
                if v.is_empty() || HeaderValue::from_str(&v).is_err() {
                    return Err(format!("--name: invalid name {v:?}"));
                }
                cfg.name = v;
            }
            "--capture-log" => cfg.capture_log = Some(PathBuf::from(value("--capture-log")?)),
            "--threads" => {
                let v = value("--threads")?;
                let n: usize =
                    v.parse().ok().filter(|n| *n > 0).ok_or_else(|| format!("--threads: invalid number {v:?}"))?;
                cfg.threads = Some(n);
            }
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(cfg))
}

fn main() -> ExitCode {
    let cfg = match parse_args(std::env::args().skip(1)) {
        Ok(Some(cfg)) => cfg,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("demo-backend: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(n) = cfg.threads {
        builder.worker_threads(n);
    }
    let rt = match builder.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("demo-backend: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = rt.block_on(run(cfg));
    rt.shutdown_timeout(Duration::from_millis(200));
    code
}

struct State {
    capture: Capture,
    /// `--name`: sent back in `x-demo-backend`.
    name: HeaderValue,
    /// `--strict`: validate requests as the real APIs do.
    strict: bool,
    /// `host:port` where this backend answers (127.0.0.1 for an unspecified listen address):
    /// media URLs point here, where `/v1/files/...` is served (the gateway answers 404 there).
    files_host: String,
}

async fn run(cfg: Config) -> ExitCode {
    media::warm_up();
    let listener = match TcpListener::bind(&cfg.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("demo-backend: cannot listen on {}: {e}", cfg.listen);
            return ExitCode::FAILURE;
        }
    };
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("demo-backend: cannot read local address: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(path) = &cfg.port_file {
        // Write-then-rename so a reader never sees a half-written file.
        let tmp = path.with_extension("tmp");
        let res = std::fs::write(&tmp, format!("{}\n", addr.port())).and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = res {
            eprintln!("demo-backend: cannot write port file {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "demo-backend listening on {addr}");
        let _ = out.flush();
    }
    let mut capture = Capture::new(cfg.capture, &cfg.name);
    if let Some(path) = &cfg.capture_log {
        capture = match capture.with_log(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("demo-backend: cannot open capture log {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        };
    }
    let state = Arc::new(State {
        capture,
        name: HeaderValue::from_str(&cfg.name).unwrap_or_else(|_| HeaderValue::from_static("demo")),
        strict: cfg.strict,
        files_host: if addr.ip().is_unspecified() { format!("127.0.0.1:{}", addr.port()) } else { addr.to_string() },
    });
    tokio::select! {
        () = accept_loop(listener, state) => {}
        () = shutdown_signal() => eprintln!("demo-backend: shutting down"),
    }
    ExitCode::SUCCESS
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // e.g. EMFILE under load: back off briefly and keep serving.
                eprintln!("demo-backend: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| handle(state.clone(), req));
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Resp, std::io::Error> {
    let mut resp = serve(&state, req).await?;
    resp.headers_mut().insert("x-demo-backend", state.name.clone());
    Ok(resp)
}

async fn serve(state: &State, req: Request<Incoming>) -> Result<Resp, std::io::Error> {
    let (parts, incoming) = req.into_parts();
    let body = match Limited::new(incoming, MAX_BODY).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            state.capture.log(&parts, &[], false);
            return Ok(openai::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body too large",
                "invalid_request_error",
                "payload_too_large",
            ));
        }
        Err(e) => {
            state.capture.log(&parts, &[], false);
            return Ok(openai::bad_request(&format!("cannot read request body: {e}")));
        }
    };
    if !parts.uri.path().starts_with("/__demo/") {
        state.capture.record(&parts, &body);
    }
    // `x-demo-fault: reset`: drop the connection without a response (hyper closes it when the
    // service fails).
    if fault(&parts) == Some("reset") {
        Controls::from_headers(&parts.headers).pre_delay().await;
        return Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "demo backend: x-demo-fault: reset"));
    }
    Ok(route(state, &parts, body).await)
}

fn fault(parts: &Parts) -> Option<&str> {
    parts.headers.get("x-demo-fault")?.to_str().ok().map(str::trim)
}

/// The API family of an endpoint (decides the error shape).
#[derive(Clone, Copy)]
enum Api {
    OpenAi,
    Anthropic,
    Gemini,
}

async fn route(state: &State, parts: &Parts, body: Bytes) -> Resp {
    let path = parts.uri.path();
    let method = &parts.method;

    // Non-API endpoints.
    match (method, path) {
        (&Method::GET, "/health") => return body::full(StatusCode::OK, "text/plain; charset=utf-8", "ok"),
        (&Method::GET, "/__demo/requests") => return body::json(StatusCode::OK, &state.capture.to_json()),
        (&Method::DELETE, "/__demo/requests") => {
            state.capture.clear();
            return body::json(StatusCode::OK, &serde_json::json!({"cleared": true}));
        }
        (&Method::GET, "/v1/files/demo.png") => return media::file_png(),
        (&Method::GET, "/v1/files/demo.mp4") => return media::file_mp4(),
        _ => {}
    }

    let gemini_route = gemini::route(path);
    let gemini_count = gemini::is_count_tokens(path);
    let api = match path {
        "/v1/chat/completions"
        | "/v1/responses"
        | "/v1/images/generations"
        | "/v1/videos/generations"
        | "/v1/audio/speech"
        | "/v1/audio/transcriptions"
        | "/v1/embeddings" => Api::OpenAi,
        "/v1/messages" | "/v1/messages/count_tokens" => Api::Anthropic,
        _ if gemini_route.is_some() || gemini_count => Api::Gemini,
        "/health" | "/__demo/requests" | "/v1/files/demo.png" | "/v1/files/demo.mp4" => {
            return method_not_allowed(method, path)
        }
        _ => {
            return openai::error(
                StatusCode::NOT_FOUND,
                &format!("unknown path {path}"),
                "invalid_request_error",
                "not_found",
            )
        }
    };
    if method != Method::POST {
        return method_not_allowed(method, path);
    }

    let ctl = Controls::from_headers(&parts.headers);
    ctl.pre_delay().await;
    // `x-demo-fault: echo-auth-<status>`: an error that quotes every request header it got (as
    // some upstreams quote the credential they refused); `echo-auth-sse`: the same text in an
    // error event of a 200 stream.
    let quoted = || {
        // Credential headers first, so a relay that cuts the text still meets them.
        let mut h: Vec<(bool, String)> = parts
            .headers
            .iter()
            .map(|(k, v)| {
                let cred = matches!(k.as_str(), "authorization" | "x-api-key" | "x-goog-api-key");
                (!cred, format!("{k}: {}", String::from_utf8_lossy(v.as_bytes())))
            })
            .collect();
        h.sort_by_key(|(rest, _)| *rest);
        let h: Vec<String> = h.into_iter().map(|(_, s)| s).collect();
        format!("Incorrect API key provided. Request headers: {}", h.join("; "))
    };
    if fault(parts) == Some("echo-auth-sse") {
        let msg = quoted();
        let sse = match api {
            Api::OpenAi => format!(
                "data: {}\n\ndata: [DONE]\n\n",
                serde_json::json!({"error": {"message": msg, "type": "invalid_request_error"}})
            ),
            Api::Anthropic => format!(
                "event: error\ndata: {}\n\n",
                serde_json::json!({"type": "error", "error": {"type": "authentication_error", "message": msg}})
            ),
            Api::Gemini => format!(
                "data: {}\r\n\r\n",
                serde_json::json!({"error": {"code": 401, "message": msg, "status": "UNAUTHENTICATED"}})
            ),
        };
        return body::full(StatusCode::OK, "text/event-stream", sse);
    }
    if let Some(status) = fault(parts)
        .and_then(|f| f.strip_prefix("echo-auth-"))
        .and_then(|c| c.parse::<u16>().ok())
        .and_then(|c| StatusCode::from_u16(c).ok())
    {
        let msg = quoted();
        return match api {
            Api::OpenAi => openai::error(status, &msg, "invalid_request_error", "invalid_api_key"),
            Api::Anthropic => anthropic::error(status, "authentication_error", &msg),
            Api::Gemini => gemini::error(status, &msg),
        };
    }
    if let Some(status) = ctl.status.or_else(|| controls::failing_model(&parts.headers, &body, path)) {
        return match api {
            Api::OpenAi => openai::forced_error(status),
            Api::Anthropic => anthropic::forced_error(status),
            Api::Gemini => gemini::forced_error(status),
        };
    }

    // `x-demo-fault`: broken upstream answers for fault tests.
    match fault(parts) {
        Some("garbage-json") => {
            return body::full(StatusCode::OK, "application/json", r#"{"id":"x","choices":[{"message":"#)
        }
        Some("garbage-sse") => {
            return body::full(
                StatusCode::OK,
                "text/event-stream",
                "data: {not json\n\nevent: message_start\ndata: [[[\n\ndata: {\"choices\":7,\"usage\":\"x\"}\n\n: keepalive\n\ndata: [DONE]\n\n",
            )
        }
        Some("utf8-sse") => {
            // An OpenAI stream whose text is not ASCII: `é` split across two pieces, an emoji,
            // then an event with a byte that is not UTF-8 (0xff), the finish, the usage and the end marker.
            return body::stream("text/event-stream", Duration::from_millis(2), |mut sink| async move {
                let head = "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"qai-flash\",\"choices\":[";
                let pieces: [Vec<u8>; 6] = [
                    [format!("{head}{{\"index\":0,\"delta\":{{\"content\":\"caf").as_bytes(), b"\xc3"].concat(),
                    [&b"\xa9 \xf0\x9f\x98\x80 d\xc3\xa9j\xc3\xa0 vu\"}}]}\n\n"[..]].concat(),
                    [format!("{head}{{\"index\":0,\"delta\":{{\"content\":\"bad ").as_bytes(), b"\xff byte\"}}]}\n\n"]
                        .concat(),
                    format!("{head}{{\"index\":0,\"delta\":{{}},\"finish_reason\":\"stop\"}}]}}\n\n").into_bytes(),
                    format!("{head}],\"usage\":{{\"prompt_tokens\":3,\"completion_tokens\":4,\"total_tokens\":7}}}}\n\n")
                        .into_bytes(),
                    b"data: [DONE]\n\n".to_vec(),
                ];
                for p in pieces {
                    if !sink.send(p).await {
                        return;
                    }
                }
            });
        }
        Some("html") => return body::full(StatusCode::OK, "text/html", "<html><body>hello</body></html>"),
        // JSON, but no response of any dialect (no choices, content or candidates).
        Some("not-a-response") => {
            return body::full(StatusCode::OK, "application/json", r#"{"id":"x","object":"unexpected"}"#)
        }
        Some("huge-sse") => {
            // One event, then an event of 5 MiB that never ends, in 64 KiB pieces 2 ms apart.
            return body::stream("text/event-stream", Duration::from_millis(2), |mut sink| async move {
                let first = "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"first\"}}]}\n\ndata: ";
                if !sink.send(first).await {
                    return;
                }
                for _ in 0..80 {
                    if !sink.send(vec![b'x'; 64 << 10]).await {
                        return;
                    }
                }
            });
        }
        _ => {}
    }

    if state.strict {
        if let Some(refusal) = strict_check(api, path, &body) {
            return refusal;
        }
    }

    match (path, gemini_route) {
        _ if gemini_count => embeddings::gemini_count(&body),
        ("/v1/embeddings", _) => embeddings::create(&ctl, &body),
        ("/v1/messages/count_tokens", _) => embeddings::anthropic_count(&body),
        (_, Some(r)) => gemini::generate(&ctl, r, parts.uri.query().unwrap_or(""), &body).await,
        ("/v1/chat/completions", _) => pad(openai::chat(&ctl, &body).await, &parts.headers),
        ("/v1/responses", _) => responses::create(&ctl, &body).await,
        ("/v1/messages", _) => anthropic::messages(&ctl, &body).await,
        ("/v1/images/generations", _) => media::images(&state.files_host, &body),
        ("/v1/videos/generations", _) => media::videos(&state.files_host, &body),
        ("/v1/audio/speech", _) => media::speech(&body),
        _ => media::transcriptions(&body),
    }
}

/// `--strict`: the real API's 400 for a text request it would refuse (media endpoints are not
/// checked).
fn strict_check(api: Api, path: &str, body: &[u8]) -> Option<Resp> {
    let text = matches!(api, Api::Anthropic | Api::Gemini) || path == "/v1/chat/completions" || path == "/v1/responses";
    // The token counters take the request without a budget: not checked either.
    if !text || path.ends_with("/count_tokens") || path.ends_with(":countTokens") {
        return None;
    }
    // Bodies that are not JSON objects get each handler's own 400.
    let Ok(serde_json::Value::Object(req)) = serde_json::from_slice::<serde_json::Value>(body) else {
        return None;
    };
    if path == "/v1/responses" {
        return responses::strict(&req);
    }
    let refused = match api {
        Api::OpenAi => strict::openai_chat(&req),
        Api::Anthropic => strict::anthropic_messages(&req),
        Api::Gemini => strict::gemini_generate(&req),
    };
    let r = refused.err()?;
    Some(match api {
        Api::OpenAi => openai::strict_error(&r),
        Api::Anthropic => anthropic::error(StatusCode::BAD_REQUEST, "invalid_request_error", &r.message),
        Api::Gemini => gemini::error(StatusCode::BAD_REQUEST, &r.message),
    })
}

/// `x-demo-pad-bytes: N` (up to 64 MiB): N spaces after a complete JSON body (still valid JSON,
/// same fields), to make a large non-streamed response.
fn pad(resp: Resp, headers: &hyper::HeaderMap) -> Resp {
    let n = headers
        .get("x-demo-pad-bytes")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0)
        .min(64 << 20);
    let (parts, body) = resp.into_parts();
    match body {
        body::RespBody::Full(Some(b)) if n > 0 => {
            let mut v = Vec::with_capacity(b.len() + n);
            v.extend_from_slice(&b);
            v.resize(b.len() + n, b' ');
            let mut r = hyper::Response::from_parts(parts, body::RespBody::Full(Some(Bytes::from(v))));
            r.headers_mut().remove(hyper::header::CONTENT_LENGTH);
            r
        }
        body => hyper::Response::from_parts(parts, body),
    }
}

fn method_not_allowed(method: &Method, path: &str) -> Resp {
    openai::error(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("method {method} not allowed on {path}"),
        "invalid_request_error",
        "method_not_allowed",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> impl Iterator<Item = String> {
        v.iter().map(|s| s.to_string()).collect::<Vec<_>>().into_iter()
    }

    #[test]
    fn cli_parsing() {
        let c = parse_args(args(&[])).unwrap().unwrap();
        assert_eq!(c.listen, "127.0.0.1:8000");
        assert!(c.capture);
        let c = parse_args(args(&["--listen", "127.0.0.1:0", "--port-file=/tmp/p", "--no-capture", "--threads", "2"]))
            .unwrap()
            .unwrap();
        assert_eq!(c.listen, "127.0.0.1:0");
        assert_eq!(c.port_file.as_deref(), Some(std::path::Path::new("/tmp/p")));
        assert!(!c.capture);
        assert_eq!(c.threads, Some(2));
        assert!(!c.strict);
        assert_eq!(c.name, "demo");
        let c = parse_args(args(&["--strict", "--name", "demo_text"])).unwrap().unwrap();
        assert!(c.strict);
        assert_eq!(c.name, "demo_text");
        assert!(parse_args(args(&["--name", ""])).is_err());
        assert!(parse_args(args(&["--bogus"])).is_err());
        assert!(parse_args(args(&["--listen"])).is_err());
        assert!(parse_args(args(&["--help"])).unwrap().is_none());
    }
}
