//! Admission on the shared limits service (`limits.store: "remote"`): the same decisions as the
//! local store's, asked asynchronously. The exchange says "ask the service this body" (the
//! `AskLimits` actions); the glue sends it on the configured cluster, pauses the request and feeds
//! the answer (or the failure) back with [`Exchange::on_limits_answer`]; then the glue calls the
//! same callback again with the same input, and the admission reads the answer instead of asking.
//!
//! A failed call (timeout, reset, a non-200, an answer that does not fit): spend caps fail closed
//! (503 `service_unavailable`); requests per minute and sandbox quotas follow `limits.fallback`
//! (`closed`: 503; `local`: this Envoy's own counters at each limit divided by `replicas`).

use std::cell::RefCell;
use std::collections::HashMap;

use super::admit::store_error;
use super::policy::{self, TokenHold, WindowLayout};
use super::{Env, Exchange};
use crate::config::{Config, Fallback, LimitsStore, RemoteLimits};
use crate::errors::{Code, GatewayError};
use crate::limits::remote::{self, Admission, AdmitRequest, SettleRequest, WindowSettle};
use crate::limits::{LimitError, RateDecision, SpendScope};
use crate::pricing;
use crate::routing::Model;

/// Rate windows the service refused, per VM: rate scope -> (limit, window end in unix ms). Until
/// that window ends, a request of the scope is refused at its headers, before its body is read
/// or the service asked (as the local store's peek does). Sound because, on the service, a
/// window's count only grows until it ends: the filter never gives a slot back there (a refused
/// admit counts nothing). Keyed with the limit, so a raised limit asks again.
const FULL_CAP: usize = 4096;

thread_local! {
    static FULL: RefCell<HashMap<String, (u32, u64)>> = RefCell::new(HashMap::new());
}

/// The limits service's part of one request.
#[derive(Debug, Default)]
pub(crate) struct RemoteState {
    /// The admit asked (kept to read its answer against).
    asked: Option<AdmitRequest>,
    /// The admit's body, until the glue takes it.
    call: Option<Vec<u8>>,
    /// The answer, until the re-run admission reads it.
    answer: Option<Result<Admission, LimitError>>,
    /// The spend caps held on the service under the request id, to settle at the end.
    pub(crate) hold: Option<Vec<SpendScope>>,
    /// How this request's limits were decided (the record's `limits`): `remote`, `local_fallback`
    /// (the service failed; this Envoy's counters decided) or `unavailable` (failed closed).
    pub(crate) decided: Option<&'static str>,
    /// Calls to the service that failed for this request.
    pub(crate) failures: u32,
    /// Decisions taken on this Envoy's own counters because the service failed.
    pub(crate) fallbacks: u32,
    /// What a fallback divides each rate limit by (1 unless `fallback: "local"` is in use).
    pub(crate) divisor: u32,
    /// The asked admit's `now_ms` (the answer's `reset_after_ms` counts from it).
    asked_ms: u64,
}

/// A call the glue sends to the limits service's cluster (`POST`, JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitsCall {
    pub path: &'static str,
    pub body: Vec<u8>,
}

impl Exchange {
    /// The admission of a named, valid request: rate, sandbox quota, spend hold. `Ok(true)`:
    /// admitted; `Ok(false)`: the limits service must be asked first (the caller returns its
    /// `AskLimits` action, and is called again once the answer is in).
    pub(super) fn admit(
        &mut self,
        cfg: &Config,
        env: &Env,
        model: &Model,
        units: f64,
        max_tokens: Option<u64>,
    ) -> Result<bool, GatewayError> {
        let LimitsStore::Remote(remote) = &cfg.limits else {
            self.check_rpm(cfg, env)?;
            self.check_model_limits(cfg, env, model, units, max_tokens)?;
            return Ok(true);
        };
        let Some(answer) = self.remote.answer.take() else {
            self.ask(cfg, env, remote, model, units, max_tokens)?;
            return Ok(false);
        };
        let scopes = self.scopes(cfg);
        if answer.is_err() {
            // Whether the admit landed is unknown: its tokens are not settled on the service (if
            // it did land, the estimate stays counted until the window ends: the safe direction).
            self.policy.tpm_hold = None;
        }
        match answer {
            Ok(admission) => {
                self.remote.decided = Some("remote");
                self.apply_admission(cfg, model, scopes, &admission).map(|()| true)
            }
            Err(e) if !scopes.is_empty() || remote.fallback == Fallback::Closed => {
                // Spend caps never fall back: a hold only counts on the shared state.
                self.remote.decided = Some("unavailable");
                Err(store_error(e))
            }
            Err(_) => {
                self.remote.decided = Some("local_fallback");
                self.remote.fallbacks = self.remote.fallbacks.saturating_add(1);
                self.remote.divisor = remote.replicas.max(1);
                self.check_rpm(cfg, env)?;
                self.check_model_limits(cfg, env, model, units, max_tokens)?;
                Ok(true)
            }
        }
    }

