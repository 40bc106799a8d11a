//! Tests of `trace.rs`.
use super::*;
use crate::usage::Usage;

#[test]
fn a_forwarded_anthropic_front_request_to_a_gemini_upstream_carries_every_gen_ai_attribute() {
    let mut ex = Exchange::new();
    ex.endpoint = Endpoint::Messages;
    ex.front = Dialect::Anthropic;
    ex.upstream = Dialect::Gemini;
    ex.model = Some("test-gemini".into());
    ex.upstream_model = Some("gemini-demo".into());
    ex.request_id = "rid-1".into();
    let u = Usage {
        prompt_tokens: 12,
        completion_tokens: 7,
        cached_tokens: 0,
        reasoning_tokens: 0,
        cache_creation_tokens: 0,
    };
    let got = attributes(&ex, &(u, true, 2500), Some("acct-demo"));
    let want: Vec<(&str, String)> = vec![
        ("gen_ai.operation.name", "chat".into()),
        ("gen_ai.provider.name", "gcp.gemini".into()),
        ("gen_ai.system", "gcp.gemini".into()),
        ("gen_ai.request.model", "test-gemini".into()),
        ("gen_ai.response.model", "gemini-demo".into()),
        ("tollgate.front", "anthropic".into()),
        ("tollgate.request_id", "rid-1".into()),
        ("tollgate.account_id", "acct-demo".into()),
        ("gen_ai.usage.input_tokens", "12".into()),
        ("gen_ai.usage.output_tokens", "7".into()),
        ("tollgate.usage.estimated", "true".into()),
        ("tollgate.credits", "0.0025".into()),
        ("tollgate.limit.outcome", "admitted".into()),
    ];
    assert_eq!(got, want);
    assert!(got.iter().all(|(n, _)| NAMES.contains(n)));
}

#[test]
fn a_rate_limited_request_names_the_limit_and_no_provider() {
    let mut ex = Exchange::new();
    ex.endpoint = Endpoint::ChatCompletions;
    ex.model = Some("qai-flash".into());
    ex.upstream_model = Some("qai-flash".into());
    ex.local_reply = true;
    ex.request_id = "rid-2".into();
    ex.error = Some(Code::RateLimitExceeded);
    let got = attributes(&ex, &(Usage::default(), false, 0), None);
    let want: Vec<(&str, String)> = vec![
        ("gen_ai.operation.name", "chat".into()),
        ("gen_ai.request.model", "qai-flash".into()),
        ("tollgate.front", "openai".into()),
        ("tollgate.request_id", "rid-2".into()),
        ("gen_ai.usage.input_tokens", "0".into()),
        ("gen_ai.usage.output_tokens", "0".into()),
        ("error.type", "rate_limit_exceeded".into()),
        ("tollgate.usage.estimated", "false".into()),
        ("tollgate.credits", "0.0".into()),
        ("tollgate.limit.outcome", "rate".into()),
    ];
    assert_eq!(got, want);
}

#[test]
fn limit_outcomes_cover_every_limit_and_the_store() {
    assert_eq!(limit_outcome(Some(Code::RateLimitExceeded), false), "rate");
    assert_eq!(limit_outcome(Some(Code::SandboxQuotaExceeded), false), "sandbox");
    assert_eq!(limit_outcome(Some(Code::InsufficientFunds), false), "spend");
    assert_eq!(limit_outcome(Some(Code::ServiceUnavailable), false), "store");
    assert_eq!(limit_outcome(Some(Code::Unauthorized), false), "not_checked");
    assert_eq!(limit_outcome(None, true), "admitted");
    // An upstream failure after admission is still admitted by the limits.
    assert_eq!(limit_outcome(Some(Code::UpstreamError), true), "admitted");
}
