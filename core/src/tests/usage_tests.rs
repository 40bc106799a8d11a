//! Tests of `usage.rs` (in their own file, so test code is found by its path).
use super::*;
use serde_json::json;

/// `string_len` as it was before memchr: the reference.
fn string_len_bytewise(b: &[u8], mut i: usize) -> (u64, usize) {
    let mut n = 0u64;
    while let Some(&c) = b.get(i) {
        match c {
            b'"' => return (n, i + 1),
            b'\\' => {
                i += if b.get(i + 1) == Some(&b'u') { 6 } else { 2 };
                n += 1;
            }
            _ => {
                i += 1;
                n += 1;
            }
        }
    }
    (n, i)
}

/// `text_len_hint` as it was before it was read from quote masks: the reference.
fn text_len_hint_reference(b: &[u8]) -> u64 {
    const KEYS: [&[u8]; 5] = [b"\"content\"", b"\"text\"", b"\"refusal\"", b"\"arguments\"", b"\"partial_json\""];
    let mut total = 0u64;
    let mut i = 0usize;
    while let Some(off) = b.get(i..).and_then(|rest| memchr::memchr(b'"', rest)) {
        let start = i + off;
        let rest = b.get(start..).unwrap_or(&[]);
        let Some(key) = KEYS.iter().find(|k| rest.starts_with(k)) else {
            i = string_len_bytewise(b, start + 1).1;
            continue;
        };
        let mut j = start + key.len();
        while matches!(b.get(j), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            j += 1;
        }
        if b.get(j) != Some(&b':') {
            i = start + key.len();
            continue;
        }
        j += 1;
        while matches!(b.get(j), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            j += 1;
        }
        if b.get(j) != Some(&b'"') {
            i = j;
            continue;
        }
        let (len, end) = string_len_bytewise(b, j + 1);
        total = total.saturating_add(len);
        i = end;
    }
    total
}

/// Pieces of JSON text, keys included, for the property below.
fn json_pieces() -> Vec<&'static str> {
    vec![
        "\"content\"",
        "\"text\"",
        "\"refusal\"",
        "\"arguments\"",
        "\"partial_json\"",
        "\"id\"",
        "\"c\"",
        ":",
        " ",
        ",",
        "{",
        "}",
        "[",
        "]",
        "\"",
        "\\",
        "\\\"",
        "\\u00e9",
        "\\u",
        "\\\\",
        "xxxxxxx",
        "abc",
        "null",
        "\u{e9}",
        "tok 12 ",
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        // Near misses of the counted keys (read a word at a time by their length): one byte
        // changed, one short, one long, and the keys' first words inside longer strings.
        "\"contenu\"",
        "\"refusax\"",
        "\"argumentx\"",
        "\"argument\"",
        "\"partial_jsox\"",
        "\"partial_json_\"",
        "\"partial_\"",
        "\"tex\"",
        "\"texts\"",
        "\"Text\"",
        "\"created\"",
        "\"choices\"",
        // A key inside a value, escaped and not.
        "\"a\\\"content\\\":\\\"b\"",
        "content\":\"",
        "\n",
        "\t",
    ]
}

proptest::proptest! {
    #[test]
    fn text_len_hint_matches_the_reference(
        parts in proptest::collection::vec(proptest::sample::select(json_pieces()), 0..60),
    ) {
        let text = parts.concat();
        proptest::prop_assert_eq!(text_len_hint(&text), text_len_hint_reference(text.as_bytes()));
    }
}

