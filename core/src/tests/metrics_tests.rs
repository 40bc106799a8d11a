//! Tests of `metrics.rs` (in their own file, so test code is found by its path).
use super::*;
use crate::usage::Usage;

#[test]
fn names_carry_tags_and_never_break_the_encoding() {
    assert_eq!(Stat::Requests(1).name("qai-chat"), "tollgate.requests.model=.=qai-chat;.;class=.=2xx;.;");
    assert_eq!(Stat::Tokens(0).name("gemini-2.5"), "tollgate.tokens.model=.=gemini-2.5;.;kind=.=prompt;.;");
    assert_eq!(Stat::Estimated.name("a;b=c"), "tollgate.usage_estimated.model=.=a_b_c;.;");
    assert_eq!(Stat::Microcredits.name("m"), "tollgate.microcredits.model=.=m;.;");
    assert_eq!(Stat::Incomplete.name("m"), "tollgate.incomplete.model=.=m;.;");
    assert_eq!(errors(Code::RateLimitExceeded), "tollgate.errors.code=.=rate_limit_exceeded;.;");
    assert_eq!(Code::ALL.get(error_slot(Code::UpstreamError)), Some(&Code::UpstreamError));
}

#[test]
fn slots_are_distinct_and_in_range() {
    let mut all: Vec<usize> = (0..5).map(|c| Stat::Requests(c).slot()).collect();
    all.extend((0..5).map(|k| Stat::Tokens(k).slot()));
    all.extend([Stat::Estimated.slot(), Stat::Microcredits.slot(), Stat::Incomplete.slot()]);
    let mut sorted = all.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), MODEL_SLOTS);
    assert!(all.iter().all(|s| *s < MODEL_SLOTS));
}

#[test]
fn increments_for_a_billed_stream_and_for_a_401() {
    let o = Outcome {
        status: 200,
        error: None,
        model: Some("m".into()),
        usage: Usage {
            prompt_tokens: 10,
            completion_tokens: 5,
            cached_tokens: 0,
            reasoning_tokens: 2,
            cache_creation_tokens: 0,
        },
        estimated: true,
        micros: 15,
        complete: true,
        record: Vec::new(),
        ..Outcome::default()
    };
    let got = increments(&o);
    assert_eq!(got.model, "m");
    assert_eq!(got.error, None);
    assert_eq!(
        got.per_model,
        vec![
            (Stat::Requests(1), 1),
            (Stat::Tokens(0), 10),
            (Stat::Tokens(1), 5),
            (Stat::Tokens(3), 2),
            (Stat::Estimated, 1),
            (Stat::Microcredits, 15)
        ]
    );
    let o = Outcome {
        status: 401,
        error: Some(Code::Unauthorized),
        model: None,
        usage: Usage::default(),
        estimated: false,
        micros: 0,
        complete: true,
        record: Vec::new(),
        ..Outcome::default()
    };
    assert_eq!(
        increments(&o),
        Increments { model: "none", per_model: vec![(Stat::Requests(3), 1)], error: Some(Code::Unauthorized) }
    );
}

#[test]
fn a_response_cut_short_counts_as_incomplete_for_its_model() {
    let o = Outcome {
        status: 200,
        error: None,
        model: Some("m".into()),
        usage: Usage {
            prompt_tokens: 3,
            completion_tokens: 2,
            cached_tokens: 0,
            reasoning_tokens: 0,
            cache_creation_tokens: 0,
        },
        estimated: true,
        micros: 0,
        complete: false,
        record: Vec::new(),
        ..Outcome::default()
    };
    assert_eq!(
        increments(&o).per_model,
        vec![
            (Stat::Requests(1), 1),
            (Stat::Tokens(0), 3),
            (Stat::Tokens(1), 2),
            (Stat::Estimated, 1),
            (Stat::Incomplete, 1)
        ]
    );
    // A refusal before any model was known is not a cut-off of any model's response.
    let o = Outcome {
        status: 499,
        error: None,
        model: None,
        usage: Usage::default(),
        estimated: false,
        micros: 0,
        complete: false,
        record: Vec::new(),
        ..Outcome::default()
    };
    assert_eq!(increments(&o).per_model, vec![(Stat::Requests(3), 1)]);
}

