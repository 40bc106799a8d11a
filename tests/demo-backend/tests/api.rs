//! End-to-end tests: spawn the `demo-backend` binary on an ephemeral port and
//! talk raw HTTP/1.1 to it over `std::net::TcpStream`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

// ------------------------------------------------------------ harness ----

struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start() -> Server {
        Server::start_with(&[])
    }

    fn start_with(extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_demo-backend"))
            .args(["--listen", "127.0.0.1:0", "--threads", "2"])
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn demo-backend");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).expect("read listening line");
        let addr = line
            .trim()
            .strip_prefix("demo-backend listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        Server { child, addr }
    }

    fn req(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        request(&self.addr, method, path, headers, body)
    }

    fn post_json(&self, path: &str, headers: &[(&str, &str)], body: &Value) -> Resp {
        let mut h = vec![("content-type", "application/json")];
        h.extend_from_slice(headers);
        self.req("POST", path, &h, body.to_string().as_bytes())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// False if a chunked body ended without its terminating chunk.
    complete: bool,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("bad JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("utf-8 body")
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn request(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Resp {
    let end = find(raw, b"\r\n\r\n").expect("response head");
    let head = std::str::from_utf8(&raw[..end]).unwrap();
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let rest = &raw[end + 4..];
    let chunked = headers.iter().any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    if !chunked {
        return Resp { status, headers, body: rest.to_vec(), complete: true };
    }
    let (mut body, mut pos, mut complete) = (Vec::new(), 0, false);
    while let Some(eol) = find(&rest[pos..], b"\r\n") {
        let size_str = std::str::from_utf8(&rest[pos..pos + eol]).unwrap();
        let size = usize::from_str_radix(size_str.split(';').next().unwrap().trim(), 16).unwrap();
        pos += eol + 2;
        if size == 0 {
            complete = true;
            break;
        }
        if pos + size > rest.len() {
            body.extend_from_slice(&rest[pos..]);
            break;
        }
        body.extend_from_slice(&rest[pos..pos + size]);
        pos += size + 2;
    }
    Resp { status, headers, body, complete }
}

/// OpenAI-style SSE: the `data:` payloads, in order.
fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| e.strip_prefix("data: ").expect("data: prefix").to_string())
        .collect()
}

fn chat_body(text: &str, stream: bool) -> Value {
    json!({"model": "gpt-demo", "stream": stream, "messages": [{"role": "user", "content": text}]})
}

fn stream_content(events: &[String]) -> (String, Vec<Value>) {
    let chunks: Vec<Value> =
        events.iter().filter(|e| *e != "[DONE]").map(|e| serde_json::from_str(e).unwrap()).collect();
    let text = chunks.iter().filter_map(|c| c.pointer("/choices/0/delta/content").and_then(Value::as_str)).collect();
    (text, chunks)
}

fn b64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("bad base64 char {c}"),
    };
    let mut out = Vec::new();
    for q in s.as_bytes().chunks(4) {
        let n = q.iter().take_while(|&&c| c != b'=').count();
        let mut acc = 0u32;
        for (i, &c) in q[..n].iter().enumerate() {
            acc |= u32::from(val(c)) << (18 - 6 * i);
        }
        out.extend_from_slice(&acc.to_be_bytes()[1..n]);
    }
    out
}

fn assert_png(bytes: &[u8]) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    let decoder = png::Decoder::new(bytes);
    let mut reader = decoder.read_info().expect("png header");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("png frame");
    assert_eq!((info.width, info.height), (8, 8));
}

// -------------------------------------------------------------- tests ----

#[test]
fn health_not_found_and_keep_alive() {
    let srv = Server::start();
    let r = srv.req("GET", "/health", &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "ok");
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));

    let r = srv.req("GET", "/nope", &[], b"");
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["code"], "not_found");

    // Two requests on one connection (keep-alive).
    let mut s = TcpStream::connect(&srv.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let n = s.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
}

