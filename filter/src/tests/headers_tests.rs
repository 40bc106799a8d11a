//! Tests of `headers.rs` (in their own file, so test code is found by its path).
use super::*;

#[test]
fn lossy_values_and_joined_repeats() {
    let pairs: Vec<(&str, &[u8])> = vec![
        (":method", b"POST"),
        (":path", b"/v1/chat/completions"),
        ("x-api-key", b"sk-a"),
        ("x-api-key", b"sk-b"),
        ("authorization", b"Bearer \xffsk"),
        ("content-length", b"12"),
        ("other", b"x"),
    ];
    let h = collect(&pairs);
    assert_eq!(h.method, "POST");
    assert_eq!(h.path, "/v1/chat/completions");
    assert_eq!(h.x_api_key.as_deref(), Some("sk-a, sk-b"));
    assert_eq!(h.authorization.as_deref(), Some("Bearer \u{fffd}sk"));
    assert_eq!(h.content_length.as_deref(), Some("12"));
    assert_eq!(h.x_goog_api_key, None);
}
