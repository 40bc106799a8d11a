//! Tests of `keys.rs` (in their own file, so test code is found by its path).
use super::*;

#[test]
fn sha256_known_vector() {
    assert_eq!(to_hex(&sha256(b"abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

#[test]
fn hex_round_trip_and_rejects() {
    let h = sha256(b"sk-demo-active");
    assert_eq!(from_hex(&to_hex(&h)), Some(h));
    assert_eq!(from_hex(&to_hex(&h).to_uppercase()), Some(h));
    assert_eq!(from_hex("abc"), None);
    assert_eq!(from_hex(&"g".repeat(64)), None);
}

#[test]
fn table_lookup_and_duplicates() {
    let keys: Vec<(Hash, u32)> = (0..1000u32).map(|i| (sha256(format!("k{i}").as_bytes()), i)).collect();
    let t = KeyTable::build(keys).unwrap();
    for i in [0u32, 1, 499, 999] {
        assert_eq!(t.lookup(&sha256(format!("k{i}").as_bytes())), Some(i));
    }
    assert_eq!(t.lookup(&sha256(b"nope")), None);
    let dup = vec![(sha256(b"a"), 0), (sha256(b"a"), 1)];
    assert_eq!(KeyTable::build(dup).unwrap_err(), (sha256(b"a"), 0, 1));
}

#[test]
fn hashes_that_share_their_first_bytes_are_ordered_by_the_rest() {
    // Groups of hashes equal in their first 8 bytes (where the sort compares a number first)
    // and different after: every one is found, and a repeat within a group is a duplicate.
    let mut keys: Vec<(Hash, u32)> = Vec::new();
    for i in 0..400u32 {
        let mut h = sha256(format!("p{}", i % 7).as_bytes());
        h[8..].copy_from_slice(&sha256(format!("s{i}").as_bytes())[8..]);
        keys.push((h, i));
    }
    let t = KeyTable::build(keys.clone()).unwrap();
    for (h, i) in &keys {
        assert_eq!(t.lookup(h), Some(*i));
    }
    let mut other = keys[5].0;
    other[31] ^= 1;
    assert_eq!(t.lookup(&other), None);
    let mut dup = keys.clone();
    dup.push((keys[123].0, 400));
    assert_eq!(KeyTable::build(dup).unwrap_err(), (keys[123].0, 123, 400));
}

#[test]
fn a_hash_given_three_times_names_its_first_two_keys() {
    // The table is sorted by hash, then key index: the duplicate reported is always the same.
    let mut keys: Vec<(Hash, u32)> = (0..300u32).map(|i| (sha256(format!("k{i}").as_bytes()), i)).collect();
    for (at, i) in [(0, 290u32), (150, 17), (299, 205)] {
        keys[at] = (sha256(b"twice"), i);
    }
    assert_eq!(KeyTable::build(keys).unwrap_err(), (sha256(b"twice"), 17, 205));
}

#[test]
fn extraction_rules() {
    assert_eq!(extract(Some("Bearer sk-1"), None, None, None), Presented::Key("sk-1", KeySource::Bearer));
    assert_eq!(extract(Some("bearer   sk-1 "), None, None, None), Presented::Key("sk-1", KeySource::Bearer));
    assert_eq!(extract(None, Some("sk-2"), None, None), Presented::Key("sk-2", KeySource::XApiKey));
    assert_eq!(extract(None, None, None, None), Presented::Missing);
    assert!(matches!(extract(Some("Basic abc"), None, None, None), Presented::Malformed(_)));
    assert!(matches!(extract(Some("Bearer "), None, None, None), Presented::Malformed(_)));
    assert!(matches!(extract(Some("Bearer a"), Some("b"), None, None), Presented::Malformed(_)));
    assert_eq!(extract(Some("Bearer a"), Some("a"), None, None), Presented::Key("a", KeySource::Bearer));
    assert_eq!(extract(None, None, Some("g"), None), Presented::Key("g", KeySource::XGoogApiKey));
    assert_eq!(extract(None, None, None, Some("q")), Presented::Key("q", KeySource::QueryKey));
}

#[test]
fn joined_or_padded_keys_are_malformed() {
    // Repeated headers arrive joined with ", ": two keys in one value are refused, not hashed.
    for v in ["sk-1, sk-2", "sk-1,sk-2", "sk-1 sk-2", "sk-1\tx", "sk-1\rx-injected: 1", "sk-\u{0}"] {
        assert!(matches!(extract(None, Some(v), None, None), Presented::Malformed(_)), "{v:?}");
        let bearer = format!("Bearer {v}");
        assert!(matches!(extract(Some(&bearer), None, None, None), Presented::Malformed(_)), "{v:?}");
    }
    assert!(matches!(extract(Some("Bearer sk-1, Bearer sk-2"), None, None, None), Presented::Malformed(_)));
    assert_eq!(extract(None, Some("  sk-1 "), None, None), Presented::Key("sk-1", KeySource::XApiKey));
}
