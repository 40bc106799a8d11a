//! Key extraction and hashing: a key that is found is one of the presented values, trimmed,
//! non-empty; two different keys are refused; hex parsing round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_core::keys::{self, Presented};

fuzz_target!(|data: &[u8]| {
    // Four optional header values separated by 0xff; a part starting with 0xfe is absent.
    let parts: Vec<Option<String>> = data
        .split(|&b| b == 0xff)
        .map(|p| if p.first() == Some(&0xfe) { None } else { Some(String::from_utf8_lossy(p).into_owned()) })
        .chain(std::iter::repeat(None))
        .take(4)
        .collect();
    let [a, x, g, q] = [&parts[0], &parts[1], &parts[2], &parts[3]].map(|p| p.as_deref());
    match keys::extract(a, x, g, q) {
        Presented::Key(k, _) => {
            assert!(!k.is_empty());
            assert_eq!(k, k.trim());
            let presented = [
                a.and_then(|v| v.trim().split_once(' ').map(|(_, t)| t.trim())),
                x.map(str::trim),
                g.map(str::trim),
                q.map(str::trim),
            ];
            assert!(presented.iter().flatten().any(|p| *p == k), "key {k:?} was not presented");
            for p in presented.iter().flatten() {
                assert!(p.is_empty() || *p == k, "two different keys admitted: {k:?} and {p:?}");
            }
            let h = keys::sha256(k.as_bytes());
            assert_eq!(keys::from_hex(&keys::to_hex(&h)), Some(h));
            assert!(keys::ct_eq(&h, &h));
        }
        Presented::Missing => assert!([a, x, g, q].iter().flatten().all(|v| v.trim().is_empty()) && a.is_none()),
        Presented::Malformed(why) => assert!(!why.is_empty()),
    }
    if let Ok(s) = std::str::from_utf8(data) {
        if let Some(h) = keys::from_hex(s) {
            assert_eq!(keys::to_hex(&h), s.to_ascii_lowercase());
        }
    }
});
