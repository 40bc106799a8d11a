//! Tests of `gemini/text_in.rs`: the byte-level read agrees with the serde read it stands in for.
use proptest::prelude::*;

use super::*;

const USUAL: &str = r#"{"candidates":[{"content":{"parts":[{"text":"tok1 "}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":12,"totalTokenCount":12},"modelVersion":"qai-flash","responseId":"r-1"}"#;

#[test]
fn the_usual_text_events_are_read_by_bytes() {
    let want = TextEvent {
        text: Cow::Borrowed("tok1 "),
        id: Some(Cow::Borrowed("r-1")),
        model: Some(Cow::Borrowed("qai-flash")),
        usage: Some(Usage { prompt_tokens: 12, ..Usage::default() }),
    };
    assert_eq!(scan(USUAL), Some(want));
    assert_eq!(scan(USUAL), read(USUAL));
    let snake = r#" { "candidates" : [ { "content" : { "parts" : [ { "text" : "h\u00e9" , "thought" : false, "thought_signature": "s" } ] } } ] ,
        "usage_metadata" : { "prompt_token_count" : 9, "candidates_token_count": 6, "cached_content_token_count": 2,
        "thoughts_token_count": 3, "tool_use_prompt_token_count": 1, "prompt_tokens_details": [{"modality":"TEXT","tokenCount":9}] } } "#;
    // The escape goes to serde; the same event without it is read by bytes.
    assert_eq!(scan(snake), None);
    let plain = snake.replace("h\\u00e9", "h\u{e9}");
    let got = scan(&plain).unwrap();
    let usage = Usage {
        prompt_tokens: 10,
        completion_tokens: 9,
        cached_tokens: 2,
        reasoning_tokens: 3,
        cache_creation_tokens: 0,
    };
    assert_eq!((got.text.as_ref(), got.usage), ("h\u{e9}", Some(usage)));
    assert_eq!(Some(got), read(&plain));
}

#[test]
fn anything_else_is_left_to_serde_or_to_the_whole_read() {
    for d in [
        r#"{"candidates":[{"content":{"parts":[{"text":"a"}]},"finishReason":"STOP"}]}"#,
        r#"{"candidates":[{"content":{"parts":[{"text":"a"}]},"index":1}]}"#,
        r#"{"candidates":[{"content":{"parts":[{"text":"a"},{"text":"b"}]}}]}"#,
        r#"{"candidates":[{"content":{"parts":[{"text":"a","thought":true}]}}]}"#,
        r#"{"candidates":[{"content":{"parts":[{"text":"a"}]}}],"error":null}"#,
        r#"{"candidates":[{"content":{"parts":[{"text":"a"}]}}],"responseId":"x","response_id":"y"}"#,
        r#"{"candidates":[{"content":{"parts":[{"text":"a"}]}}],"usageMetadata":{"promptTokenCount":1.0}}"#,
        r#"{"candidates":[{"content":{"parts":[{"text":"a"}]}}],"usageMetadata":{"promptTokenCount":-1}}"#,
        r#"{"candidates":[{"content":{"parts":[{"text":"a","text":"b"}]}}]}"#,
        r#"{"candidates":[{"content":{"parts":[{"text":""}]}}]}"#,
        r#"{"candidates":[[0,{"parts":[{"text":"a"}]}]]}"#,
        r#"{"candidates":[{"content":{"parts":[{"text":"a"}]}}]} x"#,
    ] {
        assert_eq!(scan(d), None, "{d}");
    }
}

/// A value for a member: mostly the usual kind, sometimes another.
fn count() -> impl Strategy<Value = String> {
    prop_oneof![4 => (0u64..1_000_000).prop_map(|n| n.to_string()), 1 => Just("null".to_string()),
        1 => Just("1.5".to_string()), 1 => Just("-2".to_string()), 1 => Just("\"7\"".to_string()),
        1 => Just("18446744073709551616".to_string())]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![4 => "[a-z \u{e9}]{0,6}".prop_map(|t| format!("\"{t}\"")), 1 => Just("\"a\\nb\"".to_string()),
        1 => Just("null".to_string()), 1 => Just("5".to_string())]
}

