//! The text-only path of every translated stream pair (`StreamPipe`: an upstream's text event
//! read into borrowed fields, written by the front without a `Value`) writes what the whole
//! read of every event writes, notes the same usage, and counts the same text, for every front
//! from every upstream, on ordinary streams and on streams of unusual events that the typed
//! reads must hand to the whole read.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::borrow::Cow;

use proptest::prelude::Just;
use serde::Serialize;
use serde_json::json;
use tollgate_core::dialect::stream::{FrontStream, TextChunk, UpstreamStream};
use tollgate_core::dialect::{anthropic, gemini, openai, responses, Dialect};
use tollgate_core::sse::{self, Event, Framer};
use tollgate_core::translate::StreamPipe;
use tollgate_core::usage::Usage;

const ANTHROPIC_TEXT: &[u8] = include_bytes!("fixtures/anthropic_text.sse");
const ANTHROPIC_TOOL: &[u8] = include_bytes!("fixtures/anthropic_tool.sse");
const GEMINI_TEXT: &[u8] = include_bytes!("fixtures/gemini_text.sse");
const GEMINI_TOOL: &[u8] = include_bytes!("fixtures/gemini_tool.sse");
const GEMINI_SHORT: &[u8] = include_bytes!("fixtures/gemini_short.sse");
const OPENAI_TEXT: &[u8] = include_bytes!("fixtures/openai_text.sse");
const RESPONSES_TEXT: &[u8] = include_bytes!("fixtures/responses_text.sse");
const RESPONSES_TOOL: &[u8] = include_bytes!("fixtures/responses_tool.sse");

/// A Gemini stream of events the typed read must leave to the whole read, or read to the same
/// effect: escaped text, a thought, two parts, a second candidate, a candidate or a part that is
/// an array, a text that is not a string, a field in both spellings, a usage count that is a
/// fraction, a repeated key, snake_case names, `thought: false`, an index given as a string, a second response id, and
/// the last usage on a text-only event (the finish event carries none).
const GEMINI_MIXED: &[u8] = b"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi\"}],\"role\":\"model\"},\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":8,\"candidatesTokenCount\":1},\"modelVersion\":\"g-1\",\"responseId\":\"r1\"}\r\n\r\n\
data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"line\\none \\\"q\\\" \\u00e9\"}],\"role\":\"model\"},\"index\":0}]}\r\n\r\n\
data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"hm\",\"thought\":true}],\"role\":\"model\"},\"index\":0}]}\r\n\r\n\
data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"},{\"text\":\"b\"}],\"role\":\"model\"},\"index\":0}]}\r\n\r\n\
data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"other\"}],\"role\":\"model\"},\"index\":1}]}\r\n\r\n\
data: {\"candidates\":[[0,{\"parts\":[{\"text\":\"array candidate\"}]},null]]}\r\n\r\n\
data: {\"candidates\":[{\"content\":{\"parts\":[[\"array part\",null]],\"role\":\"model\"},\"index\":0}]}\r\n\r\n\
data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":5}],\"role\":\"model\"},\"index\":0}]}\r\n\r\n\
data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"c\"}],\"role\":\"model\"},\"index\":0}],\"modelVersion\":\"g-2\",\"model_version\":\"g-3\"}\r\n\r\n\
data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"d\"}],\"role\":\"model\"},\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":8,\"candidatesTokenCount\":5.0}}\r\n\r\n\
data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"e\",\"text\":\"f\"}],\"role\":\"model\"},\"index\":0}]}\r\n\r\n\
data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"g\",\"thought\":false}],\"role\":\"model\"},\"index\":\"0\"}]}\r\n\r\n\
data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"g2\"}],\"role\":\"model\"},\"index\":0}],\"responseId\":\"r2\"}\r\n\r\n\
data: [{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"top array\"}]}}]}]\r\n\r\n\
data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"\"}],\"role\":\"model\"},\"index\":0}]}\r\n\r\n\
data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"h\"}],\"role\":\"model\"},\"index\":0}],\"usage_metadata\":{\"prompt_token_count\":9,\"candidates_token_count\":6,\"cached_content_token_count\":2,\"thoughts_token_count\":3,\"tool_use_prompt_token_count\":1},\"model_version\":\"g-4\"}\r\n\r\n\
data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"\"}],\"role\":\"model\"},\"finishReason\":\"STOP\",\"index\":0}]}\r\n\r\n";

