//! Admission: the account's requests per minute, a sandbox model's daily quota and the spend
//! reservation, in that order; a refusal gives back what earlier checks took. Also the body caps
//! the headers and the buffered body are held to.

use std::borrow::Cow;

use super::{Env, Exchange, LocalReply};
use crate::config::{Account, Config, LimitsStore};
use crate::endpoints::Endpoint;
use crate::errors::{Code, GatewayError};
use crate::limits::{self, LimitError, RateDecision};
use crate::pricing::{self, Reservation};
use crate::routing::Model;
use crate::sse::write_u64;

impl Exchange {
    /// The account's requests-per-minute check, counting this request. On rejection, the 429 to
    /// send.
    pub(super) fn check_rpm(&mut self, cfg: &Config, env: &Env) -> Result<(), GatewayError> {
        self.rate_window(cfg, env, true)
    }

    /// The account's rate, read at the request headers without counting: a 429 when it is
    /// already used up (the store failing: 503, as for the real check).
    pub(super) fn peek_rpm(&mut self, cfg: &Config, env: &Env) -> Result<(), GatewayError> {
        self.rate_window(cfg, env, false)
    }

    /// The account's window, counting this request or only reading it (`count`), kept for the
    /// rate headers (a reply before the request is counted, a 400 or 413, reports the window as
    /// read then).
    fn rate_window(&mut self, cfg: &Config, env: &Env, count: bool) -> Result<(), GatewayError> {
        // With the limits service, the admission at the body counts and reports the window; the
        // headers alone do not count it (a model listing is not counted there), and only refuse
        // a window this VM already saw the service refuse (`remote::known_full`).
        if self.remote_limits(cfg) {
            if count {
                return Ok(());
            }
            return match self.known_full(cfg, env.now_ms) {
                Some((d, what)) => {
                    self.rate = Some(d);
                    Err(rate_refusal(&d, what))
                }
                None => match self.known_full_key(cfg, env.now_ms) {
                    Some(d) => {
                        self.rate = Some(d);
                        Err(super::policy::key_rate_refusal(&d))
                    }
                    None => Ok(()),
                },
            };
        }
        let Some(account) = self.account.and_then(|a| cfg.account(a)) else {
            return Err(GatewayError::new(Code::InternalError, "account record missing"));
        };
        let (scope, limit, what) = self.rate_scope(account);
        let d = if count {
            limits::check_rpm(env.store, &scope, limit, env.now_ms)
        } else {
            limits::peek_rpm(env.store, &scope, limit, env.now_ms)
        };
        let d = d.map_err(store_error)?;
        self.rate = Some(d);
        if !d.allowed {
            return Err(rate_refusal(&d, what));
        }
        // The key's own window, once the account's admitted the request.
        match self.check_key_rpm(cfg, env, d, count) {
            Ok(binding) => {
                self.rate = Some(binding);
                Ok(())
            }
            Err(e) => {
                if count {
                    // Best effort, as every refund: a failed one leaves the slot taken.
                    let _ = limits::undo_rpm(env.store, &scope, env.now_ms);
                }
                Err(e)
            }
        }
    }

