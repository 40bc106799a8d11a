//! Tests of `openai/chunk.rs`: the byte-level read agrees with the serde read it stands in for.
use std::borrow::Cow;

use super::super::upstream::text_event_serde;
use super::*;
use crate::dialect::stream::TextChunk;

/// The event's id and text, when it is a text-only chunk for choice 0 in the usual form.
fn text_chunk(data: &str) -> Option<TextChunk<'_>> {
    let s = spans(data)?;
    Some(TextChunk { id: Cow::Borrowed(s.id(data)?), text: Cow::Borrowed(s.text(data)?) })
}

fn fast(d: &str) -> Option<(String, String)> {
    text_chunk(d).map(|t| (t.id.into_owned(), t.text.into_owned()))
}

fn serde(d: &str) -> Option<(String, String)> {
    text_event_serde(d).map(|t| (t.id.into_owned(), t.text.into_owned()))
}

const USUAL: &str = r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1795434432,"model":"qai-flash","system_fingerprint":null,"choices":[{"index":0,"delta":{"content":"tok 1 "},"finish_reason":null,"logprobs":null}]}"#;

#[test]
fn the_usual_text_chunks_are_read_without_serde() {
    assert_eq!(fast(USUAL), Some(("chatcmpl-1".into(), "tok 1 ".into())));
    let role = r#"{"id":"x","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#;
    assert_eq!(fast(role), Some(("x".into(), String::new())));
    let spaced = " { \"choices\" : [ { \"delta\" : { \"content\" : \"h\u{e9}\" , \"refusal\" : null } } ] } ";
    assert_eq!(fast(spaced.trim()), Some((String::new(), "h\u{e9}".into())));
    assert_eq!(
        fast(r#"{"choices":[{"delta":{}}],"x":{"a":[1,-2,true,false,null,{}],"b":[]}}"#),
        Some((String::new(), String::new()))
    );
}

#[test]
fn anything_else_is_left_to_serde() {
    for d in [
        // Escapes, fractions, usage, finish reasons, other choices, other delta fields.
        r#"{"id":"x","choices":[{"index":0,"delta":{"content":"a\nb"}}]}"#,
        r#"{"id":"x","created":1.5,"choices":[{"index":0,"delta":{"content":"a"}}]}"#,
        r#"{"id":"x","choices":[{"index":0,"delta":{"content":"a"}}],"usage":null}"#,
        r#"{"id":"x","choices":[{"index":0,"delta":{"content":"a"},"finish_reason":"stop"}]}"#,
        r#"{"id":"x","choices":[{"index":1,"delta":{"content":"a"}}]}"#,
        r#"{"id":"x","choices":[{"index":0,"delta":{"content":"a","tool_calls":[]}}]}"#,
        r#"{"id":"x","choices":[{"index":0,"delta":{"content":"a","refusal":"no"}}]}"#,
        // Repeated keys, two choices, none, trailing bytes, not an object.
        r#"{"id":"x","id":"y","choices":[{"delta":{"content":"a"}}]}"#,
        r#"{"choices":[{"delta":{"content":"a","content":"b"}}]}"#,
        r#"{"choices":[{"delta":{"content":"a"}},{"delta":{"content":"b"}}]}"#,
        r#"{"choices":[]}"#,
        r#"{"id":"x"}"#,
        r#"{"choices":[{"delta":{"content":"a"}}]} x"#,
        r#"["x",[{"delta":{"content":"a"}}]]"#,
        r#"{"choices":[{"delta":{"content":"a"}}],"n":01}"#,
        r#"{"choices":[{"delta":{"content":"a"}}],"n":[[[[[[[[[[[]]]]]]]]]]]}"#,
    ] {
        assert_eq!(fast(d), None, "{d}");
    }
}

/// Pieces of chunk-like JSON for the property below.
fn pieces() -> Vec<&'static str> {
    vec![
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        " ",
        "\"",
        "\"id\"",
        "\"choices\"",
        "\"delta\"",
        "\"content\"",
        "\"role\"",
        "\"refusal\"",
        "\"index\"",
        "\"finish_reason\"",
        "\"usage\"",
        "\"x\"",
        "\"a\\nb\"",
        "0",
        "1",
        "-1",
        "01",
        "1.5",
        "null",
        "true",
        "nul",
        "\u{e9}",
        "\n",
    ]
}

