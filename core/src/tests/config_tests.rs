//! Tests of `config.rs` (in their own file, so test code is found by its path).
use super::*;

pub fn demo_json() -> String {
    let h = |k: &str| keys::to_hex(&keys::sha256(k.as_bytes()));
    format!(
        r#"{{
  "defaults": {{"owned_by": "quickcasa"}},
  "clusters": [{{"name": "text", "dialect": "openai", "api_key": "upstream-secret"}},
           {{"name": "image"}}],
  "models": [
{{"id": "qai-flash", "type": "text", "cluster": "text", "upstream_model": "flash-v1",
  "price": {{"prompt_per_1k": 0.5, "completion_per_1k": 1.5}}}},
{{"id": "qai-hello-world", "type": "text", "cluster": "text", "sandbox": true}},
{{"id": "qai-imagine-turbo", "type": "image", "cluster": "image", "price": {{"per_image": 4}}}}
  ],
  "accounts": [{{"id": "a1", "rpm": 1000}}, {{"id": "a2", "status": "inactive"}}],
  "keys": [
{{"id": "k-active", "sha256": "{}", "account": "a1"}},
{{"id": "k-inactive", "sha256": "{}", "account": "a2"}}
  ]
}}"#,
        h("sk-active"),
        h("sk-inactive")
    )
}

pub fn demo() -> Config {
    Config::parse(demo_json().as_bytes()).unwrap()
}

#[test]
fn parses_demo() {
    let c = demo();
    assert_eq!(c.models.len(), 3);
    let m = c.model("qai-flash").unwrap();
    assert_eq!(m.upstream_model, "flash-v1");
    assert_eq!(m.owned_by, "quickcasa");
    assert_eq!(c.cluster_of(m).unwrap().name, "text");
    assert_eq!(c.model("qai-hello-world").unwrap().upstream_model, "qai-hello-world");
    assert_eq!(c.accounts[0].rpm, 1000);
    assert_eq!(c.accounts[1].rpm, DEFAULT_RPM);
    assert_eq!(c.keys[0].sandbox_daily_quota, DEFAULT_SANDBOX_DAILY);
    assert_eq!(c.clusters[0].base_path, "/v1");
    assert_eq!(c.cluster_header, "x-tollgate-cluster");
}

