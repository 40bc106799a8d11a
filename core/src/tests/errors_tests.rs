//! Tests of `errors.rs` (in their own file, so test code is found by its path).
use super::*;
use serde_json::Value;

fn parse(b: &[u8]) -> Value {
    serde_json::from_slice(b).unwrap()
}

#[test]
fn openai_shape_has_message_type_param_code() {
    let e = GatewayError::missing("model");
    let v = parse(&e.body(Dialect::OpenAi));
    assert_eq!(v["error"]["code"], "missing_field");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert_eq!(v["error"]["param"], "model");
    assert!(v["error"]["message"].as_str().unwrap().contains("model"));
    assert_eq!(e.status(), 400);
}

#[test]
fn statuses_and_types_follow_seed_000() {
    let cases = [
        (Code::Unauthorized, 401, "invalid_request_error"),
        (Code::Forbidden, 403, "invalid_request_error"),
        (Code::RateLimitExceeded, 429, "rate_limit_error"),
        (Code::SandboxQuotaExceeded, 429, "rate_limit_error"),
        (Code::InsufficientFunds, 402, "insufficient_quota"),
        (Code::UpstreamError, 502, "api_error"),
        (Code::InternalError, 500, "api_error"),
        (Code::ServiceUnavailable, 503, "api_error"),
    ];
    for (code, status, ty) in cases {
        let e = GatewayError::new(code, "x");
        assert_eq!(e.status(), status, "{code:?}");
        assert_eq!(parse(&e.body(Dialect::OpenAi))["error"]["type"], ty, "{code:?}");
    }
}

#[test]
fn anthropic_and_gemini_shapes() {
    let e = GatewayError::new(Code::Unauthorized, "Invalid API key");
    let a = parse(&e.body(Dialect::Anthropic));
    assert_eq!(a["type"], "error");
    assert_eq!(a["error"]["type"], "authentication_error");
    let g = parse(&e.body(Dialect::Gemini));
    assert_eq!(g["error"]["code"], 401);
    assert_eq!(g["error"]["status"], "UNAUTHENTICATED");
}

#[test]
fn retry_after_headers_on_429() {
    let r = GatewayError::new(Code::RateLimitExceeded, "slow down").with_retry_after(7).reply(Dialect::OpenAi);
    assert_eq!(r.status, 429);
    assert!(r.headers.iter().any(|(k, v)| k == "retry-after" && v == "7"));
    assert!(r.headers.iter().any(|(k, v)| k == "retry-after-ms" && v == "7000"));
    assert!(r.headers.iter().any(|(k, v)| k == "x-should-retry" && v == "true"));
}

/// The body as it was written before it was written as bytes: a `serde_json::Value` (its map
/// sorts the members) serialized. The byte writer must give exactly these bytes.
fn body_via_value(e: &GatewayError, dialect: Dialect) -> Vec<u8> {
    let v = match dialect {
        Dialect::OpenAi | Dialect::OpenAiResponses => serde_json::json!({
            "error": {
                "message": e.message,
                "type": e.code.openai_type(),
                "param": e.param,
                "code": e.code.as_str(),
            }
        }),
        Dialect::Anthropic => serde_json::json!({
            "type": "error",
            "error": { "type": e.code.anthropic_type(), "message": e.message },
        }),
        Dialect::Gemini => serde_json::json!({
            "error": {
                "code": e.status(),
                "message": e.message,
                "status": e.code.gemini_status(),
            }
        }),
    };
    serde_json::to_vec(&v).unwrap()
}

#[test]
fn bad_key_bodies_are_the_documented_bytes() {
    let e = GatewayError::new(Code::Unauthorized, "Invalid API key");
    assert_eq!(
        String::from_utf8(e.body(Dialect::OpenAi)).unwrap(),
        r#"{"error":{"code":"unauthorized","message":"Invalid API key","param":null,"type":"invalid_request_error"}}"#
    );
    assert_eq!(
        String::from_utf8(e.body(Dialect::Anthropic)).unwrap(),
        r#"{"error":{"message":"Invalid API key","type":"authentication_error"},"type":"error"}"#
    );
    assert_eq!(
        String::from_utf8(e.body(Dialect::Gemini)).unwrap(),
        r#"{"error":{"code":401,"message":"Invalid API key","status":"UNAUTHENTICATED"}}"#
    );
    let m = GatewayError::missing("messages");
    assert_eq!(
        String::from_utf8(m.body(Dialect::OpenAiResponses)).unwrap(),
        r#"{"error":{"code":"missing_field","message":"'messages' is a required field","param":"messages","type":"invalid_request_error"}}"#
    );
}

proptest::proptest! {
    #[test]
    fn body_bytes_are_the_value_bodys(
        code in 0..Code::ALL.len(),
        message in "[a\"\\\\\u{0}\u{1f}\u{7f}\u{e9}\u{2028}\u{1F600} ]{0,30}",
        param in proptest::option::of("[a\"\\\\\u{0}.\\[\\]0-9 ]{0,12}"),
        status in proptest::option::of(100u16..600),
    ) {
        let Some(&code) = Code::ALL.get(code) else { return Ok(()) };
        let mut e = GatewayError::new(code, message);
        e.param = param;
        e.status_override = status;
        for d in [Dialect::OpenAi, Dialect::OpenAiResponses, Dialect::Anthropic, Dialect::Gemini] {
            proptest::prop_assert_eq!(e.body(d), body_via_value(&e, d), "{:?}", d);
        }
    }
}
