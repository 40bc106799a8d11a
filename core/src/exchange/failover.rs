//! Failover to the next tier: when the upstream of a chat request fails before any byte of its
//! response reached the client (connect failure, reset or timeout: Envoy's own 503/504; or an
//! upstream 429 or 5xx), the request is made again to the next model of its model's
//! `fallbacks`, translated for that model's cluster and dialect, under that model's upstream id
//! and credential. Envoy cannot send a request through the router a second time, so the glue
//! holds the failed response's headers, makes the next attempt itself (an HTTP call to the
//! fallback's cluster) and answers the client from the call's answer.
//!
//! Never on a 4xx the client caused (those pass through as before); never after the first byte
//! went out (only the response headers are ever decided on). The chain is the model's own list,
//! each model once (the configuration refuses cycles). The request is admitted once; a
//! fallback whose admission estimate is dearer than what is reserved grows the reservation, and
//! is skipped when that does not fit the caps. The billing record lists every attempt; the
//! serving model's price is what is billed.

use serde_json::Value;

use super::{Env, Exchange, LocalReply};
use crate::config::{Cluster, Config};
use crate::dialect::pivot::PivotRequest;
use crate::dialect::{anthropic, gemini, openai, responses};
use crate::endpoints::Endpoint;
use crate::errors::GatewayError;
use crate::pricing;
use crate::routing::Model;
use crate::translate;

/// How long one fallback attempt may take (the whole response: the call returns it at once).
pub const FAILOVER_TIMEOUT_MS: u64 = 120_000;

/// The response header naming the model that served, when it is not the one asked for.
pub const MODEL_HEADER: &str = super::auto::SERVED_MODEL_HEADER;

/// One attempt at an upstream, for the billing record's `attempts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub model: String,
    pub cluster: String,
    /// The upstream's status (Envoy's own 503 for a connect failure or reset, 504 for a timeout;
    /// 0 when the call got no response at all).
    pub status: u16,
    pub latency_ms: u64,
}

/// The failover part of an exchange whose model has `fallbacks`.
#[derive(Debug)]
pub(crate) struct Failover {
    /// The client's request body as it came (re-read for each fallback's dialect).
    body: Vec<u8>,
    /// The next entry of the model's `fallbacks` to try.
    next: usize,
    /// The attempt in flight: model id, cluster name, when it started.
    current: Option<(String, String, u64)>,
    /// Attempts that ended, in order.
    pub(crate) attempts: Vec<Attempt>,
    /// The fallback model (index, id) now routed to, if any.
    pub(crate) serving: Option<(usize, String)>,
    /// Failovers made (the `tollgate.failovers` stat of the requested model).
    pub(crate) count: u32,
}

/// The next attempt, for the glue to send to `cluster` (an HTTP call: `POST`, these headers, this
/// body, at most `timeout_ms`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailoverCall {
    pub cluster: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub timeout_ms: u64,
}

/// What to do with a fallback's answer.
#[derive(Debug, PartialEq)]
pub enum FallbackAnswer {
    /// It failed too: send this next attempt.
    Next(FailoverCall),
    /// Answer the client with this (the fallback's response translated for the client, or the
    /// last failure as an error in the client's dialect).
    Reply(LocalReply),
}

/// Statuses after which the next tier is tried: no response at all (0), a rate limit (429),
/// any 5xx (the upstream's, or Envoy's own 503 connect failure/reset and 504 timeout).
pub fn fails_over(status: u16) -> bool {
    status == 0 || status == 429 || status >= 500
}

/// The `tollgate.failovers` stat of a model (failovers away from it), tagged as the other
/// per-model stats are.
pub fn failover_stat(model: &str) -> String {
    format!("tollgate.failovers.{}", crate::metrics::tag("model", model))
}

