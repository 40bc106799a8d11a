//! `tollgate-loadgen`: a small closed-loop HTTP/1.1 load generator for `make bench`.
//!
//! N keep-alive connections, each sending the same request back to back for a warm-up and then a
//! measured window. Only requests that complete inside the measured window count. Prints one JSON
//! object: requests, rate, latency percentiles (µs), statuses, SSE events and bytes received,
//! and the CPU clock ticks the `--cpu-pid` processes used during the window.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tollgate_bench::{cpu_ticks, percentile, SseCounter};

const USAGE: &str = "\
usage: tollgate-loadgen --url http://HOST:PORT/PATH [options]
  --method M          request method (default GET, POST when a body is given)
  -H 'name: value'    request header (repeatable)
  --body STRING       request body
  --concurrency N     connections, each with one request in flight (default 8)
  --duration SECS     measured window (default 5)
  --warmup SECS       unmeasured run before the window (default 1)
  --expect-status N   status that counts as success (default 200)
  --cpu-pid PID       report utime+stime ticks of PID over the window (repeatable)";

struct Args {
    host: String,
    port: u16,
    path: String,
    method: Method,
    headers: Vec<(String, String)>,
    body: Bytes,
    concurrency: usize,
    duration: Duration,
    warmup: Duration,
    expect_status: u16,
    cpu_pids: Vec<u32>,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut url = None;
    let mut method = None;
    let mut headers = Vec::new();
    let mut body = None;
    let mut concurrency = 8usize;
    let mut duration = 5.0f64;
    let mut warmup = 1.0f64;
    let mut expect_status = 200u16;
    let mut cpu_pids = Vec::new();
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--url" => url = Some(val()?),
            "--method" => method = Some(val()?),
            "-H" | "--header" => {
                let h = val()?;
                let (k, v) = h.split_once(':').ok_or_else(|| format!("bad header {h:?}"))?;
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
            "--body" => body = Some(val()?),
            "--concurrency" => concurrency = val()?.parse().map_err(|e| format!("--concurrency: {e}"))?,
            "--duration" => duration = val()?.parse().map_err(|e| format!("--duration: {e}"))?,
            "--warmup" => warmup = val()?.parse().map_err(|e| format!("--warmup: {e}"))?,
            "--expect-status" => expect_status = val()?.parse().map_err(|e| format!("--expect-status: {e}"))?,
            "--cpu-pid" => cpu_pids.push(val()?.parse().map_err(|e| format!("--cpu-pid: {e}"))?),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let url = url.ok_or("--url is required")?;
    let rest = url.strip_prefix("http://").ok_or("only http:// URLs")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h.to_string(), p.parse().map_err(|e| format!("port: {e}"))?),
        None => (authority.to_string(), 80),
    };
    let method = match method {
        Some(m) => Method::from_bytes(m.as_bytes()).map_err(|e| format!("--method: {e}"))?,
        None if body.is_some() => Method::POST,
        None => Method::GET,
    };
    if concurrency == 0 || duration.is_nan() || duration <= 0.0 || warmup.is_nan() || warmup < 0.0 {
        return Err("concurrency and duration must be positive".into());
    }
    Ok(Args {
        host,
        port,
        path: path.to_string(),
        method,
        headers,
        body: Bytes::from(body.unwrap_or_default()),
        concurrency,
        duration: Duration::from_secs_f64(duration),
        warmup: Duration::from_secs_f64(warmup),
        expect_status,
        cpu_pids,
    })
}

#[derive(Default)]
struct Stats {
    latencies_us: Vec<u32>,
    ok: u64,
    bad_status: u64,
    errors: u64,
    reconnects: u64,
    statuses: BTreeMap<u16, u64>,
    events: u64,
    bytes: u64,
    first_error: Option<String>,
}

async fn one_request(
    sender: &mut http1::SendRequest<Full<Bytes>>,
    args: &Args,
    authority: &str,
) -> Result<(u16, u64, u64, bool), String> {
    let mut b = Request::builder().method(args.method.clone()).uri(args.path.as_str()).header("host", authority);
    for (k, v) in &args.headers {
        b = b.header(k.as_str(), v.as_str());
    }
    let req = b.body(Full::new(args.body.clone())).map_err(|e| e.to_string())?;
    sender.ready().await.map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let close = resp.headers().get("connection").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
    let mut body = resp.into_body();
    let mut sse = SseCounter::default();
    let mut bytes = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| e.to_string())?;
        if let Some(d) = frame.data_ref() {
            bytes += d.len() as u64;
            sse.feed(d);
        }
    }
    Ok((status, sse.events, bytes, close))
}

