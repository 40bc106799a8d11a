//! Test controls read from `x-demo-*` request headers. Invalid values are ignored.

use std::time::Duration;

use hyper::{HeaderMap, StatusCode};

/// Longest delay honoured by the delay controls (1 hour).
const MAX_DELAY_MS: u64 = 3_600_000;
/// Largest `x-demo-chunks` honoured.
pub const MAX_CHUNKS: usize = 1_000_000;

#[derive(Debug, Default, Clone)]
pub struct Controls {
    /// `x-demo-chunks: N` — emit exactly N synthetic pieces "tok0 ", "tok1 ", ...
    pub chunks: Option<usize>,
    /// `x-demo-status: CODE` — reply with this status and an error body.
    pub status: Option<StatusCode>,
    /// `x-demo-delay-ms: N` — sleep before responding.
    pub delay: Duration,
    /// `x-demo-chunk-delay-ms: N` — sleep between streamed events.
    pub chunk_delay: Duration,
    /// `x-demo-no-usage: 1` — omit usage everywhere.
    pub no_usage: bool,
    /// `x-demo-cut-after: N` — abort a stream after N content chunks.
    pub cut_after: Option<usize>,
    /// `x-demo-usage-fixed: P C` — report exactly P prompt and C completion tokens, whatever
    /// the request (tests choose the usage instead of recomputing the mock's count).
    pub usage_fixed: Option<(u64, u64)>,
    /// `x-demo-usage-details: C R [W]` — of the prompt tokens reported, C were read from a cache
    /// and W (default 0) written to it; of the completion tokens, R were reasoning. Each API
    /// says it in its own fields: OpenAI `prompt_tokens_details.cached_tokens` and
    /// `completion_tokens_details.reasoning_tokens`; Anthropic `cache_read_input_tokens` and
    /// `cache_creation_input_tokens` (its `input_tokens` the rest; no reasoning count); Gemini
    /// `cachedContentTokenCount` and `thoughtsTokenCount` (its `candidatesTokenCount` the rest).
    pub usage_details: Option<UsageDetails>,
}

/// What `x-demo-usage-details` asks the usage to say.
#[derive(Debug, Clone, Copy, Default)]
pub struct UsageDetails {
    pub cached: u64,
    pub reasoning: u64,
    pub cache_write: u64,
}

/// `C R` or `C R W`.
fn details(v: &str) -> Option<UsageDetails> {
    let n: Vec<u64> = v.split_whitespace().map(str::parse::<u64>).collect::<Result<_, _>>().ok()?;
    match n[..] {
        [cached, reasoning] => Some(UsageDetails { cached, reasoning, cache_write: 0 }),
        [cached, reasoning, cache_write] => Some(UsageDetails { cached, reasoning, cache_write }),
        _ => None,
    }
}

/// Two numbers separated by white space.
fn pair(v: &str) -> Option<(u64, u64)> {
    let mut it = v.split_whitespace().map(str::parse::<u64>);
    match (it.next(), it.next(), it.next()) {
        (Some(Ok(p)), Some(Ok(c)), None) => Some((p, c)),
        _ => None,
    }
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name)?.to_str().ok().map(str::trim)
}

fn number(h: &HeaderMap, name: &str) -> Option<u64> {
    header(h, name)?.parse().ok()
}

fn millis(h: &HeaderMap, name: &str) -> Duration {
    Duration::from_millis(number(h, name).unwrap_or(0).min(MAX_DELAY_MS))
}

/// `x-demo-fail-model: MODEL` or `MODEL=CODE` (CODE 400-599, default 503): a request for the
/// upstream model MODEL (the body's `model`, or the model in a Gemini path) fails with CODE in
/// the API's error shape; others are served (a failover test fails one tier only).
pub fn failing_model(h: &HeaderMap, body: &[u8], path: &str) -> Option<StatusCode> {
    let v = header(h, "x-demo-fail-model")?;
    let (model, code) = match v.split_once('=') {
        Some((m, c)) => (m.trim(), c.trim().parse::<u16>().ok().filter(|c| (400..=599).contains(c))?),
        None => (v, 503),
    };
    let in_body = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|b| b.get("model").and_then(|m| m.as_str()).map(|m| m == model))
        .unwrap_or(false);
    let in_path = path.contains(&format!("/models/{model}:"));
    if in_body || in_path {
        StatusCode::from_u16(code).ok()
    } else {
        None
    }
}

impl Controls {
    pub fn from_headers(h: &HeaderMap) -> Self {
        Controls {
            chunks: number(h, "x-demo-chunks").map(|n| (n as usize).min(MAX_CHUNKS)),
            status: number(h, "x-demo-status")
                .filter(|c| (200..=599).contains(c))
                .and_then(|c| StatusCode::from_u16(c as u16).ok()),
            delay: millis(h, "x-demo-delay-ms"),
            chunk_delay: millis(h, "x-demo-chunk-delay-ms"),
            no_usage: matches!(
                header(h, "x-demo-no-usage").map(str::to_ascii_lowercase).as_deref(),
                Some("1" | "true" | "yes" | "on")
            ),
            cut_after: number(h, "x-demo-cut-after").map(|n| n as usize),
            usage_fixed: header(h, "x-demo-usage-fixed").and_then(pair),
            usage_details: header(h, "x-demo-usage-details").and_then(details),
        }
    }

    /// The usage to report: `x-demo-usage-fixed` if given, else the mock's own count.
    pub fn usage(&self, prompt: u64, completion: u64) -> (u64, u64) {
        self.usage_fixed.unwrap_or((prompt, completion))
    }

    /// Apply `x-demo-delay-ms` (non-blocking).
    pub async fn pre_delay(&self) {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
    }

    /// How many content chunks a stream of `total` pieces emits before the
    /// end (all of them, or `min(cut_after, total)` when a cut is requested).
    pub fn emit_count(&self, total: usize) -> usize {
        self.cut_after.map_or(total, |n| n.min(total))
    }
}
