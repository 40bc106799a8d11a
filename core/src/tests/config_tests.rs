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
    let j = format!(r#"{{"accounts":[{{"id":"a"}}],"keys":[{{"id":"1","sha256":"{h}","account":"a"}},{{"id":"2","sha256":"{h}","account":"a"}}]}}"#);
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
        (r#""cluster":"c","price":{"prompt_per_1k":1}"#, r#""cluster":"c","prise":{"prompt_per_1k":1}"#, "models[1]: unknown field `prise`"),
        (r#""prompt_per_1k":1"#, r#""prompt_per_1kk":1"#, "models[1].price: unknown field `prompt_per_1kk`"),
        (r#"{"name":"c"}"#, r#"{"name":"c","headers":{"x-a":1}}"#, "clusters[0]: invalid type: integer `1`, expected a string"),
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

/// A `Read` handing out at most `piece` bytes a call, as the filter reads the host's buffer.
struct Pieces<'a> {
    text: &'a [u8],
    piece: usize,
}

impl std::io::Read for Pieces<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.piece).min(self.text.len());
        let (head, rest) = self.text.split_at(n);
        buf[..n].copy_from_slice(head);
        self.text = rest;
        Ok(n)
    }
}

fn keys_json(keys: &[(&str, &str, &str)]) -> String {
    let list: Vec<String> = keys
        .iter()
        .map(|(id, key, account)| {
            let sha = if key.len() == 64 || key.starts_with('!') { key.trim_start_matches('!').to_string() } else { keys::to_hex(&keys::sha256(key.as_bytes())) };
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
    let got: Vec<_> = c.keys.iter().map(|k| (k.id.as_str(), k.account, k.sandbox_daily_quota, k.spend_cap, k.log_content)).collect();
    assert_eq!(got, [("k1", 1, 7, None, false), ("k2", 0, 3, None, false), ("k3", 1, 7, Some(2.5), true)]);
    for (i, s) in ["s1", "s2", "s3"].iter().enumerate() {
        assert_eq!(c.key_table.lookup(&keys::sha256(s.as_bytes())), Some(i as u32));
    }
    assert_eq!(c.key_table.lookup(&keys::sha256(b"s4")), None);
    assert_eq!(c.keys.capacity(), 3, "the reserved key arrays are trimmed to the keys read");
}

#[test]
fn parse_reader_reads_any_pieces_to_the_same_config() {
    let j = demo_json();
    let whole = demo();
    for piece in [1, 7, 4096] {
        let c = Config::parse_reader(&mut Pieces { text: j.as_bytes(), piece }, j.len()).unwrap();
        assert_eq!(c.keys, whole.keys, "piece {piece}");
        assert_eq!(c.accounts, whole.accounts);
        assert_eq!(c.models.len(), 3);
        assert_eq!(c.key_table.len(), 2);
        assert_eq!(c.key_table.lookup(&keys::sha256(b"sk-inactive")), Some(1));
    }
    // The size is only a capacity bound: a wrong one changes nothing.
    let c = Config::parse_reader(&mut Pieces { text: j.as_bytes(), piece: 64 }, 0).unwrap();
    assert_eq!(c.keys, whole.keys);
    // Validation errors are the same words; syntax errors keep serde's position.
    let bad = keys_json(&[("x", "s1", "a"), ("y", "s2", "zz")]);
    let e = Config::parse_reader(&mut Pieces { text: bad.as_bytes(), piece: 5 }, bad.len()).unwrap_err();
    assert_eq!(e, "keys[1].account: no account 'zz' in 'accounts'");
    assert_eq!(e, Config::parse(bad.as_bytes()).unwrap_err());
    let e = Config::parse_reader(&mut Pieces { text: b"{\"keys\": [}", piece: 3 }, 11).unwrap_err();
    assert!(e.starts_with("configuration: ") && e.contains("line 1 column 11"), "{e}");
}

#[test]
fn the_first_bad_key_is_named_as_a_key_by_key_check_would() {
    let p = |keys: &[(&str, &str, &str)]| Config::parse(keys_json(keys).as_bytes()).unwrap_err();
    let bad_sha = "!abc";
    assert_eq!(p(&[("x", "s1", "a"), ("y", "s2", "zz"), ("z", bad_sha, "a")]), "keys[1].account: no account 'zz' in 'accounts'");
    assert_eq!(
        p(&[("x", "s1", "a"), ("y", bad_sha, "a"), ("z", "s3", "zz")]),
        "keys[1].sha256: must be 64 hexadecimal characters (the SHA-256 of the key)"
    );
    // At one key: its sha256, then its account.
    assert_eq!(p(&[("x", "s1", "a"), ("y", bad_sha, "zz")]), "keys[1].sha256: must be 64 hexadecimal characters (the SHA-256 of the key)");
    // Two unknown accounts: the first key naming one.
    assert_eq!(p(&[("x", "s1", "qq"), ("y", "s2", "zz"), ("z", "s3", "qq")]), "keys[0].account: no account 'qq' in 'accounts'");
    assert_eq!(p(&[("x", "s1", "a"), ("y", "s2", "zz"), ("z", "s3", "qq")]), "keys[1].account: no account 'zz' in 'accounts'");
    // At one key: its account, then its spend cap.
    let j = keys_json(&[("x", "s1", "zz")]).replace(r#""account":"zz""#, r#""account":"zz","spend_cap":-1"#);
    assert_eq!(Config::parse(j.as_bytes()).unwrap_err(), "keys[0].account: no account 'zz' in 'accounts'");
    let j = keys_json(&[("x", "s1", "a"), ("y", "s2", "zz")]).replace(r#""account":"a""#, r#""account":"a","spend_cap":-1"#);
    assert_eq!(Config::parse(j.as_bytes()).unwrap_err(), "keys[0].spend_cap: must be a non-negative number");
    // Ids: an empty one or a repeated one, whichever comes first.
    assert_eq!(p(&[("a", "s1", "a"), ("", "s2", "a"), ("a", "s3", "a")]), "keys[1].id: must not be empty");
    assert_eq!(p(&[("a", "s1", "a"), ("a", "s2", "a"), ("", "s3", "a")]), "keys[1].id: duplicate id 'a' (the same as keys[0])");
    assert_eq!(
        p(&[("b", "s1", "a"), ("a", "s2", "a"), ("c", "s3", "a"), ("a", "s4", "a"), ("b", "s5", "a"), ("a", "s6", "a")]),
        "keys[3].id: duplicate id 'a' (the same as keys[1])"
    );
    assert_eq!(p(&[("", "s1", "a"), ("", "s2", "a")]), "keys[0].id: must not be empty");
}

#[test]
fn explain_names_the_wrong_field_as_parse_does() {
    let bad = br#"{"clusters":[{"name":"c"}],"models":[{"id":"m","type":"text","cluster":"c","prise":{}}]}"#;
    let from_reader = Config::parse_reader(&mut Pieces { text: bad, piece: 16 }, bad.len()).unwrap_err();
    assert!(from_reader.contains("unknown field `prise`") && from_reader.contains("line 1 column"), "{from_reader}");
    assert_eq!(Config::explain(bad).as_deref(), Some("configuration: models[0]: unknown field `prise`, expected one of `id`, `type`, `cluster`, `upstream_model`, `price`, `sandbox`, `default_max_tokens`, `owned_by`, `sizes`, `max_seconds`, `task`"));
    assert_eq!(Config::explain(bad), Config::parse(bad).err());
    let top = br#"{"modles":[]}"#;
    assert_eq!(Config::explain(top), Config::parse(top).err());
    // Invalid JSON: the reader's message (its position included) is parse's.
    let syntax = br#"{"keys": [}"#;
    assert_eq!(Config::explain(syntax), None);
    assert_eq!(Config::parse_reader(&mut Pieces { text: syntax, piece: 4 }, syntax.len()).err(), Config::parse(syntax).err());
    // A validation error is not a field's: the reader's message is already parse's.
    let unknown_account = keys_json(&[("x", "s1", "zz")]);
    assert_eq!(Config::explain(unknown_account.as_bytes()), None);
}
