//! Stream translators: byte-identical output however the upstream bytes are split, and the
//! exchange's text-only path writing what the whole read writes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use serde_json::json;
use tollgate_core::dialect::stream::FrontStream;
use tollgate_core::dialect::{anthropic, gemini, openai, responses};
use tollgate_core::sse::Framer;

mod streams_common;

use streams_common::*;

// ---- split at every byte ------------------------------------------------------------------------

type Maker = fn() -> Box<dyn Drive>;

fn drivers() -> Vec<(&'static str, &'static [u8], Maker)> {
    vec![
        ("anthropic_text->pivot", ANTHROPIC_TEXT, || Box::new(Up(anthropic::StreamToPivot::new()))),
        ("anthropic_tool->pivot", ANTHROPIC_TOOL, || Box::new(Up(anthropic::StreamToPivot::new()))),
        ("gemini_text->pivot", GEMINI_TEXT, || Box::new(Up(gemini::StreamToPivot::new()))),
        ("gemini_tool->pivot", GEMINI_TOOL, || Box::new(Up(gemini::StreamToPivot::new()))),
        ("openai_text->anthropic", OPENAI_TEXT, || Box::new(to_front(anthropic::StreamFromPivot::new("c")))),
        ("openai_tool->anthropic", OPENAI_TOOL, || Box::new(to_front(anthropic::StreamFromPivot::new("c")))),
        ("openai_text->gemini", OPENAI_TEXT, || Box::new(to_front(gemini::StreamFromPivot::new("g")))),
        ("openai_tool->gemini", OPENAI_TOOL, || Box::new(to_front(gemini::StreamFromPivot::new("g")))),
        ("anthropic_tool->gemini", ANTHROPIC_TOOL, || {
            Box::new(Pair(anthropic::StreamToPivot::new(), gemini::StreamFromPivot::new("g")))
        }),
        ("gemini_tool->anthropic", GEMINI_TOOL, || {
            Box::new(Pair(gemini::StreamToPivot::new(), anthropic::StreamFromPivot::new("c")))
        }),
        ("anthropic_short->pivot", ANTHROPIC_SHORT, || Box::new(Up(anthropic::StreamToPivot::new()))),
        ("gemini_short->pivot", GEMINI_SHORT, || Box::new(Up(gemini::StreamToPivot::new()))),
        ("openai_short->anthropic", OPENAI_SHORT, || Box::new(to_front(anthropic::StreamFromPivot::new("c")))),
        ("openai_short->gemini", OPENAI_SHORT, || Box::new(to_front(gemini::StreamFromPivot::new("g")))),
        ("gemini_short->anthropic", GEMINI_SHORT, || {
            Box::new(Pair(gemini::StreamToPivot::new(), anthropic::StreamFromPivot::new("c")))
        }),
    ]
}

#[test]
fn every_two_piece_split_gives_identical_output() {
    for (name, fixture, make) in drivers() {
        let whole = run(&mut *make(), &[fixture]);
        assert!(!whole.is_empty(), "{name}");
        for i in 0..=fixture.len() {
            let got = run(&mut *make(), &[&fixture[..i], &fixture[i..]]);
            assert!(got == whole, "{name}: split at {i} differs");
        }
        // and byte by byte
        let pieces: Vec<&[u8]> = fixture.chunks(1).collect();
        assert!(run(&mut *make(), &pieces) == whole, "{name}: byte by byte differs");
    }
}

fn three_piece_splits(name: &str, fixture: &[u8], make: Maker) {
    let whole = run(&mut *make(), &[fixture]);
    for i in 0..=fixture.len() {
        for j in i..=fixture.len() {
            let got = run(&mut *make(), &[&fixture[..i], &fixture[i..j], &fixture[j..]]);
            assert!(got == whole, "{name}: split at {i},{j} differs");
        }
    }
}

#[test]
fn three_piece_splits_anthropic_short_to_pivot() {
    three_piece_splits("anthropic_short->pivot", ANTHROPIC_SHORT, || Box::new(Up(anthropic::StreamToPivot::new())));
}

#[test]
fn three_piece_splits_gemini_short_to_pivot() {
    three_piece_splits("gemini_short->pivot", GEMINI_SHORT, || Box::new(Up(gemini::StreamToPivot::new())));
}

#[test]
fn three_piece_splits_openai_short_to_anthropic() {
    three_piece_splits("openai_short->anthropic", OPENAI_SHORT, || {
        Box::new(to_front(anthropic::StreamFromPivot::new("c")))
    });
}

#[test]
fn three_piece_splits_openai_short_to_gemini() {
    three_piece_splits("openai_short->gemini", OPENAI_SHORT, || Box::new(to_front(gemini::StreamFromPivot::new("g"))));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// Random multi-piece splits of every fixture, through every translator.
    #[test]
    fn random_splits_give_identical_output(cuts in proptest::collection::vec(0usize..4000, 0..12)) {
        for (name, fixture, make) in drivers() {
            let whole = run(&mut *make(), &[fixture]);
            let mut points: Vec<usize> = cuts.iter().map(|c| c % (fixture.len() + 1)).collect();
            points.sort_unstable();
            let mut pieces = Vec::new();
            let mut prev = 0;
            for p in points {
                pieces.push(&fixture[prev..p]);
                prev = p;
            }
            pieces.push(&fixture[prev..]);
            proptest::prop_assert!(run(&mut *make(), &pieces) == whole, "{}: {:?}", name, pieces.len());
        }
    }
}