async fn worker(args: std::sync::Arc<Args>, measure_from: Instant, end: Instant) -> Stats {
    let mut st = Stats::default();
    let authority = format!("{}:{}", args.host, args.port);
    'connect: while Instant::now() < end {
        let stream = match TcpStream::connect((args.host.as_str(), args.port)).await {
            Ok(s) => s,
            Err(e) => {
                st.errors += 1;
                st.first_error.get_or_insert_with(|| format!("connect: {e}"));
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (mut sender, conn) = match http1::handshake(TokioIo::new(stream)).await {
            Ok(x) => x,
            Err(e) => {
                st.errors += 1;
                st.first_error.get_or_insert_with(|| format!("handshake: {e}"));
                continue;
            }
        };
        tokio::spawn(async move {
            let _ = conn.await;
        });
        loop {
            let t0 = Instant::now();
            if t0 >= end {
                break 'connect;
            }
            let r = one_request(&mut sender, &args, &authority).await;
            let t1 = Instant::now();
            let counted = t0 >= measure_from && t1 <= end;
            match r {
                Ok((status, events, bytes, close)) => {
                    if counted {
                        *st.statuses.entry(status).or_default() += 1;
                        if status == args.expect_status {
                            st.ok += 1;
                            st.latencies_us.push(u32::try_from((t1 - t0).as_micros()).unwrap_or(u32::MAX));
                            st.events += events;
                            st.bytes += bytes;
                        } else {
                            st.bad_status += 1;
                        }
                    }
                    if close {
                        // The server ends the connection after this response (Envoy does after a
                        // reply sent before it read the whole request): open a new one, no error.
                        st.reconnects += 1;
                        continue 'connect;
                    }
                }
                Err(e) => {
                    if counted {
                        st.errors += 1;
                    }
                    st.first_error.get_or_insert(e);
                    continue 'connect;
                }
            }
        }
    }
    st
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("tollgate-loadgen: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tollgate-loadgen: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(run(args))
}

async fn run(args: Args) -> ExitCode {
    let args = std::sync::Arc::new(args);
    let start = Instant::now();
    let measure_from = start + args.warmup;
    let end = measure_from + args.duration;
    let pids = args.cpu_pids.clone();
    let cpu = tokio::spawn(async move {
        tokio::time::sleep_until(measure_from.into()).await;
        let t0 = Instant::now();
        let before: Vec<Option<u64>> = pids.iter().map(|&p| cpu_ticks(p)).collect();
        tokio::time::sleep_until(end.into()).await;
        let after: Vec<Option<u64>> = pids.iter().map(|&p| cpu_ticks(p)).collect();
        let window = t0.elapsed();
        let ticks: Vec<Option<u64>> =
            before.iter().zip(&after).map(|(b, a)| Some(a.as_ref()?.saturating_sub(*b.as_ref()?))).collect();
        (ticks, window)
    });
    let handles: Vec<_> =
        (0..args.concurrency).map(|_| tokio::spawn(worker(args.clone(), measure_from, end))).collect();
    let mut all = Stats::default();
    for h in handles {
        let Ok(s) = h.await else { continue };
        all.latencies_us.extend(s.latencies_us);
        all.ok += s.ok;
        all.bad_status += s.bad_status;
        all.errors += s.errors;
        all.reconnects += s.reconnects;
        for (k, v) in s.statuses {
            *all.statuses.entry(k).or_default() += v;
        }
        all.events += s.events;
        all.bytes += s.bytes;
        if all.first_error.is_none() {
            all.first_error = s.first_error;
        }
    }
    let (ticks, window) = cpu.await.unwrap_or_else(|_| (vec![None; args.cpu_pids.len()], args.duration));
    all.latencies_us.sort_unstable();
    let secs = window.as_secs_f64();
    let l = &all.latencies_us;
    let mean = if l.is_empty() { 0.0 } else { l.iter().map(|&x| f64::from(x)).sum::<f64>() / l.len() as f64 };
    let out = serde_json::json!({
        "duration_s": secs,
        "concurrency": args.concurrency,
        "ok": all.ok,
        "bad_status": all.bad_status,
        "errors": all.errors,
        "reconnects": all.reconnects,
        "statuses": all.statuses.iter().map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<_, _>>(),
        "rps": all.ok as f64 / secs,
        "latency_us": {
            "p50": percentile(l, 0.50), "p90": percentile(l, 0.90), "p99": percentile(l, 0.99),
            "max": l.last().copied().unwrap_or(0), "mean": mean,
        },
        "sse_events": all.events,
        "bytes": all.bytes,
        "cpu_ticks": args.cpu_pids.iter().zip(&ticks).map(|(p, t)| (p.to_string(), *t)).collect::<BTreeMap<_, _>>(),
        "first_error": all.first_error,
    });
    println!("{out}");
    if all.ok == 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