/// A Gemini stream whose error object comes in a text event (`error: null` is still an error).
const GEMINI_ERROR: &[u8] =
    b"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi\"}]},\"index\":0}],\"responseId\":\"r1\"}\r\n\r\n\
data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"more\"}]},\"index\":0}],\"error\":null}\r\n\r\n\
data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"after\"}]},\"index\":0}]}\r\n\r\n";

/// A Responses stream of unusual events: escaped text, the type left to the SSE `event:`
/// field, a `null` type, a delta that is not a string, an empty delta, a refusal, a repeated
/// key, data that is an array, then the completion with its usage.
const RESPONSES_MIXED: &[u8] = b"event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_m\",\"model\":\"m-1\"}}\n\n\
event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"output_index\":0,\"delta\":\"Hi\"}\n\n\
event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"line\\none \\\"q\\\" \\u00e9\"}\n\n\
event: response.output_text.delta\ndata: {\"delta\":\"by name\"}\n\n\
event: response.output_text.delta\ndata: {\"type\":null,\"delta\":\"null type\"}\n\n\
event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":7}\n\n\
event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"\"}\n\n\
event: response.refusal.delta\ndata: {\"type\":\"response.refusal.delta\",\"delta\":\"no\"}\n\n\
event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"a\",\"delta\":\"b\"}\n\n\
event: response.output_text.delta\ndata: [\"response.output_text.delta\",\"array\"]\n\n\
event: response.output_text.delta\ndata: {\"type\":\"response.other\",\"delta\":\"other type\"}\n\n\
event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_m\",\"status\":\"completed\",\"usage\":{\"input_tokens\":5,\"output_tokens\":9,\"input_tokens_details\":{\"cached_tokens\":1},\"output_tokens_details\":{\"reasoning_tokens\":2}}}}\n\n";

/// A Responses stream with an `error` event in the middle: the text after it is not relayed.
const RESPONSES_ERROR: &[u8] =
    b"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Hi\"}\n\n\
event: error\ndata: {\"type\":\"error\",\"message\":\"boom\"}\n\n\
event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"after\"}\n\n";

/// An Anthropic stream with `text_delta` events the typed read must leave to the whole read.
const ANTHROPIC_MIXED: &[u8] = b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_m\",\"model\":\"a-1\",\"usage\":{\"input_tokens\":4,\"output_tokens\":1}}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi \\\"q\\\"\"}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":[\"text_delta\",\"array delta\"]}\n\n\
event: content_block_delta\ndata: [\"content_block_delta\",{\"type\":\"text_delta\",\"text\":\"array event\"}]\n\n\
event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":3}}\n\n\
event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

/// The upstream half of `dialect`, naming the client's model `c`.
fn upstream(dialect: Dialect) -> Box<dyn UpstreamStream> {
    match dialect {
        Dialect::OpenAi => Box::new(openai::StreamToPivot::new()),
        Dialect::Anthropic => Box::new(anthropic::StreamToPivot::new().with_model("c")),
        Dialect::Gemini => Box::new(gemini::StreamToPivot::new().with_model("c")),
        Dialect::OpenAiResponses => Box::new(responses::StreamToPivot::new().with_model("c")),
    }
}