    /// The spend caps of the request's key and account, in the periods of the admit's time.
    fn scopes(&self, cfg: &Config) -> Vec<SpendScope> {
        let key = self.key.and_then(|k| cfg.key(k));
        let account = self.account.and_then(|a| cfg.account(a));
        key.map(|k| pricing::spend_scopes(k, account, self.remote.asked_ms)).unwrap_or_default()
    }

    /// Builds the admit of this request (the same limits and estimate the local path checks).
    fn ask(
        &mut self,
        cfg: &Config,
        env: &Env,
        remote: &RemoteLimits,
        model: &Model,
        units: f64,
        max_tokens: Option<u64>,
    ) -> Result<(), GatewayError> {
        let Some(key) = self.key.and_then(|k| cfg.key(k)) else {
            return Err(GatewayError::new(Code::InternalError, "key record missing"));
        };
        let Some(account) = self.account.and_then(|a| cfg.account(a)) else {
            return Err(GatewayError::new(Code::InternalError, "account record missing"));
        };
        let (scope, limit, _) = self.rate_scope(account);
        let mut req = AdmitRequest::new(env.now_ms).rpm(&scope, limit);
        let mut layout = WindowLayout::default();
        if let Some(own) = policy::key_rpm(key) {
            layout.key_rpm = Some(req.windows.len());
            req = req.key_rpm(&key.id, own);
        }
        // A development key is not held to the free models' daily quota.
        if model.sandbox && !key.policy().development {
            layout.daily = Some(req.windows.len());
            req = req.daily(&key.id, key.sandbox_daily_quota);
        }
        if let Some((tpm, tokens)) = self.tpm_of(account, model, units, max_tokens) {
            layout.tpm = Some(req.windows.len());
            req = req.tpm(&account.id, tpm, tokens);
            // Counted on the service, as far as anyone here can tell, until the answer says
            // otherwise (see the spend hold below).
            self.policy.tpm_hold =
                Some(TokenHold { account: account.id.clone(), reserved: tokens, at_ms: env.now_ms, remote: true });
        }
        self.policy.layout = layout;
        self.completion_budget = pricing::completion_budget(model, max_tokens);
        self.estimate_micros = pricing::admission_micros(model, &self.endpoint, self.request_bytes, units, max_tokens);
        let scopes = pricing::spend_scopes(key, Some(account), env.now_ms);
        if !scopes.is_empty() {
            req = req.hold(&self.request_id, &scopes, self.estimate_micros, remote.hold_ttl_ms);
            // Held, as far as anyone here can tell, until the answer says otherwise: a call that
            // failed or was cut short (a timeout, the client gone) may have landed, so the end of
            // the request settles it (at 0 when nothing was billed) instead of waiting for its TTL.
            self.remote.hold = Some(scopes);
        }
        self.remote.call = Some(req.body());
        self.remote.asked_ms = req.now_ms;
        self.remote.asked = Some(req);
        Ok(())
    }

    /// The service's decisions, applied as the local path applies its own (same errors, same
    /// rate headers; the service counted nothing for a refused request).
    fn apply_admission(
        &mut self,
        cfg: &Config,
        model: &Model,
        scopes: Vec<SpendScope>,
        a: &Admission,
    ) -> Result<(), GatewayError> {
        let Some(account) = self.account.and_then(|i| cfg.account(i)) else {
            return Err(GatewayError::new(Code::InternalError, "account record missing"));
        };
        let (scope, limit, what) = self.rate_scope(account);
        // A refused admit holds nothing on the service.
        let held = self.remote.hold.take();
        let estimate = self.policy.tpm_hold.as_ref().map_or(0, |h| h.reserved);
        if !a.admitted() {
            self.policy.tpm_hold = None;
        }
        let window = |i: usize| a.windows.get(i).copied().ok_or_else(|| store_error(LimitError::Unavailable));
        let rpm = window(0)?;
        self.rate = Some(rpm);
        if !rpm.allowed {
            remember_full(&scope, limit, self.remote.asked_ms.saturating_add(rpm.reset_after_ms), self.now_ms);
            return Err(super::admit::rate_refusal(&rpm, what));
        }
        let layout = self.policy.layout;
        if let Some(i) = layout.key_rpm {
            let d = window(i)?;
            if !d.allowed {
                self.rate = Some(d);
                if let Some(key) = self.key.and_then(|k| cfg.key(k)) {
                    let until = self.remote.asked_ms.saturating_add(d.reset_after_ms);
                    remember_full(&key_scope(&key.id), d.limit, until, self.now_ms);
                }
                return Err(policy::key_rate_refusal(&d));
            }
            self.rate = Some(policy::binding(rpm, Some(d)));
        }
        if let Some(i) = layout.daily {
            let d = window(i)?;
            if !d.allowed {
                return Err(super::admit::sandbox_refusal(model, &d));
            }
        }
        if let Some(i) = layout.tpm {
            let d = window(i)?;
            self.policy.tokens = Some(d);
            if !d.allowed {
                return Err(policy::token_refusal(&d, estimate));
            }
        }
        match a.spend {
            Some(s) if s.allowed => {
                self.remote.hold = held.or(Some(scopes));
                Ok(())
            }
            Some(_) => Err(super::admit::spend_refusal()),
            None if scopes.is_empty() => Ok(()),
            None => Err(store_error(LimitError::Unavailable)),
        }
    }

