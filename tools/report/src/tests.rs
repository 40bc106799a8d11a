use super::*;

#[allow(clippy::too_many_arguments)]
fn rec(
    time: &str,
    account: Option<&str>,
    key: Option<&str>,
    model: Option<&str>,
    p: u64,
    c: u64,
    credits: f64,
    estimated: bool,
) -> String {
    let s = |v: Option<&str>| v.map_or("null".to_string(), |v| format!("\"{v}\""));
    format!(
        r#"{{"account_id":{},"cache_creation_tokens":5,"cached_tokens":1,"client_request_id":null,"cluster":"demo_text","complete":true,"completion_tokens":{c},"credits":{credits},"duration_ms":10,"endpoint":"chat_completions","error":null,"estimated":{estimated},"front":"openai","key_id":{},"model":{},"prompt_tokens":{p},"reasoning_tokens":2,"request_id":"x","status":200,"stream":false,"time":"{time}","ttfb_ms":9,"units":null,"upstream":"openai","upstream_model":"m"}}"#,
        s(account),
        s(key),
        s(model)
    )
}

fn report_of(lines: &[String], dims: &[Dim]) -> Report {
    let mut r = Report::new(dims.to_vec(), None, None);
    let text = lines.join("\n");
    r.feed("t.jsonl", text.as_bytes()).unwrap();
    r
}

#[test]
fn reads_the_filters_record_shape_and_sums_exactly() {
    let lines = vec![
        rec("2026-11-23T11:44:09.666Z", Some("acct-a"), Some("key-1"), Some("qai-flash"), 6, 7, 0.002, false),
        // Written before records had `cache_creation_tokens`: it counts 0.
        rec("2026-11-23T12:00:00.000Z", Some("acct-a"), Some("key-1"), Some("qai-flash"), 100, 50, 0.1, false)
            .replace("\"cache_creation_tokens\":5,", ""),
        rec("2026-11-23T13:00:00.000Z", Some("acct-a"), Some("key-1"), Some("qai-flash"), 40, 30, 0.01, true),
        rec("2026-11-24T00:00:00.000Z", Some("acct-a"), Some("key-1"), Some("qai-flash"), 1, 1, 0.000001, false),
    ];
    let r = report_of(&lines, &[Dim::Account, Dim::Key, Dim::Model, Dim::Day]);
    let rows = r.rows();
    assert_eq!(rows.len(), 2);
    let (values, t) = rows[0];
    assert_eq!(
        values,
        &[Some("acct-a".to_string()), Some("key-1".into()), Some("qai-flash".into()), Some("2026-11-23".into())]
    );
    assert_eq!(t.requests, 3);
    assert_eq!((t.prompt_tokens, t.completion_tokens), (106, 57));
    assert_eq!((t.estimated_requests, t.estimated_prompt_tokens, t.estimated_completion_tokens), (1, 40, 30));
    assert_eq!((t.cached_tokens, t.cache_creation_tokens, t.reasoning_tokens), (3, 10, 6));
    assert_eq!(t.microcredits, 112_000);
    assert_eq!(rows[1].1.microcredits, 1);
    assert_eq!(r.total.requests, 4);
    assert_eq!(r.total.cache_creation_tokens, 15);
    assert_eq!(r.total.microcredits, 112_001);
    assert_eq!(r.lines, 4);
    assert_eq!(r.skipped_total(), 0);
}

#[test]
fn groups_by_any_combination_and_keeps_absent_values_apart() {
    let lines = vec![
        rec("2026-11-23T11:00:00.000Z", Some("acct-a"), Some("key-1"), Some("m1"), 1, 1, 0.5, false),
        rec("2026-11-23T11:00:00.000Z", Some("acct-b"), Some("key-2"), Some("m1"), 2, 2, 0.25, false),
        rec("2026-11-23T11:00:00.000Z", None, None, None, 0, 0, 0.0, false),
    ];
    let r = report_of(&lines, &[Dim::Model]);
    let rows: Vec<_> = r.rows().into_iter().map(|(v, t)| (v[0].clone(), t.requests, t.microcredits)).collect();
    assert_eq!(rows, vec![(None, 1, 0), (Some("m1".into()), 2, 750_000)]);
    let r = report_of(&lines, &[Dim::Account, Dim::Hour]);
    let rows: Vec<_> = r.rows().into_iter().map(|(v, t)| (v.to_vec(), t.requests)).collect();
    assert_eq!(
        rows,
        vec![
            (vec![None, Some("2026-11-23T11".into())], 1),
            (vec![Some("acct-a".into()), Some("2026-11-23T11".into())], 1),
            (vec![Some("acct-b".into()), Some("2026-11-23T11".into())], 1),
        ]
    );
}

