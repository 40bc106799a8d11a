//! Tests of `responses/upstream.rs`'s text delta read: a delta read by the frame of the one
//! before (another sequence number in it) reads as it reads alone.
use super::*;

#[allow(clippy::option_option)]
fn read(d: &str, framed: &mut Framed) -> Option<Option<(Option<bool>, String)>> {
    scan_delta(d, framed).map(|r| r.map(|(ty, t)| (ty, t.to_string())))
}

#[allow(clippy::option_option)]
fn alone(d: &str) -> Option<Option<(Option<bool>, String)>> {
    read(d, &mut Framed::default())
}

/// Events of a stream for the property below: the usual delta around texts plain, empty and
/// not, with sequence numbers of every form, members reordered, other events.
fn stream_events() -> Vec<String> {
    let usual = |text: &str, seq: &str| {
        format!(
            r#"{{"content_index":0,"delta":"{text}","item_id":"msg_1","logprobs":[],"output_index":0,"sequence_number":{seq},"type":"response.output_text.delta"}}"#
        )
    };
    let mut v = Vec::new();
    for seq in ["4", "5", "10", "123456", "0", "01", "-1", "1.5", "1e3", "\"7\"", "null"] {
        v.push(usual("tok 1 ", seq));
        v.push(usual("t", seq));
    }
    v.extend([
        usual("", "6"),
        usual("h\u{e9} \u{1f600}", "7"),
        usual("a\\nb", "8"),
        usual("a\u{1}b", "9"),
        usual("a\"b", "9"),
        usual("tok", "9").replace("output_text.delta", "output_text.done"),
        usual("tok", "9").replace("\"msg_1\"", "\"msg_2\""),
        r#"{"sequence_number":3,"delta":"tok","type":"response.output_text.delta"}"#.into(),
        r#"{"sequence_number":4,"delta":"tok","type":"response.output_text.delta"}"#.into(),
        r#"{"delta":"tok","sequence_number":4}"#.into(),
        r#"{"delta":"tok","sequence_number":4,"sequence_number":5}"#.into(),
        r#"{"delta":"tok","sequence_number":4"#.into(),
    ]);
    v
}

proptest::proptest! {
    /// One frame kept across a stream: every event reads as it reads alone.
    #[test]
    fn a_stream_is_read_as_each_event_alone(events in proptest::collection::vec(proptest::sample::select(stream_events()), 0..16)) {
        let mut framed = Framed::default();
        for d in &events {
            proptest::prop_assert_eq!(read(d, &mut framed), alone(d), "{}", d);
        }
    }
}

#[test]
fn the_usual_stream_is_read_by_its_frame() {
    let mut framed = Framed::default();
    let ev = |t: &str, seq: u64| {
        format!(
            r#"{{"content_index":0,"delta":"{t}","item_id":"msg_1","logprobs":[],"output_index":0,"sequence_number":{seq},"type":"response.output_text.delta"}}"#
        )
    };
    let want = |t: &str| Some(Some((Some(true), t.to_string())));
    for (seq, t) in [(4, "a"), (5, "bc"), (99, ""), (100, "d"), (7, "a much longer text")] {
        assert_eq!(read(&ev(t, seq), &mut framed), want(t));
    }
    // The frame was kept from the first event on.
    assert_eq!(framed.frame.text_span(&ev("x", 12)), Some((28, 29)));
}

/// Events without a `delta` in the usual form, and some with one, for the property below.
fn other_events() -> Vec<String> {
    vec![
        r#"{"type":"response.output_text.done","text":"tok0 tok1","sequence_number":9}"#.into(),
        r#"{"response":{"id":"r","output":[{"content":[{"text":"a b","type":"output_text"}]}],"usage":{"input_tokens":1}},"type":"response.completed"}"#.into(),
        r#"{"type":"response.created"}"#.into(),
        r#"{}"#.into(),
        r#"{"delta":null,"type":"response.output_text.delta"}"#.into(),
        r#"{"delta":{"a":1},"type":"response.output_text.delta"}"#.into(),
        r#"{"delta":"x","type":"response.output_text.delta"}"#.into(),
        r#"{"delta":"x"}"#.into(),
        r#"{"type":"response.output_text.delta","delta":"x","delta":"y"}"#.into(),
        r#"{"type":"response.output_text.delta","x":[[[[[[[[[[1]]]]]]]]]]}"#.into(),
        r#"{"type":"response.output_text.delta","text":"a\nb"}"#.into(),
    ]
}

#[test]
fn what_is_read_without_a_delta_serde_reads_without_one() {
    let mut without = 0;
    for d in other_events() {
        let serde =
            serde_json::from_slice::<Obj<TextDeltaIn<'_>>>(d.as_bytes()).ok().map(|Obj(e)| e.delta.into_owned());
        match alone(&d) {
            Some(None) => {
                without += 1;
                assert_eq!(serde, None, "{d}");
            }
            Some(Some((_, t))) => assert_eq!(serde, Some(t), "{d}"),
            None => {}
        }
    }
    assert_eq!(without, 4);
}
