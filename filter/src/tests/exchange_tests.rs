//! Tests of `exchange.rs` (in their own file, so test code is found by its path).
use super::*;
use crate::config::Config;
use crate::limits::MemoryStore;
use serde_json::Map;

fn cfg() -> Config {
    let h = |k: &str| keys::to_hex(&keys::sha256(k.as_bytes()));
    let j = format!(
        r#"{{"clusters":[{{"name":"c"}}],
        "models":[{{"id":"m","type":"text","cluster":"c","price":{{"prompt_per_1k":1,"completion_per_1k":1}}}},
                  {{"id":"free","type":"text","cluster":"c","sandbox":true}}],
        "accounts":[{{"id":"a","rpm":3}},{{"id":"b","rpm":100}}],
        "keys":[{{"id":"k","sha256":"{}","account":"a","sandbox_daily_quota":2}},
                {{"id":"capped","sha256":"{}","account":"b","spend_cap":0.05}}]}}"#,
        h("sk-a"),
        h("sk-capped")
    );
    Config::parse(j.as_bytes()).unwrap()
}

fn run(cfg: &Config, store: &MemoryStore, now_ms: u64, key: &str, body: &str) -> (Exchange, Option<LocalReply>) {
    let env = Env { now_ms, store };
    let mut ex = Exchange::new();
    let auth = format!("Bearer {key}");
    let head = RequestHead { method: "POST", path: "/v1/chat/completions", authorization: Some(&auth), ..Default::default() };
    match ex.on_request_headers(cfg, &head, &env) {
        HeadAction::Reply(r) => return (ex, Some(r)),
        HeadAction::ReadBody(_) => {}
    }
    match ex.on_request_body(cfg, body.as_bytes(), &env) {
        BodyAction::Reply(r) => (ex, Some(r)),
        BodyAction::Forward { .. } => (ex, None),
    }
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
    for i in 0..100 {
        let (mut ex, r) = run(&c, &s, i * 100_000, "sk-capped", CHAT);
        match r {
            None => {
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
    let (spent, reserved) = limits::spend_state(&s, "spend:key:capped").unwrap();
    assert_eq!(reserved, 0);
    assert!(spent <= 50_000, "spent {spent} over the cap");
    assert!(admitted >= 3, "admitted only {admitted}");
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
