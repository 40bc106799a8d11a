//! Tests of `dialect/openai/` (in their own file, so test code is found by its path).
use serde_json::{json, Value};

use super::front::*;
use super::upstream::*;
use crate::errors::Code;
use crate::sse::Event;
use crate::usage::{self, Usage};

#[test]
fn usage_fast_path_agrees_with_the_general_path() {
    let general =
        |b: &[u8]| -> Option<Usage> { serde_json::from_slice::<Value>(b).ok().and_then(|v| usage::from_openai(&v)) };
    for body in [
        &br#"{"id":"x","model":"m","choices":[{"message":{"content":"hi \"there\""}}],"usage":{"prompt_tokens":3,"completion_tokens":4,"prompt_tokens_details":{"cached_tokens":1}}}"#[..],
        br#"{"usage":null}"#,
        br#"{"usage":5}"#,
        br#"{"model":"m"}"#,
        br#" {"usage":{"prompt_tokens":1},"usage":{"prompt_tokens":2}}"#,
        br#"[{"prompt_tokens":1}]"#,
        br#"{"usage":{"prompt_tokens":1}} trailing"#,
        b"not json",
    ] {
        assert_eq!(rewrite_response(body, None), (None, general(body)), "{}", String::from_utf8_lossy(body));
    }
}

#[test]
fn scan_agrees_with_parse_chat() {
    let bodies: &[&str] = &[
        r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#,
        r#" {"model":"m","max_tokens":64,"stream":false,"messages":[{"role":"user","content":"Say hello"}]}"#,
        r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"12345678"},{"type":"image_url","image_url":{"url":"x"}}]}],"tools":[{"type":"function","function":{"name":"f","description":"d\u00e9","parameters":{"type":"object"}}}]}"#,
        r#"{"model":"m","messages":[{"role":"user","content":"a"}],"stream":true,"stream_options":{"include_usage":true},"max_completion_tokens":5,"max_tokens":9}"#,
        r#"{"model":"m","messages":[{"role":"user","content":"a"}],"stream":true,"stream_options":{"include_usage":false,"include_usage":true}}"#,
        r#"{"model":"x","model":"m","messages":[{"content":"no role"}],"messages":[{"role":"user","name":"n","content":"b"}]}"#,
        r#"{"m\u006fdel":"m","messages":[{"role":"user","content":"a"}],"temperature":1.5,"top_p":0,"n":1,"stop":["x"]}"#,
        r#"{"model":"m","messages":[{"role":"user","content":"a","content":"longer text"}]}"#,
        r#"{"model":"m","messages":[{"r\u006fle":"user","content":"a"}]}"#,
        r#"{"model":"m","messages":[{"role":"user","content":{"role":"x","type":"y","z":["abc",1,null,true,{"q":"r"}]}}],"tools":"abc"}"#,
        r#"{"model":"m","messages":[{"role":"user","content":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["deep"]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}]}"#,
        r#"{"model":"m","messages":[{"role":"user","content":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["deep"]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}]}"#,
        // Each of these fails parse_chat: the scan must give up on it.
        r#"{"model":"","messages":[{"role":"user"}]}"#,
        r#"{"model":"m","messages":[]}"#,
        r#"{"model":"m","messages":null}"#,
        r#"{"model":"m","messages":[{"role":5}]}"#,
        r#"{"model":"m","messages":["x"]}"#,
        r#"{"model":"m","messages":[{"role":"user"}],"stream":"yes"}"#,
        r#"{"model":"m","messages":[{"role":"user"}],"stream_options":[]}"#,
        r#"{"model":"m","messages":[{"role":"user"}],"stream_options":{"include_usage":1}}"#,
        r#"{"model":"m","messages":[{"role":"user"}],"max_tokens":0}"#,
        r#"{"model":"m","messages":[{"role":"user"}],"temperature":"hot"}"#,
        r#"{"model":"m","messages":[{"role":"user"}],"stop":[1]}"#,
        r#"{"model":"m","messages":[{"role":"user"}]} x"#,
        r#"{"model":"m","messages":[{"role":"user"}]"#,
        r#"[{"model":"m"}]"#,
        // A lone surrogate in values the scan does not read (a top-level field, a `type`).
        r#"{"model":"m","messages":[{"role":"user"}],"x":"\ud800"}"#,
        r#"{"model":"m","messages":[{"role":"user","type":"\udc00"}]}"#,
        "",
    ];
    for b in bodies {
        let parsed = parse_chat(b.as_bytes());
        let scanned = scan_chat(b.as_bytes());
        match (&parsed, &scanned) {
            (Ok(p), Some(s)) => {
                assert_eq!(
                    (&p.model, p.stream, p.wants_usage, p.max_tokens),
                    (&s.model, s.stream, s.wants_usage, s.max_tokens),
                    "{b}"
                );
                assert_eq!(usage::estimate_prompt_tokens(&p.body), s.prompt_estimate, "{b}");
            }
            (Err(_), None) => {}
            (Ok(_), None) => {
                // Allowed (the general path decides), but only for the unusual shapes.
                // Bodies past the one nesting limit never reach either (`guard::check` refuses
                // them first).
                let too_deep = crate::dialect::guard::check(b.as_bytes()).is_err_and(|e| e.param.is_none());
                assert!(
                    b.contains("\\u") || b.contains(r#""content":"a","content""#) || b.contains("no role") || too_deep,
                    "scan gave up on {b}"
                );
            }
            (Err(e), Some(_)) => panic!("scan accepted what parse_chat refuses ({e:?}): {b}"),
        }
    }
}