#[test]
fn text_len_hint_counts_text_values_only() {
    let d = r#"{"id":"x","choices":[{"delta":{"content":"he said \"hi\""}}]}"#;
    assert_eq!(text_len_hint(d), 12);
    // A value that looks like a key is not read as one.
    let d = r#"{"name":"\"content\":\"zzzz","delta":{"text":"abc"}}"#;
    assert_eq!(text_len_hint(d), 3);
    let d = r#"{"delta":{"type":"input_json_delta","partial_json":"{\"a\": 1}"}}"#;
    assert_eq!(text_len_hint(d), 8);
    assert_eq!(text_len_hint(r#"{"content": null, "arguments" : "{}"}"#), 2);
    assert_eq!(text_len_hint(r#"{"content":"unterminated"#), 12);
    assert_eq!(text_len_hint(""), 0);
    assert_eq!(text_len_hint(r#"{"content":"\u00e9t\u00e9"}"#), 3);
}

#[test]
fn pivot_text_bytes_reads_deltas_messages_and_tool_calls() {
    let c =
        json!({"choices":[{"delta":{"content":"hello","tool_calls":[{"function":{"name":"f","arguments":"{}"}}]}}]});
    assert_eq!(pivot_text_bytes(&c), 8);
    let m = json!({"choices":[{"message":{"content":"héllo"}}]});
    assert_eq!(pivot_text_bytes(&m), 6);
    assert_eq!(pivot_text_bytes(&json!({"choices":[]})), 0);
}

#[test]
fn prompt_estimate_counts_strings_and_messages() {
    let b = json!({"model":"m","messages":[{"role":"user","content":"12345678"},{"role":"assistant","content":[{"type":"text","text":"1234"}]}]});
    // 12 bytes -> 3 tokens, 2 messages -> 8, reply 3
    assert_eq!(estimate_prompt_tokens(b.as_object().unwrap()), 14);
    assert_eq!(tokens_from_bytes(0), 0);
    assert_eq!(tokens_from_bytes(5), 2);
}

#[test]
fn credits_at_price() {
    let p = Price { prompt_per_1k: 1.0, completion_per_1k: 2.0, ..Default::default() };
    let u = Usage { prompt_tokens: 500, completion_tokens: 250, ..Default::default() };
    assert!((credits(&p, &u) - 1.0).abs() < 1e-12);
}

#[test]
fn openai_usage_with_details() {
    let v = json!({"usage": {"prompt_tokens": 25, "completion_tokens": 42, "total_tokens": 67,
        "prompt_tokens_details": {"cached_tokens": 5}, "completion_tokens_details": {"reasoning_tokens": 7}}});
    let got = from_openai(&v).unwrap();
    assert_eq!(
        got,
        Usage {
            prompt_tokens: 25,
            completion_tokens: 42,
            cached_tokens: 5,
            reasoning_tokens: 7,
            cache_creation_tokens: 0
        }
    );
    assert_eq!(got.total(), 67);
    assert_eq!(from_openai(&json!({"usage": null})), None);
    assert_eq!(from_openai(&json!({})), None);
}

#[test]
fn cached_and_reasoning_tokens_at_their_own_prices_when_set() {
    let u = Usage {
        prompt_tokens: 1000,
        completion_tokens: 500,
        cached_tokens: 400,
        reasoning_tokens: 200,
        cache_creation_tokens: 0,
    };
    // Unset: cached tokens are prompt tokens, reasoning tokens completion tokens.
    let p = Price { prompt_per_1k: 1.0, completion_per_1k: 2.0, ..Default::default() };
    assert_eq!(credits(&p, &u), 2.0);
    // 600 x 1 + 400 x 0.25 + 300 x 2 + 200 x 3, per 1000.
    let p = Price { cached_prompt_per_1k: Some(0.25), reasoning_per_1k: Some(3.0), ..p };
    assert_eq!(credits(&p, &u), 0.6 + 0.1 + 0.6 + 0.6);
    // A detail larger than its total (a confused upstream) counts as the total, never more.
    let odd = Usage {
        prompt_tokens: 10,
        completion_tokens: 10,
        cached_tokens: 50,
        reasoning_tokens: 50,
        cache_creation_tokens: 0,
    };
    assert_eq!(credits(&p, &odd), (10.0 * 0.25 + 10.0 * 3.0) / 1000.0);
}

#[test]
fn cache_writes_at_their_own_price_when_set_else_at_the_prompt_price() {
    let v = json!({"usage": {"prompt_tokens": 25, "completion_tokens": 4,
        "prompt_tokens_details": {"cached_tokens": 5, "cache_creation_tokens": 12}}});
    assert_eq!(from_openai(&v).map(|u| (u.cached_tokens, u.cache_creation_tokens)), Some((5, 12)));
    let u = Usage {
        prompt_tokens: 1000,
        completion_tokens: 0,
        cached_tokens: 100,
        cache_creation_tokens: 300,
        ..Usage::default()
    };
    let p = Price { prompt_per_1k: 1.0, cached_prompt_per_1k: Some(0.5), ..Default::default() };
    // Unset: written tokens are prompt tokens. 900 x 1 + 100 x 0.5, per 1000.
    assert_eq!(credits(&p, &u), 0.95);
    // 600 x 1 + 100 x 0.5 + 300 x 2, per 1000.
    let p = Price { cache_write_per_1k: Some(2.0), ..p };
    assert_eq!(credits(&p, &u), 1.25);
    // Reads and writes larger than the prompt (a confused upstream): never more than the prompt,
    // reads first.
    let odd = Usage { prompt_tokens: 10, cached_tokens: 4, cache_creation_tokens: 50, ..Usage::default() };
    assert_eq!(credits(&p, &odd), (4.0 * 0.5 + 6.0 * 2.0) / 1000.0);
}

proptest::proptest! {
    /// The usage check the OpenAI pass-through makes with the text count: `"usage"` anywhere in
    /// the bytes, as a substring search finds it, and the same count as `text_len_hint`.
    #[test]
    fn text_len_and_usage_key_finds_usage_anywhere(
        parts in proptest::collection::vec(proptest::sample::select(vec![
            "\"usage\"", "usage", "\"us", "age\"", "\"", "\\", "\\\"", ":", "{", "}", ",", " ",
            "\"content\"", "\"text\"", "abcdefghij", "\u{e9}", "\\u0075", "\"usag", "\"usage",
            "\"Usage\"", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        ]), 0..50),
    ) {
        let text = parts.concat();
        let want = (text_len_hint_reference(text.as_bytes()), text.contains("\"usage\""));
        proptest::prop_assert_eq!(text_len_and_usage_key(text.as_bytes()), want);
    }
}

/// Every counted key, its near misses, `"usage"` and escaped text at every offset from a block
/// boundary (keys and values split across two 64-byte blocks, the last block whole or partial,
/// events shorter than a block): the same count and usage answer as the reference.
#[test]
fn text_count_matches_the_reference_at_every_offset() {
    let events: [&str; 10] = [
        // An escape in one block, its string closed in the next (with no escape) before a
        // counted value, and one that opens there and closes in the block after.
        r#"{"content":"a\"bcdefghijklmnopqrstuvwxyz0123456789","text":"tok","refusal":"abcdefghijklmnopqrstuvwxyz0123456789"}"#,
        r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"tok5 "},"finish_reason":null}]}"#,
        r#"{"text":"ab","refusal":"cd","arguments":"ef","partial_json":"gh","content" : "ij"}"#,
        r#"{"texT":"ab","refusaL":"cd","argumentS":"ef","partial_jsoN":"gh","contenT":"ij","text":1}"#,
        r#"{"content":"a\"content\":\"b\u00e9\\","text":"x\ny"}"#,
        r#"{"choices":[],"usage":{"prompt_tokens":1},"content":"z"}"#,
        r#"{"content":"has \"usage\" inside","x":"a\"usage\"b"}"#,
        r#"{"content":"unterminated"#,
        r#"{"content":"unterminated \"escaped\u00"#,
        r#""usage""text":"a""#,
    ];
    for ev in events {
        for pad in 0..=130 {
            let text = format!("{}{ev}", " ".repeat(pad));
            let want = (text_len_hint_reference(text.as_bytes()), text.contains("\"usage\""));
            assert_eq!(text_len_and_usage_key(text.as_bytes()), want, "pad {pad}: {ev}");
            assert_eq!(text_len_hint(&text), want.0, "pad {pad}: {ev}");
            for tail in 1..=3 {
                let text = format!("{text}{}", "x".repeat(tail * 21));
                let want = (text_len_hint_reference(text.as_bytes()), text.contains("\"usage\""));
                assert_eq!(text_len_and_usage_key(text.as_bytes()), want, "pad {pad} tail {tail}: {ev}");
            }
        }
    }
}
