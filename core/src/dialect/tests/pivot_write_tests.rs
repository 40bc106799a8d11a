//! Tests of `openai/pivot_write.rs`: the bytes are those of the copy-edit-serialize path.
use proptest::prelude::*;
use serde_json::{json, Map, Value};

use super::pivot_chat_body;
use crate::dialect::pivot::strip_pivot_only;

/// The body as it was built before: the pivot copied, its pivot-only members removed, `model`
/// set and, on a stream, `stream_options` set, then serialized.
fn via_copy(body: &Map<String, Value>, upstream_model: &str, stream: bool) -> Vec<u8> {
    let mut body = body.clone();
    strip_pivot_only(&mut body);
    body.insert("model".to_string(), Value::String(upstream_model.to_string()));
    if stream {
        let mut opts = Map::new();
        opts.insert("include_usage".to_string(), Value::Bool(true));
        body.insert("stream_options".to_string(), Value::Object(opts));
    }
    serde_json::to_vec(&Value::Object(body)).unwrap()
}

#[test]
fn an_anthropic_requests_pivot_is_written_as_before() {
    let body = json!({
        "model": "claude-x", "max_tokens": 64, "top_k": 5, "temperature": 0.5,
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi \"there\"\n"}],
        "stream": true, "stream_options": {"include_usage": true},
    });
    let Value::Object(body) = body else { panic!("an object") };
    for stream in [false, true] {
        let out = pivot_chat_body(&body, "gpt-up", stream).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), String::from_utf8(via_copy(&body, "gpt-up", stream)).unwrap());
    }
    assert_eq!(pivot_chat_body(&Map::new(), "m", false).unwrap(), br#"{"model":"m"}"#);
    assert_eq!(
        pivot_chat_body(&Map::new(), "m", true).unwrap(),
        br#"{"model":"m","stream_options":{"include_usage":true}}"#
    );
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("model".to_string()),
        Just("modek".to_string()),
        Just("modelz".to_string()),
        Just("messages".to_string()),
        Just("top_k".to_string()),
        Just("stream".to_string()),
        Just("stream_options".to_string()),
        Just("stream_optionz".to_string()),
        Just("".to_string()),
        "[a-z_\"\\\\\u{1}\u{e9} ]{0,8}",
    ]
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        "[a-z\"\\\\\u{0}\u{1f}\u{e9}\u{2028} ]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z\"]{0,4}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn pivot_chat_body_is_the_copy_edit_serialize_bytes(
        members in prop::collection::btree_map(key(), value(), 0..8),
        model in "[a-z\"\\\\\u{e9}-]{0,10}",
        stream in any::<bool>(),
    ) {
        let body: Map<String, Value> = members.into_iter().collect();
        prop_assert_eq!(pivot_chat_body(&body, &model, stream).unwrap(), via_copy(&body, &model, stream));
    }
}
