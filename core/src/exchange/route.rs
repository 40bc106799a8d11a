//! The request body: validate it, name the model, admit it, and route it to the model's cluster
//! in that cluster's dialect.

use serde_json::Value;

use super::capture::CONTENT_LOG_CAP;
use super::{remove, set, BodyAction, Env, Exchange, HeaderEdit};
use crate::config::{Cluster, Config};
use crate::dialect::pivot::PivotRequest;
use crate::dialect::{anthropic, gemini, guard, openai, responses, Dialect};
use crate::embeddings;
use crate::endpoints::Endpoint;
use crate::errors::{Code, GatewayError};
use crate::media;
use crate::routing::{Model, ModelType};
use crate::sse::write_u64;
use crate::translate;
use crate::usage;

impl Exchange {
    /// The whole request body: validate, route, rewrite.
    pub fn on_request_body(&mut self, cfg: &Config, body: &[u8], env: &Env) -> BodyAction {
        self.now_ms = env.now_ms;
        self.request_bytes = body.len();
        // Kept once: a body decided again with the limits service's answer is the same body.
        let again = self.limits_answered();
        if let (Some((req, _)), false) = (&mut self.content, again) {
            req.extend_from_slice(body.get(..CONTENT_LOG_CAP.min(body.len())).unwrap_or(&[]));
        }
        match self.route(cfg, body, env) {
            Ok(a) => a,
            Err(e) => BodyAction::Reply(self.fail(e)),
        }
    }

    fn route(&mut self, cfg: &Config, raw: &[u8], env: &Env) -> Result<BodyAction, GatewayError> {
        // Every path reads the body the same way, and the upstream cannot read it another way.
        guard::check(raw)?;
        if self.endpoint.is_count() {
            return self.route_count(cfg, raw, env);
        }
        if self.endpoint == Endpoint::ChatCompletions {
            if let Some(a) = self.route_chat_unchanged(cfg, raw, env) {
                return a;
            }
        }
        let want_type = self.endpoint.model_type();
        let mut chat: Option<PivotRequest> = match &self.endpoint {
            Endpoint::ChatCompletions => {
                let req = openai::parse_chat(raw)?;
                self.wants_usage = req.wants_usage;
                Some(PivotRequest { body: req.body, model: req.model, stream: req.stream, max_tokens: req.max_tokens })
            }
            Endpoint::Messages => Some(anthropic::request_to_pivot(&openai::parse_json_object(raw)?)?),
            Endpoint::Gemini { model, stream } => {
                Some(gemini::request_to_pivot(&openai::parse_json_object(raw)?, model, *stream)?)
            }
            Endpoint::Responses => {
                let body = openai::parse_json_object(raw)?;
                let req = responses::request_to_pivot(&body)?;
                // The settings the reply repeats, moved out of the parsed request.
                self.echo = Some(Box::new(responses::Echo::from_request(body)));
                Some(req)
            }
            _ => None,
        };
        // A media body, parsed once: validated here, rewritten below if it must change.
        let mut media_body = None;
        let (client_model, units, max_tokens) = match &chat {
            Some(req) => {
                self.resolve_model(cfg, &req.model, want_type)?;
                self.stream = req.stream;
                self.prompt_estimate = usage::estimate_prompt_tokens(&req.body);
                // Choices (OpenAI `n`, Gemini `candidateCount`, validated): each is a completion.
                let choices = req.body.get("n").and_then(Value::as_u64).unwrap_or(1);
                (req.model.clone(), choices as f64, req.max_tokens)
            }
            None => {
                let body = openai::parse_json_object(raw)?;
                let (name, body) = match &self.endpoint {
                    Endpoint::GeminiEmbed { model, batch } => {
                        (model.clone(), embeddings::from_gemini(&body, model, *batch)?)
                    }
                    _ => (openai::required_model(&body)?, body),
                };
                let model = self.resolve_model(cfg, &name, want_type)?;
                if matches!(self.endpoint, Endpoint::Embeddings | Endpoint::GeminiEmbed { .. }) {
                    self.prompt_estimate = embeddings::validate(&body)?;
                    // Embeddings go only to an upstream that speaks OpenAI's embeddings API.
                    if cfg.cluster_of(model).is_some_and(|c| c.dialect != Dialect::OpenAi) {
                        return Err(GatewayError::new(
                            Code::InvalidModel,
                            format!("The model '{name}' is served by an upstream without an OpenAI embeddings API"),
                        )
                        .with_param("model"));
                    }
                    media_body = Some(body);
                    (name, 1.0, None)
                } else {
                    if !media::task_matches(&self.endpoint, model) {
                        return Err(wrong_task(&name, &self.endpoint));
                    }
                    let units = media::validate(&self.endpoint, &body, model)?;
                    self.units = Some(units);
                    media_body = Some(body);
                    (name, units, None)
                }
            }
        };
        let model = cfg.model(&client_model).ok_or_else(|| GatewayError::new(Code::InternalError, "model vanished"))?;
        // Named and valid: a refusal by the limits below is counted and recorded under it.
        self.model = Some(client_model.clone());
        // A router model (`auto`): its chosen candidate is admitted, routed and priced.
        let model = self.serving_model(cfg, model, chat.as_ref(), units, max_tokens)?;
        if !self.admit(cfg, env, model, units, max_tokens)? {
            return Ok(BodyAction::AskLimits);
        }
        // A spend reservation is an upper bound the upstream is held to: without a budget from
        // the client, the reserved one goes upstream (in the upstream dialect's field).
        let mut capped = false;
        if let Some(req) = chat.as_mut().filter(|r| r.max_tokens.is_none() && self.holds_spend()) {
            req.body.insert("max_tokens".to_string(), Value::from(model.default_max_tokens));
            capped = true;
        }
        let cluster = self.route_to(cfg, model)?;
        self.keep_for_failover(cfg, model, raw);
        let (new_body, path) = match &chat {
            Some(req) => {
                let (body, path) = translate::upstream_request(
                    self.front,
                    cluster.dialect,
                    req,
                    self.wants_usage,
                    &model.upstream_model,
                    &cluster.base_path,
                    u64::from(model.default_max_tokens),
                )?;
                // `None` is "the client's bytes as they came": not once a budget was added.
                let body = match body {
                    None if capped => serde_json::to_vec(&req.body).ok(),
                    b => b,
                };
                (body, path)
            }
            None => {
                let mut body = media_body.unwrap_or_default();
                // The documented speech request names its text `text`; the upstream's speech API (OpenAI's)
                // wants `input`.
                let tts_text =
                    self.endpoint == Endpoint::Speech && !body.contains_key("input") && body.contains_key("text");
                let converted = matches!(self.endpoint, Endpoint::GeminiEmbed { .. });
                let body = if model.upstream_model != client_model || tts_text || converted {
                    body.insert("model".to_string(), Value::String(model.upstream_model.clone()));
                    if tts_text {
                        if let Some(t) = body.remove("text") {
                            body.insert("input".to_string(), t);
                        }
                    }
                    serde_json::to_vec(&Value::Object(body)).ok()
                } else {
                    None
                };
                (body, format!("{}{}", cluster.base_path, self.endpoint.upstream_suffix()))
            }
        };
        self.model = Some(client_model);

        let mut edits = self.upstream_edits(cfg, cluster, path);
        let len = new_body.as_ref().map(Vec::len).unwrap_or(raw.len());
        edits.push(set("content-length", len.to_string()));
        edits.push(set("content-type", "application/json"));
        Ok(BodyAction::Forward { edits, body: new_body })
    }