/// The front half of `dialect` for the client's model `c`.
fn front(dialect: Dialect) -> Box<dyn FrontStream> {
    match dialect {
        Dialect::OpenAi => Box::new(openai::StreamFromPivot::at("c", true, 7)),
        Dialect::Anthropic => Box::new(anthropic::StreamFromPivot::new("c")),
        Dialect::Gemini => Box::new(gemini::StreamFromPivot::new("c")),
        Dialect::OpenAiResponses => Box::new(responses::StreamFromPivot::new("c", 7)),
    }
}

fn events_of(bytes: &[u8]) -> Vec<Event> {
    let mut f = Framer::default();
    let mut evs = Vec::new();
    f.push(bytes, &mut evs).unwrap();
    f.finish(&mut evs);
    evs
}

/// What a stream leaves: the client's bytes, and the upstream's usage after each event.
#[derive(Debug, PartialEq)]
struct Outcome {
    bytes: String,
    usages: Vec<Option<Usage>>,
}

/// Every event read whole (`on_event`) and its pivot chunks written by `on_chunk`.
fn whole_read(up: Dialect, down: Dialect, fixture: &[u8]) -> (Outcome, u64) {
    let (mut u, mut f) = (upstream(up), front(down));
    let mut out = Vec::new();
    let mut usages = Vec::new();
    let mut text_bytes = 0u64;
    let mut error_sent = false;
    for ev in &events_of(fixture) {
        let mut chunks = Vec::new();
        u.on_event(ev, &mut chunks);
        if let Some(usage) = u.usage().filter(|x| x.prompt_tokens > 0) {
            f.prompt_hint(usage);
        }
        for c in &chunks {
            text_bytes += tollgate_core::usage::pivot_text_bytes(c);
            f.on_chunk(c, &mut out);
        }
        if let (Some(m), false) = (u.error(), error_sent) {
            error_sent = true;
            f.error(m, &mut out);
        }
        if u.ended() {
            f.on_done(&mut out);
        }
        usages.push(u.usage());
    }
    let mut chunks = Vec::new();
    u.finish(&mut chunks);
    chunks.iter().for_each(|c| f.on_chunk(c, &mut out));
    if !error_sent {
        f.on_done(&mut out);
    }
    (Outcome { bytes: String::from_utf8(out).unwrap(), usages }, text_bytes)
}

/// The exchange's translator (`StreamPipe`), with its text-only path; the upstream's usage
/// after each event read from a second upstream half fed the same way (`text_event` first).
fn pipe_read(up: Dialect, down: Dialect, fixture: &[u8]) -> (Outcome, u64) {
    let mut pipe = StreamPipe::priced_at(down, up, "c", "u", true, None, 7);
    let mut shadow = upstream(up);
    let mut out = Vec::new();
    let mut usages = Vec::new();
    for ev in &events_of(fixture) {
        pipe.on_event(ev, &mut out);
        if shadow.text_event(ev).is_none() {
            shadow.on_event(ev, &mut Vec::new());
        }
        usages.push(shadow.usage());
    }
    pipe.finish(&mut out);
    (Outcome { bytes: String::from_utf8(out).unwrap(), usages }, pipe.text_bytes())
}

const DIALECTS: [Dialect; 4] = [Dialect::OpenAi, Dialect::Anthropic, Dialect::Gemini, Dialect::OpenAiResponses];

fn fixtures(up: Dialect) -> Vec<(&'static str, &'static [u8])> {
    match up {
        Dialect::OpenAi => vec![("openai_text", OPENAI_TEXT)],
        Dialect::Anthropic => {
            vec![
                ("anthropic_text", ANTHROPIC_TEXT),
                ("anthropic_tool", ANTHROPIC_TOOL),
                ("anthropic_mixed", ANTHROPIC_MIXED),
            ]
        }
        Dialect::Gemini => vec![
            ("gemini_text", GEMINI_TEXT),
            ("gemini_tool", GEMINI_TOOL),
            ("gemini_short", GEMINI_SHORT),
            ("gemini_mixed", GEMINI_MIXED),
            ("gemini_error", GEMINI_ERROR),
        ],
        Dialect::OpenAiResponses => vec![
            ("responses_text", RESPONSES_TEXT),
            ("responses_tool", RESPONSES_TOOL),
            ("responses_mixed", RESPONSES_MIXED),
            ("responses_error", RESPONSES_ERROR),
        ],
    }
}