#[test]
fn scan_refuses_invalid_utf8_in_what_it_does_not_read() {
    for b in [
        &b"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"type\":\"ob\x96ct\"}]}"[..],
        &b"{\"model\":\"m\",\"x\":\"\xff\",\"messages\":[{\"role\":\"user\"}]}"[..],
        &b"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"c\":{\"role\":\"\xc3\"}}]}"[..],
        &b"{\"model\":\"m\",\"messages\":[{\"role\":[\"\xc3\"],\"content\":\"a\"}]}"[..],
    ] {
        assert!(parse_chat(b).is_err());
        assert_eq!(scan_chat(b), None, "{}", String::from_utf8_lossy(b));
    }
}

#[test]
fn validation_codes() {
    let e = parse_chat(br#"{"messages":[{"role":"user","content":"hi"}]}"#).unwrap_err();
    assert_eq!((e.code, e.param.as_deref()), (Code::MissingField, Some("model")));
    let e = parse_chat(br#"{"model":"m"}"#).unwrap_err();
    assert_eq!((e.code, e.param.as_deref()), (Code::MissingField, Some("messages")));
    let e = parse_chat(br#"{"model":"m","messages":"hi"}"#).unwrap_err();
    assert_eq!(e.code, Code::BadRequest);
    let e = parse_chat(br#"{"model":5,"messages":[]}"#).unwrap_err();
    assert_eq!((e.code, e.param.as_deref()), (Code::BadRequest, Some("model")));
    let e = parse_chat(b"{nope").unwrap_err();
    assert_eq!(e.code, Code::BadRequest);
    let e = parse_chat(b"").unwrap_err();
    assert_eq!(e.code, Code::BadRequest);
    let e = parse_chat(br#"[1]"#).unwrap_err();
    assert_eq!(e.code, Code::BadRequest);
    let e = parse_chat(br#"{"model":"m","messages":[{"content":"x"}]}"#).unwrap_err();
    assert_eq!(e.param.as_deref(), Some("messages[0].role"));
    let e = parse_chat(br#"{"model":"m","messages":[{"role":"user"}],"temperature":3}"#).unwrap_err();
    assert_eq!(e.param.as_deref(), Some("temperature"));
    let e = parse_chat(br#"{"model":"m","messages":[{"role":"user"}],"max_tokens":-1}"#).unwrap_err();
    assert_eq!(e.param.as_deref(), Some("max_tokens"));
    let e = parse_chat(br#"{"model":"m","messages":[{"role":"user"}],"stream":"yes"}"#).unwrap_err();
    assert_eq!(e.param.as_deref(), Some("stream"));
    let ok = parse_chat(
        br#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream":true,"max_tokens":9,"extra":{"a":1}}"#,
    )
    .unwrap();
    assert!(ok.stream && !ok.wants_usage);
    assert_eq!(ok.max_tokens, Some(9));
}

#[test]
fn upstream_body_renames_model_and_asks_for_usage() {
    let req =
        parse_chat(br#"{"model":"qai-flash","messages":[{"role":"user","content":"x"}],"stream":true,"custom":1}"#)
            .unwrap();
    let wants = req.wants_usage;
    let out: Value = serde_json::from_slice(&upstream_chat_body(&req.into(), wants, "flash-v1").unwrap()).unwrap();
    assert_eq!(out["model"], "flash-v1");
    assert_eq!(out["stream_options"]["include_usage"], true);
    assert_eq!(out["custom"], 1);
    let req = parse_chat(br#"{"model":"m","messages":[{"role":"user"}]}"#).unwrap();
    assert!(upstream_chat_body(&req.into(), false, "m").is_none());
}

#[test]
fn response_rewrite() {
    let body = json!({"id":"x","model":"flash-v1","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}});
    let (out, usage) = rewrite_response(&serde_json::to_vec(&body).unwrap(), Some("qai-flash"));
    let out: Value = serde_json::from_slice(&out.unwrap()).unwrap();
    assert_eq!(out["model"], "qai-flash");
    assert_eq!(usage.unwrap().completion_tokens, 4);
}

fn run(stream: &mut OpenAiStream, datas: &[&str]) -> String {
    let mut out = Vec::new();
    for d in datas {
        stream.on_event(&Event { event: None, data: d.to_string().into() }, &mut out);
    }
    String::from_utf8(out).unwrap()
}

#[test]
fn stream_drops_usage_chunk_for_clients_that_did_not_ask() {
    let chunks = [
        r#"{"model":"up","choices":[{"index":0,"delta":{"content":"hi"}}]}"#,
        r#"{"model":"up","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":1}}"#,
        "[DONE]",
    ];
    let mut s = OpenAiStream::new(Some("qai".into()), false);
    let out = run(&mut s, &chunks);
    assert!(!out.contains("usage"), "{out}");
    assert!(out.contains("\"model\":\"qai\""));
    assert!(out.ends_with("data: [DONE]\n\n"));
    assert_eq!(s.usage.unwrap().prompt_tokens, 5);

    let mut s = OpenAiStream::new(None, true);
    let out = run(&mut s, &chunks);
    assert!(out.contains("\"usage\""));
    assert!(out.contains("\"model\":\"up\""));
    assert_eq!(s.usage.unwrap().completion_tokens, 1);
    assert!(s.saw_done);
}

#[test]
fn stream_forwards_a_multi_line_event_line_by_line() {
    // Found by the stream fuzz target: a pass-through event whose data spans several `data:`
    // lines (here pretty-printed JSON, which SSE allows) was written as one `data:` line with
    // raw newlines in it, so the client parsed a truncated event plus stray lines.
    let mut s = OpenAiStream::new(None, false);
    let data = "{\n\"choices\": [{\"index\":0,\"delta\":{\"content\":\"hi\"}}]\n}";
    let out = run(&mut s, &[data, "not json\n\nstill not"]);
    assert_eq!(
        out,
        "data: {\ndata: \"choices\": [{\"index\":0,\"delta\":{\"content\":\"hi\"}}]\ndata: }\n\n\
         data: not json\ndata: \ndata: still not\n\n"
    );
    let mut framer = crate::sse::Framer::default();
    let mut events = Vec::new();
    framer.push(out.as_bytes(), &mut events).unwrap();
    let datas: Vec<&str> = events.iter().map(|e| &*e.data).collect();
    assert_eq!(datas, vec![data, "not json\n\nstill not"]);
}

/// The pass-through keeps the frame of a steady stream's events (each next one counted from
/// it), takes a new one when the bytes around the text change once, and stops after two
/// events in a row that fit none (a field that changes on every event).
#[test]
fn the_pass_through_counts_a_steady_stream_by_its_frame_and_gives_up_on_a_changing_one() {
    let ev = |head: &str, text: &str| Event {
        event: None,
        data: std::borrow::Cow::Owned(format!(r#"{{"id":"{head}","choices":[{{"delta":{{"content":"{text}"}}}}]}}"#)),
    };
    let mut s = OpenAiStream::new(None, false);
    let mut out = Vec::new();
    assert!(!s.counts_by_frame());
    s.on_event(&ev("a", "x"), &mut out);
    assert!(s.counts_by_frame());
    s.on_event(&ev("a", "yy"), &mut out);
    s.on_event(&ev("b", "zzz"), &mut out);
    assert!(s.counts_by_frame(), "one miss: the new event's frame is kept");
    s.on_event(&ev("b", "w"), &mut out);
    assert_eq!(s.completion_bytes, 7);
    for (i, t) in ["c", "d", "e", "f"].iter().enumerate() {
        s.on_event(&ev(t, "v"), &mut out);
        assert_eq!(s.counts_by_frame(), i == 0, "after {} misses in a row", i + 1);
    }
    assert_eq!(s.completion_bytes, 11);
}
