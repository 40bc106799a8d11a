//! Tests of `exchange.rs` (in their own file, so test code is found by its path).
use super::*;
use crate::config::Config;
use crate::limits::MemoryStore;
use serde_json::Map;

fn cfg() -> Config {
    let h = |k: &str| keys::to_hex(&keys::sha256(k.as_bytes()));
    let j = format!(
        r#"{{"clusters":[{{"name":"c"}}],
        "models":[{{"id":"m","type":"text","cluster":"c","default_max_tokens":16,"price":{{"prompt_per_1k":1,"completion_per_1k":1}}}},
                  {{"id":"free","type":"text","cluster":"c","sandbox":true}},
                  {{"id":"m2","type":"text","cluster":"c","upstream_model":"up-m2","default_max_tokens":10,
                    "price":{{"prompt_per_1k":1,"completion_per_1k":1}}}}],
        "accounts":[{{"id":"a","rpm":3}},{{"id":"b","rpm":100}},{{"id":"q","rpm":3}}],
        "keys":[{{"id":"k","sha256":"{}","account":"a","sandbox_daily_quota":2}},
                {{"id":"capped","sha256":"{}","account":"b","spend_cap":0.05}},
                {{"id":"capq","sha256":"{}","account":"q","spend_cap":0.05,"sandbox_daily_quota":2}}]}}"#,
        h("sk-a"),
        h("sk-capped"),
        h("sk-capq")
    );
    Config::parse(j.as_bytes()).unwrap()
}

fn run(cfg: &Config, store: &MemoryStore, now_ms: u64, key: &str, body: &str) -> (Exchange, Option<LocalReply>) {
    match send(cfg, store, now_ms, key, "/v1/chat/completions", body) {
        (ex, BodyAction::Reply(r)) => (ex, Some(r)),
        (ex, BodyAction::Forward { .. }) => (ex, None),
    }
}

fn send(cfg: &Config, store: &MemoryStore, now_ms: u64, key: &str, path: &str, body: &str) -> (Exchange, BodyAction) {
    let env = Env { now_ms, store };
    let mut ex = Exchange::new();
    let auth = format!("Bearer {key}");
    let head = RequestHead { method: "POST", path, authorization: Some(&auth), ..Default::default() };
    match ex.on_request_headers(cfg, &head, &env) {
        HeadAction::Reply(r) => return (ex, BodyAction::Reply(r)),
        HeadAction::ReadBody(_) => {}
    }
    let a = ex.on_request_body(cfg, body.as_bytes(), &env);
    (ex, a)
}

/// The body that goes upstream (the client's own bytes when the action replaces none).
fn forwarded(a: &BodyAction, raw: &str) -> Value {
    match a {
        BodyAction::Forward { body: Some(b), .. } => serde_json::from_slice(b).unwrap(),
        BodyAction::Forward { body: None, .. } => serde_json::from_str(raw).unwrap(),
        BodyAction::Reply(r) => panic!("refused: {}", String::from_utf8_lossy(&r.body)),
    }
}

/// The admission estimate as the README states it, in micro-credits, for the test models
/// (1 credit per 1000 prompt or completion tokens): ceil(bytes / 4) + max_tokens x choices.
fn reservation(body: &str, max_tokens: u64, choices: u64) -> u64 {
    (body.len() as u64).div_ceil(4) * 1000 + max_tokens * choices * 1000
}

fn header<'a>(r: &'a LocalReply, name: &str) -> Option<&'a str> {
    r.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

const CHAT: &str = r#"{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}"#;
const FREE: &str = r#"{"model":"free","messages":[{"role":"user","content":"hi"}]}"#;

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
    assert!(edits.contains(&HeaderEdit::Set("content-length".into(), b.len().to_string())));
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
        k.spend_cap = None;
    }
    let statuses: Vec<_> = (0..3).map(|_| run(&uncapped, &s, t, "sk-capq", FREE).1.map(|r| r.status)).collect();
    assert_eq!(statuses, [None, None, Some(429)]);
    assert!(String::from_utf8_lossy(&run(&uncapped, &s, t + 60_000, "sk-capq", FREE).1.unwrap().body).contains("sandbox_quota_exceeded"));
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
    ex.on_response_chunk(b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"abcdefgh\"}}]}\n\n", false, 1 << 20);
    let out = ex.on_done(&c, &Env { now_ms: 0, store: &s });
    assert!(out.estimated);
    let billed = out.micros;
    assert_eq!(billed, (out.usage.prompt_tokens + out.usage.completion_tokens) * 1000);
    assert_eq!(limits::spend_state(&s, key).unwrap(), (billed, 0));
}