proptest::proptest! {
    /// Whatever the byte-level read accepts, serde reads the same way.
    #[test]
    fn what_it_reads_serde_reads_alike(parts in proptest::collection::vec(proptest::sample::select(pieces()), 0..40)) {
        let d = parts.concat();
        if let Some(got) = fast(&d) {
            proptest::prop_assert_eq!(Some(got), serde(&d));
        }
    }

    /// Chunks built around the usual one, members reordered or changed: the same check, with
    /// most cases accepted.
    #[test]
    fn usual_chunks_read_alike(
        id in proptest::sample::select(vec!["\"id\":\"c1\",", "", "\"id\":\"c\\u0031\",", "\"id\":null,", "\"id\":\"a\",\"id\":\"b\","]),
        extra in proptest::sample::select(vec!["", "\"created\":17,", "\"created\":-0,", "\"logprobs\":{\"content\":[]},", "\"usage\":null,", "\"usage\":{},"]),
        index in proptest::sample::select(vec!["", "\"index\":0,", "\"index\":1,", "\"index\":00,", "\"index\":0,\"index\":0,"]),
        finish in proptest::sample::select(vec!["", "\"finish_reason\":null,", "\"finish_reason\":\"stop\",", "\"finish_reason\":nul,"]),
        delta in proptest::sample::select(vec!["{}", "{\"content\":\"t\"}", "{\"role\":\"assistant\",\"content\":\"\"}", "{\"content\":null}", "{\"content\":\"t\",\"x\":1}", "{\"refusal\":null,\"content\":\"\\\"q\\\"\"}"]),
    ) {
        let d = format!("{{{id}{extra}\"choices\":[{{{index}{finish}\"delta\":{delta}}}]}}");
        let got = fast(&d);
        if got.is_some() {
            proptest::prop_assert_eq!(got, serde(&d));
        }
    }
}

/// `text_event` of one event by a stream half (`None`: not a text chunk).
fn by_half(half: &mut crate::dialect::openai::StreamToPivot, d: &str) -> Option<(String, String)> {
    use crate::dialect::stream::UpstreamStream;
    let ev = crate::sse::EventOf { event: None, data: Cow::Borrowed(d) };
    half.text_event(&ev).map(|t| (t.id.into_owned(), t.text.into_owned()))
}

/// Events of a stream for the property below: the usual chunk around texts plain and not,
/// the role chunk, the id after the choices or changed, a finish chunk, a cut event.
fn stream_events() -> Vec<String> {
    let usual = |id: &str, text: &str| {
        format!(
            r#"{{"id":"{id}","object":"chat.completion.chunk","created":1,"model":"m","choices":[{{"index":0,"delta":{{"content":"{text}"}},"finish_reason":null,"logprobs":null}}]}}"#
        )
    };
    vec![
        usual("c1", "tok 1 "),
        usual("c1", ""),
        usual("c1", "h\u{e9} \u{1f600}"),
        usual("c1", "a\\nb"),
        usual("c1", "a\\\"b"),
        usual("c1", "a\u{1}b"),
        usual("c1", "a\"b"),
        usual("c2", "tok"),
        usual("c\\u0031", "tok"),
        usual("c1", "tok").replace(r#""created":1"#, r#""created":1.5"#),
        usual("c1", "tok").replace("]}", "],\"usage\":null}"),
        usual("c1", "tok").replace("\"finish_reason\":null", "\"finish_reason\":\"stop\""),
        r#"{"id":"c1","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#.into(),
        r#"{"choices":[{"index":0,"delta":{"content":"tok"}}],"id":"c3"}"#.into(),
        r#"{"choices":[{"index":0,"delta":{"content":"t2"}}],"id":"c3"}"#.into(),
        r#"{"choices":[{"index":0,"delta":{"content":"tok"}}]}"#.into(),
        r#"{"choices":[{"index":0,"delta":{"content":"tok"}}]} "#.into(),
        r#"{"choices":[{"index":0,"delta":{}}]}"#.into(),
        r#"{"choices":[{"index":0,"delta":{"content":"tok"}}"#.into(),
        r#"{"choices":[{"index":0,"delta":{"content":"#.into(),
    ]
}

proptest::proptest! {
    /// A stream half that remembers the frame of its latest text chunk reads every event of a
    /// stream as a fresh half reads it alone.
    #[test]
    fn a_stream_is_read_as_each_event_alone(events in proptest::collection::vec(proptest::sample::select(stream_events()), 0..16)) {
        let mut half = crate::dialect::openai::StreamToPivot::new();
        for d in &events {
            let alone = by_half(&mut crate::dialect::openai::StreamToPivot::new(), d);
            proptest::prop_assert_eq!(by_half(&mut half, d), alone, "{}", d);
        }
    }
}

#[test]
fn the_usual_stream_is_read_by_its_frame() {
    let mut half = crate::dialect::openai::StreamToPivot::new();
    let ev = |t: &str| {
        format!(
            r#"{{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{{"index":0,"delta":{{"content":"{t}"}},"finish_reason":null,"logprobs":null}}]}}"#
        )
    };
    assert_eq!(by_half(&mut half, &ev("a")), Some(("c1".into(), "a".into())));
    assert_eq!(by_half(&mut half, &ev("bc")), Some(("c1".into(), "bc".into())));
    assert_eq!(by_half(&mut half, &ev("b\\nc")), Some(("c1".into(), "b\nc".into())));
    assert_eq!(by_half(&mut half, &ev("")), Some(("c1".into(), String::new())));
}
