//! The Responses API halves of a translated stream: a pivot stream written out as Responses
//! events, a Responses upstream's stream read into the pivot, and the same output however the
//! upstream bytes are split.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use serde_json::{json, Value};
use tollgate_core::dialect::stream::{FrontStream, UpstreamStream};
use tollgate_core::dialect::{anthropic, openai, responses, Dialect};
use tollgate_core::sse::{Event, Framer};
use tollgate_core::translate::StreamPipe;

const OPENAI_TEXT: &[u8] = include_bytes!("fixtures/openai_text.sse");
const OPENAI_TOOL: &[u8] = include_bytes!("fixtures/openai_tool.sse");
const RESPONSES_TEXT: &[u8] = include_bytes!("fixtures/responses_text.sse");
const RESPONSES_TOOL: &[u8] = include_bytes!("fixtures/responses_tool.sse");

/// Feeds the pieces through a framer and a stream pipe, as the filter does chunk by chunk.
fn run(front: Dialect, upstream: Dialect, pieces: &[&[u8]]) -> Vec<u8> {
    let mut pipe = StreamPipe::priced_at(front, upstream, "client-model", "up-model", false, None, 1700000000);
    let mut framer = Framer::default();
    let mut out = Vec::new();
    for p in pieces {
        let mut events = Vec::new();
        framer.push(p, &mut events).unwrap();
        for ev in &events {
            pipe.on_event(ev, &mut out);
        }
    }
    let mut events = Vec::new();
    framer.finish(&mut events);
    for ev in &events {
        pipe.on_event(ev, &mut out);
    }
    pipe.finish(&mut out);
    out
}

fn events_of(bytes: &[u8]) -> Vec<Event> {
    let mut f = Framer::default();
    let mut evs = Vec::new();
    f.push(bytes, &mut evs).unwrap();
    f.finish(&mut evs);
    evs
}

/// (event name, data) of a Responses stream; the name must equal the data's `type`.
fn typed(out: &[u8]) -> Vec<(String, Value)> {
    events_of(out)
        .into_iter()
        .map(|e| {
            let v: Value = serde_json::from_str(&e.data).unwrap();
            let name = e.event.unwrap().into_owned();
            assert_eq!(v["type"], json!(name));
            (name, v)
        })
        .collect()
}

fn names(evs: &[(String, Value)]) -> Vec<&str> {
    evs.iter().map(|(n, _)| n.as_str()).collect()
}

fn assert_sequence_numbers(evs: &[(String, Value)]) {
    for (i, (_, v)) in evs.iter().enumerate() {
        assert_eq!(v["sequence_number"], json!(i));
    }
}

#[test]
fn openai_text_stream_to_responses_events() {
    let evs = typed(&run(Dialect::OpenAiResponses, Dialect::OpenAi, &[OPENAI_TEXT]));
    let n = names(&evs);
    assert_eq!(
        n,
        ["response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",]
            .into_iter()
            .chain(std::iter::repeat_n("response.output_text.delta", n.len() - 8))
            .chain([
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed",
            ])
            .collect::<Vec<_>>()
    );
    assert_sequence_numbers(&evs);
    let text: String = evs.iter().filter_map(|(_, v)| v["delta"].as_str()).collect();
    assert!(!text.is_empty());
    let done = &evs[n.len() - 4].1;
    assert_eq!(done["text"], json!(text));
    let created = &evs[0].1["response"];
    let completed = &evs.last().unwrap().1["response"];
    assert_eq!(created["id"], completed["id"]);
    assert_eq!((created["status"].as_str(), completed["status"].as_str()), (Some("in_progress"), Some("completed")));
    assert_eq!(completed["created_at"], 1700000000);
    assert_eq!(completed["model"], "client-model");
    assert_eq!(completed["output"][0]["content"][0]["text"], json!(text));
    assert_eq!(completed["output"][0], evs[n.len() - 2].1["item"]);
    let usage = &completed["usage"];
    assert_eq!(
        usage["total_tokens"],
        usage["input_tokens"].as_u64().unwrap() + usage["output_tokens"].as_u64().unwrap()
    );
    assert!(usage["input_tokens"].as_u64().unwrap() > 0);
}