#[test]
fn stream_chunks_of_whole_unchanged_events_pass_and_any_split_gives_the_same_bytes() {
    let c = cfg();
    let body = r#"{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#;
    let stream = concat!(
        "data: {\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n",
        // (the usage chunk is parsed and written again: its keys are in that order already)
        "data: {\"choices\":[],\"model\":\"m\",\"usage\":{\"completion_tokens\":1,\"prompt_tokens\":2}}\n\n",
        "data: [DONE]\n\n",
    )
    .as_bytes();
    let feed = |cuts: &[usize]| -> (Vec<u8>, Vec<bool>) {
        let (mut ex, r) = run(&c, &MemoryStore::new(), 0, "sk-a", body);
        assert!(r.is_none());
        ex.on_response_headers(200, Some("text/event-stream"));
        let (mut client, mut passed) = (Vec::new(), Vec::new());
        let mut start = 0;
        for (i, &end) in cuts.iter().chain([stream.len()].iter()).enumerate() {
            let piece = &stream[start..end];
            let last = i == cuts.len();
            match ex.on_response_chunk(piece, last, 1 << 20) {
                ChunkAction::Pass => {
                    client.extend_from_slice(piece);
                    passed.push(true);
                }
                ChunkAction::Replace(b) => {
                    client.extend_from_slice(&b);
                    passed.push(false);
                }
                ChunkAction::Buffer => panic!("a stream is never buffered"),
            }
            start = end;
        }
        assert_eq!(ex.usage.map(|u| u.prompt_tokens), Some(2));
        (client, passed)
    };
    let events: Vec<usize> = stream.windows(2).enumerate().filter(|(_, w)| w == b"\n\n").map(|(i, _)| i + 2).collect();
    let (whole, passed) = feed(&events[..events.len() - 1]);
    assert_eq!(whole, stream);
    assert!(passed.iter().all(|p| *p), "{passed:?}");
    for cut in 1..stream.len() {
        assert_eq!(feed(&[cut]).0, whole, "split at {cut}");
    }
}

impl Exchange {
    /// The billing record as it was written before (a `Map`, then serialized): the reference.
    fn record_by_map(&mut self, cfg: &Config, u: &Usage, estimated: bool, micros: u64) -> Vec<u8> {
        let key = self.key.and_then(|k| cfg.key(k));
        let account = self.account.and_then(|a| cfg.account(a));
        let cluster = self.cluster.and_then(|c| cfg.clusters.get(c));
        let forwarded = self.model.is_some() && !self.local_reply;
        let end = self.now_ms.max(self.start_ms);
        let mut r = Map::new();
        let mut put = |k: &str, v: Value| {
            r.insert(k.to_string(), v);
        };
        put("time", Value::String(rfc3339(self.start_ms)));
        put("client_request_id", self.client_request_id.clone().map(Value::String).unwrap_or(Value::Null));
        put("request_id", Value::String(self.request_id.clone()));
        put("key_id", key.map(|k| Value::String(k.id.clone())).unwrap_or(Value::Null));
        put("account_id", account.map(|a| Value::String(a.id.clone())).unwrap_or(Value::Null));
        put("endpoint", Value::String(self.endpoint.name().to_string()));
        put("model", self.model.clone().map(Value::String).unwrap_or(Value::Null));
        put("upstream_model", if forwarded { self.upstream_model.clone().map(Value::String).unwrap_or(Value::Null) } else { Value::Null });
        put("cluster", if forwarded { cluster.map(|c| Value::String(c.name.clone())).unwrap_or(Value::Null) } else { Value::Null });
        put("front", Value::String(self.front.as_str().to_string()));
        put("upstream", if forwarded { Value::String(self.upstream.as_str().to_string()) } else { Value::Null });
        put("stream", Value::Bool(self.stream));
        put("status", json!(self.status));
        put("error", self.error.map(|c| Value::String(c.as_str().to_string())).unwrap_or(Value::Null));
        put("prompt_tokens", json!(u.prompt_tokens));
        put("completion_tokens", json!(u.completion_tokens));
        put("cached_tokens", json!(u.cached_tokens));
        put("reasoning_tokens", json!(u.reasoning_tokens));
        put("units", self.units.filter(|_| forwarded).map(|n| json!(n)).unwrap_or(Value::Null));
        put("credits", json!(micros as f64 / 1e6));
        put("estimated", Value::Bool(estimated));
        put("complete", Value::Bool(self.local_reply || self.response_done));
        put("duration_ms", json!(end.saturating_sub(self.start_ms)));
        put("ttfb_ms", self.first_byte_ms.map(|t| json!(t.saturating_sub(self.start_ms))).unwrap_or(Value::Null));
        if let Some((req, resp)) = self.content.take() {
            put("request_body", Value::String(String::from_utf8_lossy(&req).into_owned()));
            put("response_body", Value::String(String::from_utf8_lossy(&resp).into_owned()));
        }
        serde_json::to_vec(&Value::Object(r)).unwrap_or_default()
    }
}

