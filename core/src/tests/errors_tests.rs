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
