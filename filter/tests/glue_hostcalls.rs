//! Host calls per exchange, counted by the fake host for each bench scenario. The assertions pin
//! the counts (a new crossing shows up as a failing test); the ignored `hostcalls_table` prints
//! them: `cargo test -p tollgate-filter --release --test glue_hostcalls -- hostcalls_table --ignored --nocapture`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

extern crate tollgate;

mod host;
#[path = "host/scenarios.rs"]
mod host_scenarios;

use std::collections::BTreeMap;

use host::{config, Envoy};
use host_scenarios::{run, Scenario};

/// The kinds of host call, in the table's order, and the ABI functions each counts.
const KINDS: &[(&str, &[&str])] = &[
    ("hdr read", &["proxy_get_header_map_pairs", "proxy_get_header_map_value"]),
    (
        "hdr write",
        &[
            "proxy_replace_header_map_value",
            "proxy_remove_header_map_value",
            "proxy_add_header_map_value",
            "proxy_set_header_map_pairs",
        ],
    ),
    ("buf read", &["proxy_get_buffer_bytes"]),
    ("buf write", &["proxy_set_buffer_bytes"]),
    ("shared get", &["proxy_get_shared_data"]),
    ("shared set", &["proxy_set_shared_data"]),
    ("metric def", &["proxy_define_metric"]),
    ("metric inc", &["proxy_increment_metric", "proxy_record_metric", "proxy_get_metric"]),
    ("prop get", &["proxy_get_property"]),
    ("prop set", &["proxy_set_property"]),
    ("time", &["proxy_get_current_time_nanoseconds"]),
    ("log", &["proxy_log"]),
    ("local reply", &["proxy_send_local_response"]),
];

const SCENARIOS: &[Scenario] = &[
    Scenario::OpenAiChat,
    Scenario::OpenAiToAnthropic,
    Scenario::AnthropicToOpenAi,
    Scenario::OpenAiStream(200),
    Scenario::AnthropicStream(200),
    Scenario::GeminiToOpenAi,
    Scenario::BadKey,
];

/// The host calls of one exchange of `scenario`, by kind (after a warm-up exchange, so that
/// per-VM work such as defining a model's stats is not counted), and the total. Each runs on a
/// thread of its own: a new host and VM.
fn counts(scenario: Scenario) -> (Vec<u64>, u64, u32) {
    std::thread::spawn(move || counts_here(scenario)).join().unwrap()
}

fn counts_here(scenario: Scenario) -> (Vec<u64>, u64, u32) {
    let mut envoy = Envoy::start(&config());
    run(&mut envoy, scenario);
    host::take_calls();
    host::with(|h| h.header_writes.clear());
    let status = run(&mut envoy, scenario);
    let calls: BTreeMap<&str, u64> = host::take_calls();
    if std::env::var_os("HOSTCALLS_VERBOSE").is_some() {
        eprintln!("{}: {:?}", scenario.name(), host::with(|h| std::mem::take(&mut h.header_writes)));
    }
    let by_kind: Vec<u64> =
        KINDS.iter().map(|(_, fns)| fns.iter().map(|f| calls.get(f).copied().unwrap_or(0)).sum()).collect();
    let total: u64 = calls.values().sum();
    (by_kind, total, status)
}

#[test]
#[ignore]
fn hostcalls_table() {
    print!("| scenario | status |");
    for (k, _) in KINDS {
        print!(" {k} |");
    }
    println!(" total |");
    print!("|---|---:|");
    for _ in KINDS {
        print!("---:|");
    }
    println!("---:|");
    for &s in SCENARIOS {
        let (by_kind, total, status) = counts(s);
        print!("| {} | {status} |", s.name());
        for n in by_kind {
            print!(" {n} |");
        }
        println!(" {total} |");
    }
}

/// The totals per exchange, pinned: a crossing added or removed shows here (the table above
/// says which kind). Before this harness's removals: 37, 40, 40, 242, 446, 39, 13.
#[test]
fn hostcalls_per_exchange_are_pinned() {
    let expected: [(Scenario, u64); 7] = [
        (Scenario::OpenAiChat, 25),
        (Scenario::OpenAiToAnthropic, 29),
        (Scenario::AnthropicToOpenAi, 29),
        (Scenario::OpenAiStream(200), 230),
        (Scenario::AnthropicStream(200), 435),
        (Scenario::GeminiToOpenAi, 28),
        (Scenario::BadKey, 8),
    ];
    for (s, total) in expected {
        let (_, got, status) = counts(s);
        assert_eq!(got, total, "{}", s.name());
        assert_eq!(status, if matches!(s, Scenario::BadKey) { 401 } else { 200 }, "{}", s.name());
    }
}
