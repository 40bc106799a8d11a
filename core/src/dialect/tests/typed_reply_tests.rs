use proptest::prelude::*;

use super::response;
use crate::dialect::{openai, Dialect};
use crate::routing::Price;
use crate::translate::response_via_value;

const FRONTS: [Dialect; 2] = [Dialect::Anthropic, Dialect::Gemini];

fn price() -> Price {
    Price { prompt_per_1k: 0.1, completion_per_1k: 0.2, cached_prompt_per_1k: Some(0.05), ..Default::default() }
}

/// The typed path's answer for `body` on every front and price, checked against the `Value`
/// path's; `true` when the typed path took it (on every front and price).
fn same_as_value_path(body: &str) -> bool {
    let p = price();
    let mut taken = true;
    for front in FRONTS {
        for price in [None, Some(&p)] {
            match response(front, body.as_bytes(), "client-model", price) {
                Some(typed) => {
                    let value =
                        response_via_value(front, Dialect::OpenAi, body.as_bytes(), "client-model", price, 0, None)
                            .unwrap_or_else(|e| {
                                panic!("the Value path refused what the typed path took: {e:?}\n{body}")
                            });
                    let show = |b: &Option<Vec<u8>>| {
                        b.as_deref().map(String::from_utf8_lossy).unwrap_or_default().into_owned()
                    };
                    assert_eq!(show(&typed.0), show(&value.0), "{front:?} {body}");
                    assert_eq!(typed.1, value.1, "{front:?} {body}");
                }
                None => taken = false,
            }
        }
    }
    taken
}

const BENCH: &str = r#"{"id":"chatcmpl-ead72c824eba196607f618e8","object":"chat.completion","created":1795434431,"model":"qai-flash","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from qai-flash! You said: Say hello."},"finish_reason":"stop","logprobs":null}],"usage":{"prompt_tokens":12,"completion_tokens":13,"total_tokens":25}}"#;

#[test]
fn covered_completions_give_the_value_paths_bytes() {
    let covered = [
        BENCH,
        // Escapes, unicode, an id already `msg_`, a stop sequence, a refusal beside the text.
        r#"{"id":"msg_x\"y","choices":[{"message":{"content":"a\"b\\c\n\u0001\u00e9\ud83d\ude00 \u2028","refusal":"no"},"finish_reason":"stop","stop_reason":"END"}],"usage":{"prompt_tokens":7,"completion_tokens":3}}"#,
        // Content parts, a refusal only, an unknown finish reason, no id, no usage.
        r#"{"choices":[{"message":{"content":[{"type":"text","text":"p1"},{"text":5},7,{"text":"p2"}]},"finish_reason":"weird"}]}"#,
        r#"{"choices":[{"message":{"content":null,"refusal":"I can't","tool_calls":[]},"finish_reason":"content_filter"}],"id":7}"#,
        // Details, credits of the upstream's own, counts of the wrong type, length.
        r#"{"id":"chatcmpl-1","choices":[{"message":{"content":"x"},"finish_reason":"length","stop_reason":"S"}],"usage":{"prompt_tokens":100,"completion_tokens":50.5,"prompt_tokens_details":{"cached_tokens":30,"cache_creation_tokens":20},"completion_tokens_details":{"reasoning_tokens":10},"credits_consumed":1.25}}"#,
        r#"{"choices":[{"message":{"content":"x"}}],"usage":{"prompt_tokens":"9","prompt_tokens_details":[1],"completion_tokens_details":null,"credits_consumed":-3}}"#,
        // Repeated keys: the last counts.
        r#"{"id":"a","id":"b","choices":[],"choices":[{"message":{"content":"one"},"message":{"content":"two"},"index":4,"index":"x"},{"index":2},"s",null],"usage":null,"usage":{"prompt_tokens":1,"prompt_tokens":2}}"#,
        // No choices left, usage not an object, many choices with indexes.
        r#"{"choices":[],"usage":[1,2]}"#,
        r#"{"choices":[{"index":3,"message":{"content":""}},{"index":-1,"message":"m","finish_reason":null},{"index":1.5,"message":{"content":"b"},"finish_reason":"tool_calls"}],"usage":{"completion_tokens":5,"completion_tokens_details":{"reasoning_tokens":9}}}"#,
        // Unknown fields of every shape, deep but within the parser's limit.
        r#"{"x":{"a":[1,-2,3.5e10,true,false,null,"s\u00e9",{"b":{}}]},"choices":[{"message":{"content":"c","extra":[[[[]]]]},"logprobs":{"content":[]}}],"y":1e308}"#,
    ];
    for body in covered {
        assert!(same_as_value_path(body), "not covered: {body}");
    }
}