/// An OpenAI stream with text that needs unescaping, a refusal, reasoning, a null content, a
/// second choice, a repeated key, and a usage on a text chunk: events the text-only read must
/// hand to the whole read (or read to the same effect).
const OPENAI_MIXED: &[u8] = b"data: {\"id\":\"chatcmpl-9\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n\
data: {\"id\":\"chatcmpl-9\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"line\\none \\\"q\\\" \\u00e9\"},\"logprobs\":null}]}\n\n\
data: {\"id\":\"chatcmpl-9\",\"choices\":[{\"index\":0,\"delta\":{\"refusal\":\"no\"}}]}\n\n\
data: {\"id\":\"chatcmpl-9\",\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"hm\"}}]}\n\n\
data: {\"id\":\"chatcmpl-9\",\"choices\":[{\"index\":0,\"delta\":{\"content\":null,\"refusal\":null}}]}\n\n\
data: {\"id\":\"chatcmpl-9\",\"choices\":[{\"index\":1,\"delta\":{\"content\":\"other choice\"}}]}\n\n\
data: {\"id\":\"chatcmpl-9\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\",\"content\":\"b\"}}]}\n\n\
data: {\"id\":\"chatcmpl-9\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"c\"}}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4,\"total_tokens\":7}}\n\n\
data: {\"id\":\"chatcmpl-9\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n\
data: [DONE]\n\n";

/// The translator the exchange uses (`StreamPipe`: text-only chunks read into borrowed fields
/// and written without a `Value`) writes what the whole read of every event writes (`Pair`).
#[test]
fn the_text_only_path_writes_what_the_whole_read_writes() {
    use tollgate_core::dialect::Dialect;
    use tollgate_core::translate::StreamPipe;
    for fixture in [OPENAI_TEXT, OPENAI_TOOL, OPENAI_SHORT, OPENAI_MIXED] {
        for front in [Dialect::Anthropic, Dialect::Gemini, Dialect::OpenAiResponses] {
            let want = match front {
                Dialect::Anthropic => run(&mut to_front(anthropic::StreamFromPivot::new("c")), &[fixture]),
                Dialect::OpenAiResponses => run(&mut to_front(responses::StreamFromPivot::new("c", 0)), &[fixture]),
                _ => run(&mut to_front(gemini::StreamFromPivot::new("c")), &[fixture]),
            };
            let mut pipe = StreamPipe::new(front, Dialect::OpenAi, "c", "u", false);
            let mut framer = Framer::default();
            let mut events = Vec::new();
            framer.push(fixture, &mut events).unwrap();
            framer.finish(&mut events);
            let mut got = Vec::new();
            for ev in &events {
                pipe.on_event(ev, &mut got);
            }
            pipe.finish(&mut got);
            assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(&want), "{front:?}");
            assert!(!got.is_empty());
        }
    }
    // From an Anthropic upstream (its `text_delta` events read the same way) to every front.
    for fixture in [ANTHROPIC_TEXT, ANTHROPIC_TOOL, ANTHROPIC_SHORT] {
        for front in [Dialect::OpenAi, Dialect::Anthropic, Dialect::Gemini, Dialect::OpenAiResponses] {
            let up = || anthropic::StreamToPivot::new().with_model("c");
            let want = match front {
                Dialect::OpenAi => run(&mut Pair(up(), openai::StreamFromPivot::new("c", false)), &[fixture]),
                Dialect::Anthropic => run(&mut Pair(up(), anthropic::StreamFromPivot::new("c")), &[fixture]),
                Dialect::Gemini => run(&mut Pair(up(), gemini::StreamFromPivot::new("c")), &[fixture]),
                Dialect::OpenAiResponses => run(&mut Pair(up(), responses::StreamFromPivot::new("c", 0)), &[fixture]),
            };
            let mut pipe = StreamPipe::new(front, Dialect::Anthropic, "c", "u", false);
            let mut framer = Framer::default();
            let mut events = Vec::new();
            framer.push(fixture, &mut events).unwrap();
            framer.finish(&mut events);
            let mut got = Vec::new();
            for ev in &events {
                pipe.on_event(ev, &mut got);
            }
            pipe.finish(&mut got);
            assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(&want), "anthropic -> {front:?}");
            assert!(!got.is_empty());
        }
    }
    // The text counted for estimates is the same too: every content, refusal and reasoning byte.
    let mut pipe = StreamPipe::new(Dialect::Anthropic, Dialect::OpenAi, "c", "u", false);
    let mut framer = Framer::default();
    let mut events = Vec::new();
    framer.push(OPENAI_MIXED, &mut events).unwrap();
    let mut out = Vec::new();
    for ev in &events {
        pipe.on_event(ev, &mut out);
    }
    assert_eq!(pipe.text_bytes(), ("line\none \"q\" é".len() + 2 + 2 + 12 + 1 + 1) as u64);
}

proptest::proptest! {
    /// A text delta (never an empty one: none is written) is byte for byte the event serde writes.
    #[test]
    fn anthropic_text_delta_is_the_bytes_serde_writes(text in "[a\"\\\\\n\u{0}\u{1f}\u{7f}\u{e9}\u{2028}\u{1F600} ]{1,30}") {
        use std::borrow::Cow;
        use tollgate_core::dialect::stream::TextChunk;
        let mut s = anthropic::StreamFromPivot::new("c");
        let mut out = Vec::new();
        s.on_text(&TextChunk { id: Cow::Borrowed("x"), text: Cow::Borrowed("a") }, &mut out);
        let n = out.len();
        s.on_text(&TextChunk { id: Cow::Borrowed("x"), text: Cow::Borrowed(&text) }, &mut out);
        let mut want = Vec::new();
        let delta = json!({"delta": {"text": text, "type": "text_delta"}, "index": 0, "type": "content_block_delta"});
        tollgate_core::sse::write_json(&mut want, Some("content_block_delta"), &delta, b"\n");
        proptest::prop_assert_eq!(String::from_utf8_lossy(&out[n..]), String::from_utf8_lossy(&want));
    }
}