#[test]
fn chat_non_stream_shape_and_usage() {
    let srv = Server::start();
    let body = json!({
        "model": "Weird/Model-1",
        "messages": [
            {"role": "system", "content": "be nice"},
            {"role": "user", "content": [{"type": "text", "text": "hi there"}]},
        ],
    });
    let r = srv.post_json("/v1/chat/completions", &[], &body);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v = r.json();
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(v["object"], "chat.completion");
    assert!(v["created"].as_u64().unwrap() > 1_600_000_000);
    assert_eq!(v["model"], "Weird/Model-1");
    let choice = &v["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["message"]["content"], "Hello from Weird/Model-1! You said: hi there");
    assert_eq!(choice["finish_reason"], "stop");
    assert!(choice["logprobs"].is_null());
    // prompt: (4 + 2) + (4 + 2); completion: 7 words.
    assert_eq!(v["usage"], json!({"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}));

    // Echo is truncated to 200 characters.
    let long = "x".repeat(500);
    let v = srv.post_json("/v1/chat/completions", &[], &chat_body(&long, false)).json();
    let content = v["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(content, format!("Hello from gpt-demo! You said: {}", "x".repeat(200)));

    // x-demo-no-usage
    let v = srv.post_json("/v1/chat/completions", &[("x-demo-no-usage", "1")], &chat_body("hi", false)).json();
    assert!(v.get("usage").is_none());
}

#[test]
fn chat_stream_sequence_and_include_usage() {
    let srv = Server::start();
    let plain = srv.post_json("/v1/chat/completions", &[], &chat_body("hi there", false)).json();
    let expected = plain["choices"][0]["message"]["content"].as_str().unwrap().to_string();

    for include_usage in [false, true] {
        let mut body = chat_body("hi there", true);
        body["stream_options"] = json!({"include_usage": include_usage});
        let r = srv.post_json("/v1/chat/completions", &[], &body);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("text/event-stream"));
        assert_eq!(r.header("transfer-encoding"), Some("chunked"));
        assert!(r.complete);
        let events = sse_data(&r.text());
        assert_eq!(events.last().unwrap(), "[DONE]");
        let (text, chunks) = stream_content(&events);
        assert_eq!(text, expected);
        assert_eq!(chunks[0]["object"], "chat.completion.chunk");
        assert_eq!(chunks[0]["choices"][0]["delta"], json!({"role": "assistant", "content": ""}));
        let pieces: Vec<&str> =
            chunks[1..8].iter().map(|c| c["choices"][0]["delta"]["content"].as_str().unwrap()).collect();
        assert_eq!(pieces, ["Hello ", "from ", "gpt-demo! ", "You ", "said: ", "hi ", "there"]);
        let finish = &chunks[8];
        assert_eq!(finish["choices"][0]["delta"], json!({}));
        assert_eq!(finish["choices"][0]["finish_reason"], "stop");
        let ids: Vec<&Value> = chunks.iter().map(|c| &c["id"]).collect();
        assert!(ids.iter().all(|id| *id == ids[0]));
        if include_usage {
            assert_eq!(chunks.len(), 10);
            let u = &chunks[9];
            assert_eq!(u["choices"], json!([]));
            assert_eq!(u["usage"], json!({"prompt_tokens": 6, "completion_tokens": 7, "total_tokens": 13}));
        } else {
            assert_eq!(chunks.len(), 9);
            assert!(chunks.iter().all(|c| c.get("usage").is_none()));
        }
    }

    // x-demo-no-usage wins over include_usage.
    let mut body = chat_body("hi", true);
    body["stream_options"] = json!({"include_usage": true});
    let r = srv.post_json("/v1/chat/completions", &[("x-demo-no-usage", "1")], &body);
    assert!(!r.text().contains("\"usage\""));
}

#[test]
fn demo_chunks_and_max_tokens() {
    let srv = Server::start();
    let mut body = chat_body("ignored", true);
    body["stream_options"] = json!({"include_usage": true});
    let r = srv.post_json("/v1/chat/completions", &[("x-demo-chunks", "50")], &body);
    let (text, chunks) = stream_content(&sse_data(&r.text()));
    let content_chunks = chunks
        .iter()
        .filter(|c| c.pointer("/choices/0/delta/content").and_then(Value::as_str).is_some_and(|s| !s.is_empty()))
        .count();
    assert_eq!(content_chunks, 50);
    let expected: String = (0..50).map(|i| format!("tok{i} ")).collect();
    assert_eq!(text, expected);
    assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], 50);

    let v = srv.post_json("/v1/chat/completions", &[("x-demo-chunks", "50")], &chat_body("x", false)).json();
    assert_eq!(v["choices"][0]["message"]["content"], expected);
    assert_eq!(v["usage"]["completion_tokens"], 50);

    // Large streams stay complete.
    let r = srv.post_json("/v1/chat/completions", &[("x-demo-chunks", "20000")], &chat_body("x", true));
    assert!(r.complete);
    assert_eq!(sse_data(&r.text()).len(), 20000 + 3);

    // max_tokens caps and yields finish_reason "length".
    let mut body = chat_body("one two three four five", false);
    body["max_tokens"] = json!(3);
    let v = srv.post_json("/v1/chat/completions", &[], &body).json();
    assert_eq!(v["choices"][0]["message"]["content"], "Hello from gpt-demo! ");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["completion_tokens"], 3);
    let mut body = chat_body("x", true);
    body["max_completion_tokens"] = json!(2);
    let r = srv.post_json("/v1/chat/completions", &[("x-demo-chunks", "10")], &body);
    let (text, chunks) = stream_content(&sse_data(&r.text()));
    assert_eq!(text, "tok0 tok1 ");
    assert_eq!(chunks.last().unwrap()["choices"][0]["finish_reason"], "length");
}

fn weather_tools() -> Value {
    json!([
        {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}},
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}},
    ])
}

