//! Tests of `dialect/pivot.rs` (in their own file, so test code is found by its path).
use super::*;

#[test]
fn data_urls() {
    assert_eq!(split_data_url("data:image/png;base64,AAA"), Some(("image/png", "AAA")));
    assert_eq!(split_data_url("https://x/y.png"), None);
    assert_eq!(split_data_url("data:text/plain,hi"), None);
    assert_eq!(data_url("image/png", "AAA"), "data:image/png;base64,AAA");
}

#[test]
fn arguments_default_to_empty_object() {
    assert_eq!(parse_arguments(""), json!({}));
    assert_eq!(parse_arguments("{\"a\":"), json!({}));
    assert_eq!(parse_arguments("[1]"), json!({}));
    assert_eq!(parse_arguments("{\"a\":1}"), json!({"a": 1}));
}

#[test]
fn pivot_only_fields_are_stripped_for_openai() {
    let mut b =
        json!({"model": "m", "messages": [], "top_k": 5, "top_p": 0.5}).as_object().cloned().unwrap_or_default();
    strip_pivot_only(&mut b);
    assert_eq!(Value::Object(b), json!({"model": "m", "messages": [], "top_p": 0.5}));
}