#[test]
fn group_keys_do_not_collide_across_columns() {
    // ("ab", "c"), ("a", "bc"), ("1:a", "c"), ("1", "a:c"), (None, "-"), ("-", None): six groups.
    let lines = vec![
        rec("2026-11-23T11:00:00.000Z", Some("ab"), Some("c"), None, 1, 1, 0.0, false),
        rec("2026-11-23T11:00:00.000Z", Some("a"), Some("bc"), None, 1, 1, 0.0, false),
        rec("2026-11-23T11:00:00.000Z", Some("1:a"), Some("c"), None, 1, 1, 0.0, false),
        rec("2026-11-23T11:00:00.000Z", Some("1"), Some("a:c"), None, 1, 1, 0.0, false),
        rec("2026-11-23T11:00:00.000Z", None, Some("-"), None, 1, 1, 0.0, false),
        rec("2026-11-23T11:00:00.000Z", Some("-"), None, None, 1, 1, 0.0, false),
    ];
    let r = report_of(&lines, &[Dim::Account, Dim::Key]);
    assert_eq!(r.rows().len(), 6);
    assert!(r.rows().iter().all(|(_, t)| t.requests == 1));
}

#[test]
fn skips_and_counts_lines_that_are_not_records() {
    let good = rec("2026-11-23T11:00:00.000Z", Some("a"), Some("k"), Some("m"), 1, 1, 0.001, false);
    let lines = vec![
        good.clone(),
        "not json at all".to_string(),
        "{\"time\":\"2026-11-23T11:00:00Z\"}".to_string(),
        "-".to_string(),
        "".to_string(),
        good.replace("2026-11-23T11", "2026-13-23T11"),
        good.replace("\"credits\":0.001", "\"credits\":-1"),
        good[..good.len() / 2].to_string(),
        "[1,2]".to_string(),
        good.clone(),
    ];
    let r = report_of(&lines, &[Dim::Model]);
    assert_eq!(r.total.requests, 2);
    assert_eq!(r.total.microcredits, 2_000);
    assert_eq!(r.lines, 9);
    assert_eq!(r.skipped_total(), 7);
    let by: Vec<(&str, u64)> = r.skipped.iter().map(|(k, v)| (*k, *v)).collect();
    assert_eq!(by, vec![("bad_credits", 1), ("bad_time", 1), ("no_record", 1), ("not_a_record", 2), ("not_json", 2)]);
    assert_eq!(r.first_skipped[0], ("t.jsonl".to_string(), 2, "not_json"));
    let j = r.to_json();
    assert_eq!(j["skipped"], 7);
    assert_eq!(j["skipped_by_reason"]["not_json"], 2);
    assert!(r.skipped_summary().unwrap().starts_with("skipped 7 of 9 lines"));
}

#[test]
fn a_line_over_the_cap_is_skipped_without_being_kept() {
    let mut buf = Vec::new();
    let data = format!("{}\nshort\n", "x".repeat(100));
    let mut rd = data.as_bytes();
    assert_eq!(read_line_capped(&mut rd, &mut buf, 50).unwrap(), (101, true));
    assert!(buf.is_empty());
    assert_eq!(read_line_capped(&mut rd, &mut buf, 50).unwrap(), (6, false));
    assert_eq!(buf, b"short\n");
    buf.clear();
    assert_eq!(read_line_capped(&mut rd, &mut buf, 50).unwrap(), (0, false));
    // A small BufReader: the line arrives in many pieces.
    let data = format!("{}\n{}", "y".repeat(40), rec("2026-11-23T11:00:00.000Z", None, None, None, 1, 2, 0.0, true));
    let mut r = Report::new(vec![Dim::Day], None, None);
    r.feed("f", io::BufReader::with_capacity(7, data.as_bytes())).unwrap();
    assert_eq!((r.total.requests, r.total.estimated_completion_tokens), (1, 2));
    assert_eq!(r.skipped.get("not_json"), Some(&1));
}

