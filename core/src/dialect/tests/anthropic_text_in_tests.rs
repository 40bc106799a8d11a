//! Tests of `anthropic/text_in.rs`: a text delta read by the frame of the one before reads as
//! it reads alone.
use super::*;

fn alone(d: &str) -> Option<String> {
    text_delta_framed(d, &mut Frame::default()).map(Cow::into_owned)
}

/// Events of a stream for the property below: the usual text delta around texts plain, empty
/// and not plain, members reordered, other events.
fn stream_events() -> Vec<String> {
    let usual = |text: &str| {
        format!(r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":"{text}"}}}}"#)
    };
    let mut events: Vec<String> = crate::dialect::frame::TEST_TEXTS.iter().map(|t| usual(t)).collect();
    events.extend([
        usual("tok").replace("\"index\":0", "\"index\":1.5"),
        r#"{"delta":{"text":"tok","type":"text_delta"},"type":"content_block_delta"}"#.into(),
        r#"{"delta":{"text":"","type":"text_delta"},"type":"content_block_delta"}"#.into(),
        r#"{"delta":{"text":"tok","type":"text_delta"},"type":"content_block_start"}"#.into(),
        r#"{"delta":{"text":"tok","type":"input_json_delta"},"type":"content_block_delta"}"#.into(),
        r#"{"type":"content_block_delta","delta":{"type":"text_delta","text":"tok"}"#.into(),
        r#"{"type":"message_stop"}"#.into(),
    ]);
    events
}

proptest::proptest! {
    /// One frame kept across a stream: every event reads as it reads alone.
    #[test]
    fn a_stream_is_read_as_each_event_alone(events in proptest::collection::vec(proptest::sample::select(stream_events()), 0..16)) {
        let mut frame = Frame::default();
        for d in &events {
            proptest::prop_assert_eq!(text_delta_framed(d, &mut frame).map(Cow::into_owned), alone(d), "{}", d);
        }
    }
}

#[test]
fn the_usual_stream_is_read_by_its_frame() {
    let mut frame = Frame::default();
    let ev =
        |t: &str| format!(r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":"{t}"}}}}"#);
    assert_eq!(text_delta_framed(&ev("a"), &mut frame).as_deref(), Some("a"));
    assert_eq!(text_delta_framed(&ev("bc"), &mut frame).as_deref(), Some("bc"));
    assert_eq!(text_delta_framed(&ev(""), &mut frame).as_deref(), None);
    assert_eq!(text_delta_framed(&ev("b\\nc"), &mut frame).as_deref(), Some("b\nc"));
    assert_eq!(text_delta_framed(&ev("d"), &mut frame).as_deref(), Some("d"));
}