#[test]
fn every_pair_writes_what_the_whole_read_writes() {
    let mut pairs = 0;
    for up in DIALECTS {
        for down in DIALECTS {
            if up == Dialect::OpenAi && down == Dialect::OpenAi {
                continue; // the fast path, not translated
            }
            for (name, fixture) in fixtures(up) {
                let (want, want_text) = whole_read(up, down, fixture);
                let (got, got_text) = pipe_read(up, down, fixture);
                assert!(!want.bytes.is_empty(), "{name} -> {down:?}");
                assert_eq!(got.bytes, want.bytes, "{name} -> {down:?}");
                assert_eq!(got.usages, want.usages, "{name} -> {down:?}");
                assert_eq!(got_text, want_text, "{name} -> {down:?}");
                pairs += 1;
            }
        }
    }
    assert_eq!(pairs, 51);
}

/// The usage is read from the text-only events exactly: the last one before the finish event
/// (which carries none) in snake_case, with every count.
#[test]
fn gemini_usage_on_a_text_event_is_the_final_usage() {
    for down in DIALECTS {
        let mut pipe = StreamPipe::new(down, Dialect::Gemini, "c", "u", true);
        let mut out = Vec::new();
        for ev in &events_of(GEMINI_MIXED) {
            pipe.on_event(ev, &mut out);
        }
        pipe.finish(&mut out);
        let want = Usage {
            prompt_tokens: 10,
            completion_tokens: 9,
            cached_tokens: 2,
            reasoning_tokens: 3,
            cache_creation_tokens: 0,
        };
        assert_eq!(pipe.usage(), Some(want), "{down:?}");
        assert!(pipe.complete(), "{down:?}");
    }
}

/// The Responses upstream's text after an `error` event reaches no client.
#[test]
fn responses_text_after_an_error_is_not_relayed() {
    for down in DIALECTS {
        let mut pipe = StreamPipe::new(down, Dialect::OpenAiResponses, "c", "u", true);
        let mut out = Vec::new();
        for ev in &events_of(RESPONSES_ERROR) {
            pipe.on_event(ev, &mut out);
        }
        pipe.finish(&mut out);
        let s = String::from_utf8(out).unwrap();
        assert_eq!(s.matches("after").count(), 0, "{down:?}: {s}");
        assert_eq!(s.matches("boom").count(), if down == Dialect::OpenAiResponses { 2 } else { 1 }, "{down:?}: {s}");
    }
}

/// The Responses front's text delta as it was written by serde, field by field in this order.
#[derive(Serialize)]
struct TextDelta<'a> {
    #[serde(rename = "type")]
    ty: &'static str,
    sequence_number: u64,
    item_id: &'a str,
    output_index: u64,
    content_index: u64,
    delta: &'a str,
    logprobs: [(); 0],
}

