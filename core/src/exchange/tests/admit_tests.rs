//! Exchange tests: Admission: the rate, the sandbox quota, the spend reservation and the body caps.
use super::*;

#[test]
fn rpm_admits_exactly_the_limit_then_429_with_retry_after() {
    let (c, s) = (cfg(), MemoryStore::new());
    let t = 1_700_000_040_000; // 40 s into a minute... of the unix minute
    for _ in 0..3 {
        assert!(run(&c, &s, t, "sk-a", CHAT).1.is_none());
    }
    let (_, r) = run(&c, &s, t, "sk-a", CHAT);
    let r = r.unwrap();
    assert_eq!(r.status, 429);
    let secs_left = (60_000 - t % 60_000).div_ceil(1000);
    assert_eq!(header(&r, "retry-after"), Some(secs_left.to_string().as_str()));
    assert_eq!(header(&r, "x-ratelimit-remaining-requests"), Some("0"));
    assert_eq!(header(&r, "x-ratelimit-limit-requests"), Some("3"));
    // next window admits again
    assert!(run(&c, &s, t + 60_000, "sk-a", CHAT).1.is_none());
}

#[test]
fn validation_errors_do_not_count_against_the_rate() {
    let (c, s) = (cfg(), MemoryStore::new());
    for _ in 0..10 {
        assert_eq!(run(&c, &s, 0, "sk-a", r#"{"model":"m"}"#).1.unwrap().status, 400);
    }
    assert!(run(&c, &s, 0, "sk-a", CHAT).1.is_none());
}

#[test]
fn sandbox_quota_then_other_models_still_work_and_rejection_refunds_rpm() {
    let (c, s) = (cfg(), MemoryStore::new());
    let t = 86_400_000 * 20_000 + 1000;
    assert!(run(&c, &s, t, "sk-a", FREE).1.is_none());
    assert!(run(&c, &s, t, "sk-a", FREE).1.is_none());
    let r = run(&c, &s, t, "sk-a", FREE).1.unwrap();
    assert_eq!(r.status, 429);
    assert!(String::from_utf8_lossy(&r.body).contains("sandbox_quota_exceeded"));
    assert_eq!(header(&r, "retry-after"), Some("86399"));
    // The rejected sandbox call was refunded: one rpm slot is left for the paid model.
    assert!(run(&c, &s, t, "sk-a", CHAT).1.is_none());
    assert_eq!(run(&c, &s, t, "sk-a", CHAT).1.unwrap().status, 429);
    // UTC midnight rolls the quota over.
    assert!(run(&c, &s, t - 1000 + 86_400_000, "sk-a", FREE).1.is_none());
}

#[test]
fn spend_cap_reserves_settles_and_then_402() {
    let (c, s) = (cfg(), MemoryStore::new());
    let mut admitted = 0;
    // Reserve (19 prompt + 10 completion tokens) x 1000 = 29_000; settle 10_000 each: three
    // admissions fit the 50_000 cap (0+29, 10+29, 20+29 <= 50), the fourth (30+29) does not.
    let estimate = reservation(CHAT, 10, 1);
    assert_eq!(estimate, 29_000);
    for i in 0..100 {
        let (mut ex, r) = run(&c, &s, i * 100_000, "sk-capped", CHAT);
        match r {
            None => {
                assert_eq!(ex.estimate_micros, estimate);
                assert_eq!(limits::spend_state(&s, "spend:key:capped").unwrap(), (admitted * 10_000, estimate));
                admitted += 1;
                ex.status = 200;
                ex.usage = Some(Usage { prompt_tokens: 5, completion_tokens: 5, ..Default::default() });
                ex.on_done(&c, &Env { now_ms: 0, store: &s });
            }
            Some(r) => {
                assert_eq!(r.status, 402);
                assert!(String::from_utf8_lossy(&r.body).contains("insufficient_funds"));
                break;
            }
        }
    }
    assert_eq!(limits::spend_state(&s, "spend:key:capped").unwrap(), (30_000, 0));
    assert_eq!(admitted, 3);
}

#[test]
fn a_reservation_without_max_tokens_is_the_default_times_n_and_is_sent_upstream() {
    let c = cfg();
    let s = || MemoryStore::new();
    // Fast path (the body goes on as it came, plus the reserved budget at byte level).
    let body = r#" {"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
    let (ex, a) = send(&c, &s(), 0, "sk-capped", "/v1/chat/completions", body);
    assert_eq!(ex.estimate_micros, reservation(body, 16, 1));
    let up = forwarded(&a, body);
    assert_eq!(up["max_tokens"], 16);
    assert_eq!(up["messages"][0]["content"], "hi");
    let BodyAction::Forward { edits, body: Some(b) } = &a else { panic!("no body") };
    assert!(edits.contains(&HeaderEdit::Set("content-length".into(), b.len().to_string().into())));
    // n = 3 at the default (17_000 + 3 x 16_000) is too big for the 50_000 cap: 402.
    let n3 = r#"{"model":"m","n":3,"messages":[{"role":"user","content":"hi"}]}"#;
    let (ex, r) = run(&c, &s(), 0, "sk-capped", n3);
    assert_eq!((ex.estimate_micros, r.map(|r| r.status)), (reservation(n3, 16, 3), Some(402)));
    // General path (the model is renamed): the reserved budget of m2 (10) times n = 2.
    let m2 = r#"{"model":"m2","n":2,"max_tokens":null,"messages":[{"role":"user","content":"hi"}]}"#;
    let (ex, a) = send(&c, &s(), 0, "sk-capped", "/v1/chat/completions", m2);
    assert_eq!(ex.estimate_micros, reservation(m2, 10, 2));
    let up = forwarded(&a, m2);
    assert_eq!((up["model"].as_str(), up["max_tokens"].as_u64(), up["n"].as_u64()), (Some("up-m2"), Some(10), Some(2)));
    // Same body, fast path, `null` budget: the general path adds it (the key is not repeated).
    let null = r#"{"model":"m","max_tokens":null,"messages":[{"role":"user","content":"hi"}]}"#;
    let (_, a) = send(&c, &s(), 0, "sk-capped", "/v1/chat/completions", null);
    let BodyAction::Forward { body: Some(b), .. } = &a else { panic!("no body") };
    assert_eq!(String::from_utf8_lossy(b).matches("max_tokens").count(), 1);
    assert_eq!(forwarded(&a, null)["max_tokens"], 16);
    // The client's own budget is kept; a key without a cap has nothing added (bytes unchanged).
    let (_, a) = send(&c, &s(), 0, "sk-capped", "/v1/chat/completions", CHAT);
    assert!(matches!(a, BodyAction::Forward { body: None, .. }));
    let (_, a) = send(&c, &s(), 0, "sk-a", "/v1/chat/completions", body);
    assert!(matches!(a, BodyAction::Forward { body: None, .. }));
    // Gemini front: the budget becomes maxOutputTokens' pivot `max_tokens`, candidateCount
    // multiplies it, and more than 8 candidates is refused.
    let g = r#"{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"generationConfig":{"candidateCount":2}}"#;
    let (ex, a) = send(&c, &s(), 0, "sk-capped", "/v1beta/models/m2:generateContent", g);
    assert_eq!(ex.estimate_micros, reservation(g, 10, 2));
    assert_eq!(forwarded(&a, g)["max_tokens"], 10);
    let g9 = r#"{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"generationConfig":{"candidateCount":9}}"#;
    let (_, a) = send(&c, &s(), 0, "sk-capped", "/v1beta/models/m2:generateContent", g9);
    let BodyAction::Reply(r) = a else { panic!("admitted") };
    assert_eq!(r.status, 400);
    let n9 = r#"{"model":"m","n":9,"messages":[{"role":"user","content":"hi"}]}"#;
    assert_eq!(run(&c, &s(), 0, "sk-a", n9).1.map(|r| r.status), Some(400));
}

#[test]
fn a_402_refunds_the_rate_slot_and_the_sandbox_call() {
    let (c, s) = (cfg(), MemoryStore::new());
    let t = 86_400_000 * 20_000 + 1000;
    // Spend the whole cap: one call billed 100 prompt tokens = 0.1 credit > 0.05.
    let (mut ex, r) = run(&c, &s, t, "sk-capq", CHAT);
    assert!(r.is_none());
    ex.status = 200;
    ex.usage = Some(Usage { prompt_tokens: 100, completion_tokens: 0, ..Default::default() });
    ex.on_done(&c, &Env { now_ms: t, store: &s });
    // The free model reserves 0, but a reached cap refuses it: every refusal gives its rate slot
    // (3 a minute, 1 used) and its sandbox call (2 a day) back.
    for _ in 0..5 {
        let r = run(&c, &s, t, "sk-capq", FREE).1.unwrap();
        assert_eq!(r.status, 402);
        assert_eq!(header(&r, "x-ratelimit-remaining-requests"), Some("1"));
    }
    let mut uncapped = cfg();
    for k in uncapped.keys.iter_mut() {
        k.set_spend_cap(None);
    }
    let statuses: Vec<_> = (0..3).map(|_| run(&uncapped, &s, t, "sk-capq", FREE).1.map(|r| r.status)).collect();
    assert_eq!(statuses, [None, None, Some(429)]);
    assert!(String::from_utf8_lossy(&run(&uncapped, &s, t + 60_000, "sk-capq", FREE).1.unwrap().body)
        .contains("sandbox_quota_exceeded"));
}

#[test]
fn a_reservation_is_released_after_an_upstream_500_and_after_a_disconnect() {
    let (c, s) = (cfg(), MemoryStore::new());
    let key = "spend:key:capped";
    let (mut ex, r) = run(&c, &s, 0, "sk-capped", CHAT);
    assert!(r.is_none());
    assert_eq!(limits::spend_state(&s, key).unwrap(), (0, 29_000));
    ex.on_response_headers(500, Some("application/json"));
    ex.on_response_chunk(br#"{"error":{"message":"boom"}}"#, true, 1 << 20);
    let out = ex.on_done(&c, &Env { now_ms: 0, store: &s });
    assert_eq!((out.status, out.micros), (502, 0));
    assert_eq!(limits::spend_state(&s, key).unwrap(), (0, 0));
    // A stream the client left after one chunk: the estimate is billed, the reservation goes.
    let (mut ex, r) = run(&c, &s, 0, "sk-capped", CHAT);
    assert!(r.is_none());
    ex.on_response_headers(200, Some("text/event-stream"));
    ex.on_response_chunk(
        b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"abcdefgh\"}}]}\n\n",
        false,
        1 << 20,
    );
    let out = ex.on_done(&c, &Env { now_ms: 0, store: &s });
    assert!(out.estimated);
    let billed = out.micros;
    assert_eq!(billed, (out.usage.prompt_tokens + out.usage.completion_tokens) * 1000);
    assert_eq!(limits::spend_state(&s, key).unwrap(), (billed, 0));
}

#[test]
fn format_duration_style() {
    assert_eq!(format_duration(250), "250ms");
    assert_eq!(format_duration(1000), "1s");
    assert_eq!(format_duration(12_001), "13s");
    assert_eq!(format_duration(0), "0ms");
    assert_eq!(format_duration(999), "999ms");
    assert_eq!(format_duration(1001), "2s");
    assert_eq!(format_duration(60_000), "60s");
    assert_eq!(format_duration(u64::MAX), format!("{}s", u64::MAX.div_ceil(1000)));
}

#[test]
fn an_account_over_its_rate_is_refused_at_the_headers_without_counting() {
    let (c, s) = (cfg(), MemoryStore::new());
    let t = 1_700_000_040_000;
    let env = Env { now_ms: t, store: &s };
    for _ in 0..3 {
        assert!(run(&c, &s, t, "sk-a", CHAT).1.is_none());
    }
    for _ in 0..2 {
        let mut ex = Exchange::new();
        let HeadAction::Reply(r) =
            ex.on_request_headers(&c, &head_of("POST", "/v1/chat/completions", "Bearer sk-a"), &env)
        else {
            panic!("an account over its rate must be refused at the headers");
        };
        assert_eq!(r.status, 429);
        assert_eq!(header(&r, "retry-after"), Some("60"));
        assert_eq!(header(&r, "x-ratelimit-remaining-requests"), Some("0"));
        assert_eq!(header(&r, "x-ratelimit-limit-requests"), Some("3"));
    }
    // The peek counted nothing: the window still holds exactly 3.
    assert!(!limits::peek_rpm(&s, "a", 3, t).unwrap().allowed);
    assert!(limits::undo_rpm(&s, "a", t).unwrap());
    assert!(limits::peek_rpm(&s, "a", 3, t).unwrap().allowed);
    // Under the rate the headers pass, and an invalid body takes nothing.
    let (_, r) = run(&c, &s, t, "sk-a", "{not json");
    assert_eq!(r.unwrap().status, 400);
    assert!(run(&c, &s, t, "sk-a", CHAT).1.is_none());
    assert_eq!(run(&c, &s, t, "sk-a", CHAT).1.unwrap().status, 429);
}

#[test]
fn a_declared_length_over_the_endpoint_cap_is_413_at_the_headers() {
    let c = cfg();
    let s = MemoryStore::new();
    let env = Env { now_ms: 1_700_000_040_000, store: &s };
    let cases = [
        ("/v1/chat/completions", c.max_body_bytes as u64 + 1, Some(413)),
        ("/v1/chat/completions", c.max_body_bytes as u64, None),
        ("/v1/images/generations", c.max_media_body_bytes as u64 + 1, Some(413)),
        ("/v1/images/generations", c.max_media_body_bytes as u64, None),
        ("/v1/audio/speech", c.max_media_body_bytes as u64 + 1, Some(413)),
        ("/v1/videos/generations", c.max_media_body_bytes as u64 + 1, Some(413)),
    ];
    for (path, len, want) in cases {
        let mut ex = Exchange::new();
        let head = RequestHead { content_length: Some(len), ..head_of("POST", path, "Bearer sk-capped") };
        match (ex.on_request_headers(&c, &head, &env), want) {
            (HeadAction::Reply(r), Some(w)) => {
                assert_eq!(r.status, w, "{path} {len}");
                let v: Value = serde_json::from_slice(&r.body).unwrap();
                assert_eq!(v["error"]["code"], "request_entity_too_large", "{path}");
            }
            (HeadAction::ReadBody(_), None) => {}
            (a, w) => panic!("{path} {len}: {a:?}, wanted {w:?}"),
        }
    }
    // Buffered sizes: the media cap applies as the body grows.
    let mut ex = Exchange::new();
    let _ = ex.on_request_headers(&c, &head_of("POST", "/v1/images/generations", "Bearer sk-capped"), &env);
    assert_eq!(ex.request_too_large(&c, c.max_media_body_bytes), None);
    assert_eq!(ex.request_too_large(&c, c.max_media_body_bytes + 1).map(|r| r.status), Some(413));
    assert_eq!(c.max_media_body_bytes, crate::config::DEFAULT_MAX_MEDIA_BODY);
}

#[test]
fn limit_refusals_of_a_known_model_are_counted_and_recorded_under_it() {
    // 402 (spend cap) on the fast path (`m`) and the general one (`m2`, renamed upstream), 429
    // (sandbox quota): the model was named and valid, so the record and the stats carry it.
    let (c, s) = (cfg(), MemoryStore::new());
    let big =
        |m: &str| format!(r#"{{"model":"{m}","max_tokens":100000,"messages":[{{"role":"user","content":"hi"}}]}}"#);
    for (key, body, status, model) in [
        ("sk-capped", big("m"), 402, "m"),
        ("sk-capped", big("m2"), 402, "m2"),
        ("sk-a", FREE.to_string(), 200, "free"),
        ("sk-a", FREE.to_string(), 200, "free"),
        ("sk-a", FREE.to_string(), 429, "free"),
    ] {
        let (mut ex, r) = run(&c, &s, 1000, key, &body);
        assert_eq!(r.as_ref().map_or(200, |r| r.status), status);
        if r.is_none() {
            ex.status = 200;
        }
        let o = ex.on_done(&c, &Env { now_ms: 2000, store: &s });
        assert_eq!(o.model.as_deref(), Some(model));
        let rec: Value = serde_json::from_slice(&o.record).unwrap();
        assert_eq!(rec["model"], model);
        if status != 200 {
            assert_eq!((rec["cluster"].clone(), rec["credits"].as_f64()), (Value::Null, Some(0.0)));
            assert_eq!(crate::metrics::increments(&o).model, model);
        }
    }
}

#[test]
fn authenticated_refusals_before_the_count_carry_the_window_as_read() {
    let (c, s) = (cfg(), MemoryStore::new());
    assert!(run(&c, &s, 1000, "sk-a", CHAT).1.is_none());
    let replies = [
        run(&c, &s, 1000, "sk-a", r#"{"model":"m"}"#).1.unwrap(),
        match send(&c, &s, 1000, "sk-a", "/v1/nothing-here", CHAT) {
            (_, BodyAction::Reply(r)) => r,
            _ => panic!("forwarded"),
        },
    ];
    for r in replies {
        assert!(matches!(r.status, 400 | 404), "{}", r.status);
        assert_eq!(
            (header(&r, "x-ratelimit-limit-requests"), header(&r, "x-ratelimit-remaining-requests")),
            (Some("3"), Some("2"))
        );
    }
    // Uncounted: two more requests fit.
    assert!(run(&c, &s, 1000, "sk-a", CHAT).1.is_none());
    assert!(run(&c, &s, 1000, "sk-a", CHAT).1.is_none());
    assert_eq!(run(&c, &s, 1000, "sk-a", CHAT).1.unwrap().status, 429);
}
