//! The OpenAI pass-through counts an event that is its previous passed event's bytes around
//! another plain text without the scan (`PassFrame` in `dialect/openai/upstream.rs`): over any
//! sequence of events, a stream gives the same client bytes and the same text count as fresh
//! streams given one event each (which never have a frame), whatever changes between events:
//! the text (escapes, quotes, a key's name, `usage`), the bytes around it, the key it is under.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::borrow::Cow;

use proptest::prelude::*;
use tollgate_core::dialect::openai::OpenAiStream;
use tollgate_core::sse::EventOf;

const HEADS: [&str; 6] = [
    // A space the usage path's rewrite (a parse and a write) would not keep.
    r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices": [{"index":0,"delta":{"content":""#,
    r#"{"id":"c2","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":""#,
    r#"{"choices":[{"delta":{"role":"assistant","content":""#,
    r#"{"choices":[{"delta":{"tool_calls":[{"function":{"arguments":""#,
    r#"{"choices":[{"delta":{"reasoning":"x","text":"a","content":""#,
    // `"content":"` where the string after it is not a counted value (the key `text` takes
    // `"content"` as its value).
    r#"{"choices":[{"delta":{"text":"content":""#,
];
const TAILS: [&str; 5] = [
    r#""},"finish_reason":null}]}"#,
    r#""},"finish_reason":null,"obfuscation":"abc"}]}"#,
    r#""}}]}}]}"#,
    r#"","content":"more"}}]}"#,
    r#"","usage":{"completion_tokens":3}}]}"#,
];
const TEXTS: [&str; 12] = [
    "tok 1 ",
    "t",
    "",
    "h\u{e9} \u{1f600}",
    "a\\nb",
    "a\\\"b",
    "a\u{1}b",
    "usage",
    "text",
    "content",
    "ab",
    "x\\u00e9",
];

fn event(h: usize, t: usize, x: usize) -> String {
    format!("{}{}{}", HEADS[h % HEADS.len()], TEXTS[x % TEXTS.len()], TAILS[t % TAILS.len()])
}

fn run(s: &mut OpenAiStream, data: &str, out: &mut Vec<u8>) {
    s.on_event(&EventOf { event: None, data: Cow::Borrowed(data) }, out);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn a_stream_counts_and_passes_as_fresh_streams_do_event_by_event(
        runs in proptest::collection::vec((0usize..6, 0usize..5, proptest::collection::vec(0usize..12, 1..5)), 1..6),
    ) {
        let mut s = OpenAiStream::new(None, false);
        let (mut got, mut want, mut want_count) = (Vec::new(), Vec::new(), 0u64);
        // Runs of events with the same head and tail, each with its own text.
        for (h, t, texts) in runs {
            for x in texts {
                let data = event(h, t, x);
                run(&mut s, &data, &mut got);
                let mut fresh = OpenAiStream::new(None, false);
                run(&mut fresh, &data, &mut want);
                want_count += fresh.completion_bytes;
                prop_assert_eq!(s.completion_bytes, want_count, "after {}", data);
            }
        }
        prop_assert_eq!(got, want);
    }
}

/// A steady stream: after its first events, each is counted from the frame; the count is the
/// texts' bytes all the same, and a text `usage` (which makes the event hold `"usage"`) is
/// still read as the usage check reads it.
#[test]
fn a_steady_stream_counts_every_text() {
    let mut s = OpenAiStream::new(None, false);
    let mut out = Vec::new();
    let mut want = 0u64;
    for i in 0..50 {
        let text = if i == 30 { "usage".to_string() } else { format!("tok{i} ") };
        want += text.len() as u64;
        run(&mut s, &event(0, 0, 0).replace("tok 1 ", &text), &mut out);
    }
    assert_eq!(s.completion_bytes, want);
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.matches("data: ").count(), 50);
}