    /// The common case of an OpenAI chat request to an OpenAI upstream whose body goes on as it
    /// came (the model keeps its name; a stream that does not ask for usage and has no
    /// `stream_options` gets them at byte level): read with `openai::scan_chat`, never built.
    /// `None`: take the general path, which decides the same way for these requests and words
    /// every error.
    fn route_chat_unchanged(
        &mut self,
        cfg: &Config,
        raw: &[u8],
        env: &Env,
    ) -> Option<Result<BodyAction, GatewayError>> {
        let scan = openai::scan_chat(raw)?;
        // A model the key may not use takes the general path, which refuses it; so does a router
        // model (`auto`), whose rules read the parsed request.
        let model = cfg
            .model(&scan.model)
            .filter(|m| m.model_type == ModelType::Text && m.router.is_none() && self.key_allows(cfg, &m.id))?;
        let cluster = cfg.cluster_of(model).filter(|c| c.dialect == Dialect::OpenAi)?;
        // A stream must ask the upstream for usage: `stream_options` is added when absent; one
        // the client sent is merged by the general path.
        let add_usage = scan.stream && !scan.wants_usage;
        if model.upstream_model != scan.model || (add_usage && scan.has_stream_options) {
            return None;
        }
        self.wants_usage = scan.wants_usage;
        self.stream = scan.stream;
        self.prompt_estimate = scan.prompt_estimate;
        // Named and valid: a refusal by the limits below is counted and recorded under it.
        self.model = Some(scan.model);
        match self.admit(cfg, env, model, scan.n as f64, scan.max_tokens) {
            Ok(true) => {}
            Ok(false) => return Some(Ok(BodyAction::AskLimits)),
            Err(e) => return Some(Err(e)),
        }
        // Reserved without a client budget: the reserved one goes upstream (see `route`), added
        // at byte level after the opening brace (the object has `model`, so a comma follows;
        // `scan_chat` saw no budget key at all, so none is repeated); so is a stream's
        // `stream_options` (none was sent).
        let budget = match (scan.max_tokens, self.holds_spend()) {
            (None, true) => Some(model.default_max_tokens),
            _ => None,
        };
        let body = (budget.is_some() || add_usage).then(|| {
            const USAGE: &[u8] = br#""stream_options":{"include_usage":true},"#;
            let at = raw.iter().position(|b| *b == b'{').map_or(0, |p| p + 1);
            let mut b = Vec::with_capacity(raw.len() + USAGE.len() + 32);
            b.extend_from_slice(raw.get(..at).unwrap_or_default());
            if let Some(max) = budget {
                b.extend_from_slice(b"\"max_tokens\":");
                write_u64(&mut b, u64::from(max));
                b.push(b',');
            }
            if add_usage {
                b.extend_from_slice(USAGE);
            }
            b.extend_from_slice(raw.get(at..).unwrap_or_default());
            b
        });
        self.routed(model, cluster);
        self.keep_for_failover(cfg, model, raw);
        let path = [cluster.base_path.as_str(), "/chat/completions"].concat();
        let mut edits = self.upstream_edits(cfg, cluster, path);
        edits.push(set("content-length", body.as_ref().map_or(raw.len(), Vec::len).to_string()));
        edits.push(set("content-type", "application/json"));
        Some(Ok(BodyAction::Forward { edits, body }))
    }

