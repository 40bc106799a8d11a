use serde_json::{json, Map, Value};

use super::*;

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

#[test]
fn a_string_input_is_estimated_at_four_bytes_a_token() {
    assert_eq!(validate(&obj(json!({"model": "e", "input": "abcdefghi"}))), Ok(3));
}

#[test]
fn lists_of_strings_and_token_ids_are_counted() {
    assert_eq!(validate(&obj(json!({"model": "e", "input": ["abcd", "abcde"]}))), Ok(3));
    assert_eq!(validate(&obj(json!({"model": "e", "input": [1, 2, 3]}))), Ok(3));
    assert_eq!(validate(&obj(json!({"model": "e", "input": [[1, 2], [3]]}))), Ok(3));
}

#[test]
fn bad_inputs_and_options_are_refused_naming_the_parameter() {
    for (body, param) in [
        (json!({"model": "e"}), "input"),
        (json!({"model": "e", "input": ""}), "input"),
        (json!({"model": "e", "input": []}), "input"),
        (json!({"model": "e", "input": ["a", 3.5]}), "input"),
        (json!({"model": "e", "input": [["x"]]}), "input"),
        (json!({"model": "e", "input": "a", "dimensions": 0}), "dimensions"),
        (json!({"model": "e", "input": "a", "dimensions": "8"}), "dimensions"),
        (json!({"model": "e", "input": "a", "encoding_format": "int8"}), "encoding_format"),
    ] {
        let e = validate(&obj(body.clone())).err();
        assert_eq!(e.and_then(|e| e.param), Some(param.to_string()), "{body}");
    }
    let many: Vec<Value> = (0..=MAX_INPUTS).map(|_| json!("a")).collect();
    assert!(validate(&obj(json!({"model": "e", "input": many}))).is_err());
}

#[test]
fn the_response_usage_is_its_prompt_tokens() {
    let body = br#"{"object":"list","data":[],"usage":{"prompt_tokens":7,"total_tokens":7}}"#;
    assert_eq!(response_usage(body), Some(Usage { prompt_tokens: 7, ..Usage::default() }));
    assert_eq!(response_usage(br#"{"object":"list","data":[]}"#), None);
    assert_eq!(response_usage(b"not json"), None);
}

#[test]
fn gemini_embed_requests_and_responses_translate() {
    let one = obj(json!({"content": {"parts": [{"text": "a"}, {"text": "b"}]}, "outputDimensionality": 4}));
    assert_eq!(
        from_gemini(&one, "e", false).map(Value::Object),
        Ok(json!({"model": "e", "input": "a\nb", "dimensions": 4, "encoding_format": "float"}))
    );
    let batch =
        obj(json!({"requests": [{"content": {"parts": [{"text": "x"}]}}, {"content": {"parts": [{"text": "y"}]}}]}));
    assert_eq!(
        from_gemini(&batch, "e", true).map(Value::Object),
        Ok(json!({"model": "e", "input": ["x", "y"], "encoding_format": "float"}))
    );
    let e = from_gemini(&obj(json!({"content": {"parts": []}})), "e", false).err();
    assert_eq!(e.and_then(|e| e.param), Some("content".to_string()));
    let e = from_gemini(&obj(json!({"requests": []})), "e", true).err();
    assert_eq!(e.and_then(|e| e.param), Some("requests".to_string()));
    let up = br#"{"data":[{"embedding":[0.5,1.0]},{"embedding":[2.0]}],"usage":{"prompt_tokens":2}}"#;
    let got = |b| to_gemini(up, b).and_then(|v| serde_json::from_slice::<Value>(&v).ok());
    assert_eq!(got(false), Some(json!({"embedding": {"values": [0.5, 1.0]}})));
    assert_eq!(got(true), Some(json!({"embeddings": [{"values": [0.5, 1.0]}, {"values": [2.0]}]})));
    assert_eq!(to_gemini(br#"{"data":[{"embedding":"AAAA"}]}"#, false), None);
}
