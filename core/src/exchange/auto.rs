//! A router model (`auto`) on the request path: the candidate that serves is chosen from the
//! parsed request (`crate::router` has the rules), then admitted, routed, priced and billed as
//! itself; the client's name stays the record's `model`.

use super::{set, Exchange, HeaderEdit};
use crate::config::Config;
use crate::dialect::pivot::PivotRequest;
use crate::errors::GatewayError;
use crate::pricing;
use crate::router::{self, Signals};
use crate::routing::Model;

/// The response header naming the model that served, when it is not the one the client named.
pub const SERVED_MODEL_HEADER: &str = "x-tollgate-model";

impl Exchange {
    /// The model that serves the request named `model`: itself, or for a router model the
    /// candidate its rules choose (kept as `chosen`). `units` and `max_tokens` are the request's
    /// choices and completion budget (for the spend it would reserve).
    pub(super) fn serving_model<'c>(
        &mut self,
        cfg: &'c Config,
        model: &'c Model,
        req: Option<&PivotRequest>,
        units: f64,
        max_tokens: Option<u64>,
    ) -> Result<&'c Model, GatewayError> {
        self.chosen = None;
        let (Some(r), Some(req)) = (model.router.as_deref(), req) else { return Ok(model) };
        let signals = Signals::of(&req.body, self.prompt_estimate, max_tokens);
        let (endpoint, bytes) = (&self.endpoint, self.request_bytes);
        let chosen = router::choose(
            &model.id,
            r,
            &cfg.models,
            &signals,
            |m| self.key_allows(cfg, &m.id),
            |m| pricing::admission_micros(m, endpoint, bytes, units, max_tokens),
        )?;
        self.chosen = Some(chosen.id.clone());
        Ok(chosen)
    }

    /// The model name the client's response shows: the chosen candidate's for a router model
    /// (as OpenAI answers an alias with the model that served), else the name it asked for.
    /// A fallback that took over (`failover`) comes first.
    pub(super) fn shown_model(&self) -> &str {
        self.shown_model_if_other().or(self.chosen.as_deref()).or(self.model.as_deref()).unwrap_or("")
    }

    /// The model the request is priced and billed at: the fallback that served, else the chosen
    /// candidate, else the named one.
    pub(super) fn priced_model<'c>(&self, cfg: &'c Config) -> Option<&'c Model> {
        if let Some((i, _)) = self.failover.as_ref().and_then(|f| f.serving.as_ref()) {
            return cfg.models.get(*i);
        }
        self.chosen.as_deref().or(self.model.as_deref()).and_then(|m| cfg.model(m))
    }

    /// `x-tollgate-model` on an upstream's response, when the model called is not the one named.
    pub(super) fn served_model_header(&self) -> Option<HeaderEdit> {
        self.chosen.as_ref().filter(|c| self.model.as_ref() != Some(*c)).map(|c| set(SERVED_MODEL_HEADER, c.clone()))
    }

    /// The record's `served_model`: the model whose upstream answered the request with a
    /// success, `None` when nothing was served.
    pub(super) fn served_model(&self, upstream_ok: bool) -> Option<&str> {
        Some(self.shown_model()).filter(|m| upstream_ok && !m.is_empty())
    }
}