#[test]
fn chat_tool_calls() {
    let srv = Server::start();
    // "weather" in the text -> first tool (no location property -> "{}").
    let mut body = chat_body("What's the Weather like?", false);
    body["tools"] = weather_tools();
    let v = srv.post_json("/v1/chat/completions", &[], &body).json();
    let msg = &v["choices"][0]["message"];
    assert!(msg["content"].is_null());
    let call = &msg["tool_calls"][0];
    assert!(call["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "lookup");
    assert_eq!(call["function"]["arguments"], "{}");
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    assert!(v["usage"]["completion_tokens"].as_u64().unwrap() > 0);

    // Named tool via tool_choice, no trigger word needed; streamed.
    let mut body = chat_body("hello", true);
    body["tools"] = weather_tools();
    body["tool_choice"] = json!({"type": "function", "function": {"name": "get_weather"}});
    body["stream_options"] = json!({"include_usage": true});
    let r = srv.post_json("/v1/chat/completions", &[], &body);
    let events = sse_data(&r.text());
    assert_eq!(events.last().unwrap(), "[DONE]");
    let (_, chunks) = stream_content(&events);
    let first = &chunks[0]["choices"][0]["delta"]["tool_calls"][0];
    assert_eq!(first["index"], 0);
    assert!(first["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(first["type"], "function");
    assert_eq!(first["function"]["name"], "get_weather");
    assert_eq!(first["function"]["arguments"], "");
    let frags: Vec<&str> = chunks[1..]
        .iter()
        .filter_map(|c| c.pointer("/choices/0/delta/tool_calls/0/function/arguments"))
        .filter_map(Value::as_str)
        .collect();
    assert!((2..=3).contains(&frags.len()));
    assert_eq!(frags.concat(), r#"{"location":"Paris"}"#);
    let finish = chunks.iter().find(|c| !c["choices"][0]["finish_reason"].is_null()).unwrap();
    assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
    assert!(chunks.last().unwrap()["usage"]["completion_tokens"].as_u64().unwrap() > 0);

    // tool_choice "required" picks the first tool; "none" disables tools.
    let mut body = chat_body("hello", false);
    body["tools"] = weather_tools();
    body["tool_choice"] = json!("required");
    let v = srv.post_json("/v1/chat/completions", &[], &body).json();
    assert_eq!(v["choices"][0]["message"]["tool_calls"][0]["function"]["name"], "lookup");
    let mut body = chat_body("weather?", false);
    body["tools"] = weather_tools();
    body["tool_choice"] = json!("none");
    let v = srv.post_json("/v1/chat/completions", &[], &body).json();
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    // No tools -> plain text even with the trigger word.
    let v = srv.post_json("/v1/chat/completions", &[], &chat_body("weather?", false)).json();
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
}

#[test]
fn errors_forced_and_bad_json() {
    let srv = Server::start();
    let r = srv.req("POST", "/v1/chat/completions", &[], b"{not json");
    assert_eq!(r.status, 400);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v = r.json();
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert_eq!(v["error"]["code"], "bad_request");
    assert!(v["error"]["message"].is_string());
    let r = srv.req("POST", "/v1/chat/completions", &[], b"[1,2]");
    assert_eq!(r.status, 400);
    let r = srv.req("POST", "/v1/images/generations", &[], b"\xff\xfe");
    assert_eq!(r.status, 400);

    let r = srv.post_json("/v1/chat/completions", &[("x-demo-status", "503")], &chat_body("x", false));
    assert_eq!(r.status, 503);
    assert_eq!(
        r.json(),
        json!({"error": {"message": "demo backend forced error 503", "type": "api_error", "code": "demo_error"}})
    );
    let r = srv.post_json("/v1/messages", &[("x-demo-status", "529")], &json!({}));
    assert_eq!(r.status, 529);
    assert_eq!(
        r.json(),
        json!({"type": "error", "error": {"type": "api_error", "message": "demo backend forced error 529"}})
    );
    let r = srv.post_json("/v1beta/models/g:generateContent", &[("x-demo-status", "500")], &json!({}));
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["error"]["code"], 500);
    assert_eq!(r.json()["error"]["status"], "INTERNAL");

    // Delay is honoured.
    let t = Instant::now();
    let r = srv.post_json("/v1/chat/completions", &[("x-demo-delay-ms", "300")], &chat_body("x", false));
    assert_eq!(r.status, 200);
    assert!(t.elapsed() >= Duration::from_millis(300));
}

#[test]
fn stream_cut_after() {
    let srv = Server::start();
    let r = srv.post_json(
        "/v1/chat/completions",
        &[("x-demo-chunks", "10"), ("x-demo-cut-after", "3")],
        &chat_body("x", true),
    );
    assert_eq!(r.status, 200);
    assert!(!r.complete, "stream must end without the chunked terminator");
    let text = r.text();
    assert!(!text.contains("[DONE]"));
    assert!(!text.contains("finish_reason\":\"stop"));
    let (content, _) = stream_content(&sse_data(&text));
    assert_eq!(content, "tok0 tok1 tok2 ");

    let r = srv.post_json(
        "/v1/messages",
        &[("x-demo-cut-after", "2")],
        &json!({"model": "c", "stream": true, "messages": [{"role": "user", "content": "a b c d"}]}),
    );
    assert!(!r.complete);
    assert_eq!(r.text().matches("event: content_block_delta").count(), 2);
    assert!(!r.text().contains("message_stop"));
}

#[test]
fn stream_is_incremental() {
    let srv = Server::start();
    let body = chat_body("x", true).to_string();
    let mut s = TcpStream::connect(&srv.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nx-demo-chunks: 5\r\nx-demo-chunk-delay-ms: 100\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 8192];
    let mut raw = Vec::new();
    let mut first_data = None;
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                raw.extend_from_slice(&buf[..n]);
                if first_data.is_none() && find(&raw, b"data: ").is_some() {
                    first_data = Some(start.elapsed());
                }
            }
        }
    }
    let total = start.elapsed();
    let first = first_data.expect("got data");
    assert!(total >= Duration::from_millis(700), "total {total:?}");
    assert!(first + Duration::from_millis(400) < total, "first {first:?} total {total:?}");
    assert!(parse_response(&raw).complete);
}

#[test]
fn anthropic_messages() {
    let srv = Server::start();
    let body = json!({
        "model": "claude-demo",
        "max_tokens": 100,
        "system": "be brief",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi there"}]}],
    });
    let v = srv.post_json("/v1/messages", &[], &body).json();
    assert!(v["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(v["model"], "claude-demo");
    assert_eq!(v["content"], json!([{"type": "text", "text": "Hello from claude-demo! You said: hi there"}]));
    assert_eq!(v["stop_reason"], "end_turn");
    assert!(v["stop_sequence"].is_null());
    assert_eq!(v["usage"], json!({"input_tokens": 12, "output_tokens": 7}));

    let mut sbody = body.clone();
    sbody["stream"] = json!(true);
    let r = srv.post_json("/v1/messages", &[], &sbody);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    assert!(r.complete);
    let text = r.text();
    let events: Vec<(String, Value)> = text
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let (ev, data) = e.split_once('\n').unwrap();
            let name = ev.strip_prefix("event: ").unwrap().to_string();
            let data: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
            assert_eq!(data["type"], name.as_str());
            (name, data)
        })
        .collect();
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    let mut expected = vec!["message_start", "content_block_start", "ping"];
    expected.extend(std::iter::repeat_n("content_block_delta", 7));
    expected.extend(["content_block_stop", "message_delta", "message_stop"]);
    assert_eq!(names, expected);
    let start = &events[0].1["message"];
    assert_eq!(start["content"], json!([]));
    assert!(start["stop_reason"].is_null());
    assert_eq!(start["usage"], json!({"input_tokens": 12, "output_tokens": 1}));
    assert_eq!(events[1].1["content_block"], json!({"type": "text", "text": ""}));
    let streamed: String = events[3..10]
        .iter()
        .map(|(_, d)| {
            assert_eq!(d["delta"]["type"], "text_delta");
            d["delta"]["text"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(streamed, "Hello from claude-demo! You said: hi there");
    let md = &events[11].1;
    assert_eq!(md["delta"], json!({"stop_reason": "end_turn", "stop_sequence": null}));
    assert_eq!(md["usage"], json!({"output_tokens": 7}));

    // Tool use, streamed.
    let tbody = json!({
        "model": "claude-demo", "max_tokens": 100, "stream": true,
        "tools": [{"name": "get_weather", "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}}}],
        "messages": [{"role": "user", "content": "weather in Paris?"}],
    });
    let text = srv.post_json("/v1/messages", &[], &tbody).text();
    let datas: Vec<Value> = text
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| serde_json::from_str(e.split_once("\ndata: ").unwrap().1).unwrap())
        .collect();
    let block = &datas[1]["content_block"];
    assert_eq!(block["type"], "tool_use");
    assert!(block["id"].as_str().unwrap().starts_with("toolu_"));
    assert_eq!(block["name"], "get_weather");
    assert_eq!(block["input"], json!({}));
    let partial: String = datas
        .iter()
        .filter(|d| d["delta"]["type"] == "input_json_delta")
        .map(|d| d["delta"]["partial_json"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(partial, r#"{"location":"Paris"}"#);
    let md = datas.iter().find(|d| d["type"] == "message_delta").unwrap();
    assert_eq!(md["delta"]["stop_reason"], "tool_use");

    // Tool use, non-stream, forced by tool_choice.
    let mut nbody = tbody.clone();
    nbody["stream"] = json!(false);
    nbody["tool_choice"] = json!({"type": "any"});
    nbody["messages"] = json!([{"role": "user", "content": "hello"}]);
    let v = srv.post_json("/v1/messages", &[], &nbody).json();
    assert_eq!(v["stop_reason"], "tool_use");
    assert_eq!(v["content"][0]["type"], "tool_use");
    assert_eq!(v["content"][0]["input"], json!({"location": "Paris"}));

    let r = srv.req("POST", "/v1/messages", &[], b"nope");
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["type"], "error");
}

#[test]
fn gemini_generate_and_stream() {
    let srv = Server::start();
    let body = json!({"contents": [{"role": "user", "parts": [{"text": "hi there"}]}]});
    let v = srv.post_json("/v1beta/models/gemini-demo:generateContent", &[], &body).json();
    let cand = &v["candidates"][0];
    assert_eq!(cand["content"]["role"], "model");
    assert_eq!(cand["content"]["parts"][0]["text"], "Hello from gemini-demo! You said: hi there");
    assert_eq!(cand["finishReason"], "STOP");
    assert_eq!(cand["index"], 0);
    assert_eq!(v["usageMetadata"], json!({"promptTokenCount": 6, "candidatesTokenCount": 7, "totalTokenCount": 13}));
    assert_eq!(v["modelVersion"], "gemini-demo");
    assert!(v["responseId"].is_string());

    // Also under /v1/models/...
    let r = srv.post_json("/v1/models/gemini-demo:generateContent", &[], &body);
    assert_eq!(r.status, 200);

    let r = srv.post_json("/v1beta/models/gemini-demo:streamGenerateContent?alt=sse", &[], &body);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    assert!(r.complete);
    let text = r.text();
    assert!(text.ends_with("\r\n\r\n"));
    let events: Vec<Value> = text
        .split("\r\n\r\n")
        .filter(|e| !e.is_empty())
        .map(|e| serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap())
        .collect();
    assert_eq!(events.len(), 7);
    let mut streamed = String::new();
    for (i, e) in events.iter().enumerate() {
        streamed.push_str(e["candidates"][0]["content"]["parts"][0]["text"].as_str().unwrap());
        assert_eq!(e["usageMetadata"]["candidatesTokenCount"], i + 1);
        assert_eq!(e["usageMetadata"]["promptTokenCount"], 6);
        let finish = &e["candidates"][0]["finishReason"];
        if i == 6 {
            assert_eq!(finish, "STOP");
        } else {
            assert!(finish.is_null());
        }
    }
    assert_eq!(streamed, "Hello from gemini-demo! You said: hi there");

    // Without alt=sse: a JSON array.
    let r = srv.post_json("/v1beta/models/gemini-demo:streamGenerateContent", &[("x-demo-chunks", "4")], &body);
    let arr = r.json();
    assert_eq!(arr.as_array().unwrap().len(), 4);

    // Function call.
    let fbody = json!({
        "contents": [{"role": "user", "parts": [{"text": "what is the weather"}]}],
        "tools": [{"functionDeclarations": [{"name": "get_weather", "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}]}],
    });
    let v = srv.post_json("/v1beta/models/gemini-demo:generateContent", &[], &fbody).json();
    assert_eq!(
        v["candidates"][0]["content"]["parts"][0],
        json!({"functionCall": {"name": "get_weather", "args": {"location": "Paris"}}})
    );
    let r = srv.req("POST", "/v1beta/models/gemini-demo:generateContent", &[], b"{");
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], 400);
}

#[test]
fn media_endpoints() {
    let srv = Server::start();
    let v = srv.post_json("/v1/images/generations", &[], &json!({"prompt": "cat", "n": 2})).json();
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert!(v["created"].is_u64());
    assert_png(&b64_decode(data[0]["b64_json"].as_str().unwrap()));

    let v = srv.post_json("/v1/images/generations", &[], &json!({"prompt": "cat", "response_format": "url"})).json();
    assert_eq!(v["data"][0]["url"], format!("http://{}/v1/files/demo.png", srv.addr));

    let r = srv.req("GET", "/v1/files/demo.png", &[], b"");
    assert_eq!(r.header("content-type"), Some("image/png"));
    assert_png(&r.body);

    let v = srv.post_json("/v1/videos/generations", &[], &json!({"prompt": "x", "duration": 4})).json();
    assert_eq!(v["data"][0]["url"], format!("http://{}/v1/files/demo.mp4", srv.addr));
    assert_eq!(v["data"][0]["content_type"], "video/mp4");
    assert_eq!(v["data"][0]["duration_seconds"], 4);
    let v = srv.post_json("/v1/videos/generations", &[], &json!({"prompt": "x"})).json();
    assert_eq!(v["data"][0]["duration_seconds"], 6);
    let r = srv.req("GET", "/v1/files/demo.mp4", &[], b"");
    assert_eq!(r.header("content-type"), Some("video/mp4"));
    assert_eq!(&r.body[4..8], b"ftyp");

    let r = srv.post_json("/v1/audio/speech", &[], &json!({"input": "hello", "voice": "alloy"}));
    assert_eq!(r.header("content-type"), Some("audio/wav"));
    assert_eq!(&r.body[..4], b"RIFF");
    assert_eq!(&r.body[8..16], b"WAVEfmt ");
    let r = srv.post_json("/v1/audio/speech", &[], &json!({"input": "x", "response_format": "mp3"}));
    assert_eq!(r.header("content-type"), Some("audio/mpeg"));

    let form = b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\nabc\r\n--b--\r\n";
    let r = srv.req("POST", "/v1/audio/transcriptions", &[("content-type", "multipart/form-data; boundary=b")], form);
    assert_eq!(
        r.json(),
        json!({"text": format!("demo transcription of {} bytes", form.len()), "usage": {"type": "duration", "seconds": 1}})
    );
}

#[test]
fn capture_ring() {
    let srv = Server::start();
    assert_eq!(srv.req("DELETE", "/__demo/requests", &[], b"").status, 200);
    srv.post_json("/v1/chat/completions?x=1", &[("x-trace", "abc")], &chat_body("first", false));
    srv.req("GET", "/health", &[], b"");
    let list = srv.req("GET", "/__demo/requests", &[], b"").json();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["method"], "POST");
    assert_eq!(list[0]["path"], "/v1/chat/completions?x=1");
    assert!(list[0]["headers"].as_array().unwrap().contains(&json!(["x-trace", "abc"])));
    let sent = chat_body("first", false).to_string();
    assert_eq!(list[0]["body_size"], sent.len());
    assert_eq!(list[0]["body"], sent);
    assert_eq!(list[1]["path"], "/health");

    // Bodies are captured up to 4 KiB.
    let big = vec![b'a'; 10_000];
    srv.req("POST", "/v1/audio/transcriptions", &[], &big);
    let list = srv.req("GET", "/__demo/requests", &[], b"").json();
    assert_eq!(list[2]["body_size"], 10_000);
    assert_eq!(list[2]["body"].as_str().unwrap().len(), 4096);

    // Ring keeps the last 200, oldest first.
    srv.req("DELETE", "/__demo/requests", &[], b"");
    for i in 0..205 {
        srv.req("GET", &format!("/health?i={i}"), &[], b"");
    }
    let list = srv.req("GET", "/__demo/requests", &[], b"").json();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 200);
    assert_eq!(list[0]["path"], "/health?i=5");
    assert_eq!(list[199]["path"], "/health?i=204");

    // --no-capture records nothing.
    let quiet = Server::start_with(&["--no-capture"]);
    quiet.req("GET", "/health", &[], b"");
    assert_eq!(quiet.req("GET", "/__demo/requests", &[], b"").json(), json!([]));
}

#[test]
fn port_file_and_sigterm() {
    let dir = std::env::temp_dir().join(format!("demo-backend-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port_file = dir.join("port");
    let mut srv = Server::start_with(&["--port-file", port_file.to_str().unwrap()]);
    let port: u16 = std::fs::read_to_string(&port_file).unwrap().trim().parse().unwrap();
    assert!(srv.addr.ends_with(&format!(":{port}")));
    assert_eq!(srv.req("GET", "/health", &[], b"").status, 200);

    #[cfg(unix)]
    {
        let pid = srv.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(status) = srv.child.try_wait().unwrap() {
                assert!(status.success(), "exit status {status:?}");
                break;
            }
            assert!(Instant::now() < deadline, "did not exit on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn strict_mode_refuses_like_the_real_apis() {
    let lenient = Server::start();
    let srv = Server::start_with(&["--strict", "--name", "demo_text"]);
    let top_k = json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "top_k": 3});
    assert_eq!(lenient.post_json("/v1/chat/completions", &[], &top_k).status, 200);
    let r = srv.post_json("/v1/chat/completions", &[], &top_k);
    assert_eq!(r.status, 400);
    assert_eq!(r.header("x-demo-backend"), Some("demo_text"));
    assert_eq!(
        r.json(),
        json!({"error": {"message": "Unrecognized request argument supplied: top_k",
                         "type": "invalid_request_error", "param": null, "code": null}})
    );
    assert_eq!(srv.post_json("/v1/chat/completions", &[], &chat_body("x", true)).status, 200);

    let r = srv.post_json("/v1/messages", &[], &json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}));
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        json!({"type": "error", "error": {"type": "invalid_request_error", "message": "max_tokens: Field required"}})
    );
    let ok = json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]});
    assert_eq!(srv.post_json("/v1/messages", &[], &ok).status, 200);

    let r = srv.post_json(
        "/v1beta/models/g:generateContent",
        &[],
        &json!({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        json!({"error": {"code": 400, "message": "Please use a valid role: user, model.", "status": "INVALID_ARGUMENT"}})
    );
    let ok = json!({"contents": [{"role": "user", "parts": [{"text": "x"}]}]});
    assert_eq!(srv.post_json("/v1beta/models/g:generateContent", &[], &ok).status, 200);

    // The name is kept with captured requests too.
    let list = srv.req("GET", "/__demo/requests", &[], b"").json();
    assert_eq!(list[0]["backend"], "demo_text");
    assert_eq!(lenient.req("GET", "/health", &[], b"").header("x-demo-backend"), Some("demo"));
}

#[test]
fn usage_fixed_reports_exactly_the_chosen_counts() {
    let srv = Server::start();
    let h = [("x-demo-usage-fixed", "123 45")];
    let v = srv.post_json("/v1/chat/completions", &h, &chat_body("hello", false)).json();
    assert_eq!(v["usage"], json!({"prompt_tokens": 123, "completion_tokens": 45, "total_tokens": 168}));
    let mut b = chat_body("hello", true);
    b["stream_options"] = json!({"include_usage": true});
    let r = srv.post_json("/v1/chat/completions", &h, &b);
    let (_, chunks) = stream_content(&sse_data(&r.text()));
    let last = chunks.iter().rev().find(|c| c.get("usage").is_some()).unwrap();
    assert_eq!(last["usage"]["completion_tokens"], 45);
    assert_eq!(last["usage"]["prompt_tokens"], 123);
    let a = json!({"model": "m", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(
        srv.post_json("/v1/messages", &h, &a).json()["usage"],
        json!({"input_tokens": 123, "output_tokens": 45})
    );
    let mut a = a;
    a["stream"] = json!(true);
    let text = srv.post_json("/v1/messages", &h, &a).text();
    assert!(text.contains(r#""usage":{"input_tokens":123,"output_tokens":1}"#), "{text}");
    assert!(text.contains(r#""usage":{"output_tokens":45}"#), "{text}");
    let g = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]});
    let v = srv.post_json("/v1beta/models/g:generateContent", &h, &g).json();
    assert_eq!(
        v["usageMetadata"],
        json!({"promptTokenCount": 123, "candidatesTokenCount": 45, "totalTokenCount": 168})
    );
    let text = srv.post_json("/v1beta/models/g:streamGenerateContent?alt=sse", &h, &g).text();
    let frames: Vec<&str> = text.split("\r\n\r\n").filter(|f| !f.trim().is_empty()).collect();
    let last: Value = serde_json::from_str(frames.last().unwrap().strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(last["usageMetadata"]["candidatesTokenCount"], 45);
    assert_eq!(last["usageMetadata"]["promptTokenCount"], 123);
}

#[test]
fn embeddings_are_deterministic_vectors_of_the_asked_dimensions_with_usage() {
    let srv = Server::start();
    let body = json!({"model": "e", "input": ["one two three", "four"], "dimensions": 5});
    let a = srv.post_json("/v1/embeddings", &[], &body).json();
    let b = srv.post_json("/v1/embeddings", &[], &body).json();
    assert_eq!(a, b);
    assert_eq!(a["data"].as_array().map(Vec::len), Some(2));
    assert_eq!(a["data"][0]["embedding"].as_array().map(Vec::len), Some(5));
    assert_eq!(a["data"][1]["index"], 1);
    assert_eq!(a["usage"], json!({"prompt_tokens": 4, "total_tokens": 4}));
    // base64: the same floats, as little-endian f32.
    let body64 =
        json!({"model": "e", "input": ["one two three", "four"], "dimensions": 5, "encoding_format": "base64"});
    let c = srv.post_json("/v1/embeddings", &[], &body64).json();
    let bytes = b64_decode(c["data"][0]["embedding"].as_str().unwrap());
    let floats: Vec<f32> = bytes.chunks(4).map(|q| f32::from_le_bytes([q[0], q[1], q[2], q[3]])).collect();
    let expect: Vec<f32> =
        a["data"][0]["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
    assert_eq!(floats, expect);
    let none = srv.post_json("/v1/embeddings", &[("x-demo-no-usage", "1")], &body).json();
    assert_eq!(none.get("usage"), None);
}

#[test]
fn token_counters_answer_in_their_dialects() {
    let srv = Server::start();
    let a = srv.post_json(
        "/v1/messages/count_tokens",
        &[],
        &json!({"model": "m", "system": "be brief", "messages": [{"role": "user", "content": "hello there you"}]}),
    );
    assert_eq!(a.status, 200);
    assert_eq!(a.json(), json!({"input_tokens": 5}));
    let g = srv.post_json(
        "/v1beta/models/m:countTokens",
        &[],
        &json!({"contents": [{"role": "user", "parts": [{"text": "hello there"}]}]}),
    );
    assert_eq!(g.status, 200);
    assert_eq!(g.json(), json!({"totalTokens": 2}));
}