#[test]
fn openai_tool_stream_to_responses_events() {
    let evs = typed(&run(Dialect::OpenAiResponses, Dialect::OpenAi, &[OPENAI_TOOL]));
    assert_sequence_numbers(&evs);
    let n = names(&evs);
    assert_eq!(n[..3], ["response.created", "response.in_progress", "response.output_item.added"]);
    assert_eq!(
        n[n.len() - 3..],
        ["response.function_call_arguments.done", "response.output_item.done", "response.completed"]
    );
    // Two calls, each its own item: its argument deltas, then its done events.
    let items: Vec<&Value> =
        evs.iter().filter(|(n, _)| n == "response.output_item.done").map(|(_, v)| &v["item"]).collect();
    assert_eq!(items.len(), 2);
    for (k, item) in items.iter().enumerate() {
        let index = json!(k);
        let args: String = evs
            .iter()
            .filter(|(n, v)| n == "response.function_call_arguments.delta" && v["output_index"] == index)
            .map(|(_, v)| v["delta"].as_str().unwrap())
            .collect();
        assert_eq!(item["type"], "function_call");
        assert_eq!(item["arguments"], json!(args));
        assert!(serde_json::from_str::<Value>(&args).unwrap().is_object());
        let added = evs.iter().find(|(n, v)| n == "response.output_item.added" && v["output_index"] == index).unwrap();
        assert_eq!(added.1["item"]["id"], item["id"]);
    }
    assert_eq!(
        (items[0]["call_id"].as_str(), items[0]["name"].as_str()),
        (Some("call_DdmO9pD3xa9XTPNJ32zg2hcA"), Some("get_weather"))
    );
    assert_eq!(items[1]["call_id"], "call_K2m9");
    assert_eq!(evs.last().unwrap().1["response"]["output"], json!(items));
}

#[test]
fn responses_upstream_text_into_openai_and_anthropic_clients() {
    let out = run(Dialect::OpenAi, Dialect::OpenAiResponses, &[RESPONSES_TEXT]);
    let chunks: Vec<Value> =
        events_of(&out).iter().filter(|e| e.data != "[DONE]").map(|e| serde_json::from_str(&e.data).unwrap()).collect();
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, "Héllo there");
    let finishes: Vec<&str> = chunks.iter().filter_map(|c| c["choices"][0]["finish_reason"].as_str()).collect();
    assert_eq!(finishes, ["stop"]);
    // The client did not ask for usage: none is relayed, but the pipe read it.
    let mut pipe = StreamPipe::new(Dialect::Anthropic, Dialect::OpenAiResponses, "c", "u", false);
    let mut o = Vec::new();
    for ev in events_of(RESPONSES_TEXT) {
        pipe.on_event(&ev, &mut o);
    }
    pipe.finish(&mut o);
    let u = pipe.usage().unwrap();
    assert_eq!((u.prompt_tokens, u.completion_tokens, u.cached_tokens, u.reasoning_tokens), (12, 3, 4, 1));
    assert!(pipe.complete());
    let s = String::from_utf8(o).unwrap();
    assert!(s.contains("\"text\":\"Héllo\""), "{s}");
    assert!(s.contains("\"stop_reason\":\"end_turn\""), "{s}");
}

