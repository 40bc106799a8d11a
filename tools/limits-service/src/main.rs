//! `tollgate-limits`: the shared limits service. Stateless (run any number of copies): every
//! counter, hold and settlement lives in Redis and is changed only by atomic Lua scripts, so
//! requests per minute, sandbox quotas and spend caps are exact across every Envoy replica and
//! every copy of this service. The protocol is `tollgate_core::limits::remote`.

mod resp;
mod store;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::TcpListener;
use tollgate_core::limits::remote::{
    AdmitRequest, PeekRequest, SettleRequest, UndoRequest, ADMIT_PATH, HEALTH_PATH, PEEK_PATH, SETTLE_PATH, UNDO_PATH,
};

use store::{Failure, Store};

/// Largest request body accepted.
const MAX_BODY: usize = 64 * 1024;

const USAGE: &str = "\
usage: tollgate-limits --listen ADDR --redis redis://HOST:PORT [--timeout-ms N]
                       [--settled-ttl-secs N] [--port-file PATH] [--threads N]

  --listen ADDR            address to serve HTTP/1.1 on (e.g. 127.0.0.1:8090; port 0 = ephemeral)
  --redis URL              the Redis holding the limits (redis://host:port)
  --timeout-ms N           bound on each Redis operation, connecting included (default 100);
                           past it the call is answered 503
  --settled-ttl-secs N     how long settled reservation ids are remembered, so a retried
                           settlement never charges twice (default 86400); holds may not live
                           longer than this
  --port-file PATH         after binding, write the actual port to PATH
  --threads N              tokio worker threads (default 2)";

struct Args {
    listen: String,
    redis: String,
    timeout: Duration,
    settled_ttl: Duration,
    port_file: Option<String>,
    threads: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut listen = None;
    let mut redis = None;
    let mut timeout_ms: u64 = 100;
    let mut settled_secs: u64 = 86_400;
    let mut port_file = None;
    let mut threads: usize = 2;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            return Err(String::new());
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = |v: &str| v.parse::<u64>().map_err(|_| format!("{flag}: not a number: {v}"));
        match flag.as_str() {
            "--listen" => listen = Some(value),
            "--redis" => redis = Some(value),
            "--timeout-ms" => timeout_ms = number(&value)?,
            "--settled-ttl-secs" => settled_secs = number(&value)?,
            "--port-file" => port_file = Some(value),
            "--threads" => threads = usize::try_from(number(&value)?).map_err(|e| e.to_string())?,
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    let listen = listen.ok_or("--listen is required")?;
    let url = redis.ok_or("--redis is required")?;
    let addr = url
        .strip_prefix("redis://")
        .filter(|a| !a.is_empty() && !a.contains(['/', '@']))
        .ok_or_else(|| format!("--redis must be redis://host:port (no user, password or database): {url}"))?;
    if timeout_ms == 0 || settled_secs == 0 || threads == 0 {
        return Err("--timeout-ms, --settled-ttl-secs and --threads must be above 0".into());
    }
    Ok(Args {
        listen,
        redis: addr.to_string(),
        timeout: Duration::from_millis(timeout_ms),
        settled_ttl: Duration::from_secs(settled_secs),
        port_file,
        threads,
    })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("tollgate-limits: {e}");
            }
            eprintln!("{USAGE}");
            return if e.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(2) };
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(args.threads).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tollgate-limits: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(args))
}

async fn serve(args: Args) -> ExitCode {
    let listener = match TcpListener::bind(&args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("tollgate-limits: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    if let Some(path) = &args.port_file {
        if let Err(e) = std::fs::write(path, port.to_string()) {
            eprintln!("tollgate-limits: cannot write {path}: {e}");
            return ExitCode::FAILURE;
        }
    }
    eprintln!("tollgate-limits: listening on port {port}, redis at {}", args.redis);
    let store = Arc::new(Store::new(args.redis, args.timeout, args.settled_ttl));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let store = store.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| handle(store.clone(), req));
                    let _ = http1::Builder::new()
                        .timer(TokioTimer::new())
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
            _ = tokio::signal::ctrl_c() => return ExitCode::SUCCESS,
        }
    }
}

type Reply = Response<Full<Bytes>>;

fn json(status: StatusCode, body: Vec<u8>) -> Reply {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    r
}

fn error(status: StatusCode, message: &str) -> Reply {
    json(status, serde_json::json!({ "error": message }).to_string().into_bytes())
}

fn answer<T: Serialize>(result: Result<T, Failure>) -> Reply {
    match result {
        Ok(v) => match serde_json::to_vec(&v) {
            Ok(body) => json(StatusCode::OK, body),
            Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode the answer"),
        },
        Err(Failure::Bad(m)) => error(StatusCode::BAD_REQUEST, &m),
        Err(Failure::Settled) => error(StatusCode::CONFLICT, "this reservation is already settled"),
        Err(Failure::Redis(e)) => {
            eprintln!("tollgate-limits: {e}");
            error(StatusCode::SERVICE_UNAVAILABLE, "the limits store is unavailable")
        }
    }
}

async fn read_json<T: DeserializeOwned>(req: Request<Incoming>) -> Result<T, Reply> {
    let body = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|_| error(StatusCode::PAYLOAD_TOO_LARGE, "request body too large or cut"))?
        .to_bytes();
    serde_json::from_slice(&body).map_err(|e| error(StatusCode::BAD_REQUEST, &format!("bad request body: {e}")))
}

async fn handle(store: Arc<Store>, req: Request<Incoming>) -> Result<Reply, std::convert::Infallible> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let reply = match (method, path.as_str()) {
        (Method::GET, HEALTH_PATH) => match store.ping().await {
            Ok(()) => json(StatusCode::OK, br#"{"redis":"ok"}"#.to_vec()),
            Err(e) => {
                eprintln!("tollgate-limits: health: {e}");
                error(StatusCode::SERVICE_UNAVAILABLE, "the limits store is unavailable")
            }
        },
        (Method::POST, ADMIT_PATH) => match read_json::<AdmitRequest>(req).await {
            Ok(r) => answer(store.admit(&r).await),
            Err(reply) => reply,
        },
        (Method::POST, SETTLE_PATH) => match read_json::<SettleRequest>(req).await {
            Ok(r) => answer(store.settle(&r).await),
            Err(reply) => reply,
        },
        (Method::POST, UNDO_PATH) => match read_json::<UndoRequest>(req).await {
            Ok(r) => answer(store.undo(&r).await),
            Err(reply) => reply,
        },
        (Method::POST, PEEK_PATH) => match read_json::<PeekRequest>(req).await {
            Ok(r) => answer(store.peek(&r).await),
            Err(reply) => reply,
        },
        (_, HEALTH_PATH | ADMIT_PATH | SETTLE_PATH | UNDO_PATH | PEEK_PATH) => {
            error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        _ => error(StatusCode::NOT_FOUND, "no such endpoint"),
    };
    Ok(reply)
}