/// Request headers never carried from the failed attempt to the next one: pseudo-headers, the
/// length, and every credential or routing header a cluster may have been given.
fn dropped(name: &str, cfg: &Config) -> bool {
    name.starts_with(':')
        || name == cfg.cluster_header
        || matches!(
            name,
            "content-length"
                | "transfer-encoding"
                | "authorization"
                | "x-api-key"
                | "x-goog-api-key"
                | "anthropic-version"
                | "anthropic-beta"
                | "host"
        )
        || cfg.clusters.iter().any(|c| c.headers.iter().any(|(k, _)| k == name))
}

impl Exchange {
    /// Keeps what a failover needs when the routed model has fallbacks (a chat request only):
    /// the client's body, and the attempt now going upstream.
    pub(super) fn keep_for_failover(&mut self, cfg: &Config, model: &Model, raw: &[u8]) {
        if model.fallbacks.is_empty() || !self.endpoint.is_chat() || self.endpoint.is_count() {
            return;
        }
        let cluster = cfg.clusters.get(model.cluster).map(|c| c.name.clone()).unwrap_or_default();
        self.failover = Some(Box::new(Failover {
            body: raw.to_vec(),
            next: 0,
            current: Some((model.id.clone(), cluster, self.now_ms)),
            attempts: Vec::new(),
            serving: None,
            count: 0,
        }));
    }

    /// Ends the attempt in flight with the upstream's `status` (once).
    pub(super) fn end_attempt(&mut self, status: u16, now_ms: u64) {
        let Some(f) = self.failover.as_mut() else { return };
        if let Some((model, cluster, start)) = f.current.take() {
            f.attempts.push(Attempt { model, cluster, status, latency_ms: now_ms.saturating_sub(start) });
        }
    }

    /// Whether a response of `status` would be failed over from (the model has fallbacks, the
    /// status fails over); whether a fallback is left is known only by trying.
    pub fn may_fail_over(&self, status: u16) -> bool {
        self.failover.is_some() && !self.local_reply && fails_over(status)
    }

    /// The upstream answered `status` (its response headers, nothing of it sent yet): the next
    /// attempt if this one fails over and a fallback can take it; `None` to go on with this
    /// response as before. `present` are the request headers the upstream got.
    pub fn fail_over(
        &mut self,
        cfg: &Config,
        status: u16,
        present: &[(String, Vec<u8>)],
        env: &Env,
    ) -> Option<FailoverCall> {
        if !self.may_fail_over(status) {
            return None;
        }
        self.now_ms = env.now_ms;
        self.end_attempt(status, env.now_ms);
        let call = self.next_call(cfg, present, env)?;
        // The client's first byte is the one the next attempt sends.
        self.first_byte_ms = None;
        Some(call)
    }

    /// The answer of a fallback call (`status` 0: no response). A failure that fails over goes to
    /// the next fallback; anything else becomes the client's reply, translated as the upstream's
    /// own response would be.
    pub fn fallback_answered(
        &mut self,
        cfg: &Config,
        status: u16,
        content_type: Option<&str>,
        body: &[u8],
        present: &[(String, Vec<u8>)],
        env: &Env,
    ) -> FallbackAnswer {
        self.now_ms = env.now_ms;
        self.end_attempt(status, env.now_ms);
        if fails_over(status) {
            if let Some(call) = self.next_call(cfg, present, env) {
                return FallbackAnswer::Next(call);
            }
        }
        self.response_started(env.now_ms);
        let edits = self.on_response_headers(status, content_type);
        // The glue reads at most one byte past `max_body_bytes`. A stream larger than that is
        // cut there: the events whole before the cut reach the client, the partial one at the
        // cut does not (the stream is not finished), and it is billed as a stream cut short.
        let cut = body.len() > cfg.max_body_bytes && matches!(self.mode, super::ResponseMode::Stream { .. });
        let (body, end) = match body.get(..cfg.max_body_bytes) {
            Some(b) if cut => (b, false),
            _ => (body, true),
        };
        let out = match self.on_response_chunk(body, end, cfg.max_body_bytes) {
            super::ChunkAction::Replace(b) => b,
            _ => body.to_vec(),
        };
        let status = self.take_status_override().unwrap_or(if self.status == 0 { 502 } else { self.status });
        let mut headers: Vec<(String, String)> = Vec::new();
        for e in edits {
            if let super::HeaderEdit::Set(k, v) = e {
                if !k.starts_with(':') && k != "content-length" {
                    headers.retain(|(h, _)| *h != k);
                    headers.push((k.into_owned(), v.into_owned()));
                }
            }
        }
        if !headers.iter().any(|(k, _)| k == "content-type") {
            let ct = match content_type {
                Some(c) if (200..300).contains(&status) => c.to_string(),
                _ => "application/json".to_string(),
            };
            headers.push(("content-type".to_string(), ct));
        }
        if let (Some(m), true) = (self.shown_model_if_other(), (200..300).contains(&status)) {
            headers.push((MODEL_HEADER.to_string(), m.to_string()));
        }
        FallbackAnswer::Reply(LocalReply { status, headers, body: out })
    }

