//! The Envoy stats the filter keeps, as plain names. Tags are encoded in the name the way Istio
//! does it (`tag=.=value;.;`), so Envoy's `stats_config.stats_tags` (see envoy/demo.yaml and the
//! README) turn them into Prometheus labels:
//!
//! | stat (Prometheus name)                 | labels              | counts                              |
//! |----------------------------------------|---------------------|-------------------------------------|
//! | `tollgate_requests`                    | `model`, `class`    | requests by model and status class  |
//! | `tollgate_tokens`                      | `model`, `kind`     | billed tokens: prompt, completion, cached, reasoning, cache_creation |
//! | `tollgate_usage_estimated`             | `model`             | requests billed on an estimate      |
//! | `tollgate_microcredits`                | `model`             | billed spend, in millionths of a credit |
//! | `tollgate_incomplete`                  | `model`             | responses that did not end normally (stream cut, upstream reset, client gone) |
//! | `tollgate_errors`                      | `code`              | error replies by gateway code       |
//! | `tollgate_limits_store_failures`       |                     | 503s because shared data failed     |
//! | `tollgate_limits_settle_failures`      |                     | spend reservations whose settlement failed (left held) |
//!
//! With `account_metrics` on (opt-in), also by account id (`AccountStat`):
//!
//! | stat (Prometheus name)                 | labels              | counts                              |
//! |----------------------------------------|---------------------|-------------------------------------|
//! | `tollgate_account_requests`            | `account`, `class`  | authenticated requests by status class |
//! | `tollgate_account_tokens`              | `account`, `kind`   | billed tokens, as `tollgate_tokens` |
//! | `tollgate_account_microcredits`        | `account`           | billed spend, as `tollgate_microcredits` |
//!
//! Tag values come from the configuration (model names, account ids) or fixed sets: never a key
//! or anything a client sends, so cardinality is bounded. Requests that named no known model
//! count as `none`; requests without a valid key have no account and no per-account stat.

use crate::config::Config;
use crate::errors::Code;
use crate::exchange::Outcome;

pub const STORE_FAILURES: &str = "tollgate.limits.store_failures";
/// Spend reservations whose settlement at the end of the exchange failed (`Outcome::settle_failures`).
pub const SETTLE_FAILURES: &str = "tollgate.limits.settle_failures";
/// Calls to the limits service (`limits.store: "remote"`) that failed: timeout, reset, a non-200,
/// an answer that does not fit.
pub const REMOTE_FAILURES: &str = "tollgate.limits.remote_failures";
/// Requests whose rate or sandbox limits were decided on this Envoy's own counters because the
/// limits service failed (`fallback: "local"`).
pub const REMOTE_FALLBACKS: &str = "tollgate.limits.remote_fallbacks";
/// Settlements sent to the limits service from the root context, and failed sends retried.
pub const REMOTE_SETTLEMENTS: &str = "tollgate.limits.remote_settlements";
pub const REMOTE_SETTLE_RETRIES: &str = "tollgate.limits.remote_settle_retries";
/// Settlements given up (queue full, or retried too long): their holds expire on the service.
pub const REMOTE_SETTLE_DROPPED: &str = "tollgate.limits.remote_settle_dropped";
const NONE: &str = "none";
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
const TOKEN_KINDS: [&str; 5] = ["prompt", "completion", "cached", "reasoning", "cache_creation"];

/// `name=.=value;.;`; characters that would break the encoding become `_`.
pub(crate) fn tag(name: &str, value: &str) -> String {
    let clean: String = value.chars().map(|c| if c == ';' || c == '=' || c.is_control() { '_' } else { c }).collect();
    format!("{name}=.={clean};.;")
}

/// A per-model stat. The host defines each name once per VM and keeps its id in a slot, so the
/// per-request work is a lookup by model name, not a name built per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stat {
    /// Requests, by status class (index into 1xx..5xx).
    Requests(usize),
    /// Billed tokens, by kind (prompt, completion, cached, reasoning, cache_creation).
    Tokens(usize),
    Estimated,
    Microcredits,
    /// Responses that did not end normally (the record's `complete: false`).
    Incomplete,
}

/// Slots per model: 5 status classes, 5 token kinds, estimated, microcredits, incomplete.
pub const MODEL_SLOTS: usize = CLASSES.len() + TOKEN_KINDS.len() + 3;

impl Stat {
    pub fn slot(self) -> usize {
        match self {
            Stat::Requests(c) => c,
            Stat::Tokens(k) => CLASSES.len() + k,
            Stat::Estimated => CLASSES.len() + TOKEN_KINDS.len(),
            Stat::Microcredits => CLASSES.len() + TOKEN_KINDS.len() + 1,
            Stat::Incomplete => CLASSES.len() + TOKEN_KINDS.len() + 2,
        }
    }

    /// The stat's full name for `model`.
    pub fn name(self, model: &str) -> String {
        let m = tag("model", model);
        match self {
            Stat::Requests(c) => {
                format!("tollgate.requests.{m}{}", tag("class", CLASSES.get(c).copied().unwrap_or("5xx")))
            }
            Stat::Tokens(k) => {
                format!("tollgate.tokens.{m}{}", tag("kind", TOKEN_KINDS.get(k).copied().unwrap_or("prompt")))
            }
            Stat::Estimated => format!("tollgate.usage_estimated.{m}"),
            Stat::Microcredits => format!("tollgate.microcredits.{m}"),
            Stat::Incomplete => format!("tollgate.incomplete.{m}"),
        }
    }
}