#[test]
fn record_is_written_as_the_map_wrote_it() {
    let (c, s) = (cfg(), MemoryStore::new());
    let cases: [fn(&mut Exchange); 4] = [
        |_| {},
        |ex| {
            ex.local_reply = true;
            ex.units = Some(2.5);
        },
        |ex| {
            ex.units = Some(f64::NAN);
            ex.request_id = "r\"i\u{1}d\u{e9}".into();
            ex.client_request_id = Some("c\"id".into());
            ex.content = Some((b"{\"a\":\"\xff\"}".to_vec(), b"resp\n".to_vec()));
            ex.first_byte_ms = Some(5);
            ex.error = Some(Code::UpstreamError);
            ex.response_done = true;
        },
        |ex| {
            ex.model = None;
            ex.key = None;
            ex.account = None;
            ex.units = Some(3.0);
        },
    ];
    for (i, f) in cases.iter().enumerate() {
        let (mut x, _) = run(&c, &s, 1_700_000_000_123 + i as u64 * 60_000, "sk-a", CHAT);
        x.status = 200;
        f(&mut x);
        let content = x.content.clone();
        let u = Usage { prompt_tokens: 3, completion_tokens: 4, cached_tokens: 1, reasoning_tokens: 2 };
        for (est, micros) in [(false, 0u64), (true, 1_234_567)] {
            x.content = content.clone();
            let new = x.record(&c, &u, est, micros);
            x.content = content.clone();
            let old = x.record_by_map(&c, &u, est, micros);
            // Same object; the Map's key order depends on serde_json's `preserve_order`
            // (a workspace build may turn it on), the written record is always sorted.
            let parsed = |b: &[u8]| serde_json::from_slice::<Value>(b).unwrap();
            assert_eq!(parsed(&new), parsed(&old), "case {i}");
            let keys: Vec<String> = parsed(&new).as_object().unwrap().keys().cloned().collect();
            let mut sorted = keys.clone();
            sorted.sort();
            assert_eq!(keys, sorted);
            assert_eq!(new.len(), old.len(), "case {i}");
        }
    }
}

#[test]
fn format_duration_style() {
    assert_eq!(format_duration(250), "250ms");
    assert_eq!(format_duration(1000), "1s");
    assert_eq!(format_duration(12_001), "13s");
}