proptest::proptest! {
    /// Each front's text event is byte for byte the event serde writes from the pivot chunk.
    #[test]
    fn front_text_writers_write_what_serde_writes(
        text in "[a\"\\\\\n\u{0}\u{1f}\u{7f}\u{e9}\u{2028}\u{1F600} ]{1,30}",
        id in "[a\"\\\\\u{e9} -]{0,12}",
    ) {
        let chunk = TextChunk { id: Cow::Borrowed(&id), text: Cow::Borrowed(&text) };
        // OpenAI: the pivot chunk with the client's model and creation time.
        let mut f = openai::StreamFromPivot::at("m\"odel", true, 7);
        let mut out = Vec::new();
        f.on_text(&chunk, &mut out);
        let mut want = Vec::new();
        f.on_chunk(&chunk.to_value(), &mut want);
        proptest::prop_assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(&want));
        let want_v = json!({"choices": [{"delta": {"content": text}, "finish_reason": null, "index": 0, "logprobs": null}],
            "created": 7, "id": id, "model": "m\"odel", "object": "chat.completion.chunk"});
        let mut want = Vec::new();
        sse::write_json(&mut want, None, &want_v, b"\n");
        proptest::prop_assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(&want));

        // Gemini: one response object per text delta, its id from the first chunk's.
        let mut g = gemini::StreamFromPivot::new("g\u{e9}");
        let mut out = Vec::new();
        g.on_text(&chunk, &mut out);
        let want_v = json!({"candidates": [{"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}],
            "modelVersion": "g\u{e9}", "responseId": id.strip_prefix("chatcmpl-").unwrap_or(&id)});
        let mut want = Vec::new();
        sse::write_json(&mut want, None, &want_v, b"\r\n");
        proptest::prop_assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(&want));

        // Responses: after the opening events, the delta with its sequence number and item id.
        let mut r = responses::StreamFromPivot::new("c", 7);
        let first = TextChunk { id: Cow::Borrowed("chatcmpl-x\"y"), text: Cow::Borrowed("a") };
        let mut out = Vec::new();
        r.on_text(&first, &mut out);
        let n = out.len();
        r.on_text(&chunk, &mut out);
        let d = TextDelta {
            ty: "response.output_text.delta",
            sequence_number: 5,
            item_id: "msg_x\"y_0",
            output_index: 0,
            content_index: 0,
            delta: &text,
            logprobs: [],
        };
        let mut want = Vec::new();
        sse::write_json(&mut want, Some(d.ty), &d, b"\n");
        proptest::prop_assert_eq!(String::from_utf8_lossy(&out[n..]), String::from_utf8_lossy(&want));
    }
}

/// A string member's value: mostly plain text, sometimes escaped, empty, `null` or a number.
fn json_text() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    prop_oneof![6 => "[a-z \u{e9}]{1,6}".prop_map(|t| format!("\"{t}\"")), 1 => Just("\"a\\\"b\"".to_string()),
        1 => Just("\"\"".to_string()), 1 => Just("null".to_string()), 1 => Just("3".to_string())]
}

