//! Differential: what the OpenAI fast path reads (`guard::check`, then `openai::scan_chat`; it
//! forwards the client's bytes) against the full parser (`parse_chat`) and against a lenient
//! upstream's reading of the same bytes (Go's `encoding/json`: keys matched case-insensitively,
//! with Unicode simple folding, the last match wins; or the first, as other decoders do). Whenever the fast path accepts a body, all
//! three agree on everything routing, limits and billing depend on: model, stream, usage flag,
//! token budget, choices, prompt estimate. Otherwise the fast path must have refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;
use std::fmt;
use tollgate_core::dialect::{guard, openai};
use tollgate_core::usage;

/// Every top-level member in order, repeats kept (a parsed `Map` keeps only one).
struct Members(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Members, A::Error> {
                let mut out = Vec::new();
                while let Some(kv) = m.next_entry::<String, Value>()? {
                    out.push(kv);
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// Go's `foldName`: per rune ToUpper(ToLower(r)), approximated with the first char of Rust's
/// full mappings (equal on every rune that folds onto ASCII).
fn go_fold(s: &str) -> String {
    s.chars()
        .map(|c| {
            let l = c.to_lowercase().next().unwrap_or(c);
            l.to_uppercase().next().unwrap_or(l)
        })
        .collect()
}

/// The member a Go upstream decodes into field `name`: the last whose key folds to it. It must
/// also be the first (an upstream that keeps the first of repeated keys reads the same).
fn lenient<'a>(members: &'a [(String, Value)], name: &str) -> Option<&'a Value> {
    let want = go_fold(name);
    let last = members.iter().rev().find(|(k, _)| go_fold(k) == want).map(|(_, v)| v);
    let first = members.iter().find(|(k, _)| go_fold(k) == want).map(|(_, v)| v);
    assert_eq!(first, last, "{name}: first and last of repeated keys differ");
    last
}

fuzz_target!(|data: &[u8]| {
    let full = guard::check(data).and_then(|_| openai::parse_chat(data));
    let Some(scan) = guard::check(data).ok().and_then(|_| openai::scan_chat(data)) else {
        return;
    };
    let full = match full {
        Ok(f) => f,
        Err(e) => panic!("the fast path accepted what the full parser refuses: {e:?}"),
    };
    assert_eq!(scan.model, full.model);
    assert_eq!(scan.stream, full.stream);
    assert_eq!(scan.wants_usage, full.wants_usage);
    assert_eq!(scan.max_tokens, full.max_tokens);
    assert_eq!(scan.n, full.body.get("n").and_then(Value::as_u64).unwrap_or(1));
    assert!((1..=openai::MAX_CHOICES).contains(&scan.n));
    assert_eq!(scan.prompt_estimate, usage::estimate_prompt_tokens(&full.body));

    // The upstream gets these very bytes: a lenient decoder must read the same values.
    let members = match serde_json::from_slice::<Members>(data) {
        Ok(m) => m.0,
        Err(e) => panic!("accepted body is not an object: {e}"),
    };
    for name in ["model", "messages", "stream", "stream_options", "n", "max_tokens", "max_completion_tokens"] {
        assert_eq!(lenient(&members, name), full.body.get(name), "{name} reads differently upstream");
    }
    if let Some(Value::Object(opts)) = full.body.get("stream_options") {
        let opts: Vec<(String, Value)> = opts.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        assert_eq!(lenient(&opts, "include_usage"), opts.iter().find(|(k, _)| k == "include_usage").map(|(_, v)| v));
    }
});
