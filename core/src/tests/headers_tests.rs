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
    assert!(!h.anthropic_version);
    let h = collect(&[("anthropic-version", b"2023-06-01".as_slice())]);
    assert!(h.anthropic_version);
}

#[test]
fn only_the_allowlist_goes_upstream() {
    let pairs: Vec<(&str, &[u8])> = vec![
        (":method", b"POST"),
        (":path", b"/v1/chat/completions"),
        (":authority", b"gw"),
        ("content-type", b"application/json"),
        ("x-request-id", b"r"),
        ("user-agent", b"sdk"),
        ("authorization", b"Bearer sk"),
        ("proxy-authorization", b"Bearer sk"),
        ("api-key", b"sk"),
        ("x-api-key", b"sk"),
        ("x-goog-api-key", b"sk"),
        ("cookie", b"session=1"),
        ("openai-organization", b"org-1"),
        ("openai-project", b"proj-1"),
        ("x-demo-status", b"500"),
        ("x-envoy-retry-on", b"5xx"),
        ("cookie", b"again=1"),
        ("x-custom", b"1"),
    ];
    let none: Vec<String> = Vec::new();
    assert_eq!(
        not_forwarded(&pairs, &none),
        [
            "authorization",
            "proxy-authorization",
            "api-key",
            "x-api-key",
            "x-goog-api-key",
            "cookie",
            "openai-organization",
            "openai-project",
            "x-demo-status",
            "x-envoy-retry-on",
            "x-custom"
        ]
    );
    // Configured names and prefixes pass; credentials never do, even under a matching prefix.
    let extra = vec!["x-demo-*".to_string(), "x-custom".to_string(), "x-*".to_string()];
    assert_eq!(
        not_forwarded(&pairs, &extra),
        [
            "authorization",
            "proxy-authorization",
            "api-key",
            "x-api-key",
            "x-goog-api-key",
            "cookie",
            "openai-organization",
            "openai-project"
        ]
    );
    assert!(forwarded(":scheme", &none));
    assert!(!forwarded("x-goog-api-key", &extra));
}
