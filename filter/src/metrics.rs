//! The Envoy stats the filter keeps, as plain names. Tags are encoded in the name the way Istio
//! does it (`tag=.=value;.;`), so Envoy's `stats_config.stats_tags` (see envoy/demo.yaml and the
//! README) turn them into Prometheus labels:
//!
//! | stat (Prometheus name)                 | labels              | counts                              |
//! |----------------------------------------|---------------------|-------------------------------------|
//! | `tollgate_requests`                    | `model`, `class`    | requests by model and status class  |
//! | `tollgate_tokens`                      | `model`, `kind`     | billed tokens: prompt, completion, cached, reasoning |
//! | `tollgate_usage_estimated`             | `model`             | requests billed on an estimate      |
//! | `tollgate_microcredits`                | `model`             | billed spend, in millionths of a credit |
//! | `tollgate_errors`                      | `code`              | error replies by gateway code       |
//! | `tollgate_limits_store_failures`       |                     | 503s because shared data failed     |
//!
//! Tag values come from the configuration (model names) or fixed sets: never a key or an
//! account, so cardinality is bounded. Requests that named no known model count as `none`.

use crate::config::Config;
use crate::errors::Code;
use crate::exchange::Outcome;

pub const STORE_FAILURES: &str = "tollgate.limits.store_failures";
const NONE: &str = "none";
const TOKEN_KINDS: [&str; 4] = ["prompt", "completion", "cached", "reasoning"];

/// `name=.=value;.;`; characters that would break the encoding become `_`.
fn tag(name: &str, value: &str) -> String {
    let clean: String = value.chars().map(|c| if c == ';' || c == '=' || c.is_control() { '_' } else { c }).collect();
    format!("{name}=.={clean};.;")
}

pub fn requests(model: &str, class: &str) -> String {
    format!("tollgate.requests.{}{}", tag("model", model), tag("class", class))
}

pub fn tokens(model: &str, kind: &str) -> String {
    format!("tollgate.tokens.{}{}", tag("model", model), tag("kind", kind))
}

pub fn estimated(model: &str) -> String {
    format!("tollgate.usage_estimated.{}", tag("model", model))
}

pub fn microcredits(model: &str) -> String {
    format!("tollgate.microcredits.{}", tag("model", model))
}

pub fn errors(code: Code) -> String {
    format!("tollgate.errors.{}", tag("code", code.as_str()))
}

fn class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// Every stat, defined at configuration so they show at zero before traffic.
pub fn all_names(cfg: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for id in cfg.models.iter().map(|m| m.id.as_str()).chain(std::iter::once(NONE)) {
        out.extend(["2xx", "4xx", "5xx"].iter().map(|c| requests(id, c)));
        if id != NONE {
            out.extend(TOKEN_KINDS.iter().map(|k| tokens(id, k)));
            out.push(estimated(id));
            out.push(microcredits(id));
        }
    }
    out.extend(Code::ALL.iter().map(|c| errors(*c)));
    out.push(STORE_FAILURES.to_string());
    out
}

/// The counter increments for one finished exchange.
pub fn increments(o: &Outcome) -> Vec<(String, u64)> {
    let model = o.model.as_deref().unwrap_or(NONE);
    let mut out = vec![(requests(model, class(o.status)), 1)];
    if let Some(code) = o.error {
        out.push((errors(code), 1));
    }
    if o.model.is_some() {
        let u = &o.usage;
        for (kind, n) in TOKEN_KINDS.iter().zip([u.prompt_tokens, u.completion_tokens, u.cached_tokens, u.reasoning_tokens]) {
            if n > 0 {
                out.push((tokens(model, kind), n));
            }
        }
        if o.estimated {
            out.push((estimated(model), 1));
        }
        if o.micros > 0 {
            out.push((microcredits(model), o.micros));
        }
    }
    out
}

#[cfg(test)]
#[path = "tests/metrics_tests.rs"]
mod tests;
