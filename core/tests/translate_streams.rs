//! Stream translators against recorded-shape fixtures: expected output, and byte-identical
//! output however the upstream bytes are split.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use serde_json::{json, Value};
use tollgate_core::dialect::stream::{FrontStream, UpstreamStream};
use tollgate_core::dialect::{anthropic, gemini};
use tollgate_core::usage::Usage;

mod streams_common;

use streams_common::*;

#[test]
fn anthropic_text_stream_to_pivot() {
    let mut d = Up(anthropic::StreamToPivot::new());
    let out = run(&mut d, &[ANTHROPIC_TEXT]);
    let chunks = chunks_of(&out);
    let s = said(&chunks);
    assert_eq!(s.text, "Hello, wörld! 👋");
    assert_eq!(s.finish.as_deref(), Some("stop"));
    assert!(s.tools.is_empty());
    // input 25 + cache read 10; output is cumulative: 15, not 1 + 15
    let want = Usage {
        prompt_tokens: 35,
        completion_tokens: 15,
        cached_tokens: 10,
        reasoning_tokens: 0,
        cache_creation_tokens: 0,
    };
    assert_eq!(s.usage, Some(want));
    assert_eq!(s.usage_chunks, 1);
    assert_eq!(d.0.usage(), Some(want));
    assert_eq!(chunks[0]["id"], "msg_01XFDUDYJgAACzvnptvVoYEL");
    assert_eq!(chunks[0]["model"], "claude-sonnet-4-20250514");
    assert_eq!(d.0.error(), None);
}