fn head_of<'a>(method: &'a str, path: &'a str, auth: &'a str) -> RequestHead<'a> {
    RequestHead { method, path, authorization: Some(auth), ..Default::default() }
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
        let HeadAction::Reply(r) = ex.on_request_headers(&c, &head_of("POST", "/v1/chat/completions", "Bearer sk-a"), &env) else {
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
fn the_key_leaves_every_path_and_goog_key_counts_only_on_gemini_paths() {
    let c = cfg();
    let s = MemoryStore::new();
    let env = Env { now_ms: 1_700_000_040_000, store: &s };
    for (method, path, stripped) in [
        ("POST", "/v1beta/models/m:countTokens?key=sk-a", "/v1beta/models/m:countTokens"),
        ("POST", "/v1beta/models/m:embedContent?alt=x&key=sk-a", "/v1beta/models/m:embedContent?alt=x"),
        ("GET", "/v1/models?key=sk-a&x=1", "/v1/models?x=1"),
        ("GET", "/v1beta/files?key=sk-a", "/v1beta/files"),
        ("DELETE", "/v1/chat/completions?key=sk-a", "/v1/chat/completions"),
        ("GET", "/nowhere?key=sk-a&key=sk-b", "/nowhere"),
        ("POST", "/v1beta/models/m:generateContent?key=sk-a", "/v1beta/models/m:generateContent"),
    ] {
        let mut ex = Exchange::new();
        let head = RequestHead { method, path, ..Default::default() };
        let _ = ex.on_request_headers(&c, &head, &env);
        assert_eq!(ex.take_path_without_key().as_deref(), Some(stripped), "{path}");
    }
    // `x-goog-api-key` alone on an OpenAI or Anthropic path: no key (401).
    for path in ["/v1/chat/completions", "/v1/messages", "/v1/models"] {
        let mut ex = Exchange::new();
        let head = RequestHead { method: "POST", path, x_goog_api_key: Some("sk-a"), ..Default::default() };
        let HeadAction::Reply(r) = ex.on_request_headers(&c, &head, &env) else { panic!("{path}: admitted") };
        assert_eq!(r.status, 401, "{path}");
        assert_eq!(ex.key, None);
    }
    let mut ex = Exchange::new();
    let head = RequestHead { method: "GET", path: "/v1beta/models", x_goog_api_key: Some("sk-a"), ..Default::default() };
    let HeadAction::Reply(r) = ex.on_request_headers(&c, &head, &env) else { panic!() };
    assert_eq!(r.status, 200);
    let r = ex.path_strip_failed();
    assert_eq!(r.status, 500);
}

#[test]
fn record_ids_are_minted_and_the_clients_is_kept_apart() {
    let c = cfg();
    let s = MemoryStore::new();
    let env = Env { now_ms: 1_700_000_040_000, store: &s };
    let mut ex = Exchange::new();
    ex.request_id = format_request_id(0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210);
    assert_eq!(ex.request_id, "01234567-89ab-4def-bedc-ba9876543210");
    let head = RequestHead { request_id: Some(" my id\"\n/é "), ..head_of("GET", "/v1/models", "Bearer sk-a") };
    let _ = ex.on_request_headers(&c, &head, &env);
    assert_eq!(ex.client_request_id.as_deref(), Some("my_id__/_"));
    let rec: Value = serde_json::from_slice(&ex.on_done(&c, &env).record).unwrap();
    assert_eq!(rec["request_id"], "01234567-89ab-4def-bedc-ba9876543210");
    assert_eq!(rec["client_request_id"], "my_id__/_");
    assert_eq!(client_request_id(&"x".repeat(500)).map(|s| s.len()), Some(128));
    assert_eq!(client_request_id("  "), None);
}

#[test]
fn a_request_envoy_refused_before_the_filter_is_dated_now() {
    let c = cfg();
    let s = MemoryStore::new();
    let now = 1_700_000_040_000;
    let mut ex = Exchange::new();
    let o = ex.on_done(&c, &Env { now_ms: now, store: &s });
    let rec: Value = serde_json::from_slice(&o.record).unwrap();
    assert_eq!(rec["time"], rfc3339(now));
    assert_eq!(rec["duration_ms"], 0);
}

#[test]
fn upstream_errors_tell_the_sdk_whether_to_retry() {
    let (c, s) = (cfg(), MemoryStore::new());
    for (upstream, status, retry) in [(500u16, "502", "true"), (503, "502", "true"), (429, "429", "true"), (400, "400", "false")] {
        let (mut ex, r) = run(&c, &s, 1_700_000_000_000 + u64::from(upstream) * 60_000, "sk-a", CHAT);
        assert!(r.is_none());
        let edits = ex.on_response_headers(upstream, Some("application/json"));
        assert!(edits.contains(&HeaderEdit::Set(":status".into(), status.into())), "{upstream}: {edits:?}");
        assert!(edits.contains(&HeaderEdit::Set("x-should-retry".into(), retry.into())), "{upstream}: {edits:?}");
    }
}

#[test]
fn shape_refusals_come_before_any_path_and_use_no_limit() {
    let (c, s) = (cfg(), MemoryStore::new());
    let deep = |levels: usize| {
        format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":"hi","x":{}{}}}]}}"#,
            "[".repeat(levels),
            "]".repeat(levels)
        )
    };
    // The fast path's own scan skips deep values; the shape check refuses them first. Same
    // limit on every path: 61 arrays in a message (depth 64) pass, 62 do not.
    assert!(run(&c, &s, 0, "sk-a", &deep(61)).1.is_none());
    for body in [
        deep(62),
        deep(1_000_000),
        r#"{"model":"free","Model":"m","messages":[{"role":"user","content":"hi"}]}"#.to_string(),
        r#"{"model":"m","n":1,"N":4,"messages":[{"role":"user","content":"hi"}]}"#.to_string(),
    ] {
        let r = run(&c, &s, 0, "sk-a", &body).1.unwrap();
        assert_eq!(r.status, 400);
        assert!(String::from_utf8_lossy(&r.body).contains("bad_request"));
    }
    // None of them took a rate slot: two of the account's three are left.
    let statuses: Vec<_> = (0..3).map(|_| run(&c, &s, 0, "sk-a", CHAT).1.map(|r| r.status)).collect();
    assert_eq!(statuses, [None, None, Some(429)]);
}

