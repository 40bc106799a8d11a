//! What a request costs, and the spend policy that holds it to its caps. Everything about money is
//! here: the admission estimate, the unit prices applied to what is billed, and the reservation
//! that sits on the spend caps between the two.
//!
//! The policy, in the order of a request's trip:
//! 1. **Admission** ([`admission_micros`]): before anything goes upstream, the request's cost is
//!    estimated as an upper bound (prompt tokens from the body size, the completion budget it
//!    authorises; per image, per second or per 1000 characters for media).
//! 2. **Reservation** ([`reserve`]): that estimate is reserved on every spend cap of the key and
//!    its account, or on none (402 `insufficient_funds`). A streamed upload whose estimate grows
//!    with its bytes reserves the difference as it goes ([`SpendHold::grow_to`]).
//! 3. **Settlement** ([`SpendHold::settle`]): when the exchange ends, the reservation moves to the
//!    spent total at the billed cost ([`cost_micros`]; 0 for a request that failed or was refused
//!    after admission, which releases it). A failed settlement leaves the reservation held (the
//!    caps stay stricter, never looser); the exchange counts it for the glue to report.

use crate::config::{Account, KeyRecord};
use crate::endpoints::Endpoint;
use crate::limits::{self, Counters, LimitError, SpendScope};
use crate::routing::{Model, ModelType};
use crate::usage::{self, Usage};

/// Prompt tokens assumed for a request body of `request_bytes`: about 4 bytes a token, an upper
/// bound for most text in JSON.
pub fn prompt_tokens_bound(request_bytes: usize) -> f64 {
    (request_bytes as f64 / 4.0).ceil()
}

/// Completion tokens a request authorises: its `max_tokens`, or the model's default.
pub fn completion_budget(model: &Model, max_tokens: Option<u64>) -> u64 {
    max_tokens.unwrap_or(u64::from(model.default_max_tokens))
}

/// Admission estimate: prompt tokens from the body size ([`prompt_tokens_bound`]), completion
/// tokens from the [`completion_budget`] times the choices asked for (`units` for text: `n`, at
/// least 1); per unit (image, second of video) for media.
pub fn estimate_micros(model: &Model, request_bytes: usize, units: f64, max_tokens: Option<u64>) -> u64 {
    let p = model.price;
    let credits = match model.model_type {
        ModelType::Text => {
            let prompt = prompt_tokens_bound(request_bytes);
            let completion = completion_budget(model, max_tokens) as f64 * units.max(1.0);
            // Upper bounds: every token at the dearer of its two prices.
            let prompt_price = p.prompt_per_1k.max(p.cached_per_1k()).max(p.cache_write_per_1k());
            let completion_price = p.completion_per_1k.max(p.reasoning_per_1k());
            prompt * prompt_price / 1000.0 + completion * completion_price / 1000.0
        }
        // Input tokens only: the body's size bounds them (a token id is at least 2 bytes of JSON,
        // so this bound over-counts token arrays at most 2 times).
        ModelType::Embedding => prompt_tokens_bound(request_bytes) * p.prompt_per_1k / 1000.0,
        ModelType::Image => units.max(1.0) * p.per_image,
        ModelType::Video | ModelType::Audio => units.max(0.0) * p.per_second,
    };
    limits::credits_to_micros(credits)
}

/// Credits of a media request, in micro-credits: per image, per second (video, transcription),
/// per 1000 characters (speech).
pub fn media_micros(model: &Model, endpoint: &Endpoint, units: f64) -> u64 {
    let p = model.price;
    let units = units.max(0.0);
    let credits = match (model.model_type, endpoint) {
        (ModelType::Image, _) => units * p.per_image,
        (ModelType::Audio, Endpoint::Speech) => units * p.per_1k_chars / 1000.0,
        _ => units * p.per_second,
    };
    limits::credits_to_micros(credits)
}

/// The actual cost of reported usage.
pub fn usage_micros(model: &Model, u: &Usage) -> u64 {
    limits::credits_to_micros(usage::credits(&model.price, u))
}

/// What the spend caps reserve when a request is admitted: [`estimate_micros`] for text (from
/// the body's size, the choices in `units` and `max_tokens`), [`media_micros`] of the validated
/// units for media.
pub fn admission_micros(
    model: &Model,
    endpoint: &Endpoint,
    request_bytes: usize,
    units: f64,
    max_tokens: Option<u64>,
) -> u64 {
    if endpoint.is_count() {
        return 0;
    }
    match model.model_type {
        ModelType::Text | ModelType::Embedding => estimate_micros(model, request_bytes, units, max_tokens),
        _ => media_micros(model, endpoint, units),
    }
}

/// What a request that reached the upstream is billed, and what its reservation settles at: the
/// billed usage at the model's token prices for text, the billed units for media.
pub fn cost_micros(model: &Model, endpoint: &Endpoint, billed: &Usage, units: f64) -> u64 {
    if endpoint.is_count() {
        return 0;
    }
    match model.model_type {
        ModelType::Text | ModelType::Embedding => usage_micros(model, billed),
        _ => media_micros(model, endpoint, units),
    }
}

