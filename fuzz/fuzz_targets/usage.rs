//! Usage extraction in every dialect's shape: never panics, and totals never wrap.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tollgate_core::dialect::{anthropic, gemini, pivot};
use tollgate_core::usage;

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<Value>(data) else { return };
    let found = [
        usage::from_openai(&v),
        pivot::usage_of(&v),
        anthropic::usage_from_anthropic(&v),
        v.get("usage").and_then(anthropic::usage_from_anthropic),
        gemini::usage_from_gemini(&v),
        v.get("usageMetadata").and_then(gemini::usage_from_gemini),
    ];
    for u in found.into_iter().flatten() {
        assert!(u.total() >= u.prompt_tokens && u.total() >= u.completion_tokens);
        let j = pivot::usage_json(&u);
        assert_eq!(
            usage::from_openai(&serde_json::json!({ "usage": j })).map(|b| (b.prompt_tokens, b.completion_tokens)),
            Some((u.prompt_tokens, u.completion_tokens)),
            "pivot usage JSON reads back"
        );
    }
    let _ = pivot::credits_of(&v);
});