#[test]
fn limit_refusals_of_a_known_model_are_counted_and_recorded_under_it() {
    // 402 (spend cap) on the fast path (`m`) and the general one (`m2`, renamed upstream), 429
    // (sandbox quota): the model was named and valid, so the record and the stats carry it.
    let (c, s) = (cfg(), MemoryStore::new());
    let big = |m: &str| format!(r#"{{"model":"{m}","max_tokens":100000,"messages":[{{"role":"user","content":"hi"}}]}}"#);
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
fn upload_limit_message_states_the_limit_in_bytes_even_under_one_mb() {
    assert_eq!(too_large_upload(500_000, 500_001).message, "The upload is larger than the limit of 500000 bytes (500001 bytes)");
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

#[test]
fn a_bodyless_upstream_error_is_answered_in_the_callers_dialect() {
    let (c, s) = (cfg(), MemoryStore::new());
    let (mut ex, r) = run(&c, &s, 1000, "sk-a", CHAT);
    assert!(r.is_none());
    // Not an error: nothing to answer.
    let _ = ex.on_response_headers(200, Some("application/json"));
    assert!(ex.bodyless_error_reply(&c, None).is_none());
    let (mut ex, _) = run(&c, &s, 1000, "sk-a", CHAT);
    let _ = ex.on_response_headers(503, None);
    let r = ex.bodyless_error_reply(&c, Some("cluster_not_found")).unwrap();
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!((r.status, v["error"]["code"].as_str()), (502, Some("upstream_error")));
    assert_eq!(
        v["error"]["message"],
        "The gateway is misconfigured: its cluster 'c' is not defined in Envoy (clusters[].name must name an Envoy cluster)"
    );
    assert_eq!(header(&r, "x-should-retry"), Some("false"));
    assert_eq!(header(&r, "x-ratelimit-limit-requests"), Some("3"));
    // Any other bodyless failure: the usual upstream error, retryable.
    let r = ex.bodyless_error_reply(&c, Some("via_upstream")).unwrap();
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["error"]["message"], "The generation service failed (upstream status 503): no details");
    assert_eq!(header(&r, "x-should-retry"), Some("true"));
}
