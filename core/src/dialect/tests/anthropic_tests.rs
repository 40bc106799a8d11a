//! Tests of `dialect/anthropic/` (in their own file, so test code is found by its path).
use serde_json::{json, Map, Value};

use super::*;
use crate::errors::Code;

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

#[test]
fn validation() {
    let e = request_to_pivot(&obj(json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}))).unwrap_err();
    assert_eq!((e.code, e.param.as_deref()), (Code::MissingField, Some("max_tokens")));
    let e = request_to_pivot(&obj(json!({"max_tokens": 5, "messages": []}))).unwrap_err();
    assert_eq!((e.code, e.param.as_deref()), (Code::MissingField, Some("model")));
    let e = request_to_pivot(&obj(json!({"model": "m", "max_tokens": 0, "messages": []}))).unwrap_err();
    assert_eq!((e.code, e.param.as_deref()), (Code::BadRequest, Some("max_tokens")));
    let e = request_to_pivot(&obj(json!({"model": "m", "max_tokens": "9", "messages": []}))).unwrap_err();
    assert_eq!((e.code, e.param.as_deref()), (Code::BadRequest, Some("max_tokens")));
    let e = request_to_pivot(&obj(json!({"model": "m", "max_tokens": 5}))).unwrap_err();
    assert_eq!((e.code, e.param.as_deref()), (Code::MissingField, Some("messages")));
    let e = request_to_pivot(&obj(json!({"model": "m", "max_tokens": 5, "messages": [
        {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": 7}
    ]})))
    .unwrap_err();
    assert_eq!((e.code, e.param.as_deref()), (Code::BadRequest, Some("messages[2].content")));
    let e = request_to_pivot(&obj(json!({"model": "m", "max_tokens": 5, "messages": [
        {"role": "system", "content": "a"}]})))
    .unwrap_err();
    assert_eq!(e.param.as_deref(), Some("messages[0].role"));
    let e = request_to_pivot(&obj(json!({"model": "m", "max_tokens": 5, "messages": [
        {"role": "user", "content": [{"type": "text", "text": 1}]}]})))
    .unwrap_err();
    assert_eq!(e.param.as_deref(), Some("messages[0].content[0].text"));
    let e =
        request_to_pivot(&obj(json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
        "tools": [{"name": "t"}]})))
        .unwrap_err();
    assert_eq!((e.code, e.param.as_deref()), (Code::MissingField, Some("tools[0].input_schema")));
    let e =
        request_to_pivot(&obj(json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
        "temperature": "hot"})))
        .unwrap_err();
    assert_eq!(e.param.as_deref(), Some("temperature"));
}

#[test]
fn stop_reasons_both_ways() {
    for (a, o) in
        [("end_turn", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls"), ("refusal", "content_filter")]
    {
        assert_eq!(finish_from_stop_reason(a).as_openai(), o);
        assert_eq!(stop_reason_of(Finish::from_openai(o)), a);
    }
    assert_eq!(finish_from_stop_reason("stop_sequence"), Finish::Stop);
}

#[test]
fn empty_assistant_turns_are_not_sent_upstream() {
    // OpenAI clients may send `"content": ""` for an assistant turn; Anthropic refuses empty
    // content ("all messages must have non-empty content except for the optional final
    // assistant message").
    let pivot = json!({"model": "m", "messages": [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": ""},
        {"role": "user", "content": "y"},
        {"role": "assistant", "content": [{"type": "text", "text": ""}]},
        {"role": "user", "content": "z"}
    ]});
    let v = request_from_pivot(pivot.as_object().unwrap_or(&Map::new()), "up", 100).unwrap_or_default();
    assert_eq!(
        v["messages"],
        json!([{"role": "user", "content": "x"}, {"role": "user", "content": "y"}, {"role": "user", "content": "z"}])
    );
}

#[test]
fn a_system_only_conversation_is_refused_before_the_upstream() {
    let pivot =
        json!({"model": "m", "messages": [{"role": "system", "content": "s"}, {"role": "assistant", "content": ""}]});
    let e = request_from_pivot(pivot.as_object().unwrap_or(&Map::new()), "up", 100).err();
    assert_eq!(e.map(|e| (e.code, e.param)), Some((Code::BadRequest, Some("messages".to_string()))));
}
