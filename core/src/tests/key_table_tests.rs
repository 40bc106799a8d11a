//! Tests of the compact key list (`config/key_table.rs`), parsed whole and in pieces.
use super::*;
use crate::config::tests::demo_json;
use crate::config::Config;

/// `Config::parse_pieces` over `text` read `piece` bytes at a time, with the number of reads.
fn in_pieces(text: &[u8], piece: usize) -> (Result<Config, String>, usize) {
    let mut reads = 0;
    let got = Config::parse_pieces(
        &mut |offset, max| {
            reads += 1;
            let end = offset.saturating_add(max.min(piece)).min(text.len());
            Ok(text.get(offset.min(end)..end).unwrap_or_default().to_vec())
        },
        text.len(),
    );
    (got, reads)
}

/// Both parsers' result, which must be the same.
fn both(text: &str) -> Result<Config, String> {
    let whole = Config::parse(text.as_bytes());
    for piece in [1, 2, 3, 5, 64, 4096] {
        let (p, _) = in_pieces(text.as_bytes(), piece);
        match (&whole, &p) {
            (Ok(a), Ok(b)) => assert_eq!((&a.keys, &a.accounts), (&b.keys, &b.accounts), "piece {piece}"),
            (a, b) => assert_eq!(a.as_ref().err(), b.as_ref().err(), "piece {piece}: {text}"),
        }
    }
    whole
}

fn h(key: &str) -> Hash {
    keys::sha256(key.as_bytes())
}

/// A document with accounts a and b, a `keys` list (JSON text) and a `key_table` (lines).
fn doc(keys: &str, lines: &[String]) -> String {
    let table = serde_json::to_string(&lines.join("\n")).unwrap();
    format!(
        r#"{{"accounts":[{{"id":"a"}},{{"id":"b","rpm":3}}],"keys":[{keys}],"key_table":{table},"defaults":{{"sandbox_daily_quota":9}}}}"#
    )
}

#[test]
fn base64url_round_trips_and_has_one_text_per_hash() {
    for i in 0..300u32 {
        let hash = h(&format!("k{i}"));
        let text = to_base64url(&hash);
        assert_eq!(text.len(), 43);
        assert_eq!(from_base64url(text.as_bytes()), Some(hash));
    }
    // Python's base64.urlsafe_b64encode of the same bytes, without its padding.
    let known = keys::from_hex("201a63e2069a85ec17a6de3cce09f822ea9803305ada9e7617c9c80e9349a6b9").unwrap();
    assert_eq!(to_base64url(&known), "IBpj4gaahewXpt48zgn4IuqYAzBa2p52F8nIDpNJprk");
    let zero = to_base64url(&[0; 32]);
    assert_eq!(zero, "A".repeat(43));
    // The last character carries 4 bits: one with a low bit set is another text of the same hash.
    assert_eq!(from_base64url(format!("{}B", "A".repeat(42)).as_bytes()), None);
    assert_eq!(
        from_base64url(format!("{}E", "A".repeat(42)).as_bytes()),
        Some({
            let mut x = [0; 32];
            x[31] = 1;
            x
        })
    );
    assert_eq!(from_base64url(format!("{}+", "A".repeat(42)).as_bytes()), None);
    assert_eq!(from_base64url("A".repeat(44).as_bytes()), None);
}

#[test]
fn a_compact_table_gives_the_same_keys_as_the_verbose_list() {
    let n = 500;
    let mut verbose = Vec::new();
    let mut lines = Vec::new();
    for i in 0..n {
        let hash = h(&format!("sk-{i}"));
        let account = if i % 3 == 0 { "b" } else { "a" };
        let mut obj = serde_json::json!({"sha256": keys::to_hex(&hash), "account": account});
        let mut line = if i % 2 == 0 { to_base64url(&hash) } else { keys::to_hex(&hash) };
        line = format!("{line} {account}");
        if i % 5 == 0 {
            obj["id"] = format!("own-{i}").into();
            line += &format!(" id=own-{i}");
        } else {
            obj["id"] = default_id(&hash).into();
        }
        if i % 7 == 0 {
            obj["spend_cap"] = (i as f64 / 4.0).into();
            line += &format!(" cap={}", i as f64 / 4.0);
        }
        if i % 11 == 0 {
            obj["sandbox_daily_quota"] = i.into();
            line += &format!(" quota={i}");
        }
        if i % 13 == 0 {
            obj["log_content"] = true.into();
            line += " log";
        }
        verbose.push(obj.to_string());
        lines.push(line);
    }
    let from_verbose = both(&doc(&verbose.join(","), &[])).unwrap();
    let mut with_newline = lines.clone();
    with_newline.push(String::new());
    for table in [&lines, &with_newline] {
        let from_table = both(&doc("", table)).unwrap();
        assert_eq!(from_table.keys, from_verbose.keys);
        assert_eq!(from_table.keys.len(), n);
        for i in 0..n {
            let idx = u32::try_from(i).unwrap();
            assert_eq!(from_table.key_table.lookup(&h(&format!("sk-{i}"))), Some(idx));
        }
        assert_eq!(from_table.key_table.lookup(&h("sk-none")), None);
    }
    // Both lists at once: the table's keys first, then the list's.
    let c = both(&doc(&verbose[..2].join(","), &lines[2..4])).unwrap();
    let ids: Vec<&str> = c.keys.iter().map(|k| k.id.as_str()).collect();
    assert_eq!(ids, [default_id(&h("sk-2")), default_id(&h("sk-3")), "own-0".into(), default_id(&h("sk-1"))]);
    assert_eq!(c.key_table.lookup(&h("sk-0")), Some(2));
    assert_eq!(c.key_table.lookup(&h("sk-3")), Some(1));
    // An empty table and no table are the same.
    assert_eq!(both(&doc("", &[])).unwrap().keys.len(), 0);
    assert_eq!(both(&doc("", &[String::new()])).unwrap().keys.len(), 0);
    // Defaults apply to the table's keys as to the list's.
    let c = both(&doc("", &[format!("{} b", to_base64url(&h("x")))])).unwrap();
    assert_eq!((c.keys[0].sandbox_daily_quota, c.keys[0].account, c.keys[0].spend_cap()), (9, 1, None));
}