#[test]
fn since_and_until_are_inclusive_utc_days() {
    let lines: Vec<String> = [
        "2026-11-22T23:59:59.999Z",
        "2026-11-23T00:00:00.000Z",
        "2026-11-24T23:59:59.999Z",
        "2026-11-25T00:00:00.000Z",
    ]
    .iter()
    .map(|t| rec(t, None, None, Some("m"), 1, 1, 1.0, false))
    .collect();
    let mut r = Report::new(vec![Dim::Day], Some("2026-11-23".into()), Some("2026-11-24".into()));
    r.feed("f", lines.join("\n").as_bytes()).unwrap();
    assert_eq!(r.total.requests, 2);
    assert_eq!(r.filtered_out, 2);
    assert_eq!(r.to_json()["filtered_out"], 2);
}

#[test]
fn dates_and_dimensions_are_checked() {
    assert_eq!(parse_date("2026-02-28"), Ok("2026-02-28".to_string()));
    assert!(parse_date("2026-02-29").is_err());
    assert!(parse_date("2024-02-29").is_ok());
    assert!(parse_date("2026-1-01").is_err());
    assert!(parse_date("2026-11-31").is_err());
    let mut d = Vec::new();
    parse_dims("model, day", &mut d).unwrap();
    parse_dims("model", &mut d).unwrap();
    assert_eq!(d, vec![Dim::Model, Dim::Day]);
    assert!(parse_dims("week", &mut d).is_err());
    for z in [-800_000i64, -1, 0, 1, 20_000, 20_785, 3_000_000] {
        let (y, m, dd) = civil_from_days(z);
        assert_eq!(days_from_civil(y, m, dd), z);
    }
    assert_eq!(civil_from_days(20_785), (2026, 11, 28));
}