    /// The next fallback that can take the request, routed to, with its call; `None` when none
    /// is left.
    fn next_call(&mut self, cfg: &Config, present: &[(String, Vec<u8>)], env: &Env) -> Option<FailoverCall> {
        let client = self.model.as_deref().and_then(|m| cfg.model(m))?;
        loop {
            let f = self.failover.as_mut()?;
            let &index = client.fallbacks.get(f.next)?;
            f.next += 1;
            let Some(model) = cfg.models.get(index) else { continue };
            let Some(cluster) = cfg.clusters.get(model.cluster) else { continue };
            // A fallback the key may not use, that cannot take this request, or that the spend
            // caps cannot cover, is skipped.
            if !self.key_allows(cfg, &model.id) {
                continue;
            }
            let Ok((body, path)) = self.fallback_body(model, cluster) else { continue };
            if !self.cover_fallback(model, env) {
                continue;
            }
            self.routed(model, cluster);
            let mut headers: Vec<(String, String)> = present
                .iter()
                .filter(|(k, _)| !dropped(k, cfg))
                .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
                .collect();
            let authority = present.iter().find(|(k, _)| k == ":authority").map(|(_, v)| v.as_slice());
            let authority = String::from_utf8_lossy(authority.unwrap_or(cluster.name.as_bytes())).into_owned();
            let mut pseudo = vec![(":method".to_string(), "POST".to_string()), (":authority".to_string(), authority)];
            for edit in self.upstream_edits(cfg, cluster, path) {
                match edit {
                    super::HeaderEdit::Set(k, _) if k == cfg.cluster_header => {}
                    super::HeaderEdit::Set(k, v) if k.starts_with(':') => {
                        pseudo.retain(|(p, _)| *p != k);
                        pseudo.push((k.into_owned(), v.into_owned()));
                    }
                    super::HeaderEdit::Set(k, v) => {
                        headers.retain(|(h, _)| *h != k);
                        headers.push((k.into_owned(), v.into_owned()));
                    }
                    super::HeaderEdit::Remove(k) => headers.retain(|(h, _)| *h != k),
                }
            }
            headers.retain(|(k, _)| k != "content-type");
            headers.push(("content-type".to_string(), "application/json".to_string()));
            pseudo.extend(headers);
            let f = self.failover.as_mut()?;
            f.current = Some((model.id.clone(), cluster.name.clone(), env.now_ms));
            f.serving = Some((index, model.id.clone()));
            f.count = f.count.saturating_add(1);
            return Some(FailoverCall {
                cluster: cluster.name.clone(),
                headers: pseudo,
                body,
                timeout_ms: FAILOVER_TIMEOUT_MS,
            });
        }
    }

