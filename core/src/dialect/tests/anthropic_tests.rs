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

#[test]
fn output_config_format_is_the_pivots_json_schema_response_format() {
    let schema = json!({"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]});
    let body = json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
        "output_config": {"format": {"type": "json_schema", "schema": schema}}});
    let p = request_to_pivot(&obj(body.clone())).unwrap();
    assert_eq!(
        p.body.get("response_format"),
        Some(&json!({"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}))
    );
    // And back out to an Anthropic upstream as the same `output_config.format`.
    let up = request_from_pivot(&p.body, "up", 5).unwrap();
    assert_eq!(up["output_config"], json!({"format": {"type": "json_schema", "schema": schema}}));
    // A format the gateway cannot translate, or a schema that is not an object: 400 naming it.
    let mut bad_type = body.clone();
    bad_type["output_config"]["format"]["type"] = json!("regex");
    let e = request_to_pivot(&obj(bad_type)).unwrap_err();
    assert_eq!((e.code, e.param.as_deref()), (Code::BadRequest, Some("output_config.format.type")));
    let mut bad_schema = body;
    bad_schema["output_config"]["format"]["schema"] = json!("x");
    let e = request_to_pivot(&obj(bad_schema)).unwrap_err();
    assert_eq!(e.param.as_deref(), Some("output_config.format.schema"));
}