prop_compose! {
    fn event()(
        t in text(),
        thought in prop_oneof![Just(""), Just(",\"thought\":false"), Just(",\"thought\":true"), Just(",\"thought\":null")],
        second_part in prop_oneof![5 => Just(""), 1 => Just(",{\"text\":\"b\"}")],
        index in prop_oneof![Just(""), Just("\"index\":0,"), Just("\"index\":1,"), Just("\"index\":null,")],
        finish in prop_oneof![4 => Just(""), 1 => Just(",\"finishReason\":\"STOP\""), 1 => Just(",\"finish_reason\":null")],
        counts in proptest::collection::vec((0usize..5, any::<bool>(), count()), 0..6),
        usage_key in prop_oneof![Just(None), Just(Some("usageMetadata")), Just(Some("usage_metadata"))],
        id in prop_oneof![Just(""), Just(",\"responseId\":\"r\""), Just(",\"response_id\":\"s\""), Just(",\"responseId\":null")],
        model in prop_oneof![Just(""), Just(",\"modelVersion\":\"m\""), Just(",\"modelVersion\":\"m\",\"model_version\":\"n\"")],
        extra in prop_oneof![Just(""), Just(",\"promptFeedback\":{\"x\":[1,{\"y\":null}]}"), Just(",\"error\":{}")],
    ) -> String {
        let names = [("promptTokenCount", "prompt_token_count"), ("toolUsePromptTokenCount", "tool_use_prompt_token_count"),
            ("candidatesTokenCount", "candidates_token_count"), ("thoughtsTokenCount", "thoughts_token_count"),
            ("cachedContentTokenCount", "cached_content_token_count")];
        let usage = usage_key.map(|k| {
            let members: Vec<String> = counts.iter().map(|(i, snake, v)| {
                let (c, s) = names[*i];
                format!("\"{}\":{v}", if *snake { s } else { c })
            }).collect();
            format!(",\"{k}\":{{{}}}", members.join(","))
        }).unwrap_or_default();
        format!("{{\"candidates\":[{{{index}\"content\":{{\"parts\":[{{\"text\":{t}{thought}}}{second_part}],\"role\":\"model\"}}{finish}}}]{usage}{id}{model}{extra}}}")
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    /// Whatever the byte-level read accepts, serde reads to the same text, id, model and usage.
    #[test]
    fn the_byte_read_agrees_with_serde(d in event()) {
        if let Some(fast) = scan(&d) {
            prop_assert_eq!(Some(fast), read(&d), "{}", d);
        }
    }
}

#[test]
fn key_spellings_are_both_read() {
    let d = USUAL.replace("usageMetadata", "usage_metadata").replace("promptTokenCount", "prompt_token_count");
    assert_eq!(scan(&d), read(&d));
    assert!(scan(&d).is_some());
}

/// Events of a stream for the property below: the usual event around texts plain, empty and
/// not plain, its id and model before or after the text, its usage changed, other events.
fn stream_events() -> Vec<String> {
    let usual = |text: &str| USUAL.replace("tok1 ", text);
    let first = |text: &str| {
        format!(
            r#"{{"responseId":"r-2","modelVersion":"m-2","candidates":[{{"content":{{"parts":[{{"text":"{text}"}}]}},"index":0}}],"usageMetadata":{{"promptTokenCount":7}}}}"#
        )
    };
    let mut events: Vec<String> = crate::dialect::frame::TEST_TEXTS.iter().map(|t| usual(t)).collect();
    events.extend([
        usual("tok").replace("\"promptTokenCount\":12", "\"promptTokenCount\":13"),
        usual("tok").replace("\"r-1\"", "\"r-1b\""),
        usual("tok").replace("\"index\":0", "\"index\":0.5"),
        usual("tok").replace("]}", "],\"finishReason\":\"STOP\"}"),
        first("tok"),
        first("a much longer text"),
        first(""),
        first("x").replace("\"m-2\"", "\"m-23\""),
        r#"{"candidates":[{"content":{"parts":[{"text":"tok"}]}}]"#.into(),
    ]);
    events
}

proptest! {
    /// One frame kept across a stream: every event reads as it reads alone.
    #[test]
    fn a_stream_is_read_as_each_event_alone(events in proptest::collection::vec(proptest::sample::select(stream_events()), 0..16)) {
        let mut framed = Framed::default();
        for d in &events {
            prop_assert_eq!(framed.text_event(d), text_event(d), "{}", d);
        }
    }
}

#[test]
fn the_usual_stream_is_read_by_its_frame() {
    let mut framed = Framed::default();
    let ev = |t: &str| USUAL.replace("tok1 ", t);
    let want = |t: &'static str| TextEvent {
        text: Cow::Borrowed(t),
        id: Some(Cow::Borrowed("r-1")),
        model: Some(Cow::Borrowed("qai-flash")),
        usage: Some(Usage { prompt_tokens: 12, ..Usage::default() }),
    };
    assert_eq!(framed.text_event(&ev("a")), Some(want("a")));
    assert_eq!(framed.text_event(&ev("a much longer one")), Some(want("a much longer one")));
    assert_eq!(framed.text_event(&ev("")), None);
    assert_eq!(framed.text_event(&ev("b")), Some(want("b")));
}
