//! Tests of `dialect/gemini/` (in their own file, so test code is found by its path).
use serde_json::{json, Map, Value};

use super::front::*;
use super::*;
use crate::errors::Code;

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

#[test]
fn validation() {
    let e = request_to_pivot(&obj(json!({})), "g", false).unwrap_err();
    assert_eq!((e.code, e.param.as_deref()), (Code::MissingField, Some("contents")));
    let e = request_to_pivot(&obj(json!({"contents": {}})), "g", false).unwrap_err();
    assert_eq!((e.code, e.param.as_deref()), (Code::BadRequest, Some("contents")));
    let e = request_to_pivot(&obj(json!({"contents": [{"parts": [{"text": 3}]}]})), "g", false).unwrap_err();
    assert_eq!(e.param.as_deref(), Some("contents[0].parts[0].text"));
    let e = request_to_pivot(&obj(json!({"contents": [{"role": "bot", "parts": []}]})), "g", false).unwrap_err();
    assert_eq!(e.param.as_deref(), Some("contents[0].role"));
    let e = request_to_pivot(
        &obj(json!({"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"maxOutputTokens": "9"}})),
        "g",
        false,
    )
    .unwrap_err();
    assert_eq!(e.param.as_deref(), Some("generationConfig.maxOutputTokens"));
    let e = request_to_pivot(
        &obj(json!({"contents": [{"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]}]})),
        "g",
        false,
    )
    .unwrap_err();
    assert_eq!(e.param.as_deref(), Some("contents[0].parts[0].functionResponse.name"));
}

#[test]
fn snake_case_fields_are_read() {
    let r = request_to_pivot(
        &obj(json!({"contents": [{"parts": [{"text": "x"}]}], "generation_config": {"max_output_tokens": 7},
            "system_instruction": {"parts": [{"text": "be brief"}]}})),
        "g",
        false,
    )
    .unwrap();
    assert_eq!(r.max_tokens, Some(7));
    assert_eq!(r.body["messages"][0], json!({"role": "system", "content": "be brief"}));
}

#[test]
fn paths_and_finish_reasons() {
    assert_eq!(upstream_path("/v1beta/", "gemini-2.5-flash", false), "/v1beta/models/gemini-2.5-flash:generateContent");
    assert_eq!(upstream_path("/v1beta", "m", true), "/v1beta/models/m:streamGenerateContent?alt=sse");
    for r in ["SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII"] {
        assert_eq!(finish_from_gemini(r), Finish::ContentFilter);
    }
    assert_eq!(finish_from_gemini("MAX_TOKENS"), Finish::Length);
    assert_eq!(finish_to_gemini(Finish::ToolCalls), "STOP");
    assert_eq!(finish_to_gemini(Finish::ContentFilter), "SAFETY");
}

#[test]
fn types_lowercased() {
    let mut s = json!({"type": "OBJECT", "properties": {"type": {"type": "STRING"}}});
    lower_types(&mut s);
    assert_eq!(s, json!({"type": "object", "properties": {"type": {"type": "string"}}}));
}

#[test]
fn a_system_only_conversation_is_refused_before_the_upstream() {
    let pivot = obj(
        json!({"model": "m", "messages": [{"role": "system", "content": "s"}, {"role": "developer", "content": "d"}]}),
    );
    let e = request_from_pivot(&pivot, "up").err();
    assert_eq!(e.map(|e| (e.code, e.param)), Some((Code::BadRequest, Some("messages".to_string()))));
}

#[test]
fn field_reads_the_camel_case_name_or_its_snake_case_twin() {
    let o = obj(json!({"usageMetadata": 1, "finish_reason": 2, "text": 3, "prompt_token_count": 4}));
    assert_eq!(field(&o, "usageMetadata"), Some(&json!(1)));
    assert_eq!(field(&o, "finishReason"), Some(&json!(2)));
    assert_eq!(field(&o, "text"), Some(&json!(3)));
    assert_eq!(field(&o, "promptTokenCount"), Some(&json!(4)));
    assert_eq!(field(&o, "responseId"), None);
    assert_eq!(field(&o, "Text"), None);
    // A name longer than the stack buffer still finds its twin.
    let long = "aVeryLongCamelCaseFieldNameThatGoesPastFortyEightBytes";
    let o = obj(json!({snake(long): 5}));
    assert_eq!(field(&o, long), Some(&json!(5)));
}

/// `field` as it was: the camelCase name looked up, then its snake_case twin spelled out.
fn field_via_get<'a>(o: &'a Map<String, Value>, camel: &str) -> Option<&'a Value> {
    o.get(camel).or_else(|| if camel.bytes().any(|b| b.is_ascii_uppercase()) { o.get(&snake(camel)) } else { None })
}

#[test]
fn field_finds_the_camel_name_first_then_its_snake_twin() {
    let o: Map<String, Value> = serde_json::from_str(
        r#"{"max_output_tokens":1,"maxOutputTokens":2,"top_k":3,"candidate_countx":4,"response_mime_type":5}"#,
    )
    .unwrap();
    assert_eq!(field(&o, "maxOutputTokens"), Some(&Value::from(2)));
    assert_eq!(field(&o, "topK"), Some(&Value::from(3)));
    assert_eq!(field(&o, "candidateCount"), None);
    assert_eq!(field(&o, "responseMimeType"), Some(&Value::from(5)));
    assert_eq!(field(&o, "top_k"), Some(&Value::from(3)));
    assert_eq!(field(&o, "topk"), None);
}

proptest::proptest! {
    #[test]
    fn field_is_the_lookup_of_the_name_then_its_twin(
        keys in proptest::collection::vec(
            proptest::sample::select(vec![
                "topK", "top_k", "top_K", "topk", "_top_k", "top_kk", "maxOutputTokens", "max_output_tokens",
                "max_outputTokens", "mimeType", "mime_type", "mime_typé", "mimeTypé", "mime_typ", "x", "",
                "a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9", "b0", "b1", "b2", "b3", "b4", "b5",
            ]),
            0..24,
        ),
        camel in proptest::sample::select(vec!["topK", "maxOutputTokens", "mimeType", "mimeTypé", "x", "top_k", "A"]),
    ) {
        let o: Map<String, Value> = keys.iter().enumerate().map(|(i, k)| (k.to_string(), Value::from(i))).collect();
        proptest::prop_assert_eq!(field(&o, camel), field_via_get(&o, camel));
    }
}