    /// The client's request for `model` on `cluster`: its body in the cluster's dialect under
    /// the model's upstream id, and its path. When spend is held and the client gave no budget,
    /// the budget the reservation assumed goes upstream, as it did to the first tier.
    fn fallback_body(&self, model: &Model, cluster: &Cluster) -> Result<(Vec<u8>, String), GatewayError> {
        let raw = self.failover.as_ref().map(|f| f.body.as_slice()).unwrap_or_default();
        let mut req = pivot_of(&self.endpoint, raw)?;
        let capped = req.max_tokens.is_none() && self.holds_spend();
        if capped {
            req.body.insert("max_tokens".to_string(), Value::from(self.completion_budget));
        }
        let (body, path) = translate::upstream_request(
            self.front,
            cluster.dialect,
            &req,
            self.wants_usage,
            &model.upstream_model,
            &cluster.base_path,
            u64::from(model.default_max_tokens),
        )?;
        let body = match body {
            Some(b) => b,
            None if capped => serde_json::to_vec(&req.body).map_err(|_| {
                GatewayError::new(
                    crate::errors::Code::InternalError,
                    "the request could not be written for its fallback",
                )
            })?,
            None => raw.to_vec(),
        };
        Ok((body, path))
    }

    /// Whether the reservation covers `model`'s admission estimate for this request, grown to it
    /// if it does not (held on this Envoy's counters); a hold on the limits service is not grown
    /// (a dearer fallback is skipped). Nothing reserved (no cap): covered.
    fn cover_fallback(&mut self, model: &Model, env: &Env) -> bool {
        if !self.holds_spend() {
            return true;
        }
        let raw = self.failover.as_ref().map(|f| f.body.as_slice()).unwrap_or_default();
        let Ok(req) = pivot_of(&self.endpoint, raw) else { return false };
        let choices = req.body.get("n").and_then(Value::as_u64).unwrap_or(1);
        // The budget the first tier was held to (the client's, or the one the reservation assumed).
        let budget = req.max_tokens.or(Some(self.completion_budget));
        let needed = pricing::admission_micros(model, &self.endpoint, self.request_bytes, choices as f64, budget);
        match self.reserved.as_mut() {
            Some(hold) => {
                let ok = matches!(hold.grow_to(env.store, needed), Ok(true));
                if ok {
                    self.estimate_micros = self.estimate_micros.max(needed);
                }
                ok
            }
            None => needed <= self.estimate_micros,
        }
    }

    /// The fallback that serves, if one took over (the `x-tollgate-model` header).
    pub fn shown_model_if_other(&self) -> Option<&str> {
        self.failover.as_ref().and_then(|f| f.serving.as_ref()).map(|(_, id)| id.as_str())
    }

    /// The model of the last attempt that ended (the one a failover leaves).
    pub fn failed_model(&self) -> Option<&str> {
        self.failover.as_ref().and_then(|f| f.attempts.last()).map(|a| a.model.as_str())
    }

    /// Failovers this request made (the glue counts them as `tollgate.failovers` of its model).
    pub fn failovers(&self) -> u32 {
        self.failover.as_ref().map_or(0, |f| f.count)
    }

    /// The attempts, for the billing record (`None`: the model has no fallbacks).
    pub(super) fn attempts(&self) -> Option<&[Attempt]> {
        self.failover.as_ref().map(|f| f.attempts.as_slice())
    }
}

/// The client's chat request read again (it was valid when routed).
fn pivot_of(endpoint: &Endpoint, raw: &[u8]) -> Result<PivotRequest, GatewayError> {
    match endpoint {
        Endpoint::ChatCompletions => {
            let req = openai::parse_chat(raw)?;
            Ok(PivotRequest { body: req.body, model: req.model, stream: req.stream, max_tokens: req.max_tokens })
        }
        Endpoint::Messages => anthropic::request_to_pivot(&openai::parse_json_object(raw)?),
        Endpoint::Gemini { model, stream } => {
            gemini::request_to_pivot(&openai::parse_json_object(raw)?, model, *stream)
        }
        Endpoint::Responses => responses::request_to_pivot(&openai::parse_json_object(raw)?),
        _ => Err(GatewayError::new(crate::errors::Code::InternalError, "not a chat request")),
    }
}