/// A per-account stat (`account_metrics`). Ids are kept in slots per account index, as the
/// per-model ones are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountStat {
    /// Requests, by status class (index into 1xx..5xx).
    Requests(usize),
    /// Billed tokens, by kind (prompt, completion, cached, reasoning, cache_creation).
    Tokens(usize),
    Microcredits,
}

/// Slots per account: 5 status classes, 5 token kinds, microcredits.
pub const ACCOUNT_SLOTS: usize = CLASSES.len() + TOKEN_KINDS.len() + 1;

impl AccountStat {
    pub fn slot(self) -> usize {
        match self {
            AccountStat::Requests(c) => c,
            AccountStat::Tokens(k) => CLASSES.len() + k,
            AccountStat::Microcredits => CLASSES.len() + TOKEN_KINDS.len(),
        }
    }

    /// The stat's full name for the account `id`.
    pub fn name(self, id: &str) -> String {
        let a = tag("account", id);
        match self {
            AccountStat::Requests(c) => {
                format!("tollgate.account_requests.{a}{}", tag("class", CLASSES.get(c).copied().unwrap_or("5xx")))
            }
            AccountStat::Tokens(k) => {
                format!("tollgate.account_tokens.{a}{}", tag("kind", TOKEN_KINDS.get(k).copied().unwrap_or("prompt")))
            }
            AccountStat::Microcredits => format!("tollgate.account_microcredits.{a}"),
        }
    }

    /// The stats defined for every account at configuration (so they show at zero): 2xx, 4xx,
    /// 5xx, every token kind, microcredits.
    pub fn defined() -> impl Iterator<Item = AccountStat> {
        [1, 3, 4]
            .into_iter()
            .map(AccountStat::Requests)
            .chain((0..TOKEN_KINDS.len()).map(AccountStat::Tokens))
            .chain(std::iter::once(AccountStat::Microcredits))
    }
}

/// What one finished exchange adds to its account's stats (the same tokens and micro-credits as
/// the per-model ones, so the two views sum to the same totals).
pub fn account_increments(o: &Outcome) -> Vec<(AccountStat, u64)> {
    let mut out = vec![(AccountStat::Requests(class(o.status)), 1)];
    if o.model.is_some() {
        let u = &o.usage;
        for (k, n) in
            [u.prompt_tokens, u.completion_tokens, u.cached_tokens, u.reasoning_tokens, u.cache_creation_tokens]
                .into_iter()
                .enumerate()
        {
            if n > 0 {
                out.push((AccountStat::Tokens(k), n));
            }
        }
        if o.micros > 0 {
            out.push((AccountStat::Microcredits, o.micros));
        }
    }
    out
}

/// The error stat of a code.
pub fn errors(code: Code) -> String {
    format!("tollgate.errors.{}", tag("code", code.as_str()))
}

/// The position of a code in `Code::ALL` (its error stat's slot).
pub fn error_slot(code: Code) -> usize {
    Code::ALL.iter().position(|c| *c == code).unwrap_or(0)
}

fn class(status: u16) -> usize {
    match status {
        100..=199 => 0,
        200..=299 => 1,
        300..=399 => 2,
        400..=499 => 3,
        _ => 4,
    }
}

/// Every stat, defined at configuration so they show at zero before traffic.
pub fn all_names(cfg: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for id in cfg.models.iter().map(|m| m.id.as_str()).chain(std::iter::once(NONE)) {
        out.extend([1, 3, 4].iter().map(|c| Stat::Requests(*c).name(id)));
        if id != NONE {
            out.extend((0..TOKEN_KINDS.len()).map(|k| Stat::Tokens(k).name(id)));
            out.push(Stat::Estimated.name(id));
            out.push(Stat::Microcredits.name(id));
            out.push(Stat::Incomplete.name(id));
        }
    }
    out.extend(cfg.models.iter().filter(|m| !m.fallbacks.is_empty()).map(|m| crate::exchange::failover_stat(&m.id)));
    out.extend(Code::ALL.iter().map(|c| errors(*c)));
    out.push(STORE_FAILURES.to_string());
    out.push(SETTLE_FAILURES.to_string());
    if matches!(cfg.limits, crate::config::LimitsStore::Remote(_)) {
        for name in
            [REMOTE_FAILURES, REMOTE_FALLBACKS, REMOTE_SETTLEMENTS, REMOTE_SETTLE_RETRIES, REMOTE_SETTLE_DROPPED]
        {
            out.push(name.to_string());
        }
    }
    out
}

/// What one finished exchange adds: per-model stats (for `model`) and the error, if any.
#[derive(Debug, PartialEq, Eq)]
pub struct Increments<'a> {
    /// The model label (`none` when the request named no known model).
    pub model: &'a str,
    pub per_model: Vec<(Stat, u64)>,
    pub error: Option<Code>,
}

/// The counter increments for one finished exchange.
pub fn increments(o: &Outcome) -> Increments<'_> {
    let model = o.model.as_deref().unwrap_or(NONE);
    let mut per_model = vec![(Stat::Requests(class(o.status)), 1)];
    if o.model.is_some() {
        let u = &o.usage;
        for (k, n) in
            [u.prompt_tokens, u.completion_tokens, u.cached_tokens, u.reasoning_tokens, u.cache_creation_tokens]
                .into_iter()
                .enumerate()
        {
            if n > 0 {
                per_model.push((Stat::Tokens(k), n));
            }
        }
        if o.estimated {
            per_model.push((Stat::Estimated, 1));
        }
        if o.micros > 0 {
            per_model.push((Stat::Microcredits, o.micros));
        }
        if !o.complete {
            per_model.push((Stat::Incomplete, 1));
        }
    }
    Increments { model, per_model, error: o.error }
}

#[cfg(test)]
#[path = "tests/metrics_tests.rs"]
mod tests;