/// Members in any order, sometimes one repeated, sometimes an unknown one, as a JSON object.
fn object(mut members: Vec<String>, repeat: bool, extra: bool, rotate: usize) -> String {
    if repeat && !members.is_empty() {
        // The same key again, with another value when it is a string.
        members.push(members[0].replacen("\":\"", "\":\"r", 1));
    }
    if extra {
        members.push("\"extra\":{\"x\":[1,null,{\"y\":\"z\"}]}".to_string());
    }
    let n = members.len().max(1);
    members.rotate_left(rotate % n);
    format!("{{{}}}", members.join(","))
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]
    /// Random text events of an Anthropic upstream, to every front: the text-only path (by
    /// bytes or by serde) writes, bills and counts what the whole read does.
    #[test]
    fn random_anthropic_text_events_read_as_the_whole_read(
        evs in proptest::collection::vec((json_text(), proptest::prelude::any::<(bool, bool, bool, bool, usize)>(),
            proptest::prop_oneof![Just("text_delta"), Just("thinking_delta")],
            proptest::prop_oneof![Just("content_block_delta"), Just("ping")]), 1..8),
    ) {
        let mut s = String::from("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_p\",\"usage\":{\"input_tokens\":4,\"output_tokens\":1}}}\n\n");
        for (text, (rep_top, rep_delta, extra, array, rot), dty, ty) in &evs {
            let delta = object(vec![format!("\"type\":\"{dty}\""), format!("\"text\":{text}")], *rep_delta, *extra, *rot);
            let delta = if *array { format!("[\"{dty}\",{text}]") } else { delta };
            let top = object(vec![format!("\"type\":\"{ty}\""), "\"index\":0".to_string(), format!("\"delta\":{delta}")], *rep_top, false, *rot / 3);
            s.push_str(&format!("event: content_block_delta\ndata: {top}\n\n"));
        }
        s.push_str("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":3}}\n\n");
        s.push_str("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
        for down in DIALECTS {
            let (want, want_text) = whole_read(Dialect::Anthropic, down, s.as_bytes());
            let (got, got_text) = pipe_read(Dialect::Anthropic, down, s.as_bytes());
            proptest::prop_assert_eq!(&got, &want, "{:?}\n{}", down, s);
            proptest::prop_assert_eq!(got_text, want_text);
        }
    }

    /// The same for random text events of a Responses upstream (the type sometimes left to the
    /// SSE `event:` field).
    #[test]
    fn random_responses_text_events_read_as_the_whole_read(
        evs in proptest::collection::vec((json_text(), proptest::prelude::any::<(bool, bool, bool, usize)>(),
            proptest::prop_oneof![Just(Some("response.output_text.delta")), Just(Some("response.refusal.delta")), Just(None)],
            proptest::prop_oneof![Just("response.output_text.delta"), Just("response.other")]), 1..8),
    ) {
        let mut s = String::from("event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_p\"}}\n\n");
        for (text, (rep, extra, array, rot), ty, name) in &evs {
            let mut members = vec![format!("\"delta\":{text}"), "\"output_index\":0".to_string()];
            if let Some(t) = ty {
                members.push(format!("\"type\":\"{t}\""));
            }
            let data = if *array { format!("[{text}]") } else { object(members, *rep, *extra, *rot) };
            s.push_str(&format!("event: {name}\ndata: {data}\n\n"));
        }
        s.push_str("event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_p\",\"status\":\"completed\",\"usage\":{\"input_tokens\":5,\"output_tokens\":9}}}\n\n");
        for down in DIALECTS {
            let (want, want_text) = whole_read(Dialect::OpenAiResponses, down, s.as_bytes());
            let (got, got_text) = pipe_read(Dialect::OpenAiResponses, down, s.as_bytes());
            proptest::prop_assert_eq!(&got, &want, "{:?}\n{}", down, s);
            proptest::prop_assert_eq!(got_text, want_text);
        }
    }
}

/// The exchange's translator fed in two pieces split at every byte writes what it writes fed
/// whole, for every front, on the streams of unusual events.
#[test]
fn every_two_piece_split_of_the_pipe_gives_identical_output() {
    let run = |up: Dialect, down: Dialect, pieces: &[&[u8]]| {
        let mut pipe = StreamPipe::priced_at(down, up, "c", "u", true, None, 7);
        let mut framer = Framer::default();
        let mut out = Vec::new();
        let mut events = Vec::new();
        for p in pieces {
            framer.push(p, &mut events).unwrap();
            for ev in &events {
                pipe.on_event(ev, &mut out);
            }
            events.clear();
        }
        framer.finish(&mut events);
        for ev in &events {
            pipe.on_event(ev, &mut out);
        }
        pipe.finish(&mut out);
        (out, pipe.usage(), pipe.text_bytes())
    };
    let mut checked = 0;
    for (up, fixture) in [
        (Dialect::Gemini, GEMINI_MIXED),
        (Dialect::OpenAiResponses, RESPONSES_MIXED),
        (Dialect::Anthropic, ANTHROPIC_MIXED),
    ] {
        for down in DIALECTS {
            let whole = run(up, down, &[fixture]);
            assert!(!whole.0.is_empty());
            for i in 0..=fixture.len() {
                let got = run(up, down, &[&fixture[..i], &fixture[i..]]);
                assert!(got == whole, "{up:?} -> {down:?}: split at {i} differs");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 12);
}