#[test]
fn csv_has_one_header_and_quotes_what_it_must() {
    let lines = vec![
        rec("2026-11-23T11:00:00.000Z", Some(r#"acct,\"x\""#), Some("=cmd()"), Some("m"), 3, 4, 1.5, false),
        rec("2026-11-23T11:00:00.000Z", None, Some("k"), Some("m"), 3, 4, 0.000001, true),
    ];
    let r = report_of(&lines, &[Dim::Account, Dim::Key]);
    let mut out = Vec::new();
    r.write_csv(&mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(
        rows[0],
        "account_id,key_id,requests,errors,prompt_tokens,completion_tokens,estimated_requests,estimated_prompt_tokens,estimated_completion_tokens,cached_tokens,cache_creation_tokens,reasoning_tokens,credits"
    );
    assert_eq!(rows[1], ",k,1,0,0,0,1,3,4,1,5,2,0.000001");
    assert_eq!(rows[2], "\"acct,\"\"x\"\"\",'=cmd(),1,0,3,4,0,0,0,1,5,2,1.500000");
}

#[test]
fn json_has_groups_totals_and_counts() {
    let lines =
        vec![rec("2026-11-23T11:00:00.000Z", Some("a"), Some("k"), Some("m"), 3, 4, 1.5, false), "garbage".to_string()];
    let r = report_of(&lines, &[Dim::Account, Dim::Key, Dim::Model, Dim::Day]);
    let mut out = Vec::new();
    r.write_json(&mut out).unwrap();
    let j: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(j["by"], json!(["account", "key", "model", "day"]));
    assert_eq!(j["lines"], 2);
    assert_eq!(j["records"], 1);
    assert_eq!(j["skipped"], 1);
    assert_eq!(j["files"], json!(["t.jsonl"]));
    assert_eq!(
        j["groups"],
        json!([{"account_id": "a", "key_id": "k", "model": "m", "day": "2026-11-23", "requests": 1, "errors": 0,
                "prompt_tokens": 3, "completion_tokens": 4, "estimated_requests": 0, "estimated_prompt_tokens": 0,
                "estimated_completion_tokens": 0, "cached_tokens": 1, "cache_creation_tokens": 5, "reasoning_tokens": 2,
                "credits": 1.5,
                "microcredits": 1_500_000}])
    );
    assert_eq!(j["totals"]["microcredits"], 1_500_000);
    assert_eq!(j["totals"]["cache_creation_tokens"], 5);
}

#[test]
fn errors_count_refusals() {
    let ok = rec("2026-11-23T11:00:00.000Z", Some("a"), Some("k"), Some("m"), 3, 4, 1.5, false);
    let refused =
        ok.replace("\"status\":200", "\"status\":429").replace("\"error\":null", "\"error\":\"rate_limit_exceeded\"");
    // Envoy's own refusals (headers too large) have a status but no gateway code; a stream that
    // failed after its 200 has a code but kept its status.
    let envoy = ok.replace("\"status\":200", "\"status\":431");
    let mid_stream = ok.replace("\"error\":null", "\"error\":\"upstream_error\"");
    let r = report_of(&[ok.clone(), refused], &[Dim::Model]);
    assert_eq!((r.total.requests, r.total.errors), (2, 1));
    let r = report_of(&[ok.clone(), envoy], &[Dim::Model]);
    assert_eq!((r.total.requests, r.total.errors), (2, 1));
    let r = report_of(&[ok, mid_stream], &[Dim::Model]);
    assert_eq!((r.total.requests, r.total.errors), (2, 1));
}

#[test]
fn table_has_a_total_row() {
    let lines = vec![
        rec("2026-11-23T11:00:00.000Z", Some("a"), Some("k"), Some("m"), 1234, 4, 1.5, false),
        rec("2026-11-23T11:00:00.000Z", Some("b"), Some("k2"), Some("m"), 1_000_000, 4, 1.5, false),
    ];
    let r = report_of(&lines, &[Dim::Account]);
    let mut out = Vec::new();
    r.write_table(&mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows.len(), 6);
    assert!(rows[0].starts_with("account  requests  errors"), "{text}");
    assert!(rows[2].starts_with("a ") && rows[2].contains(" 1,234 "), "{text}");
    assert!(rows[5].starts_with("TOTAL") && rows[5].contains("1,001,234") && rows[5].ends_with("3.000000"), "{text}");
    let heads: Vec<&str> = rows[0].split("  ").map(str::trim).filter(|h| !h.is_empty()).collect();
    assert_eq!(
        heads,
        [
            "account",
            "requests",
            "errors",
            "prompt",
            "completion",
            "est. req",
            "est. prompt",
            "est. compl.",
            "cached",
            "cache writes",
            "reasoning",
            "credits"
        ]
    );
    let total: Vec<&str> = rows[5].split_whitespace().collect();
    assert_eq!(total, ["TOTAL", "2", "0", "1,001,234", "8", "0", "0", "0", "2", "10", "4", "3.000000"]);
}

#[test]
fn table_does_not_print_control_characters() {
    let lines = vec![rec("2026-11-23T11:00:00.000Z", Some("\\u001b[2Jevil"), Some("k"), Some("m"), 1, 1, 0.5, false)];
    let r = report_of(&lines, &[Dim::Account]);
    assert_eq!(r.rows()[0].0[0].as_deref(), Some("\u{1b}[2Jevil"));
    let mut out = Vec::new();
    r.write_table(&mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(!text.contains('\u{1b}'));
    assert!(text.contains("\u{fffd}[2Jevil"));
}

/// A small well-formedness check: every tag closes in order, attributes are quoted, `&` only
/// starts a known entity.
fn well_formed(x: &str) -> Result<usize, String> {
    let mut stack: Vec<String> = Vec::new();
    let mut rest = x;
    let mut elements = 0;
    while let Some(lt) = rest.find('<') {
        check_text(&rest[..lt])?;
        let gt = rest[lt..].find('>').ok_or("unclosed tag")? + lt;
        let tag = &rest[lt + 1..gt];
        if let Some(name) = tag.strip_prefix('/') {
            let open = stack.pop().ok_or(format!("close {name} without open"))?;
            if open != name.trim() {
                return Err(format!("<{open}> closed by </{name}>"));
            }
        } else {
            let self_closing = tag.ends_with('/');
            let body = tag.trim_end_matches('/');
            let name = body.split_whitespace().next().ok_or("empty tag")?.to_string();
            let attrs = &body[name.len()..];
            if !attrs.matches('"').count().is_multiple_of(2) {
                return Err(format!("unbalanced quotes in <{tag}>"));
            }
            check_text(attrs)?;
            elements += 1;
            if !self_closing {
                stack.push(name);
            }
        }
        rest = &rest[gt + 1..];
    }
    check_text(rest)?;
    if stack.is_empty() {
        Ok(elements)
    } else {
        Err(format!("unclosed: {stack:?}"))
    }
}

fn check_text(t: &str) -> Result<(), String> {
    for (i, _) in t.match_indices('&') {
        let ent = &t[i..];
        if !["&amp;", "&lt;", "&gt;", "&quot;", "&#39;"].iter().any(|e| ent.starts_with(e)) {
            return Err(format!("bare & in {t:?}"));
        }
    }
    if t.contains('<') {
        return Err("bare <".into());
    }
    Ok(())
}

#[test]
fn svg_is_well_formed_and_escapes_model_names() {
    let mut lines = Vec::new();
    for day in 20..=26 {
        for (i, m) in
            ["qai-flash", "qai-max", r#"<script>&\"x\""#, "m3", "m4", "m5", "m6", "m7", "m8", "m9"].iter().enumerate()
        {
            lines.push(rec(
                &format!("2026-11-{day}T1{i}:00:00.000Z"),
                Some("a"),
                Some("k"),
                Some(m),
                1,
                1,
                (i + 1) as f64 * 0.5,
                false,
            ));
        }
    }
    let r = report_of(&lines, &[Dim::Model]);
    let doc = svg::chart(r.spend(), None, "Spend & <more>");
    let n = well_formed(&doc).unwrap_or_else(|e| panic!("{e}\n{doc}"));
    assert!(n > 100, "{n}");
    assert!(doc.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(doc.contains("&lt;script&gt;&amp;&quot;x&quot;"));
    assert!(!doc.contains("<script>"));
    // Seven days: day bars; ten models: eight colours and "other models" (qai-flash, qai-max: the least).
    assert!(doc.contains("Credits per day (UTC)"));
    assert_eq!(doc.matches("<g><title>").count(), 7);
    assert!(doc.contains(">other models · "));
    assert!(doc.contains("total 193 credits"), "{doc}");
    assert!(doc.contains(">m9 · 35.00 · 18.2%<"), "{doc}");
    assert!(doc.contains("2026-11-20 · m9: 5.000000 credits"), "{doc}");
    assert!(doc.contains("2026-11-20 · other models: 1.500000 credits"), "{doc}");
    assert!(!doc.contains("· qai-flash"));
}

#[test]
fn svg_of_one_day_has_hour_bars_and_of_nothing_says_so() {
    let lines = vec![
        rec("2026-11-23T09:10:00.000Z", Some("a"), Some("k"), Some("m"), 1, 1, 2.0, false),
        rec("2026-11-23T12:10:00.000Z", Some("a"), Some("k"), Some("m"), 1, 1, 1.0, false),
    ];
    let r = report_of(&lines, &[Dim::Model]);
    let doc = svg::chart(r.spend(), None, "t");
    well_formed(&doc).unwrap();
    assert!(doc.contains("Credits per hour (UTC)"));
    // 09:00 to 12:00: four bars, two of them empty.
    assert_eq!(doc.matches("<g><title>").count(), 4);
    assert!(doc.contains("2026-11-23 10:00 UTC: 0.000000 credits"));
    let empty = svg::chart(&HashMap::new(), None, "t");
    well_formed(&empty).unwrap();
    assert!(empty.contains("No spend in the selected records"));
}

#[test]
fn generated_records_read_back_without_loss() {
    let mut out = Vec::new();
    generate(&mut out, 5_000, days_from_civil(2026, 11, 1), 3, 7).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.lines().count(), 5_000);
    let mut expect = Totals::default();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let p = v["prompt_tokens"].as_u64().unwrap();
        let c = v["completion_tokens"].as_u64().unwrap();
        expect.requests += 1;
        if v["estimated"] == true {
            expect.estimated_prompt_tokens += p;
        } else {
            expect.prompt_tokens += p;
        }
        expect.completion_tokens += if v["estimated"] == true { 0 } else { c };
        expect.microcredits += (v["credits"].as_f64().unwrap() * 1e6).round() as u64;
    }
    let mut r = Report::new(vec![Dim::Day], None, None);
    r.feed("g", text.as_bytes()).unwrap();
    assert_eq!(r.skipped_total(), 0);
    assert_eq!(r.total.requests, expect.requests);
    assert_eq!(r.total.prompt_tokens, expect.prompt_tokens);
    assert_eq!(r.total.estimated_prompt_tokens, expect.estimated_prompt_tokens);
    assert_eq!(r.total.completion_tokens, expect.completion_tokens);
    assert_eq!(r.total.microcredits, expect.microcredits);
    assert_eq!(r.rows().len(), 3);
}
