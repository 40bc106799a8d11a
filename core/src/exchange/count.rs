//! Token counting: Anthropic `POST /v1/messages/count_tokens` and Gemini
//! `models/{model}:countTokens`. The request goes to the model's cluster when it speaks the
//! caller's dialect (the upstream's own count, passed back as it came); otherwise the gateway
//! answers with its own estimate, marked `x-tollgate-estimated: true`. Counting is admitted as a
//! request (it counts in `rpm`, so the gateway never works unmetered) and never costs credits.

use serde_json::{json, Map, Value};

use super::{set, BodyAction, Env, Exchange, LocalReply};
use crate::config::Config;
use crate::dialect::{anthropic, gemini, openai, Dialect};
use crate::endpoints::Endpoint;
use crate::errors::GatewayError;
use crate::routing::ModelType;
use crate::usage;

/// The header on a count the gateway estimated itself.
pub const ESTIMATED_HEADER: &str = "x-tollgate-estimated";

impl Exchange {
    pub(super) fn route_count(&mut self, cfg: &Config, raw: &[u8], env: &Env) -> Result<BodyAction, GatewayError> {
        let mut body = openai::parse_json_object(raw)?;
        let (name, pivot) = match &self.endpoint {
            Endpoint::GeminiCountTokens { model } => {
                // The request is `{contents, ...}` or `{generateContentRequest: {model, contents, ...}}`.
                let inner = match body.get("generateContentRequest") {
                    Some(Value::Object(m)) => m.clone(),
                    Some(_) => {
                        return Err(GatewayError::bad(
                            "generateContentRequest",
                            "'generateContentRequest' must be an object",
                        ))
                    }
                    None => body.clone(),
                };
                (model.clone(), gemini::request_to_pivot(&inner, model, false)?)
            }
            _ => {
                let name = openai::required_model(&body)?;
                // A count takes no budget; the Messages reading of the rest needs one.
                let mut m = body.clone();
                m.entry("max_tokens").or_insert(json!(1));
                (name, anthropic::request_to_pivot(&m)?)
            }
        };
        let model = self.resolve_model(cfg, &name, Some(ModelType::Text))?;
        self.prompt_estimate = usage::estimate_prompt_tokens(&pivot.body);
        // Named and valid: a refusal by the limits below is counted and recorded under it.
        self.model = Some(name.clone());
        if !self.admit(cfg, env, model, 1.0, Some(0))? {
            return Ok(BodyAction::AskLimits);
        }
        if model.router.is_some() {
            // A router model (`auto`) has no upstream of its own to count with.
            return Ok(BodyAction::Reply(self.estimated_count()));
        }
        let cluster = self.route_to(cfg, model)?;
        if cluster.dialect != self.front {
            return Ok(BodyAction::Reply(self.estimated_count()));
        }
        let upstream = model.upstream_model.clone();
        let (path, new_body) = match self.endpoint {
            Endpoint::GeminiCountTokens { .. } => {
                if let Some(Value::Object(inner)) = body.get_mut("generateContentRequest") {
                    inner.insert("model".to_string(), Value::String(format!("models/{upstream}")));
                }
                (format!("{}/models/{upstream}:countTokens", cluster.base_path), body)
            }
            _ => {
                body.insert("model".to_string(), Value::String(upstream));
                (format!("{}/messages/count_tokens", cluster.base_path), body)
            }
        };
        let new_body = serde_json::to_vec(&Value::Object(new_body)).unwrap_or_else(|_| raw.to_vec());
        let mut edits = self.upstream_edits(cfg, cluster, path);
        edits.push(set("content-length", new_body.len().to_string()));
        edits.push(set("content-type", "application/json"));
        Ok(BodyAction::Forward { edits, body: Some(new_body) })
    }

    /// The gateway's own count, in the caller's shape.
    fn estimated_count(&mut self) -> LocalReply {
        let n = self.prompt_estimate;
        let mut out = Map::new();
        match self.front {
            Dialect::Gemini => out.insert("totalTokens".to_string(), json!(n)),
            _ => out.insert("input_tokens".to_string(), json!(n)),
        };
        self.local_reply = true;
        self.status = 200;
        self.first_byte_ms.get_or_insert(self.now_ms);
        let mut headers = vec![
            ("content-type".to_string(), "application/json".to_string()),
            (ESTIMATED_HEADER.to_string(), "true".to_string()),
        ];
        headers.extend(self.rate_headers());
        LocalReply { status: 200, headers, body: serde_json::to_vec(&Value::Object(out)).unwrap_or_default() }
    }
}