#[test]
fn anthropic_tool_stream_to_pivot() {
    let out = run(&mut Up(anthropic::StreamToPivot::new()), &[ANTHROPIC_TOOL]);
    let s = said(&chunks_of(&out));
    assert_eq!(s.text, "Okay, let me check the weather.");
    assert_eq!(s.tools.len(), 1);
    let (k, id, name, args) = &s.tools[0];
    assert_eq!((*k, id.as_str(), name.as_str()), (0, "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "get_weather"));
    let args: Value = serde_json::from_str(args).unwrap();
    assert_eq!(args, json!({"location": "San Francisco, CA", "unit": "fahrenheit"}));
    assert_eq!(s.finish.as_deref(), Some("tool_calls"));
    assert_eq!(s.usage.unwrap().completion_tokens, 89);
    assert_eq!(s.usage.unwrap().prompt_tokens, 472);
}

#[test]
fn anthropic_error_event_is_recorded_not_emitted() {
    let stream = b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"c\",\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n\
event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
    let mut d = Up(anthropic::StreamToPivot::new());
    let evs = events_of(stream);
    let mut out = Vec::new();
    d.event(&evs[0], &mut out);
    let before = out.len();
    d.event(&evs[1], &mut out);
    assert_eq!(out.len(), before, "the error event emits nothing");
    assert_eq!(d.0.error(), Some("Overloaded"));
}

#[test]
fn anthropic_stream_cut_short_has_no_finish_chunk() {
    let cut = &ANTHROPIC_TEXT[..ANTHROPIC_TEXT.windows(13).position(|w| w == b"event: conten").unwrap() + 200];
    let out = run(&mut Up(anthropic::StreamToPivot::new()), &[cut]);
    let s = said(&chunks_of(&out));
    assert_eq!(s.finish, None);
    // the input tokens are known, so usage is still reported at the end
    assert_eq!(s.usage.unwrap().prompt_tokens, 35);
}

#[test]
fn gemini_text_stream_to_pivot() {
    let mut d = Up(gemini::StreamToPivot::new());
    let out = run(&mut d, &[GEMINI_TEXT]);
    let chunks = chunks_of(&out);
    let s = said(&chunks);
    assert_eq!(s.text, "The capital of France is Paris — é.");
    assert_eq!(s.finish.as_deref(), Some("stop"));
    // the last cumulative usageMetadata, not a sum: 7 candidates + 12 thoughts
    let want = Usage {
        prompt_tokens: 8,
        completion_tokens: 19,
        cached_tokens: 3,
        reasoning_tokens: 12,
        cache_creation_tokens: 0,
    };
    assert_eq!(s.usage, Some(want));
    assert_eq!(s.usage_chunks, 1);
    assert_eq!(d.0.usage(), Some(want));
    assert_eq!(chunks[0]["model"], "gemini-2.5-flash");
    assert_eq!(chunks[0]["id"], "9R1Xab2tN5");
}

#[test]
fn gemini_function_call_stream_to_pivot() {
    let out = run(&mut Up(gemini::StreamToPivot::new()), &[GEMINI_TOOL]);
    let chunks = chunks_of(&out);
    let s = said(&chunks);
    assert_eq!(s.text, "Let me check.");
    assert_eq!(
        s.tools,
        vec![
            (0, "call_0".into(), "get_weather".into(), r#"{"location":"Boston, MA","unit":"celsius"}"#.into()),
            (1, "call_1".into(), "get_time".into(), "{}".into()),
        ]
    );
    assert_eq!(s.finish.as_deref(), Some("tool_calls"));
    assert_eq!(s.usage.unwrap().completion_tokens, 30);
    let sig = chunks
        .iter()
        .filter_map(|c| c.pointer("/choices/0/delta/tool_calls/0/extra_content/google/thought_signature"))
        .next();
    assert_eq!(sig, Some(&json!("CiQB0e2Kb")));
}

#[test]
fn gemini_error_object_is_recorded() {
    let mut d = Up(gemini::StreamToPivot::new());
    let out = run(&mut d, &[b"data: {\"error\":{\"code\":503,\"message\":\"The model is overloaded.\",\"status\":\"UNAVAILABLE\"}}\r\n\r\n"]);
    assert!(out.is_empty());
    assert_eq!(d.0.error(), Some("The model is overloaded."));
}

// ---- pivot -> Anthropic client ------------------------------------------------------------------

fn anthropic_events(out: &[u8]) -> Vec<(String, Value)> {
    let text = std::str::from_utf8(out).unwrap();
    assert!(text.starts_with("event: message_start\ndata: "), "{text}");
    events_of(out)
        .into_iter()
        .map(|e| {
            let name = e.event.clone().unwrap().into_owned();
            let v: Value = serde_json::from_str(&e.data).unwrap();
            assert_eq!(v["type"], name.as_str(), "event name matches data.type");
            (name, v)
        })
        .collect()
}

fn names(evs: &[(String, Value)]) -> Vec<&str> {
    evs.iter().map(|(n, _)| n.as_str()).collect()
}

#[test]
fn openai_text_stream_to_anthropic() {
    let mut d = to_front(anthropic::StreamFromPivot::new("claude-front"));
    let out = run(&mut d, &[OPENAI_TEXT]);
    let evs = anthropic_events(&out);
    assert_eq!(
        names(&evs),
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let start = &evs[0].1["message"];
    assert_eq!(start["model"], "claude-front");
    assert_eq!(start["id"], "msg_B9MBs8CjcvOU2jLn4n570S5qMJKcT");
    assert_eq!(start["content"], json!([]));
    assert_eq!(start["usage"]["input_tokens"], 0);
    assert_eq!(start["usage"]["output_tokens"], 0);
    assert_eq!(evs[1].1["content_block"], json!({"type": "text", "text": ""}));
    let text: String = evs
        .iter()
        .filter(|(n, _)| n == "content_block_delta")
        .map(|(_, v)| v["delta"]["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(text, "Hello! How can I help — today?");
    let md = &evs[6].1;
    assert_eq!(md["delta"], json!({"stop_reason": "end_turn", "stop_sequence": null}));
    assert_eq!(md["usage"]["output_tokens"], 10);
    assert_eq!(md["usage"]["input_tokens"], 15); // 19 prompt - 4 cached
    assert_eq!(md["usage"]["cache_read_input_tokens"], 4);
    assert_eq!(d.1.usage().unwrap().prompt_tokens, 19);
}

#[test]
fn openai_tool_stream_to_anthropic() {
    let out = run(&mut to_front(anthropic::StreamFromPivot::new("c")), &[OPENAI_TOOL]);
    let evs = anthropic_events(&out);
    assert_eq!(
        names(&evs),
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(
        evs[1].1["content_block"],
        json!({"type": "tool_use", "id": "call_DdmO9pD3xa9XTPNJ32zg2hcA", "name": "get_weather", "input": {}})
    );
    assert_eq!(evs[1].1["index"], 0);
    let args: String =
        evs[2..7].iter().map(|(_, v)| v["delta"]["partial_json"].as_str().unwrap().to_string()).collect();
    assert_eq!(serde_json::from_str::<Value>(&args).unwrap(), json!({"location": "Paris"}));
    assert!(evs[2..7].iter().all(|(_, v)| v["delta"]["type"] == "input_json_delta" && v["index"] == 0));
    assert_eq!(evs[7].1["index"], 0);
    assert_eq!(evs[8].1["index"], 1);
    assert_eq!(evs[8].1["content_block"]["name"], "get_time");
    assert_eq!(evs[11].1["delta"]["stop_reason"], "tool_use");
    assert_eq!(evs[11].1["usage"]["output_tokens"], 33);
}

#[test]
fn anthropic_message_delta_waits_for_the_usage_chunk() {
    let evs = events_of(OPENAI_TEXT);
    let mut s = anthropic::StreamFromPivot::new("c");
    let mut out = Vec::new();
    // everything up to and including the finish chunk
    for e in &evs[..5] {
        s.on_chunk(&serde_json::from_str(&e.data).unwrap(), &mut out);
    }
    let text = String::from_utf8(out.clone()).unwrap();
    assert!(text.contains("content_block_stop"));
    assert!(!text.contains("message_delta"), "held until usage: {text}");
    s.on_chunk(&serde_json::from_str(&evs[5].data).unwrap(), &mut out);
    let text = String::from_utf8(out.clone()).unwrap();
    assert!(
        text.contains("event: message_delta")
            && text.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
    );
    // [DONE] and finish() after that add nothing
    let n = out.len();
    s.on_done(&mut out);
    s.on_done(&mut out);
    assert_eq!(out.len(), n);

    // no usage chunk at all: [DONE] closes the message
    let mut s = anthropic::StreamFromPivot::new("c");
    let mut out = Vec::new();
    for e in &evs[..5] {
        s.on_chunk(&serde_json::from_str(&e.data).unwrap(), &mut out);
    }
    s.on_done(&mut out);
    let evs = anthropic_events(&out);
    let md = &evs[evs.len() - 2].1;
    assert_eq!(md["delta"]["stop_reason"], "end_turn");
    assert_eq!(md["usage"]["output_tokens"], 0);
}

#[test]
fn anthropic_error_mid_stream() {
    let evs = events_of(OPENAI_TEXT);
    let mut s = anthropic::StreamFromPivot::new("c");
    let mut out = Vec::new();
    s.on_chunk(&serde_json::from_str(&evs[1].data).unwrap(), &mut out);
    let n = out.len();
    s.error("upstream went away", &mut out);
    let frame = std::str::from_utf8(&out[n..]).unwrap();
    let data = frame.strip_prefix("event: error\ndata: ").unwrap().strip_suffix("\n\n").unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(data).unwrap(),
        json!({"type": "error", "error": {"type": "api_error", "message": "upstream went away"}})
    );
    s.on_done(&mut out);
    assert!(!String::from_utf8(out).unwrap().contains("message_stop"), "nothing after an error");
}

// ---- pivot -> Gemini client ---------------------------------------------------------------------

fn gemini_objects(out: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(out).unwrap();
    let objs: Vec<Value> = text
        .split_terminator("\r\n\r\n")
        .map(|frame| {
            let data =
                frame.strip_prefix("data: ").unwrap_or_else(|| panic!("frame must start with 'data: ': {frame:?}"));
            assert!(!data.contains('\n'));
            serde_json::from_str(data).unwrap()
        })
        .collect();
    assert!(text.ends_with("\r\n\r\n"));
    objs
}

#[test]
fn openai_text_stream_to_gemini() {
    let out = run(&mut to_front(gemini::StreamFromPivot::new("gemini-front")), &[OPENAI_TEXT]);
    let objs = gemini_objects(&out);
    assert_eq!(objs.len(), 4, "three text objects and the final one");
    let text: String = objs
        .iter()
        .flat_map(|o| o["candidates"][0]["content"]["parts"].as_array().unwrap().clone())
        .filter_map(|p| p["text"].as_str().map(str::to_string))
        .collect();
    assert_eq!(text, "Hello! How can I help — today?");
    for o in &objs[..3] {
        assert!(o.get("usageMetadata").is_none());
        assert!(o["candidates"][0].get("finishReason").is_none());
        assert_eq!(o["candidates"][0]["content"]["role"], "model");
        assert_eq!(o["modelVersion"], "gemini-front");
        assert_eq!(o["responseId"], "B9MBs8CjcvOU2jLn4n570S5qMJKcT");
    }
    let last = &objs[3];
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert_eq!(
        last["usageMetadata"],
        json!({"promptTokenCount": 19, "candidatesTokenCount": 10, "totalTokenCount": 29, "cachedContentTokenCount": 4})
    );
}

#[test]
fn openai_tool_stream_to_gemini() {
    let out = run(&mut to_front(gemini::StreamFromPivot::new("g")), &[OPENAI_TOOL]);
    let objs = gemini_objects(&out);
    assert_eq!(objs.len(), 1, "function calls go out whole, with the finish");
    let cand = &objs[0]["candidates"][0];
    assert_eq!(
        cand["content"]["parts"],
        json!([
            {"functionCall": {"name": "get_weather", "args": {"location": "Paris"}}},
            {"functionCall": {"name": "get_time", "args": {}}}
        ])
    );
    assert_eq!(cand["finishReason"], "STOP");
    assert_eq!(objs[0]["usageMetadata"]["totalTokenCount"], 115);
}

#[test]
fn gemini_final_object_waits_for_usage_and_error_frame() {
    let evs = events_of(OPENAI_TEXT);
    let mut s = gemini::StreamFromPivot::new("g");
    let mut out = Vec::new();
    for e in &evs[..5] {
        s.on_chunk(&serde_json::from_str(&e.data).unwrap(), &mut out);
    }
    assert!(!String::from_utf8(out.clone()).unwrap().contains("finishReason"));
    s.on_done(&mut out);
    let objs = gemini_objects(&out);
    let last = objs.last().unwrap();
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert!(last.get("usageMetadata").is_none(), "no usage was ever sent");

    let mut s = gemini::StreamFromPivot::new("g");
    let mut out = Vec::new();
    s.on_chunk(&serde_json::from_str(&evs[1].data).unwrap(), &mut out);
    s.error("boom", &mut out);
    s.on_done(&mut out);
    let objs = gemini_objects(&out);
    assert_eq!(objs.last().unwrap()["error"]["message"], "boom");
    assert_eq!(objs.len(), 2);
}

// ---- through both translators -------------------------------------------------------------------

#[test]
fn anthropic_upstream_to_gemini_client() {
    let out = run(&mut Pair(anthropic::StreamToPivot::new(), gemini::StreamFromPivot::new("g")), &[ANTHROPIC_TOOL]);
    let objs = gemini_objects(&out);
    let last = objs.last().unwrap();
    assert_eq!(
        last["candidates"][0]["content"]["parts"],
        json!([{"functionCall": {"name": "get_weather", "args": {"location": "San Francisco, CA", "unit": "fahrenheit"}}}])
    );
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert_eq!(
        last["usageMetadata"],
        json!({"promptTokenCount": 472, "candidatesTokenCount": 89, "totalTokenCount": 561})
    );
}

#[test]
fn gemini_upstream_to_anthropic_client() {
    let out = run(&mut Pair(gemini::StreamToPivot::new(), anthropic::StreamFromPivot::new("c")), &[GEMINI_TOOL]);
    let evs = anthropic_events(&out);
    assert_eq!(
        names(&evs),
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(evs[4].1["content_block"]["id"], "call_0");
    assert_eq!(evs[7].1["content_block"]["name"], "get_time");
    assert_eq!(evs[10].1["delta"]["stop_reason"], "tool_use");
    assert_eq!(evs[10].1["usage"]["output_tokens"], 30);
    assert_eq!(evs[10].1["usage"]["input_tokens"], 40);
}

/// OpenAI -> Anthropic SSE -> back to pivot says the same thing; likewise through Gemini.
#[test]
fn client_streams_read_back_to_the_same_pivot() {
    for fixture in [OPENAI_TEXT, OPENAI_TOOL] {
        let original = said(&chunks_of(fixture));
        let a = run(&mut to_front(anthropic::StreamFromPivot::new("c")), &[fixture]);
        let back = said(&chunks_of(&run(&mut Up(anthropic::StreamToPivot::new()), &[&a])));
        assert_eq!(back, original);
        let g = run(&mut to_front(gemini::StreamFromPivot::new("g")), &[fixture]);
        let back = said(&chunks_of(&run(&mut Up(gemini::StreamToPivot::new()), &[&g])));
        assert_eq!(back.text, original.text);
        assert_eq!(back.finish, original.finish);
        assert_eq!(back.usage, original.usage);
        // Gemini has no tool-call ids: names and arguments survive, ids are minted
        let strip = |s: &Said| -> Vec<(String, Value)> {
            s.tools.iter().map(|t| (t.2.clone(), serde_json::from_str(&t.3).unwrap())).collect()
        };
        assert_eq!(strip(&back), strip(&original));
    }
}

#[test]
fn short_fixtures_translate() {
    let s = said(&chunks_of(&run(&mut Up(anthropic::StreamToPivot::new()), &[ANTHROPIC_SHORT])));
    assert_eq!((s.text.as_str(), s.finish.as_deref()), ("hé", Some("stop")));
    assert_eq!(s.usage.map(|u| (u.prompt_tokens, u.completion_tokens)), Some((5, 2)));
    let s = said(&chunks_of(&run(&mut Up(gemini::StreamToPivot::new()), &[GEMINI_SHORT])));
    assert_eq!((s.text.as_str(), s.finish.as_deref()), ("hé!", Some("stop")));
    assert_eq!(s.usage.map(|u| (u.prompt_tokens, u.completion_tokens)), Some((5, 2)));
    let evs = anthropic_events(&run(&mut to_front(anthropic::StreamFromPivot::new("c")), &[OPENAI_SHORT]));
    assert_eq!(evs[2].1["delta"]["text"], "hé");
    let objs = gemini_objects(&run(&mut to_front(gemini::StreamFromPivot::new("g")), &[OPENAI_SHORT]));
    assert_eq!(objs[0]["candidates"][0]["content"]["parts"][0]["text"], "hé");
    assert_eq!(objs[1]["usageMetadata"]["totalTokenCount"], 7);
}