#[test]
fn uncovered_bodies_take_the_value_path() {
    let deep = format!(r#"{{"x":{}1{},"choices":[]}}"#, "[".repeat(200), "]".repeat(200));
    let uncovered = [
        // Tool calls, not an object, no choices array, not JSON, trailing bytes.
        r#"{"choices":[{"message":{"content":"x","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]}}]}"#,
        r#"[{"choices":[]}]"#,
        r#"{"choices":{"0":1}}"#,
        r#"{"object":"error"}"#,
        r#"{"choices":[]"#,
        r#"{"choices":[]} x"#,
        // What a `Value` parse refuses anywhere in the body: a number out of range, a lone
        // surrogate, nesting past the parser's limit.
        r#"{"x":1e400,"choices":[]}"#,
        r#"{"x":"\ud800","choices":[]}"#,
        deep.as_str(),
    ];
    for body in uncovered {
        for front in FRONTS {
            assert!(response(front, body.as_bytes(), "m", Some(&price())).is_none(), "{front:?} {body}");
        }
    }
}

fn json_str() -> impl Strategy<Value = String> {
    "[a\"\\\\\u{0}\u{1f}\u{e9}\u{2028}\u{1F600} ]{0,12}".prop_map(|s| serde_json::to_string(&s).unwrap_or_default())
}

fn maybe<T: Strategy<Value = String>>(key: &'static str, v: T) -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), v.prop_map(move |v| format!(r#""{key}":{v},"#))]
}

fn count() -> impl Strategy<Value = String> {
    prop_oneof![(0u64..1_000_000).prop_map(|n| n.to_string()), Just("null".to_string()), Just("2.5".to_string())]
}

fn choice() -> impl Strategy<Value = String> {
    let finish = prop_oneof![
        Just(r#""stop""#.to_string()),
        Just(r#""length""#.to_string()),
        Just(r#""content_filter""#.to_string()),
        Just(r#""tool_calls""#.to_string()),
        Just("null".to_string()),
    ];
    (
        maybe("content", prop_oneof![json_str(), Just("null".to_string())]),
        maybe("refusal", json_str()),
        maybe("finish_reason", finish),
        maybe("stop_reason", json_str()),
        maybe("index", count()),
    )
        .prop_map(|(c, r, f, s, i)| format!(r#"{{{f}{s}{i}"message":{{{c}{r}"role":"assistant"}}}}"#))
}

fn completion() -> impl Strategy<Value = String> {
    let usage = (count(), count(), count(), count(), prop_oneof![count(), Just("0.000001".to_string())]).prop_map(
        |(p, c, cached, reasoning, credits)| {
            format!(
                r#"{{"prompt_tokens":{p},"completion_tokens":{c},"prompt_tokens_details":{{"cached_tokens":{cached}}},"completion_tokens_details":{{"reasoning_tokens":{reasoning}}},"credits_consumed":{credits}}}"#
            )
        },
    );
    (maybe("id", json_str()), proptest::collection::vec(choice(), 0..3), maybe("usage", usage)).prop_map(
        |(id, choices, usage)| {
            format!(r#"{{{id}{usage}"object":"chat.completion","choices":[{}]}}"#, choices.join(","))
        },
    )
}

/// The OpenAI client's usage (nothing renamed: the typed read of `usage` alone) is the usage a
/// parsed `Value` gives.
fn openai_usage_as_parsed(body: &str) {
    let parsed = serde_json::from_slice::<serde_json::Value>(body.as_bytes()).ok();
    let (out, usage) = openai::rewrite_response(body.as_bytes(), None);
    assert_eq!(out, None, "{body}");
    assert_eq!(usage, parsed.as_ref().and_then(crate::usage::from_openai), "{body}");
}

#[test]
fn openai_usage_reads_as_parsed() {
    for body in [
        BENCH,
        r#"{"usage":{"prompt_tokens":100,"completion_tokens":50,"prompt_tokens_details":{"cached_tokens":30,"cache_creation_tokens":20},"completion_tokens_details":{"reasoning_tokens":10}}}"#,
        r#"{"usage":{"prompt_tokens":1,"prompt_tokens":2,"completion_tokens":-1,"prompt_tokens_details":{"cached_tokens":3.0}}}"#,
        r#"{"usage":null}"#,
        r#"{"usage":7}"#,
        r#"{"usage":[{"prompt_tokens":1}]}"#,
        r#"{"x":1}"#,
        r#"{"usage":{"x":{"y":[1e300,"é"]},"completion_tokens_details":{"reasoning_tokens":4}}}"#,
    ] {
        openai_usage_as_parsed(body);
    }
}

proptest! {
    #[test]
    fn generated_completions_give_the_value_paths_bytes(body in completion()) {
        prop_assert!(same_as_value_path(&body), "not covered: {}", body);
        openai_usage_as_parsed(&body);
    }
}