#[test]
fn errors_say_what_and_where() {
    let bad = demo_json().replace("\"cluster\": \"image\"", "\"cluster\": \"nope\"");
    let e = Config::parse(bad.as_bytes()).unwrap_err();
    assert!(e.contains("models[2].cluster") && e.contains("nope"), "{e}");

    let bad = demo_json().replace("\"account\": \"a2\"", "\"account\": \"zz\"");
    let e = Config::parse(bad.as_bytes()).unwrap_err();
    assert!(e.contains("keys[1].account"), "{e}");

    let e = Config::parse(br#"{"keys":[{"id":"x","sha256":"abc","account":"a"}]}"#).unwrap_err();
    assert!(e.contains("keys[0].sha256"), "{e}");

    let e = Config::parse(br#"{"modles": []}"#).unwrap_err();
    assert!(e.contains("unknown field") && e.contains("modles"), "{e}");

    let e = Config::parse(b"{not json").unwrap_err();
    assert!(e.starts_with("configuration:"), "{e}");

    let dup = demo_json().replace("sk-inactive", "sk-active");
    let _ = dup; // hashes are computed before replace; build a real duplicate instead
    let h = keys::to_hex(&keys::sha256(b"x"));
    let j = format!(
        r#"{{"accounts":[{{"id":"a"}}],"keys":[{{"id":"1","sha256":"{h}","account":"a"}},{{"id":"2","sha256":"{h}","account":"a"}}]}}"#
    );
    let e = Config::parse(j.as_bytes()).unwrap_err();
    assert_eq!(e, format!("keys[1].sha256: duplicate sha256 {h} (the same as keys[0])"));
}

#[test]
fn duplicate_ids_are_refused_naming_the_place() {
    let h = |k: &str| keys::to_hex(&keys::sha256(k.as_bytes()));
    // Key ids: three keys, the third reuses the first's id.
    let j = format!(
        r#"{{"accounts":[{{"id":"a"}}],"keys":[{{"id":"x","sha256":"{}","account":"a"}},{{"id":"y","sha256":"{}","account":"a"}},{{"id":"x","sha256":"{}","account":"a"}}]}}"#,
        h("k1"),
        h("k2"),
        h("k3")
    );
    assert_eq!(Config::parse(j.as_bytes()).unwrap_err(), "keys[2].id: duplicate id 'x' (the same as keys[0])");
    // The same hash at keys[0] and keys[2] (sorted by hash, the indices still name both places).
    let j = format!(
        r#"{{"accounts":[{{"id":"a"}}],"keys":[{{"id":"x","sha256":"{}","account":"a"}},{{"id":"y","sha256":"{}","account":"a"}},{{"id":"z","sha256":"{}","account":"a"}}]}}"#,
        h("k1"),
        h("k2"),
        h("k1")
    );
    assert_eq!(
        Config::parse(j.as_bytes()).unwrap_err(),
        format!("keys[2].sha256: duplicate sha256 {} (the same as keys[0])", h("k1"))
    );
    let e = Config::parse(br#"{"accounts":[{"id":"a"},{"id":"b"},{"id":"a"}]}"#).unwrap_err();
    assert_eq!(e, "accounts[2].id: duplicate id 'a'");
    let e = Config::parse(br#"{"clusters":[{"name":"c"},{"name":"c"}]}"#).unwrap_err();
    assert_eq!(e, "clusters[1].name: duplicate name 'c'");
    let e = Config::parse(
        br#"{"clusters":[{"name":"c"}],"models":[{"id":"m","type":"text","cluster":"c"},{"id":"m","type":"image","cluster":"c"}]}"#,
    )
    .unwrap_err();
    assert_eq!(e, "models[1].id: duplicate id 'm'");
    let e = Config::parse(br#"{"accounts":[{"id":"a"}],"keys":[{"id":"","sha256":"0000000000000000000000000000000000000000000000000000000000000000","account":"a"}]}"#)
        .unwrap_err();
    assert_eq!(e, "keys[0].id: must not be empty");
}

#[test]
fn empty_config_is_valid() {
    let c = Config::parse(b"{}").unwrap();
    assert!(c.key_table.is_empty());
}

#[test]
fn unknown_or_mistyped_fields_are_named_by_their_path() {
    let base = r#"{"clusters":[{"name":"c"}],"models":[{"id":"m","type":"text","cluster":"c"},
        {"id":"n","type":"text","cluster":"c","price":{"prompt_per_1k":1}}],
        "accounts":[{"id":"a"}],"keys":[{"id":"k","account":"a","sha256":"00"}]}"#;
    let cases = [
        (
            r#""cluster":"c","price":{"prompt_per_1k":1}"#,
            r#""cluster":"c","prise":{"prompt_per_1k":1}"#,
            "models[1]: unknown field `prise`",
        ),
        (r#""prompt_per_1k":1"#, r#""prompt_per_1kk":1"#, "models[1].price: unknown field `prompt_per_1kk`"),
        (
            r#""prompt_per_1k":1"#,
            r#""prompt_per_1k":1,"reasoning_per_1k":"x""#,
            "models[1].price: invalid type: string \"x\"",
        ),
        (
            r#"{"name":"c"}"#,
            r#"{"name":"c","headers":{"x-a":1}}"#,
            "clusters[0]: invalid type: integer `1`, expected a string",
        ),
        (r#"{"id":"a"}"#, r#"{"id":"a","rmp":3}"#, "accounts[0]: unknown field `rmp`"),
        (r#""sha256":"00""#, r#""sha256":"00","spend_cap":"x""#, "keys[0]: invalid type: string \"x\", expected f64"),
        (r#""clusters""#, r#""defaults":{"rpn":1},"clusters""#, "defaults: unknown field `rpn`"),
        (r#""clusters""#, r#""modles":[],"clusters""#, "configuration: unknown field `modles`"),
    ];
    for (from, to, want) in cases {
        let doc = base.replacen(from, to, 1);
        assert_ne!(doc, base);
        let e = Config::parse(doc.as_bytes()).unwrap_err();
        assert!(e.starts_with("configuration: ") && e.contains(want), "{e}");
        assert!(!e.contains(" line "), "{e}");
    }
    // Syntax errors keep their position.
    assert!(Config::parse(b"{\n  \"models\": [,]\n}").unwrap_err().contains("line 2 column"));
}

#[test]
fn account_metrics_is_opt_in() {
    assert!(!demo().account_metrics);
    let on = demo_json().replacen('{', r#"{"account_metrics": true,"#, 1);
    assert!(Config::parse(on.as_bytes()).unwrap().account_metrics);
}

/// `Config::parse_pieces` over `text` read `piece` bytes at a time; also counts the reads and
/// the largest one asked for.
fn parse_in_pieces(text: &[u8], piece: usize) -> (Result<Config, String>, usize, usize) {
    let (mut reads, mut largest) = (0, 0);
    let got = Config::parse_pieces(
        &mut |offset, max| {
            reads += 1;
            largest = largest.max(max);
            let end = offset.saturating_add(max.min(piece)).min(text.len());
            Ok(text.get(offset.min(end)..end).unwrap_or_default().to_vec())
        },
        text.len(),
    );
    (got, reads, largest)
}

fn keys_json(keys: &[(&str, &str, &str)]) -> String {
    let list: Vec<String> = keys
        .iter()
        .map(|(id, key, account)| {
            let sha = if key.len() == 64 || key.starts_with('!') {
                key.trim_start_matches('!').to_string()
            } else {
                keys::to_hex(&keys::sha256(key.as_bytes()))
            };
            format!(r#"{{"id":"{id}","sha256":"{sha}","account":"{account}"}}"#)
        })
        .collect();
    format!(r#"{{"accounts":[{{"id":"a"}},{{"id":"b"}}],"keys":[{}]}}"#, list.join(","))
}

#[test]
fn keys_may_come_before_the_accounts_and_defaults_they_use() {
    let h = |k: &str| keys::to_hex(&keys::sha256(k.as_bytes()));
    let j = format!(
        r#"{{"keys":[{{"id":"k1","sha256":"{}","account":"b"}},{{"id":"k2","sha256":"{}","account":"a","sandbox_daily_quota":3}},
            {{"id":"k3","sha256":"{}","account":"b","spend_cap":2.5,"log_content":true}}],
           "accounts":[{{"id":"a"}},{{"id":"b","status":"inactive"}}],
           "defaults":{{"sandbox_daily_quota":7}}}}"#,
        h("s1"),
        h("s2"),
        h("s3")
    );
    let c = Config::parse(j.as_bytes()).unwrap();
    let got: Vec<_> = c
        .keys
        .iter()
        .map(|k| (k.id.as_str(), k.account, k.sandbox_daily_quota, k.spend_cap(), k.log_content()))
        .collect();
    assert_eq!(got, [("k1", 1, 7, None, false), ("k2", 0, 3, None, false), ("k3", 1, 7, Some(2.5), true)]);
    for (i, s) in ["s1", "s2", "s3"].iter().enumerate() {
        assert_eq!(c.key_table.lookup(&keys::sha256(s.as_bytes())), Some(i as u32));
    }
    assert_eq!(c.key_table.lookup(&keys::sha256(b"s4")), None);
    assert_eq!(c.keys.capacity(), 3, "the reserved key arrays are trimmed to the keys read");
}

#[test]
fn parse_pieces_reads_any_pieces_to_the_same_config() {
    let j = demo_json();
    let whole = demo();
    for piece in [1, 2, 7, 64, 4096] {
        let (c, reads, largest) = parse_in_pieces(j.as_bytes(), piece);
        let c = c.unwrap();
        assert_eq!(c.keys, whole.keys, "piece {piece}");
        assert_eq!(c.accounts, whole.accounts);
        assert_eq!(c.clusters, whole.clusters);
        assert_eq!(c.models.len(), 3);
        assert_eq!(c.model("qai-flash").unwrap().upstream_model, "flash-v1");
        assert_eq!(c.key_table.len(), 2);
        assert_eq!(c.key_table.lookup(&keys::sha256(b"sk-inactive")), Some(1));
        // Never the whole text at once: pieces only, up to the end (one more read finds it).
        assert_eq!(largest, pieces::PIECE, "piece {piece}");
        assert_eq!(reads, j.len().div_ceil(piece) + 1, "piece {piece}");
    }
    // Every error is parse's: the text is then read whole and parsed as one.
    let cases: Vec<Vec<u8>> = vec![
        keys_json(&[("x", "s1", "a"), ("y", "s2", "zz")]).into_bytes(),
        br#"{"keys": [}"#.to_vec(),
        br#"{"keys": [{"id":"k","sha256":"00","account":"a","oops":1}]}"#.to_vec(),
        br#"{"clusters":[{"name":"c"}],"models":[{"id":"m","type":"text","cluster":"c","prise":{}}]}"#.to_vec(),
        br#"{"modles":[]}"#.to_vec(),
        br#"{"keys":[],"keys":[]}"#.to_vec(),
        br#"{"keys":[],"k\u0065ys":[]}"#.to_vec(),
        br#"{"accounts":[],"accounts":[]}"#.to_vec(),
        br#"{"keys":[]} x"#.to_vec(),
        br#"{"keys":[],}"#.to_vec(),
        br#"{"keys":[{"id":"k","sha256":"00","account":"a"},]}"#.to_vec(),
        // Not an object: serde reads a struct from an array too (all defaults), and so does this.
        br#"[]"#.to_vec(),
        b"".to_vec(),
        br#"{"max_body_bytes": 12x}"#.to_vec(),
        br#"{"max_body_bytes": 12"#.to_vec(),
    ];
    for text in &cases {
        let want = Config::parse(text).err();
        assert!(want.is_some() || text == b"[]", "{}", String::from_utf8_lossy(text));
        for piece in [1, 3, 4096] {
            assert_eq!(parse_in_pieces(text, piece).0.err(), want, "{} / {piece}", String::from_utf8_lossy(text));
        }
    }
    // What the splitting does not take apart still parses, whole: an escaped member name.
    let escaped = demo_json().replacen("\"keys\"", "\"k\\u0065ys\"", 1);
    assert_eq!(parse_in_pieces(escaped.as_bytes(), 5).0.unwrap().keys, whole.keys);
    // Scalars at the very end, strings with escaped quotes and brackets, nested values.
    let odd =
        br#"{"span_attributes":true,"clusters":[{"name":"c\"]}","headers":{"x-a":"[{\"}"}}],"max_body_bytes":77}"#;
    for piece in [1, 2, 5] {
        let (c, reads, _) = parse_in_pieces(odd, piece);
        let c = c.unwrap();
        assert_eq!(reads, odd.len().div_ceil(piece) + 1, "split in pieces, not read again whole");
        assert_eq!((c.max_body_bytes, c.span_attributes, c.clusters[0].name.as_str()), (77, true, "c\"]}"));
        assert_eq!(c.clusters[0].headers, [("x-a".to_string(), "[{\"}".to_string())]);
    }
}

#[test]
fn the_first_bad_key_is_named_as_a_key_by_key_check_would() {
    let p = |keys: &[(&str, &str, &str)]| Config::parse(keys_json(keys).as_bytes()).unwrap_err();
    let bad_sha = "!abc";
    assert_eq!(
        p(&[("x", "s1", "a"), ("y", "s2", "zz"), ("z", bad_sha, "a")]),
        "keys[1].account: no account 'zz' in 'accounts'"
    );
    assert_eq!(
        p(&[("x", "s1", "a"), ("y", bad_sha, "a"), ("z", "s3", "zz")]),
        "keys[1].sha256: must be 64 hexadecimal characters (the SHA-256 of the key)"
    );
    // At one key: its sha256, then its account.
    assert_eq!(
        p(&[("x", "s1", "a"), ("y", bad_sha, "zz")]),
        "keys[1].sha256: must be 64 hexadecimal characters (the SHA-256 of the key)"
    );
    // Two unknown accounts: the first key naming one.
    assert_eq!(
        p(&[("x", "s1", "qq"), ("y", "s2", "zz"), ("z", "s3", "qq")]),
        "keys[0].account: no account 'qq' in 'accounts'"
    );
    assert_eq!(
        p(&[("x", "s1", "a"), ("y", "s2", "zz"), ("z", "s3", "qq")]),
        "keys[1].account: no account 'zz' in 'accounts'"
    );
    // At one key: its account, then its spend cap.
    let j = keys_json(&[("x", "s1", "zz")]).replace(r#""account":"zz""#, r#""account":"zz","spend_cap":-1"#);
    assert_eq!(Config::parse(j.as_bytes()).unwrap_err(), "keys[0].account: no account 'zz' in 'accounts'");
    let j = keys_json(&[("x", "s1", "a"), ("y", "s2", "zz")])
        .replace(r#""account":"a""#, r#""account":"a","spend_cap":-1"#);
    assert_eq!(Config::parse(j.as_bytes()).unwrap_err(), "keys[0].spend_cap: must be a non-negative number");
    // Ids: an empty one or a repeated one, whichever comes first.
    assert_eq!(p(&[("a", "s1", "a"), ("", "s2", "a"), ("a", "s3", "a")]), "keys[1].id: must not be empty");
    assert_eq!(
        p(&[("a", "s1", "a"), ("a", "s2", "a"), ("", "s3", "a")]),
        "keys[1].id: duplicate id 'a' (the same as keys[0])"
    );
    assert_eq!(
        p(&[
            ("b", "s1", "a"),
            ("a", "s2", "a"),
            ("c", "s3", "a"),
            ("a", "s4", "a"),
            ("b", "s5", "a"),
            ("a", "s6", "a")
        ]),
        "keys[3].id: duplicate id 'a' (the same as keys[1])"
    );
    assert_eq!(p(&[("", "s1", "a"), ("", "s2", "a")]), "keys[0].id: must not be empty");
}

#[test]
fn a_length_too_large_to_reserve_is_not_an_error() {
    let j = demo_json();
    let c = Config::parse_pieces(
        &mut |offset, max| {
            let end = offset.saturating_add(max).min(j.len());
            Ok(j.as_bytes().get(offset.min(end)..end).unwrap_or_default().to_vec())
        },
        usize::MAX,
    )
    .unwrap();
    assert_eq!(c.keys, demo().keys);
}

#[test]
fn limits_store_is_local_by_default_and_remote_is_validated() {
    let with = |limits: &str| {
        let j = demo_json().replacen("\"defaults\"", &format!("\"limits\": {limits},\n  \"defaults\""), 1);
        Config::parse(j.as_bytes())
    };
    assert_eq!(demo().limits, LimitsStore::Local);
    assert_eq!(with(r#"{"store": "local"}"#).unwrap().limits, LimitsStore::Local);
    assert_eq!(
        with(r#"{"store": "remote", "cluster": "limits"}"#).unwrap().limits,
        LimitsStore::Remote(RemoteLimits {
            cluster: "limits".into(),
            timeout_ms: DEFAULT_LIMITS_TIMEOUT_MS,
            fallback: Fallback::Closed,
            replicas: 1,
            hold_ttl_ms: DEFAULT_HOLD_TTL_MS,
        })
    );
    let full = r#"{"store": "remote", "cluster": "lim", "timeout_ms": 25, "fallback": "local", "replicas": 3, "hold_ttl_ms": 400000}"#;
    assert_eq!(
        with(full).unwrap().limits,
        LimitsStore::Remote(RemoteLimits {
            cluster: "lim".into(),
            timeout_ms: 25,
            fallback: Fallback::Local,
            replicas: 3,
            hold_ttl_ms: 400_000,
        })
    );
    for (limits, error) in [
        (
            r#"{"store": "remote", "clutser": "x"}"#,
            "configuration: limits: unknown field `clutser`, expected one of `store`, `cluster`, `timeout_ms`, `fallback`, `replicas`, `hold_ttl_ms`",
        ),
        (r#"{"store": "redis"}"#, r#"limits.store: "redis" is not "local" or "remote""#),
        (r#"{"store": "remote"}"#, "limits.cluster: the Envoy cluster of the limits service is required"),
        (r#"{"store": "remote", "cluster": ""}"#, "limits.cluster: the Envoy cluster of the limits service is required"),
        (r#"{"cluster": "limits"}"#, r#"limits.cluster: only with store "remote""#),
        (r#"{"store": "remote", "cluster": "l", "timeout_ms": 0}"#, "limits.timeout_ms: must be 1 to 1000"),
        (r#"{"store": "remote", "cluster": "l", "timeout_ms": 1001}"#, "limits.timeout_ms: must be 1 to 1000"),
        (r#"{"store": "remote", "cluster": "l", "fallback": "open"}"#, r#"limits.fallback: "open" is not "closed" or "local""#),
        (r#"{"store": "remote", "cluster": "l", "replicas": 0}"#, "limits.replicas: must be at least 1"),
        (
            r#"{"store": "remote", "cluster": "l", "hold_ttl_ms": 999}"#,
            "limits.hold_ttl_ms: must be at least 1000 (and at least the longest route timeout)",
        ),
    ] {
        assert_eq!(with(limits).unwrap_err(), error, "{limits}");
    }
}

#[test]
fn allowed_models_must_name_configured_models() {
    let h = keys::to_hex(&keys::sha256(b"k"));
    let with = |list: &str| {
        format!(
            r#"{{"clusters":[{{"name":"c"}}],"models":[{{"id":"qai-flash","type":"text","cluster":"c"}}],
            "accounts":[{{"id":"a"}}],"keys":[{{"id":"k","sha256":"{h}","account":"a","allowed_models":{list}}}]}}"#
        )
    };
    assert!(Config::parse(with(r#"["qai-flash"]"#).as_bytes()).is_ok());
    assert!(Config::parse(with(r#"["qai-*"]"#).as_bytes()).is_ok());
    let err = |list: &str| Config::parse(with(list).as_bytes()).unwrap_err();
    assert_eq!(err("[]"), "keys[0].allowed_models: must name at least one model (leave it out for every model)");
    assert_eq!(err(r#"["*"]"#), "keys[0].allowed_models: '*' is not a model id or a prefix ending in '*'");
    assert_eq!(err(r#"["qai-max"]"#), "keys[0].allowed_models: 'qai-max' names no model in 'models'");
    assert_eq!(err(r#"["x*"]"#), "keys[0].allowed_models: 'x*' names no model in 'models'");
}

#[test]
fn cached_and_reasoning_prices_are_optional_and_non_negative() {
    let doc = |price: &str| {
        format!(
            r#"{{"clusters":[{{"name":"c"}}],"models":[{{"id":"m","type":"text","cluster":"c","price":{price}}}]}}"#
        )
    };
    let c = Config::parse(doc(r#"{"prompt_per_1k":1,"cached_prompt_per_1k":0.5,"reasoning_per_1k":3}"#).as_bytes())
        .unwrap();
    let p = c.model("m").unwrap().price;
    assert_eq!((p.cached_prompt_per_1k, p.reasoning_per_1k), (Some(0.5), Some(3.0)));
    let p = Config::parse(doc(r#"{"prompt_per_1k":1}"#).as_bytes()).unwrap().model("m").unwrap().price;
    assert_eq!((p.cached_prompt_per_1k, p.reasoning_per_1k), (None, None));
    assert_eq!(p.cache_write_per_1k, None);
    let p = Config::parse(doc(r#"{"prompt_per_1k":1,"cache_write_per_1k":1.25}"#).as_bytes())
        .unwrap()
        .model("m")
        .unwrap()
        .price;
    assert_eq!(p.cache_write_per_1k, Some(1.25));
    for name in ["cached_prompt_per_1k", "reasoning_per_1k", "cache_write_per_1k"] {
        let e = Config::parse(doc(&format!(r#"{{"{name}":-1}}"#)).as_bytes()).unwrap_err();
        assert_eq!(e, format!("models[0].price.{name}: must be a non-negative number"));
    }
}