#[test]
fn responses_upstream_tool_stream_to_pivot() {
    let mut up = responses::StreamToPivot::new();
    let mut chunks = Vec::new();
    for ev in events_of(RESPONSES_TOOL) {
        up.on_event(&ev, &mut chunks);
    }
    up.finish(&mut chunks);
    let calls: Vec<&Value> = chunks.iter().filter_map(|c| c["choices"][0]["delta"].get("tool_calls")).collect();
    assert_eq!(
        calls[0],
        &json!([{"index": 0, "id": "call_w1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}])
    );
    assert!(calls[1..].iter().all(|c| c[0]["index"] == 0), "{calls:?}");
    let args: String = calls[1..].iter().map(|c| c[0]["function"]["arguments"].as_str().unwrap()).collect();
    assert_eq!(args, "{\"location\":\"Paris\"}");
    let finishes: Vec<&str> = chunks.iter().filter_map(|c| c["choices"][0]["finish_reason"].as_str()).collect();
    assert_eq!(finishes, ["tool_calls"]);
    let usage_chunks = chunks.iter().filter(|c| c.get("usage").is_some_and(Value::is_object)).count();
    assert_eq!(usage_chunks, 1);
    assert_eq!(up.usage().unwrap().total(), 39);
}

#[test]
fn responses_upstream_failure_is_the_streams_error() {
    let failed = b"event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"r\"}}\n\n\
event: response.failed\ndata: {\"type\":\"response.failed\",\"response\":{\"id\":\"r\",\"status\":\"failed\",\"error\":{\"code\":\"server_error\",\"message\":\"overloaded\"}}}\n\n";
    let evs = typed(&run(Dialect::OpenAiResponses, Dialect::OpenAiResponses, &[failed]));
    let n = names(&evs);
    assert_eq!(n, ["response.created", "response.in_progress", "error", "response.failed"]);
    assert_eq!(evs[2].1["message"], "The generation service failed: overloaded");
    assert_eq!(evs[3].1["response"]["status"], "failed");
    assert_sequence_numbers(&evs);
}

#[test]
fn a_stream_cut_short_ends_failed_not_completed() {
    let cut = b"data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ab\"}}]}\n\n";
    let evs = typed(&run(Dialect::OpenAiResponses, Dialect::OpenAi, &[cut]));
    let last = evs.last().unwrap();
    assert_eq!(last.0, "response.failed");
    assert_eq!(last.1["response"]["output"][0]["content"][0]["text"], "ab");
}

#[test]
fn the_final_event_waits_for_the_usage_chunk() {
    let mut front = responses::StreamFromPivot::new("c", 5);
    let mut out = Vec::new();
    front.on_chunk(&json!({"id": "chatcmpl-1", "choices": [{"index": 0, "delta": {"content": "hi"}}]}), &mut out);
    front.on_chunk(
        &json!({"id": "chatcmpl-1", "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}),
        &mut out,
    );
    let n = typed(&out).len();
    assert!(!String::from_utf8_lossy(&out).contains("response.incomplete"));
    front.on_chunk(
        &json!({"id": "chatcmpl-1", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1}}),
        &mut out,
    );
    let evs = typed(&out);
    assert_eq!(evs.len(), n + 1);
    let last = &evs.last().unwrap().1;
    assert_eq!(last["type"], "response.incomplete");
    assert_eq!(last["response"]["incomplete_details"], json!({"reason": "max_output_tokens"}));
    assert_eq!(last["response"]["usage"]["total_tokens"], 4);
    // Nothing after the end.
    front.on_done(&mut out);
    assert_eq!(typed(&out).len(), n + 1);
}

#[test]
fn every_split_gives_identical_output() {
    let cases: [(&str, Dialect, Dialect, &[u8]); 6] = [
        ("openai_text->responses", Dialect::OpenAiResponses, Dialect::OpenAi, OPENAI_TEXT),
        ("openai_tool->responses", Dialect::OpenAiResponses, Dialect::OpenAi, OPENAI_TOOL),
        ("responses_text->openai", Dialect::OpenAi, Dialect::OpenAiResponses, RESPONSES_TEXT),
        ("responses_tool->anthropic", Dialect::Anthropic, Dialect::OpenAiResponses, RESPONSES_TOOL),
        ("responses_text->responses", Dialect::OpenAiResponses, Dialect::OpenAiResponses, RESPONSES_TEXT),
        ("responses_tool->gemini", Dialect::Gemini, Dialect::OpenAiResponses, RESPONSES_TOOL),
    ];
    for (name, front, up, fixture) in cases {
        let whole = run(front, up, &[fixture]);
        assert!(!whole.is_empty(), "{name}");
        for i in 0..=fixture.len() {
            let got = run(front, up, &[&fixture[..i], &fixture[i..]]);
            assert!(got == whole, "{name}: split at {i} differs");
        }
        let pieces: Vec<&[u8]> = fixture.chunks(1).collect();
        assert!(run(front, up, &pieces) == whole, "{name}: byte by byte differs");
    }
}

#[test]
fn client_stream_reads_back_to_the_same_text() {
    // A Responses front's output read by the Responses upstream half gives the pivot text back.
    let out = run(Dialect::OpenAiResponses, Dialect::OpenAi, &[OPENAI_TEXT]);
    let mut up = responses::StreamToPivot::new();
    let mut chunks = Vec::new();
    for ev in events_of(&out) {
        up.on_event(&ev, &mut chunks);
    }
    let back: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    let mut orig = openai::StreamToPivot::new();
    let mut oc = Vec::new();
    for ev in events_of(OPENAI_TEXT) {
        orig.on_event(&ev, &mut oc);
    }
    let want: String = oc.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(back, want);
    assert_eq!(up.usage(), orig.usage());
    let _ = anthropic::StreamFromPivot::new("unused");
}

#[test]
fn a_late_fragment_of_a_finished_call_is_dropped() {
    let mut front = responses::StreamFromPivot::new("c", 5);
    let mut out = Vec::new();
    let call = |k: u64, id: Option<&str>, args: &str| {
        let mut tc = json!({"index": k, "function": {"arguments": args}});
        if let Some(id) = id {
            tc["id"] = json!(id);
            tc["function"]["name"] = json!("f");
        }
        json!({"id": "chatcmpl-1", "choices": [{"index": 0, "delta": {"tool_calls": [tc]}}]})
    };
    front.on_chunk(&call(0, Some("call_a"), "{}"), &mut out);
    front.on_chunk(&call(1, Some("call_b"), "{"), &mut out);
    front.on_chunk(&call(0, None, "late"), &mut out);
    front.on_chunk(&call(1, None, "}"), &mut out);
    front.on_chunk(
        &json!({"id": "chatcmpl-1", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
        &mut out,
    );
    front.on_chunk(
        &json!({"id": "chatcmpl-1", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1}}),
        &mut out,
    );
    let evs = typed(&out);
    assert_sequence_numbers(&evs);
    let added: Vec<&Value> =
        evs.iter().filter(|(n, _)| n == "response.output_item.added").map(|(_, v)| &v["output_index"]).collect();
    assert_eq!(added, [&json!(0), &json!(1)]);
    let last = &evs.last().unwrap().1["response"];
    assert_eq!(last["status"], "completed");
    let args: Vec<&Value> = last["output"].as_array().unwrap().iter().map(|o| &o["arguments"]).collect();
    assert_eq!(args, [&json!("{}"), &json!("{}")]);
}