#[test]
fn account_stat_names_carry_the_account_tag() {
    assert_eq!(AccountStat::Requests(1).name("acct-a"), "tollgate.account_requests.account=.=acct-a;.;class=.=2xx;.;");
    assert_eq!(
        AccountStat::Tokens(1).name("acct-a"),
        "tollgate.account_tokens.account=.=acct-a;.;kind=.=completion;.;"
    );
    assert_eq!(AccountStat::Microcredits.name("a;b=c"), "tollgate.account_microcredits.account=.=a_b_c;.;");
    let mut slots: Vec<usize> = (0..5).map(|c| AccountStat::Requests(c).slot()).collect();
    slots.extend((0..5).map(|k| AccountStat::Tokens(k).slot()));
    slots.push(AccountStat::Microcredits.slot());
    slots.sort_unstable();
    assert_eq!(slots, (0..ACCOUNT_SLOTS).collect::<Vec<_>>());
    let defined: Vec<String> = AccountStat::defined().map(|s| s.name("x")).collect();
    assert_eq!(
        defined,
        vec![
            "tollgate.account_requests.account=.=x;.;class=.=2xx;.;",
            "tollgate.account_requests.account=.=x;.;class=.=4xx;.;",
            "tollgate.account_requests.account=.=x;.;class=.=5xx;.;",
            "tollgate.account_tokens.account=.=x;.;kind=.=prompt;.;",
            "tollgate.account_tokens.account=.=x;.;kind=.=completion;.;",
            "tollgate.account_tokens.account=.=x;.;kind=.=cached;.;",
            "tollgate.account_tokens.account=.=x;.;kind=.=reasoning;.;",
            "tollgate.account_tokens.account=.=x;.;kind=.=cache_creation;.;",
            "tollgate.account_microcredits.account=.=x;.;",
        ]
    );
}

#[test]
fn account_increments_match_the_model_ones() {
    let o = Outcome {
        status: 200,
        error: None,
        model: Some("m".into()),
        usage: Usage {
            prompt_tokens: 10,
            completion_tokens: 5,
            cached_tokens: 3,
            reasoning_tokens: 0,
            cache_creation_tokens: 0,
        },
        estimated: false,
        micros: 15,
        complete: true,
        record: Vec::new(),
        ..Outcome::default()
    };
    assert_eq!(
        account_increments(&o),
        vec![
            (AccountStat::Requests(1), 1),
            (AccountStat::Tokens(0), 10),
            (AccountStat::Tokens(1), 5),
            (AccountStat::Tokens(2), 3),
            (AccountStat::Microcredits, 15)
        ]
    );
    // No model known: a request counted, nothing billed (as for the per-model stats).
    let o = Outcome {
        status: 404,
        error: Some(Code::NotFound),
        model: None,
        usage: Usage::default(),
        estimated: false,
        micros: 0,
        complete: true,
        record: Vec::new(),
        ..Outcome::default()
    };
    assert_eq!(account_increments(&o), vec![(AccountStat::Requests(3), 1)]);
}

#[test]
fn the_limits_failure_counters_are_defined_with_the_rest() {
    let cfg = Config::parse(br#"{"clusters":[{"name":"c"}],"models":[],"accounts":[],"keys":[]}"#).unwrap();
    let names = all_names(&cfg);
    let tail: Vec<&str> = names.iter().rev().take(2).rev().map(String::as_str).collect();
    assert_eq!(tail, ["tollgate.limits.store_failures", "tollgate.limits.settle_failures"]);
    assert_eq!(names.iter().filter(|n| n.starts_with("tollgate.limits.")).count(), 2);
}