#[test]
fn every_malformed_line_is_refused_with_its_line_number() {
    let good = |i: u32| format!("{} a", to_base64url(&h(&format!("g{i}"))));
    let b64 = to_base64url(&h("bad"));
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "key_table line 3: an empty line"),
        (
            "zz a".into(),
            "key_table line 3: the first field must be the key's SHA-256, in base64url (43 characters) or hex (64)",
        ),
        (
            format!("{}! a", &b64[..42]),
            "key_table line 3: the first field must be the key's SHA-256, in base64url (43 characters) or hex (64)",
        ),
        (
            format!("{}g a", &keys::to_hex(&h("bad"))[..63]),
            "key_table line 3: the first field must be the key's SHA-256, in base64url (43 characters) or hex (64)",
        ),
        (b64.clone(), "key_table line 3: the second field must be the key's account id"),
        (format!("{b64} "), "key_table line 3: the second field must be the key's account id"),
        (format!("{b64}  a"), "key_table line 3: the second field must be the key's account id"),
        (format!("{b64} a "), "key_table line 3: an empty field (fields are separated by one space)"),
        (format!("{b64} a\tlog"), "key_table line 3: a control character (fields are separated by one space)"),
        (format!("{b64} a\r"), "key_table line 3: a control character (fields are separated by one space)"),
        (format!("{b64} a cap=-1"), "key_table line 3: cap: must be a non-negative number"),
        (format!("{b64} a cap=inf"), "key_table line 3: cap: must be a non-negative number"),
        (format!("{b64} a cap=NaN"), "key_table line 3: cap: must be a non-negative number"),
        (format!("{b64} a cap="), "key_table line 3: cap: must be a non-negative number"),
        (format!("{b64} a quota=-1"), "key_table line 3: quota: must be a whole number"),
        (format!("{b64} a quota=1.5"), "key_table line 3: quota: must be a whole number"),
        (format!("{b64} a id="), "key_table line 3: unknown field 'id=' (id=KEY_ID, cap=CREDITS, quota=N, log, rpm=N, period=month|day or dev)"),
        (format!("{b64} a log=1"), "key_table line 3: unknown field 'log=1' (id=KEY_ID, cap=CREDITS, quota=N, log, rpm=N, period=month|day or dev)"),
        (
            format!("{b64} a status=revoked"),
            "key_table line 3: unknown field 'status=revoked' (id=KEY_ID, cap=CREDITS, quota=N, log, rpm=N, period=month|day or dev)",
        ),
        (format!("{b64} a log log"), "key_table line 3: 'log' is given twice"),
        (format!("{b64} a id=x id=y"), "key_table line 3: 'id' is given twice"),
        (format!("{b64} a cap=1 cap=1"), "key_table line 3: 'cap' is given twice"),
        (format!("{b64} a quota=1 quota=2"), "key_table line 3: 'quota' is given twice"),
        (format!("{b64} zz"), "key_table line 3 (account): no account 'zz' in 'accounts'"),
        (
            good(1),
            &*Box::leak(
                format!(
                    "key_table line 3 (sha256): duplicate sha256 {} (the same as key_table line 2)",
                    keys::to_hex(&h("g1"))
                )
                .into_boxed_str(),
            ),
        ),
        (
            format!("{b64} a id={}", default_id(&h("g0"))),
            &*Box::leak(
                format!(
                    "key_table line 3 (id): duplicate id '{}' (the same as key_table line 1)",
                    default_id(&h("g0"))
                )
                .into_boxed_str(),
            ),
        ),
    ];
    for (bad, want) in &cases {
        let lines = [good(0), good(1), bad.clone(), good(3), good(4)];
        assert_eq!(both(&doc("", &lines)).err().as_deref(), Some(*want), "{bad:?}");
    }
    // The first error by line: a malformed line before an unknown account, and after one.
    let lines = [good(0), "zz a".into(), format!("{b64} zz")];
    assert!(both(&doc("", &lines)).unwrap_err().starts_with("key_table line 2: the first field"));
    let lines = [good(0), format!("{b64} zz"), "zz a".into()];
    assert_eq!(both(&doc("", &lines)).unwrap_err(), "key_table line 2 (account): no account 'zz' in 'accounts'");
    // A key of the list that repeats one of the table: named by both lists.
    let dup = format!(r#"{{"id":"v","account":"a","sha256":"{}"}}"#, keys::to_hex(&h("g1")));
    assert_eq!(
        both(&doc(&dup, &[good(0), good(1)])).err().unwrap(),
        format!("keys[0].sha256: duplicate sha256 {} (the same as key_table line 2)", keys::to_hex(&h("g1")))
    );
    // Not a string, or text with escapes other than `\n`: parse's errors, or decoded.
    assert!(both(r#"{"key_table":[]}"#)
        .unwrap_err()
        .contains("invalid type: sequence, expected a string of key lines"));
    let escaped = doc("", &[good(0)]).replace(" a\"", " \\u0061\"");
    assert_eq!(both(&escaped).unwrap().keys.len(), 1);
    let tab = doc("", &[good(0)]).replace(" a\"", "\ta\"");
    assert!(both(&tab).unwrap_err().contains("control character"), "raw tab: not JSON");
}

#[test]
fn the_table_is_read_in_pieces_split_anywhere() {
    let lines: Vec<String> = (0..40)
        .map(|i| format!("{} {} id=k{i} cap=1.5", to_base64url(&h(&format!("p{i}"))), ["a", "b"][i % 2]))
        .collect();
    let text = format!("{{\"clusters\":[],{}", &doc("", &lines)[1..]);
    let whole = Config::parse(text.as_bytes()).unwrap();
    assert_eq!(whole.keys.len(), 40);
    for piece in 1..=130 {
        let (c, reads) = in_pieces(text.as_bytes(), piece);
        let c = c.unwrap();
        assert_eq!(c.keys, whole.keys, "piece {piece}");
        // Split into lines as it is read, never read again whole.
        assert_eq!(reads, text.len().div_ceil(piece) + 1, "piece {piece}");
    }
    // The demo's list and a table side by side, split anywhere too.
    let demo = demo_json().replacen('{', &format!("{{\"key_table\":\"{} a1 id=t1\",", to_base64url(&h("t"))), 1);
    let c = both(&demo).unwrap();
    let ids: Vec<&str> = c.keys.iter().map(|k| k.id.as_str()).collect();
    assert_eq!(ids, ["t1", "k-active", "k-inactive"]);
}

#[test]
fn a_key_record_stays_packed() {
    use crate::config::{CapPeriod, KeyPolicy, KeyRecord};
    // 48 bytes in the filter (wasm32, also asserted when it builds); 56 with 8-byte pointers
    // (the id's heap form and the account index are wider).
    let expected = if cfg!(target_pointer_width = "32") { 48 } else { 56 };
    assert_eq!(std::mem::size_of::<KeyRecord>(), expected);
    // Every field packed reads back as set, in every combination.
    let mut r = KeyRecord::new("k".into(), 3, 7);
    assert_eq!((r.spend_cap(), r.log_content(), r.policy()), (None, false, KeyPolicy::default()));
    for cap in [None, Some(0.0), Some(-0.0), Some(2.5), Some(f64::MAX)] {
        for log in [false, true] {
            for rpm in [None, Some(0), Some(9), Some(u32::MAX)] {
                for cap_period in [CapPeriod::Total, CapPeriod::Month, CapPeriod::Day] {
                    for development in [false, true] {
                        let p = KeyPolicy { rpm, cap_period, development };
                        r.set_spend_cap(cap);
                        r.set_log_content(log);
                        r.set_policy(p);
                        assert_eq!(r.spend_cap().map(f64::to_bits), cap.map(f64::to_bits));
                        assert_eq!((r.log_content(), r.policy()), (log, p));
                        r.set_log_content(!log);
                        assert_eq!((r.log_content(), r.policy()), (!log, p));
                    }
                }
            }
        }
    }
    assert_eq!((r.id.as_str(), r.account, r.sandbox_daily_quota, r.allowed_models), ("k", 3, 7, 0));
}