/// Completion tokens billed for a response refused as oversized after `read_bytes` of it (its
/// usage, at the end of the body, was never seen): the bytes read at 4 bytes a token, at most the
/// completion budget the request authorised (an upstream that honours it cannot have generated
/// more, and JSON bytes such as padding, logprobs and syntax are not tokens).
pub fn cut_completion_tokens(read_bytes: u64, budget: u64) -> u64 {
    usage::tokens_from_bytes(read_bytes).min(budget)
}

/// The spend caps a request of `key` (and its `account`) made at `now_ms` counts against: the
/// key's, then the account's, those that are set, each in its period containing `now_ms` (a
/// `month` or `day` cap counts in its own entry per UTC period; see `limits::period_suffix`).
pub fn spend_scopes(key: &KeyRecord, account: Option<&Account>, now_ms: u64) -> Vec<SpendScope> {
    let mut scopes = Vec::new();
    if let Some(cap) = key.spend_cap() {
        scopes.push(SpendScope::key_in(&key.id, limits::credits_to_micros(cap), key.policy().cap_period, now_ms));
    }
    if let Some((a, cap)) = account.and_then(|a| Some((a, a.spend_cap?))) {
        let micros = limits::credits_to_micros(cap);
        scopes.push(SpendScope::account_in(&a.id, micros, a.policy.cap_period, now_ms));
    }
    scopes
}

/// What reserving an admission estimate decided.
#[derive(Debug)]
pub enum Reservation {
    /// Neither the key nor its account has a spend cap: nothing to reserve or settle.
    Uncapped,
    /// Reserved on every cap; settle it when the exchange ends.
    Held(SpendHold),
    /// A cap is reached, or the estimate does not fit what is left: 402.
    Refused,
}

/// Reserves `estimate` micro-credits on every one of `scopes`, or on none.
pub fn reserve(store: &dyn Counters, scopes: Vec<SpendScope>, estimate: u64) -> Result<Reservation, LimitError> {
    if scopes.is_empty() {
        return Ok(Reservation::Uncapped);
    }
    let d = limits::reserve(store, &scopes, estimate)?;
    Ok(if d.allowed {
        Reservation::Held(SpendHold { scopes, reserved: d.reserved_micros })
    } else {
        Reservation::Refused
    })
}

/// Spend reserved on the caps for one admitted request, until it is settled.
#[derive(Debug)]
pub struct SpendHold {
    scopes: Vec<SpendScope>,
    reserved: u64,
}

impl SpendHold {
    /// The micro-credits held.
    pub fn reserved_micros(&self) -> u64 {
        self.reserved
    }

    /// Raises the reservation to `needed` micro-credits (a streamed upload whose estimate grew):
    /// reserves the difference on every cap. `Ok(false)`: it does not fit (402); what was held
    /// stays held, to be settled.
    pub fn grow_to(&mut self, store: &dyn Counters, needed: u64) -> Result<bool, LimitError> {
        let Some(more) = needed.checked_sub(self.reserved).filter(|m| *m > 0) else { return Ok(true) };
        let d = limits::reserve(store, &self.scopes, more)?;
        if d.allowed {
            self.reserved = self.reserved.saturating_add(d.reserved_micros);
        }
        Ok(d.allowed)
    }

    /// Ends the hold: the reservation leaves every cap and `actual` micro-credits are counted as
    /// spent there. Every cap is attempted; on a cap where the store failed or stayed contended,
    /// the reservation stays held and the cost is not counted. The caller counts and reports that
    /// ([`SettleFailure`]).
    pub fn settle(self, store: &dyn Counters, actual: u64) -> Result<(), SettleFailure> {
        limits::settle(store, &self.scopes, self.reserved, actual).map_err(|error| SettleFailure {
            error,
            reserved_micros: self.reserved,
            actual_micros: actual,
            scopes: self.scopes.into_iter().map(|s| s.key).collect(),
        })
    }
}

/// A settlement that did not land on at least one cap: there the reservation stays held (blocking
/// that much budget until an operator corrects the entry) and the spent total misses
/// `actual_micros`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettleFailure {
    pub error: LimitError,
    pub reserved_micros: u64,
    pub actual_micros: u64,
    /// The counter entries it was to settle (`spend:key:…`, `spend:acct:…`).
    pub scopes: Vec<String>,
}

impl std::fmt::Display for SettleFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "settling {} reserved micro-credits at {} on {} failed ({}); where it failed, the reservation stays held and the cost is not counted as spent",
            self.reserved_micros,
            self.actual_micros,
            self.scopes.join(", "),
            self.error
        )
    }
}

#[cfg(test)]
#[path = "tests/pricing_tests.rs"]
mod tests;