    /// The rate window this request counts in: image generations have their own per-minute limit
    /// (`image_rpm`, as the platform documents it), kept under `rpm:img:{account}`; everything
    /// else shares the account's `rpm:{account}`.
    pub(super) fn rate_scope<'c>(&self, account: &'c Account) -> (Cow<'c, str>, u32, &'static str) {
        if self.endpoint == Endpoint::Images {
            (format!("img:{}", account.id).into(), self.fallback_limit(account.image_rpm), "image generations")
        } else {
            (account.id.as_str().into(), self.fallback_limit(account.rpm), "requests")
        }
    }

    /// The limits live on the shared limits service and it is being used (not fallen back from).
    fn remote_limits(&self, cfg: &Config) -> bool {
        matches!(cfg.limits, LimitsStore::Remote(_)) && self.remote.decided != Some("local_fallback")
    }

    /// Sandbox quota and spend caps, after the rate check admitted the request. A rejection
    /// refunds what earlier checks took, so a rejected request consumes no limit.
    pub(super) fn check_model_limits(
        &mut self,
        cfg: &Config,
        env: &Env,
        model: &Model,
        units: f64,
        max_tokens: Option<u64>,
    ) -> Result<(), GatewayError> {
        let Some(key) = self.key.and_then(|k| cfg.key(k)) else {
            return Err(GatewayError::new(Code::InternalError, "key record missing"));
        };
        let account = self.account.and_then(|a| cfg.account(a));
        // Refunds are best effort: a failed refund leaves the slot taken (the safe direction).
        let scope = account.map(|a| self.rate_scope(a).0);
        let own_rpm = super::policy::key_rpm(key).map(|_| key.id.as_str());
        let refund_rpm = || {
            if let Some(s) = &scope {
                let _ = limits::undo_rpm(env.store, s, env.now_ms);
            }
            if let Some(id) = own_rpm {
                let _ = limits::undo_key_rpm(env.store, id, env.now_ms);
            }
        };
        let mut took_daily = false;
        // A development key is not held to the free models' daily quota.
        if model.sandbox && !key.policy().development {
            let quota = self.fallback_limit(key.sandbox_daily_quota);
            let d = match limits::check_daily(env.store, &key.id, quota, env.now_ms) {
                Ok(d) => d,
                Err(e) => {
                    refund_rpm();
                    return Err(store_error(e));
                }
            };
            if !d.allowed {
                refund_rpm();
                return Err(sandbox_refusal(model, &d));
            }
            took_daily = true;
        }
        // The completion budget the reservation assumes (bounds an oversized response's bill).
        self.completion_budget = pricing::completion_budget(model, max_tokens);
        self.estimate_micros = pricing::admission_micros(model, &self.endpoint, self.request_bytes, units, max_tokens);
        let undo_all = || {
            refund_rpm();
            if took_daily {
                let _ = limits::undo_daily(env.store, &key.id, env.now_ms);
            }
        };
        if let Some(a) = account {
            if let Err(refused) = self.reserve_tokens(env, a, model, units, max_tokens) {
                undo_all();
                return Err(refused.unwrap_or_else(store_error));
            }
        }
        let scopes = pricing::spend_scopes(key, account, env.now_ms);
        match pricing::reserve(env.store, scopes, self.estimate_micros) {
            Ok(Reservation::Uncapped) => Ok(()),
            Ok(Reservation::Held(hold)) => {
                self.reserved = Some(hold);
                Ok(())
            }
            Ok(Reservation::Refused) => {
                undo_all();
                self.settle_local_tokens(env, 0);
                Err(spend_refusal())
            }
            Err(e) => {
                undo_all();
                self.settle_local_tokens(env, 0);
                Err(store_error(e))
            }
        }
    }

    /// The account's window, read without counting, for the rate headers of a reply that is not
    /// counted (404, 405 of an authenticated request); a store failure just leaves them out.
    pub(super) fn note_rate(&mut self, cfg: &Config, env: &Env) {
        if self.remote_limits(cfg) {
            return;
        }
        if let Some(account) = self.account.and_then(|a| cfg.account(a)) {
            let (scope, limit, _) = self.rate_scope(account);
            if let Ok(d) = limits::peek_rpm(env.store, &scope, limit, env.now_ms) {
                self.rate = Some(d);
                if let Ok(binding) = self.check_key_rpm(cfg, env, d, false) {
                    self.rate = Some(binding);
                }
            }
        }
    }

    /// Is the buffered request body over this endpoint's cap? The glue asks at every piece, so
    /// a body is refused as soon as what is buffered passes it.
    pub fn request_too_large(&mut self, cfg: &Config, size: usize) -> Option<LocalReply> {
        let cap = self.body_cap(cfg);
        if size > cap {
            return Some(self.fail(too_large_body(cap, size as u64)));
        }
        None
    }

    /// The largest body this request's endpoint buffers: `max_body_bytes` for chat (base64
    /// images), `max_media_body_bytes` (at most that) for image, video and speech JSON, whose
    /// fields are a prompt or a text of a few thousand characters.
    pub fn body_cap(&self, cfg: &Config) -> usize {
        match self.endpoint {
            Endpoint::Images | Endpoint::Videos | Endpoint::Speech => cfg.max_media_body_bytes.min(cfg.max_body_bytes),
            _ => cfg.max_body_bytes,
        }
    }
}

/// A limit that could not be decided (the counter store failed or stayed contended): limits fail
/// closed, with a 503 `service_unavailable`.
pub(super) fn store_error(_: LimitError) -> GatewayError {
    GatewayError::new(
        Code::ServiceUnavailable,
        "The gateway cannot check this request's limits right now; retry shortly",
    )
}

/// The 429 of a rate window that is used up.
pub(super) fn rate_refusal(d: &RateDecision, what: &str) -> GatewayError {
    GatewayError::new(
        Code::RateLimitExceeded,
        format!(
            "Rate limit of {} {what} per minute reached for this account; retry after {} s",
            d.limit, d.retry_after_secs
        ),
    )
    .with_retry_after_ms(d.reset_after_ms)
}

/// The 429 of a sandbox key whose daily quota is used up.
pub(super) fn sandbox_refusal(model: &Model, d: &RateDecision) -> GatewayError {
    GatewayError::new(
        Code::SandboxQuotaExceeded,
        format!(
            "The free {} tier allows {} calls per key per UTC day; wait until midnight UTC or switch to a paid model",
            model.id, d.limit
        ),
    )
    .with_retry_after(d.retry_after_secs)
}

/// The 402 of a spend cap the request's estimate does not fit.
pub(super) fn spend_refusal() -> GatewayError {
    GatewayError::new(
        Code::InsufficientFunds,
        "The spend cap of this key or account is reached (or this request's estimated cost exceeds what is left); raise the cap to continue",
    )
}

/// `1s`, `12s`, `250ms`: the OpenAI style of `x-ratelimit-reset-requests`.
pub fn format_duration(ms: u64) -> String {
    let (n, unit) = if ms < 1000 { (ms, "ms") } else { (ms.div_ceil(1000), "s") };
    // Written directly (no formatting machinery per request).
    let mut out = Vec::with_capacity(24);
    write_u64(&mut out, n);
    out.extend_from_slice(unit.as_bytes());
    String::from_utf8(out).unwrap_or_default()
}

pub(super) fn too_large_body(max: usize, got: u64) -> GatewayError {
    GatewayError::new(
        Code::RequestTooLarge,
        format!("The request body is larger than {max} bytes ({got} bytes), the limit of this endpoint"),
    )
}
