//! The per-key and per-account policies of admission (issue 18): a key's own requests per minute
//! beside its account's, the account's tokens per minute (reserved at admission, settled with the
//! usage), and the headers that report them. The spend cap periods live in the spend scopes
//! (`pricing::spend_scopes`), development keys in the sandbox step of `admit.rs`.
//!
//! **Which request window answers.** A request counts in both windows, the account's and the
//! key's (when the key has an `rpm`); it is refused by the first that is full (the account's is
//! checked first; a refusal by the key's gives the account's slot back). The
//! `x-ratelimit-*-requests` headers report the binding window: the refusing one, else the one with
//! fewer requests remaining (the account's on a tie).

use super::{Env, Exchange};
use crate::config::{Account, Config, KeyRecord};
use crate::errors::{Code, GatewayError};
use crate::limits::{self, LimitError, RateDecision};
use crate::pricing;
use crate::routing::{Model, ModelType};
use crate::usage::Usage;

/// The policies' part of one request.
#[derive(Debug, Default)]
pub(crate) struct PolicyState {
    /// The account's tokens-per-minute window after this request (for the `x-ratelimit-*-tokens`
    /// headers).
    pub(crate) tokens: Option<RateDecision>,
    /// Tokens reserved in the account's window, to settle when the exchange ends.
    pub(crate) tpm_hold: Option<TokenHold>,
    /// Where the admit sent to the limits service put each optional window.
    pub(crate) layout: WindowLayout,
}

/// A tokens-per-minute reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenHold {
    pub(crate) account: String,
    pub(crate) reserved: u64,
    /// The admission's time: the window the reservation settles in.
    pub(crate) at_ms: u64,
    /// Held on the limits service (settled with the spend there), not in this Envoy.
    pub(crate) remote: bool,
}

/// The index of each optional window in an admit sent to the limits service (the account's
/// requests per minute is always at 0).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WindowLayout {
    pub(crate) key_rpm: Option<usize>,
    pub(crate) daily: Option<usize>,
    pub(crate) tpm: Option<usize>,
}

/// The binding request window of two that both admitted a request: fewer remaining, the
/// account's on a tie.
pub(crate) fn binding(account: RateDecision, key: Option<RateDecision>) -> RateDecision {
    match key {
        Some(k) if k.remaining < account.remaining => k,
        _ => account,
    }
}

/// A key's own requests per minute, as the current fallback applies it (see `fallback_limit`).
pub(crate) fn key_rpm(key: &KeyRecord) -> Option<u32> {
    key.policy().rpm
}

/// The 429 of a key whose own requests-per-minute window is used up.
pub(crate) fn key_rate_refusal(d: &RateDecision) -> GatewayError {
    GatewayError::new(
        Code::RateLimitExceeded,
        format!(
            "Rate limit of {} requests per minute reached for this API key; retry after {} s",
            d.limit, d.retry_after_secs
        ),
    )
    .with_retry_after_ms(d.reset_after_ms)
}

/// The 429 of an account whose tokens-per-minute window cannot take this request's estimate.
pub(crate) fn token_refusal(d: &RateDecision, estimate: u64) -> GatewayError {
    let msg = if estimate > u64::from(d.limit) {
        format!(
            "This request may use up to {estimate} tokens (prompt and max_tokens), more than the account's limit of {} tokens per minute; lower max_tokens",
            d.limit
        )
    } else {
        format!(
            "Rate limit of {} tokens per minute reached for this account (this request may use up to {estimate}); retry after {} s",
            d.limit, d.retry_after_secs
        )
    };
    GatewayError::new(Code::RateLimitExceeded, msg).with_retry_after_ms(d.reset_after_ms)
}

/// `250ms`, `1s`, `59s`, `1m0s`, `6m0s`: the style of OpenAI's `x-ratelimit-reset-tokens` (Go's
/// durations, in whole seconds rounded up from one second on).
pub fn format_reset(ms: u64) -> String {
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = ms.div_ceil(1000);
    if secs < 60 {
        format!("{secs}s")
    } else if secs < 3600 {
        format!("{}m{}s", secs / 60, secs % 60)
    } else {
        format!("{}h{}m{}s", secs / 3600, secs % 3600 / 60, secs % 60)
    }
}

impl Exchange {
    /// The tokens this request may use, for the account's tokens per minute: the prompt estimate
    /// plus the completion budget (`max_tokens` or the model's default) per choice for text, the
    /// prompt for embeddings; `None` for anything that is not counted in tokens.
    pub(super) fn token_estimate(&self, model: &Model, units: f64, max_tokens: Option<u64>) -> Option<u64> {
        if self.endpoint.is_count() {
            return None;
        }
        match model.model_type {
            ModelType::Text => {
                let choices = if units.is_finite() && units > 1.0 { units as u64 } else { 1 };
                let completion = pricing::completion_budget(model, max_tokens).saturating_mul(choices);
                Some(self.prompt_estimate.saturating_add(completion))
            }
            ModelType::Embedding => Some(self.prompt_estimate),
            _ => None,
        }
    }

