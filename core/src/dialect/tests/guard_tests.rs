use super::*;

fn param(raw: &str) -> Option<String> {
    check(raw.as_bytes()).err().map(|e| {
        assert_eq!(e.code, Code::BadRequest);
        e.param.unwrap_or_default()
    })
}

#[test]
fn ordinary_bodies_pass() {
    for b in [
        r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":5}"#,
        r#"{"contents":[{"role":"user","parts":[{"text":"x"}]}],"generationConfig":{"maxOutputTokens":3}}"#,
        r#"{"a":{"x":1},"b":{"x":2},"c":[{"x":1},{"x":2}]}"#,
        r#"{"model":"m","metadata":{"Model":"a car model, a user's own key"},"tools":[{"Model":1,"model":2}]}"#,
        r#"{"k":"a \" \\ , { [ \"model\": 1 ]"}"#,
        "[]",
        "not json at all",
    ] {
        assert_eq!(param(b), None, "{b}");
    }
}

#[test]
fn repeated_keys_at_any_depth_are_named() {
    assert_eq!(param(r#"{"model":"a","model":"b"}"#).as_deref(), Some("model"));
    assert_eq!(param(r#"{"n":1,"x":{"y":[{"z":1,"z":2}]}}"#).as_deref(), Some("z"));
    // An escaped spelling is the same key.
    assert_eq!(param(r#"{"model":"a","mod\u0065l":"b"}"#).as_deref(), Some("model"));
    // Wide objects (sorted, not pairwise).
    let mut wide: Vec<String> = (0..40).map(|i| format!("\"k{i}\":{i}")).collect();
    wide.push("\"k7\":0".into());
    assert_eq!(param(&format!("{{{}}}", wide.join(","))).as_deref(), Some("k7"));
    wide.pop();
    assert_eq!(param(&format!("{{{}}}", wide.join(","))), None);
}

#[test]
fn case_variants_of_read_fields_are_named() {
    assert_eq!(param(r#"{"model":"qai-hello-world","Model":"qai-max"}"#).as_deref(), Some("Model"));
    assert_eq!(param(r#"{"n":1,"N":4}"#).as_deref(), Some("N"));
    assert_eq!(param(r#"{"MAX_TOKENS":100000}"#).as_deref(), Some("MAX_TOKENS"));
    assert_eq!(param(r#"{"stream_options":{"Include_Usage":true}}"#).as_deref(), Some("Include_Usage"));
    assert_eq!(param(r#"{"generationConfig":{"maxoutputtokens":9}}"#).as_deref(), Some("maxoutputtokens"));
    assert_eq!(param(r#"{"GenerationConfig":{}}"#).as_deref(), Some("GenerationConfig"));
    // Go folds these non-ASCII letters onto ASCII ones: the Kelvin sign, long s, dotted i.
    assert_eq!(param("{\"max_to\u{212A}ens\":9}").as_deref(), Some("max_to\u{212A}ens"));
    assert_eq!(param(r#"{"\u017ftream":true}"#).as_deref(), Some("\u{17F}tream"));
    assert_eq!(param("{\"\u{130}nput\":\"x\"}").as_deref(), Some("\u{130}nput"));
    assert_eq!(param("{\"mod\u{e9}l\":1,\"modelx\":2}"), None);
    // Deeper objects are user data (message content, tool schemas): not checked for case.
    assert_eq!(param(r#"{"messages":[{"role":"user","Model":"x"}]}"#), None);
}

#[test]
fn depth_limit_is_exact() {
    let ok = format!("{}{}", "[".repeat(MAX_JSON_DEPTH), "]".repeat(MAX_JSON_DEPTH));
    assert_eq!(check(ok.as_bytes()).map_err(|e| e.code), Ok(()));
    let deep = format!("{}{}", "[".repeat(MAX_JSON_DEPTH + 1), "]".repeat(MAX_JSON_DEPTH + 1));
    let e = check(deep.as_bytes()).err().map(|e| (e.code, e.param));
    assert_eq!(e, Some((Code::BadRequest, None)));
    // A million deep, unclosed: refused at the limit, without walking it all.
    let huge = "{\"a\":".repeat(1_000_000);
    assert!(check(huge.as_bytes()).is_err());
}

/// Timing of the shape check next to the fast scan it precedes (`cargo test --release -p
/// tollgate-core --lib guard_cost -- --ignored --nocapture`).
#[test]
#[ignore]
fn guard_cost() {
    use std::time::Instant;
    let small = br#"{"model":"qai-flash","max_tokens":64,"stream":false,"messages":[{"role":"user","content":"Say hello to the benchmark, briefly please."}]}"#.to_vec();
    let msgs: Vec<String> = (0..400)
        .map(|i| {
            format!(
                r#"{{"role":"{}","content":"{} {}"}}"#,
                if i % 2 == 0 { "user" } else { "assistant" },
                "lorem ipsum dolor sit amet ".repeat(9),
                i
            )
        })
        .collect();
    let big = format!(r#"{{"model":"qai-flash","messages":[{}]}}"#, msgs.join(",")).into_bytes();
    // The fastest of 20 batches of each (the machine is shared: the minimum is the cost).
    let min_ns = |f: &dyn Fn() -> bool, n: u32| {
        (0..20)
            .map(|_| {
                let t = Instant::now();
                for _ in 0..n {
                    assert!(f());
                }
                t.elapsed().as_nanos() / u128::from(n)
            })
            .min()
            .unwrap_or(0)
    };
    for (name, body, n) in [("small", &small, 20_000u32), ("100KB", &big, 200)] {
        let g = min_ns(&|| check(std::hint::black_box(body)).is_ok(), n);
        let s = min_ns(&|| crate::dialect::openai::scan_chat(std::hint::black_box(body)).is_some(), n);
        println!("{name} ({} bytes): guard {g} ns, scan_chat {s} ns", body.len());
    }
}
