//! Tests of `dialect/validate.rs`, and of the fronts giving the same answer for the same field.
use serde_json::{json, Map, Value};

use super::*;
use crate::dialect::{anthropic, gemini, openai};

#[test]
fn accessors() {
    assert_eq!(opt_uint(Some(&json!(5)), "x").unwrap(), Some(5));
    assert_eq!(opt_uint(Some(&json!(0)), "x").unwrap(), Some(0));
    assert_eq!(opt_uint(Some(&json!(5.0)), "x").unwrap_err().message, "'x' must be a non-negative integer");
    assert!(opt_uint(Some(&json!(-1)), "x").is_err());
    assert_eq!(opt_positive(Some(&json!(0)), "x").unwrap_err().message, "'x' must be a positive integer");
    assert_eq!(opt_positive(Some(&json!(5.0)), "x").unwrap_err().message, "'x' must be a positive integer");
    assert_eq!(opt_positive(Some(&json!("5")), "x").unwrap_err().message, "'x' must be an integer");
    assert_eq!(
        opt_choices(Some(&json!(9)), "g.candidateCount").unwrap_err().message,
        "'candidateCount' must be between 1 and 8; got 9"
    );
    assert_eq!(opt_choices(Some(&json!(8)), "n").unwrap(), Some(8));
    let e = opt_strings(Some(&json!(["a", 1])), "stop", false).unwrap_err();
    assert_eq!(e.param.as_deref(), Some("stop[1]"));
    assert_eq!(req_str(None, "m").unwrap_err().code, Code::MissingField);
    assert_eq!(number_in(Some(&json!(2.5)), "t", 0.0, 2.0).unwrap_err().message, "'t' must be between 0 and 2");
    assert!(number_in(Some(&json!(2)), "t", 0.0, 2.0).is_ok());
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

/// The error each front gives for a token cap of `bad` (Gemini's field is
/// `generationConfig.maxOutputTokens`), with the field's name taken out of the message.
fn token_cap_errors(bad: Value) -> Vec<(Code, String)> {
    let openai = json!({"model": "m", "max_tokens": bad, "messages": [{"role": "user", "content": "x"}]});
    let anthropic = json!({"model": "m", "max_tokens": bad, "messages": [{"role": "user", "content": "x"}]});
    let gemini = json!({"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"maxOutputTokens": bad}});
    let raw = serde_json::to_vec(&openai).unwrap_or_default();
    // The OpenAI fast path refuses it too (the general path then words the error).
    assert_eq!(openai::scan_chat(&raw), None, "{bad}");
    let errs = [
        (openai::parse_chat(&raw).unwrap_err(), "max_tokens"),
        (anthropic::request_to_pivot(&obj(anthropic)).unwrap_err(), "max_tokens"),
        (gemini::request_to_pivot(&obj(gemini), "g", false).unwrap_err(), "generationConfig.maxOutputTokens"),
    ];
    errs.into_iter()
        .map(|(e, field)| {
            assert_eq!(e.param.as_deref(), Some(field), "{bad}");
            (e.code, e.message.replace(field, "FIELD"))
        })
        .collect()
}

#[test]
fn every_front_refuses_the_same_token_cap_with_the_same_error() {
    let want = |m: &str| vec![(Code::BadRequest, m.to_string()); 3];
    assert_eq!(token_cap_errors(json!(5.0)), want("'FIELD' must be a positive integer"));
    assert_eq!(token_cap_errors(json!(1.5)), want("'FIELD' must be a positive integer"));
    assert_eq!(token_cap_errors(json!(0)), want("'FIELD' must be a positive integer"));
    assert_eq!(token_cap_errors(json!(-3)), want("'FIELD' must be a positive integer"));
    assert_eq!(token_cap_errors(json!("5")), want("'FIELD' must be an integer"));
    assert_eq!(token_cap_errors(json!(true)), want("'FIELD' must be an integer"));
}

#[test]
fn every_front_refuses_the_same_choice_count_with_the_same_error() {
    for (bad, msg) in [(json!(2.0), "must be a positive integer"), (json!(9), "must be between 1 and 8; got 9")] {
        let openai = json!({"model": "m", "n": bad, "messages": [{"role": "user", "content": "x"}]});
        let e = openai::parse_chat(&serde_json::to_vec(&openai).unwrap_or_default()).unwrap_err();
        assert_eq!((e.code, e.message.clone()), (Code::BadRequest, format!("'n' {msg}")));
        let gemini = json!({"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"candidateCount": bad}});
        let e = gemini::request_to_pivot(&obj(gemini), "g", false).unwrap_err();
        let name = if bad == json!(9) { "candidateCount" } else { "generationConfig.candidateCount" };
        assert_eq!((e.code, e.message.clone()), (Code::BadRequest, format!("'{name}' {msg}")));
    }
}

#[test]
fn integer_fields_accept_integers_everywhere() {
    let raw = br#"{"model":"m","max_tokens":5,"n":2,"messages":[{"role":"user","content":"x"}]}"#;
    assert_eq!(openai::parse_chat(raw).unwrap().max_tokens, Some(5));
    assert_eq!(openai::scan_chat(raw).map(|s| (s.max_tokens, s.n)), Some((Some(5), 2)));
    let a = json!({"model": "m", "max_tokens": 5, "top_k": 3, "messages": [{"role": "user", "content": "x"}]});
    let p = anthropic::request_to_pivot(&obj(a)).unwrap();
    assert_eq!((p.max_tokens, p.body.get("top_k")), (Some(5), Some(&json!(3))));
    let g = json!({"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"maxOutputTokens": 5, "topK": 3}});
    assert_eq!(gemini::request_to_pivot(&obj(g), "g", false).unwrap().max_tokens, Some(5));
    let e = anthropic::request_to_pivot(&obj(
        json!({"model": "m", "max_tokens": 5, "top_k": 3.0, "messages": [{"role": "user", "content": "x"}]}),
    ))
    .unwrap_err();
    assert_eq!((e.param.as_deref(), e.message.as_str()), (Some("top_k"), "'top_k' must be a non-negative integer"));
}