    /// The account's rate window, if this VM saw the service refuse it and it has not ended: the
    /// refusal to answer at the headers, and what the window counts.
    pub(super) fn known_full(&self, cfg: &Config, now_ms: u64) -> Option<(RateDecision, &'static str)> {
        let account = self.account.and_then(|a| cfg.account(a))?;
        let (scope, limit, what) = self.rate_scope(account);
        let until = FULL.with(|f| f.borrow().get(scope.as_ref()).filter(|(l, _)| *l == limit).map(|(_, u)| *u))?;
        let reset_after_ms = until.checked_sub(now_ms).filter(|ms| *ms > 0)?;
        let retry_after_secs = reset_after_ms.div_ceil(1000).max(1);
        Some((RateDecision { allowed: false, limit, remaining: 0, reset_after_ms, retry_after_secs }, what))
    }

    /// The key's own rate window, if this VM saw the service refuse it and it has not ended.
    pub(super) fn known_full_key(&self, cfg: &Config, now_ms: u64) -> Option<RateDecision> {
        let key = self.key.and_then(|k| cfg.key(k))?;
        let limit = policy::key_rpm(key)?;
        let scope = key_scope(&key.id);
        let until = FULL.with(|f| f.borrow().get(&scope).filter(|(l, _)| *l == limit).map(|(_, u)| *u))?;
        let reset_after_ms = until.checked_sub(now_ms).filter(|ms| *ms > 0)?;
        let retry_after_secs = reset_after_ms.div_ceil(1000).max(1);
        Some(RateDecision { allowed: false, limit, remaining: 0, reset_after_ms, retry_after_secs })
    }

    /// The call to send to the limits service, once (the glue takes it on an `AskLimits`).
    pub fn take_limits_call(&mut self) -> Option<LimitsCall> {
        self.remote.call.take().map(|body| LimitsCall { path: remote::ADMIT_PATH, body })
    }

    /// The limits service answered (`Some((status, body))`) or the call failed (`None`: timeout,
    /// reset, a cluster the host does not know). The glue then calls the callback that asked
    /// again, with the same input.
    pub fn on_limits_answer(&mut self, answer: Option<(u16, &[u8])>, now_ms: u64) {
        self.now_ms = now_ms;
        let parsed = match (self.remote.asked.take(), answer) {
            (Some(req), Some((status, body))) => remote::parse_admit(&req, status, body),
            _ => Err(LimitError::Unavailable),
        };
        if parsed.is_err() {
            self.remote.failures = self.remote.failures.saturating_add(1);
        }
        self.remote.answer = Some(parsed);
    }

    /// Whether the limits service's answer waits to be read (the callback is being run again).
    pub(super) fn limits_answered(&self) -> bool {
        self.remote.answer.is_some()
    }

    /// Whether a spend reservation is held (here or on the limits service).
    pub(super) fn holds_spend(&self) -> bool {
        self.reserved.is_some() || self.remote.hold.is_some()
    }

    /// The settlement of the hold on the limits service at the billed cost and of the tokens
    /// reserved there at the tokens used, once.
    pub(super) fn take_remote_settlement(&mut self, micros: u64, tokens: u64) -> Option<LimitsCall> {
        let windows: Vec<WindowSettle> = match self.policy.tpm_hold.take_if(|h| h.remote) {
            Some(h) if h.reserved != tokens => vec![WindowSettle::tpm(&h.account, h.at_ms, h.reserved, tokens)],
            _ => Vec::new(),
        };
        let scopes = match self.remote.hold.take() {
            Some(scopes) => scopes,
            None if windows.is_empty() => return None,
            None => Vec::new(),
        };
        let body = SettleRequest::new(&self.request_id, &scopes, micros).with_windows(windows).body();
        Some(LimitsCall { path: remote::SETTLE_PATH, body })
    }

    /// A rate limit as the current fallback applies it: divided by `replicas`, rounded down (so
    /// the replicas together admit at most the limit), at least 1 when the limit is not 0.
    pub(super) fn fallback_limit(&self, limit: u32) -> u32 {
        match self.remote.divisor {
            0 | 1 => limit,
            d => (limit / d).max(limit.min(1)),
        }
    }
}

/// The name a key's own rate window is remembered under in [`FULL`] (never an account's scope).
fn key_scope(key_id: &str) -> String {
    format!("\0key:{key_id}")
}

/// Remembers that `scope`'s window of `limit` is full until `until_ms` (bounded: past
/// [`FULL_CAP`] scopes, ended windows are dropped, and if none has ended, all of them).
fn remember_full(scope: &str, limit: u32, until_ms: u64, now_ms: u64) {
    FULL.with(|f| {
        let mut f = f.borrow_mut();
        if f.len() >= FULL_CAP && !f.contains_key(scope) {
            f.retain(|_, (_, u)| *u > now_ms);
            if f.len() >= FULL_CAP {
                f.clear();
            }
        }
        f.insert(scope.to_string(), (limit, until_ms));
    });
}
