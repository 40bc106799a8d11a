//! Exchange tests: The billing record: its bytes, ids and date.
use super::*;

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
        put("key_id", key.map(|k| Value::String(k.id.to_string())).unwrap_or(Value::Null));
        put("account_id", account.map(|a| Value::String(a.id.clone())).unwrap_or(Value::Null));
        put("endpoint", Value::String(self.endpoint.name().to_string()));
        put("model", self.model.clone().map(Value::String).unwrap_or(Value::Null));
        put(
            "upstream_model",
            if forwarded { self.upstream_model.clone().map(Value::String).unwrap_or(Value::Null) } else { Value::Null },
        );
        put(
            "cluster",
            if forwarded { cluster.map(|c| Value::String(c.name.clone())).unwrap_or(Value::Null) } else { Value::Null },
        );
        put("front", Value::String(self.front.as_str().to_string()));
        put("upstream", if forwarded { Value::String(self.upstream.as_str().to_string()) } else { Value::Null });
        put("stream", Value::Bool(self.stream));
        let served = forwarded && (200..300).contains(&self.status);
        put(
            "served_model",
            if served { self.model.clone().map(Value::String).unwrap_or(Value::Null) } else { Value::Null },
        );
        put("status", json!(self.status));
        put("error", self.error.map(|c| Value::String(c.as_str().to_string())).unwrap_or(Value::Null));
        put("prompt_tokens", json!(u.prompt_tokens));
        put("completion_tokens", json!(u.completion_tokens));
        put("cache_creation_tokens", json!(u.cache_creation_tokens));
        put("cached_tokens", json!(u.cached_tokens));
        put("reasoning_tokens", json!(u.reasoning_tokens));
        put("units", self.units.filter(|_| forwarded).map(|n| json!(n)).unwrap_or(Value::Null));
        let served = forwarded && (200..300).contains(&self.status);
        put("served_model", self.model.clone().filter(|_| served).map(Value::String).unwrap_or(Value::Null));
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
        let u = Usage {
            prompt_tokens: 9,
            completion_tokens: 4,
            cached_tokens: 1,
            reasoning_tokens: 2,
            cache_creation_tokens: 5,
        };
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
fn dates_and_request_ids_are_written_as_the_formatting_machinery_writes_them() {
    let by_format = |ms: u64| {
        let secs = ms / 1000;
        let rem = secs % 86_400;
        let (y, m, d) = crate::exchange::record::civil_from_days(secs / 86_400);
        format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z", rem / 3600, rem % 3600 / 60, rem % 60, ms % 1000)
    };
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(rfc3339(1_700_000_040_123), "2023-11-14T22:14:00.123Z");
    assert_eq!(rfc3339(951_782_400_007), "2000-02-29T00:00:00.007Z");
    // Year 10000 and later: five digits, as `{:04}` writes them.
    assert_eq!(rfc3339(253_402_300_800_000), "10000-01-01T00:00:00.000Z");
    let mut ms = 1u64;
    while ms < 1 << 52 {
        for t in [ms, ms * 3 + 7, ms * 7 + 999, ms.wrapping_mul(0x9e37) % (1 << 50)] {
            assert_eq!(rfc3339(t), by_format(t), "{t}");
        }
        ms = ms * 2 + 1;
    }
    let by_format_id = |hi: u64, lo: u64| {
        let hi = (hi & !0xf000) | 0x4000;
        let lo = (lo & !(0xc000 << 48)) | (0x8000 << 48);
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            hi >> 32,
            (hi >> 16) & 0xffff,
            hi & 0xffff,
            lo >> 48,
            lo & 0xffff_ffff_ffff
        )
    };
    let mut x = 0x0123_4567_89ab_cdefu64;
    for _ in 0..1000 {
        let y = x.rotate_left(17) ^ 0xfedc_ba98_7654_3210;
        assert_eq!(format_request_id(x, y), by_format_id(x, y));
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
    }
    assert_eq!(format_request_id(0, 0), "00000000-0000-4000-8000-000000000000");
}

proptest::proptest! {
    /// Each kind of record value is written as serde_json writes it (the record's bytes before).
    #[test]
    fn record_values_are_written_as_serde_writes_them(
        s in "[a\"\\\\\u{0}\u{1f}\u{7f}\u{e9}\u{2028}\u{1F600} ]{0,30}",
        n in proptest::prelude::any::<u64>(),
        m in proptest::prelude::any::<u16>(),
        b in proptest::prelude::any::<bool>(),
        f in proptest::prelude::any::<f64>(),
    ) {
        use super::super::record::Record;
        let mut r = Record(Vec::new());
        r.field("s", s.as_str());
        r.field("owned", &Some(s.clone()));
        r.field("none", &None::<&str>);
        r.field("n", &n);
        r.field("m", &m);
        r.field("b", &b);
        r.field("opt_n", &Some(n));
        r.field("f", &serde_json::Value::from(f));
        let fields: [(&str, serde_json::Value); 8] = [
            ("s", s.clone().into()),
            ("owned", s.clone().into()),
            ("none", serde_json::Value::Null),
            ("n", n.into()),
            ("m", m.into()),
            ("b", b.into()),
            ("opt_n", n.into()),
            ("f", f.into()),
        ];
        let mut expected = Vec::new();
        for (k, v) in fields {
            expected.push(if expected.is_empty() { b'{' } else { b',' });
            expected.extend_from_slice(format!("\"{k}\":").as_bytes());
            serde_json::to_writer(&mut expected, &v).unwrap();
        }
        proptest::prop_assert_eq!(String::from_utf8_lossy(&r.0), String::from_utf8_lossy(&expected));
    }
}