    /// Routes to the model's cluster: the request goes there, in its dialect, under the model's
    /// upstream name and price.
    pub(super) fn route_to<'c>(&mut self, cfg: &'c Config, model: &Model) -> Result<&'c Cluster, GatewayError> {
        let cluster = cfg
            .cluster_of(model)
            .ok_or_else(|| GatewayError::new(Code::InternalError, "the model's cluster is not configured"))?;
        self.routed(model, cluster);
        Ok(cluster)
    }

    pub(super) fn routed(&mut self, model: &Model, cluster: &Cluster) {
        self.cluster = Some(model.cluster);
        self.upstream_model = Some(model.upstream_model.clone());
        self.upstream = cluster.dialect;
        self.price = Some(model.price);
    }

    /// Whether the request's key may use the model `id` (its `allowed_models`).
    pub(super) fn key_allows(&self, cfg: &Config, id: &str) -> bool {
        self.key.and_then(|k| cfg.key(k)).is_some_and(|rec| cfg.key_allows(rec, id))
    }

    pub(super) fn resolve_model<'c>(
        &self,
        cfg: &'c Config,
        name: &str,
        want: Option<ModelType>,
    ) -> Result<&'c Model, GatewayError> {
        let model = cfg.model(name).ok_or_else(|| {
            // Anthropic and Gemini answer an unknown model with a 404 (their SDKs raise
            // `NotFoundError` / a 404 `ClientError`); OpenAI clients keep the 400.
            let code = match self.front {
                Dialect::Anthropic | Dialect::Gemini => Code::NotFound,
                Dialect::OpenAi | Dialect::OpenAiResponses => Code::InvalidModel,
            };
            GatewayError::new(
                code,
                format!("The model '{name}' does not exist; GET /v1/models lists the available models"),
            )
            .with_param("model")
        })?;
        if !self.key_allows(cfg, &model.id) {
            return Err(forbidden_model(name));
        }
        if let Some(t) = want {
            if model.model_type != t {
                return Err(GatewayError::new(
                    Code::InvalidModel,
                    format!(
                        "The model '{name}' is a {} model and cannot be used on the {} endpoint",
                        model.model_type.as_str(),
                        t.as_str()
                    ),
                )
                .with_param("model"));
            }
        }
        Ok(model)
    }

    /// Routing headers for the upstream: cluster, path, the cluster's credential and headers.
    pub(super) fn upstream_edits(&mut self, cfg: &Config, cluster: &Cluster, path: String) -> Vec<HeaderEdit> {
        self.redact.clear();
        self.redact.extend(
            cluster.api_key.iter().chain(cluster.headers.iter().map(|(_, v)| v)).filter(|v| !v.is_empty()).cloned(),
        );
        let mut edits = vec![
            set(cfg.cluster_header.clone(), cluster.name.clone()),
            set(":path", path),
            remove("accept-encoding"),
            remove("anthropic-version"),
            remove("anthropic-beta"),
        ];
        if let Some(a) = &cluster.authority {
            edits.push(set(":authority", a.clone()));
        }
        if let Some(k) = &cluster.api_key {
            match cluster.dialect {
                Dialect::OpenAi | Dialect::OpenAiResponses => edits.push(set("authorization", format!("Bearer {k}"))),
                Dialect::Anthropic => {
                    edits.push(set("x-api-key", k.clone()));
                    edits.push(set("anthropic-version", "2023-06-01"));
                }
                Dialect::Gemini => edits.push(set("x-goog-api-key", k.clone())),
            }
        }
        for (k, v) in &cluster.headers {
            edits.push(set(k.clone(), v.clone()));
        }
        edits
    }
}

pub(super) fn wrong_task(name: &str, endpoint: &Endpoint) -> GatewayError {
    GatewayError::new(
        Code::InvalidModel,
        format!("The model '{name}' cannot be used on the {} endpoint", endpoint.name()),
    )
    .with_param("model")
}

/// The 403 for a model outside the key's `allowed_models`.
pub(super) fn forbidden_model(name: &str) -> GatewayError {
    GatewayError::new(Code::Forbidden, format!("This API key may not use the model '{name}'")).with_param("model")
}
