//! Tests of `metrics.rs` (in their own file, so test code is found by its path).
use super::*;
use crate::usage::Usage;

#[test]
fn names_carry_tags_and_never_break_the_encoding() {
    assert_eq!(requests("qai-chat", "2xx"), "tollgate.requests.model=.=qai-chat;.;class=.=2xx;.;");
    assert_eq!(tokens("gemini-2.5", "prompt"), "tollgate.tokens.model=.=gemini-2.5;.;kind=.=prompt;.;");
    assert_eq!(estimated("a;b=c"), "tollgate.usage_estimated.model=.=a_b_c;.;");
    assert_eq!(errors(Code::RateLimitExceeded), "tollgate.errors.code=.=rate_limit_exceeded;.;");
}

#[test]
fn increments_for_a_billed_stream_and_for_a_401() {
    let o = Outcome {
        status: 200,
        error: None,
        model: Some("m".into()),
        usage: Usage { prompt_tokens: 10, completion_tokens: 5, cached_tokens: 0, reasoning_tokens: 2 },
        estimated: true,
        micros: 15,
        record: Vec::new(),
    };
    let got = increments(&o);
    assert!(got.contains(&(requests("m", "2xx"), 1)));
    assert!(got.contains(&(tokens("m", "prompt"), 10)));
    assert!(got.contains(&(tokens("m", "reasoning"), 2)));
    assert!(!got.iter().any(|(n, _)| n == &tokens("m", "cached")));
    assert!(got.contains(&(estimated("m"), 1)));
    assert!(got.contains(&(microcredits("m"), 15)));
    let o = Outcome { status: 401, error: Some(Code::Unauthorized), model: None, usage: Usage::default(), estimated: false, micros: 0, record: Vec::new() };
    assert_eq!(increments(&o), vec![(requests("none", "4xx"), 1), (errors(Code::Unauthorized), 1)]);
}
