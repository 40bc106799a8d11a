//! The remote store's wire side: bodies built from the local inputs, answers parsed into the
//! local decisions, and every malformed or mismatched answer failing closed.

use super::*;
use crate::limits::{credits_to_micros, SpendScope};
use serde_json::{json, Value};

const NOW: u64 = 1_700_000_059_999;

fn body_json(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or(Value::Null)
}

fn full_request() -> AdmitRequest {
    let scopes = [SpendScope::key("key-1", credits_to_micros(5.0)), SpendScope::account("acct-1", u64::MAX)];
    AdmitRequest::new(NOW).rpm("acct-1", 20).daily("key-1", 100).hold("req-1", &scopes, u64::MAX, 600_000)
}

#[test]
fn admit_body_names_the_keys_as_the_local_store_does() {
    let request = full_request();
    assert_eq!(
        body_json(&request.body()),
        json!({
            "now_ms": NOW,
            "windows": [
                {"key": "rpm:acct-1", "limit": 20, "period_ms": 60_000},
                {"key": "sbx:key-1", "limit": 100, "period_ms": 86_400_000},
            ],
            "caps": [
                {"key": "spend:key:key-1", "cap_micros": 5_000_000},
                // Clamped to what the scripts count exactly.
                {"key": "spend:acct:acct-1", "cap_micros": MAX_EXACT_MICROS},
            ],
            "reservation": "req-1",
            "hold_micros": MAX_EXACT_MICROS,
            "hold_ttl_ms": 600_000,
        })
    );
    // The service reads exactly what was sent.
    let read: Result<AdmitRequest, _> = serde_json::from_slice(&request.body());
    assert_eq!(read.ok(), Some(request));
    let image = AdmitRequest::new(NOW).rpm("img:acct-1", 5);
    assert_eq!(body_json(&image.body())["windows"][0]["key"], json!("rpm:img:acct-1"));
    // Optional parts may be left out by hand-written callers.
    let bare: Result<AdmitRequest, _> = serde_json::from_slice(br#"{"now_ms":5}"#);
    assert_eq!(bare.ok(), Some(AdmitRequest::new(5)));
}

#[test]
fn admitted_answer_gives_the_local_decisions() {
    let request = full_request();
    let answer = json!({
        "admitted": true,
        "windows": [
            {"allowed": true, "limit": 20, "remaining": 19, "reset_after_ms": 1},
            {"allowed": true, "limit": 100, "remaining": 0, "reset_after_ms": 2_500},
        ],
        "remaining_micros": 1_234,
        "reserved_micros": 777,
    });
    let a = parse_admit(&request, 200, answer.to_string().as_bytes());
    let expected = Admission {
        windows: vec![
            RateDecision { allowed: true, limit: 20, remaining: 19, reset_after_ms: 1, retry_after_secs: 1 },
            RateDecision { allowed: true, limit: 100, remaining: 0, reset_after_ms: 2_500, retry_after_secs: 3 },
        ],
        spend: Some(SpendDecision {
            allowed: true,
            reserved_micros: 777,
            rejected_scope: None,
            remaining_micros: 1_234,
        }),
    };
    assert_eq!(a, Ok(expected.clone()));
    assert!(expected.admitted());
    assert_eq!(expected.refused_window(), None);
}

#[test]
fn window_refusal_stops_at_the_refusing_window() {
    let request = full_request();
    let answer = json!({
        "admitted": false, "refused": "window", "index": 1,
        "windows": [
            {"allowed": true, "limit": 20, "remaining": 7, "reset_after_ms": 40_000},
            {"allowed": false, "limit": 100, "remaining": 3, "reset_after_ms": 3_600_000},
        ],
        "reserved_micros": 0,
    });
    let a = parse_admit(&request, 200, answer.to_string().as_bytes());
    let refused = RateDecision {
        allowed: false,
        limit: 100,
        // A refusal reports nothing remaining, whatever the service said.
        remaining: 0,
        reset_after_ms: 3_600_000,
        retry_after_secs: 3_600,
    };
    let expected = Admission {
        windows: vec![
            RateDecision { allowed: true, limit: 20, remaining: 7, reset_after_ms: 40_000, retry_after_secs: 40 },
            refused,
        ],
        spend: None,
    };
    assert_eq!(a, Ok(expected.clone()));
    assert!(!expected.admitted());
    assert_eq!(expected.refused_window(), Some((1, refused)));
}

#[test]
fn cap_refusal_names_the_scope_and_what_it_had_left() {
    let request = full_request();
    let answer = json!({
        "admitted": false, "refused": "cap", "index": 1,
        "windows": [
            {"allowed": true, "limit": 20, "remaining": 7, "reset_after_ms": 40_000},
            {"allowed": true, "limit": 100, "remaining": 3, "reset_after_ms": 3_600_000},
        ],
        "remaining_micros": 55,
        "reserved_micros": 0,
    });
    let a = parse_admit(&request, 200, answer.to_string().as_bytes());
    assert_eq!(
        a.map(|a| (a.admitted(), a.spend)),
        Ok((
            false,
            Some(SpendDecision { allowed: false, reserved_micros: 0, rejected_scope: Some(1), remaining_micros: 55 })
        ))
    );
}

#[test]
fn no_caps_means_no_spend_decision() {
    let request = AdmitRequest::new(NOW).rpm("acct-1", 20);
    let answer = json!({
        "admitted": true,
        "windows": [{"allowed": true, "limit": 20, "remaining": 19, "reset_after_ms": 1}],
    });
    let a = parse_admit(&request, 200, answer.to_string().as_bytes());
    assert_eq!(a.map(|a| (a.admitted(), a.spend)), Ok((true, None)));
}

#[test]
fn bad_answers_fail_closed() {
    let request = full_request();
    let window = json!({"allowed": true, "limit": 20, "remaining": 1, "reset_after_ms": 1});
    let full = json!({"allowed": false, "limit": 20, "remaining": 0, "reset_after_ms": 1});
    let bad = [
        // A correct admitted answer, but not a 200.
        (503, json!({"admitted": true, "windows": [window, window], "remaining_micros": 1})),
        (400, json!({"admitted": true, "windows": [window, window], "remaining_micros": 1})),
        // Fewer windows than asked.
        (200, json!({"admitted": true, "windows": [window], "remaining_micros": 1})),
        // Admitted, yet a window refused.
        (200, json!({"admitted": true, "windows": [window, full], "remaining_micros": 1})),
        // Admitted with caps, but no budget reported.
        (200, json!({"admitted": true, "windows": [window, window]})),
        // Refused without saying by what, or by an index out of range.
        (200, json!({"admitted": false, "windows": [window, window], "remaining_micros": 1})),
        (200, json!({"admitted": false, "refused": "window", "index": 2, "windows": [window, window, full]})),
        (
            200,
            json!({"admitted": false, "refused": "cap", "index": 2, "windows": [window, window], "remaining_micros": 1}),
        ),
        // Refused by a window that says it allowed.
        (200, json!({"admitted": false, "refused": "window", "index": 0, "windows": [window]})),
        // Refused by window 1 while window 0 also refused.
        (200, json!({"admitted": false, "refused": "window", "index": 1, "windows": [full, full]})),
        // Says admitted and refused at once.
        (
            200,
            json!({"admitted": true, "refused": "cap", "index": 0, "windows": [window, window], "remaining_micros": 1}),
        ),
        (200, json!({"admitted": "yes"})),
        (200, json!([])),
    ];
    for (status, answer) in bad {
        assert_eq!(
            parse_admit(&request, status, answer.to_string().as_bytes()),
            Err(LimitError::Unavailable),
            "{status} {answer}"
        );
    }
    assert_eq!(parse_admit(&request, 200, b"not json"), Err(LimitError::Unavailable));
    assert_eq!(parse_admit(&request, 200, b""), Err(LimitError::Unavailable));
}

#[test]
fn settle_undo_and_peek_round_trip() {
    let scopes = [SpendScope::key("key-1", 5), SpendScope::account("acct-1", 9)];
    let settle = SettleRequest::new("req-1", &scopes, u64::MAX);
    assert_eq!(
        body_json(&settle.body()),
        json!({"reservation": "req-1", "caps": ["spend:key:key-1", "spend:acct:acct-1"], "actual_micros": MAX_EXACT_MICROS})
    );
    assert_eq!(parse_settle(200, br#"{"settled":true}"#), Ok(true));
    assert_eq!(parse_settle(200, br#"{"settled":false}"#), Ok(false));
    assert_eq!(parse_settle(503, br#"{"settled":true}"#), Err(LimitError::Unavailable));
    assert_eq!(parse_settle(200, br#"{"error":"x"}"#), Err(LimitError::Unavailable));

    assert_eq!(
        body_json(&UndoRequest::rpm("img:acct-1", NOW).body()),
        json!({"now_ms": NOW, "key": "rpm:img:acct-1", "period_ms": 60_000})
    );
    assert_eq!(
        body_json(&UndoRequest::daily("key-1", NOW).body()),
        json!({"now_ms": NOW, "key": "sbx:key-1", "period_ms": 86_400_000})
    );
    assert_eq!(parse_undo(200, br#"{"undone":true}"#), Ok(true));
    assert_eq!(parse_undo(200, br#"{"undone":false}"#), Ok(false));
    assert_eq!(parse_undo(409, br#"{"undone":true}"#), Err(LimitError::Unavailable));

    let peek = PeekRequest::rpm("acct-1", 20, NOW);
    assert_eq!(body_json(&peek.body()), json!({"now_ms": NOW, "key": "rpm:acct-1", "limit": 20, "period_ms": 60_000}));
    let answer = br#"{"allowed":false,"limit":20,"remaining":0,"reset_after_ms":1}"#;
    assert_eq!(
        parse_peek(&peek, 200, answer),
        Ok(RateDecision { allowed: false, limit: 20, remaining: 0, reset_after_ms: 1, retry_after_secs: 1 })
    );
    // An answer about another limit is not this window's.
    let other = br#"{"allowed":true,"limit":21,"remaining":20,"reset_after_ms":1}"#;
    assert_eq!(parse_peek(&peek, 200, other), Err(LimitError::Unavailable));
}

#[test]
fn retry_after_matches_the_local_windows() {
    // The local store's rule: whole seconds, rounded up, at least 1.
    for (reset, secs) in [(0, 1), (1, 1), (999, 1), (1_000, 1), (1_001, 2), (59_999, 60), (86_400_000, 86_400)] {
        let w = WindowState { allowed: false, limit: 1, remaining: 0, reset_after_ms: reset };
        assert_eq!(w.decision().retry_after_secs, secs, "{reset}");
    }
}