    /// The account's tokens per minute and this request's estimate, when both apply.
    pub(super) fn tpm_of(
        &self,
        account: &Account,
        model: &Model,
        units: f64,
        max_tokens: Option<u64>,
    ) -> Option<(u32, u64)> {
        let limit = self.fallback_limit(account.policy.tpm?);
        Some((limit, self.token_estimate(model, units, max_tokens)?))
    }

    /// Counts this request in the key's own requests-per-minute window (local store), or only
    /// reads it (`count`), after the account's admitted it (`account`): the binding decision for
    /// the headers, or the 429 (with the key's window kept for the headers).
    pub(super) fn check_key_rpm(
        &mut self,
        cfg: &Config,
        env: &Env,
        account: RateDecision,
        count: bool,
    ) -> Result<RateDecision, GatewayError> {
        let Some((key, limit)) = self.key.and_then(|k| cfg.key(k)).and_then(|k| Some((k, key_rpm(k)?))) else {
            return Ok(account);
        };
        let limit = self.fallback_limit(limit);
        let d = if count {
            limits::check_key_rpm(env.store, &key.id, limit, env.now_ms)
        } else {
            limits::peek_key_rpm(env.store, &key.id, limit, env.now_ms)
        }
        .map_err(super::admit::store_error)?;
        if d.allowed {
            return Ok(binding(account, Some(d)));
        }
        self.rate = Some(d);
        Err(key_rate_refusal(&d))
    }

    /// Reserves this request's tokens in its account's window (local store). `Ok(true)`: reserved
    /// or no limit applies.
    pub(super) fn reserve_tokens(
        &mut self,
        env: &Env,
        account: &Account,
        model: &Model,
        units: f64,
        max_tokens: Option<u64>,
    ) -> Result<(), Result<GatewayError, LimitError>> {
        let Some((limit, estimate)) = self.tpm_of(account, model, units, max_tokens) else { return Ok(()) };
        let d = limits::reserve_tokens(env.store, &account.id, limit, estimate, env.now_ms).map_err(Err)?;
        self.policy.tokens = Some(d);
        if !d.allowed {
            return Err(Ok(token_refusal(&d, estimate)));
        }
        self.policy.tpm_hold =
            Some(TokenHold { account: account.id.clone(), reserved: estimate, at_ms: env.now_ms, remote: false });
        Ok(())
    }

    /// Settles the local tokens reservation at the tokens used (0 releases it). Best effort: a
    /// failure leaves the estimate counted until the window ends (the stricter direction).
    pub(super) fn settle_local_tokens(&mut self, env: &Env, used: u64) {
        if let Some(h) = self.policy.tpm_hold.take_if(|h| !h.remote) {
            let _ = limits::settle_tokens(env.store, &h.account, h.reserved, used, h.at_ms);
        }
    }

    /// The tokens a finished request settles its tokens-per-minute reservation at: its billed
    /// usage when the upstream answered it (2xx, or a response refused as oversized), else 0.
    pub(super) fn tokens_used(&self, billed: &Usage) -> u64 {
        let answered = !self.local_reply && ((200..300).contains(&self.status) || self.cut_bytes.is_some());
        if answered {
            billed.total()
        } else {
            0
        }
    }

    /// `x-ratelimit-*-tokens` for a request that went through the account's tokens per minute.
    pub(super) fn token_headers(&self) -> Vec<(String, String)> {
        match &self.policy.tokens {
            Some(d) => vec![
                ("x-ratelimit-limit-tokens".to_string(), d.limit.to_string()),
                ("x-ratelimit-remaining-tokens".to_string(), d.remaining.to_string()),
                ("x-ratelimit-reset-tokens".to_string(), format_reset(d.reset_after_ms)),
            ],
            None => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(limit: u32, remaining: u32) -> RateDecision {
        RateDecision { allowed: true, limit, remaining, reset_after_ms: 1, retry_after_secs: 1 }
    }

    #[test]
    fn the_window_with_fewer_requests_left_binds() {
        assert_eq!(binding(d(100, 50), Some(d(5, 4))), d(5, 4));
        assert_eq!(binding(d(3, 0), Some(d(5, 4))), d(3, 0));
        assert_eq!(binding(d(100, 4), Some(d(5, 4))), d(100, 4));
        assert_eq!(binding(d(100, 4), None), d(100, 4));
    }

    #[test]
    fn resets_read_like_openai_durations() {
        assert_eq!(format_reset(0), "0ms");
        assert_eq!(format_reset(250), "250ms");
        assert_eq!(format_reset(1000), "1s");
        assert_eq!(format_reset(1001), "2s");
        assert_eq!(format_reset(59_000), "59s");
        assert_eq!(format_reset(60_000), "1m0s");
        assert_eq!(format_reset(360_000), "6m0s");
        assert_eq!(format_reset(3_661_000), "1h1m1s");
    }
}
