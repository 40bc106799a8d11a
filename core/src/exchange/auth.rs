//! The request headers: the endpoint, the caller's key and account, the model list (answered
//! here), and what the headers alone already refuse.

use serde_json::{json, Value};

use super::admit::too_large_body;
use super::record::client_request_id;
use super::{remove, Env, Exchange, HeadAction, HeaderEdit, LocalReply, RequestHead};
use crate::config::{AccountStatus, Config};
use crate::dialect::Dialect;
use crate::endpoints::{self, Endpoint};
use crate::errors::{Code, GatewayError};
use crate::keys::{self, Presented};
use crate::routing::Model;

impl Exchange {
    /// Request headers: classify, authenticate, answer local endpoints.
    pub fn on_request_headers(&mut self, cfg: &Config, head: &RequestHead, env: &Env) -> HeadAction {
        self.start_ms = env.now_ms;
        self.now_ms = env.now_ms;
        self.client_request_id = head.request_id.and_then(client_request_id);
        self.endpoint = endpoints::classify(head.method, head.path);
        // google-genai's default API version is `v1`: its `models.list()` / `models.get()` are
        // `GET /v1/models[/{id}]` with its key in `x-goog-api-key` or `?key=`. Such a request
        // (with no OpenAI or Anthropic credential) is a Gemini client's, answered in its shape.
        let goog_only = head.authorization.is_none()
            && head.x_api_key.is_none()
            && (head.x_goog_api_key.is_some() || endpoints::query_param(head.path, "key").is_some());
        if goog_only {
            match &self.endpoint {
                Endpoint::ListModels => self.endpoint = Endpoint::GeminiListModels,
                Endpoint::GetModel(id) => self.endpoint = Endpoint::GeminiGetModel(id.clone()),
                _ => {}
            }
        } else if head.anthropic_version {
            super::models::anthropic_catalog(&mut self.endpoint);
        }
        self.front = self.endpoint.dialect();
        if matches!(self.endpoint, Endpoint::Unknown | Endpoint::MethodNotAllowed) {
            self.front = namespace_dialect(head.path).unwrap_or(self.front);
        }
        // A `?key=` leaves the path on every path, known or not, whatever the method (the glue
        // applies it before anything else, so the key reaches neither the upstream nor a log).
        self.path_without_key = endpoints::without_query_param(head.path, "key");
        // Gemini's ways of passing a key (`?key=`, `x-goog-api-key`) count only on Gemini paths
        // (known ones, and unknown ones under Gemini's namespace, which then get their 404).
        let gemini = self.front == Dialect::Gemini || endpoints::in_gemini_namespace(head.path);
        let query_key = if gemini { endpoints::query_param(head.path, "key") } else { None };
        let goog = if gemini { head.x_goog_api_key } else { None };
        let presented = keys::extract(head.authorization, head.x_api_key, goog, query_key);
        let key = match presented {
            Presented::Key(k, _) => k,
            Presented::Missing => {
                return HeadAction::Reply(self.fail(GatewayError::new(
                    Code::Unauthorized,
                    "Missing API key: pass it as 'Authorization: Bearer <key>' or 'x-api-key' (or 'x-goog-api-key' on Gemini paths)",
                )))
            }
            Presented::Malformed(why) => {
                return HeadAction::Reply(self.fail(GatewayError::new(Code::Unauthorized, format!("Invalid API key: {why}"))))
            }
        };
        let Some(idx) = cfg.key_table.lookup(&keys::sha256(key.as_bytes())) else {
            return HeadAction::Reply(self.fail(GatewayError::new(Code::Unauthorized, "Invalid API key")));
        };
        let Some(rec) = cfg.key(idx) else {
            return HeadAction::Reply(self.fail(GatewayError::new(Code::InternalError, "key record missing")));
        };
        self.key = Some(idx);
        self.account = Some(rec.account);
        if rec.log_content() {
            self.content = Some((Vec::new(), Vec::new()));
        }
        let active = cfg.account(rec.account).map(|a| a.status == AccountStatus::Active).unwrap_or(false);
        if !active {
            return HeadAction::Reply(
                self.fail(GatewayError::new(Code::Forbidden, "The account of this API key is inactive")),
            );
        }
        if endpoints::gemini_stream_without_sse(&self.endpoint, head.path) {
            return HeadAction::Reply(self.fail(GatewayError::new(
                Code::BadRequest,
                "':streamGenerateContent' requires the query parameter 'alt=sse': this gateway streams Server-Sent Events only",
            )));
        }
        if self.endpoint.is_catalog() {
            if let Err(e) = self.check_rpm(cfg, env) {
                return HeadAction::Reply(self.fail(e));
            }
        }
        match &self.endpoint {
            Endpoint::ListModels => {
                let data: Vec<Value> =
                    cfg.models.iter().filter(|m| cfg.key_allows(rec, &m.id)).map(model_json).collect();
                HeadAction::Reply(self.ok_json(&json!({"object": "list", "data": data})))
            }
            Endpoint::GeminiListModels => {
                let models: Vec<Value> =
                    cfg.models.iter().filter(|m| cfg.key_allows(rec, &m.id)).map(gemini_model_json).collect();
                HeadAction::Reply(self.ok_json(&json!({ "models": models })))
            }
            Endpoint::AnthropicListModels => match super::models::anthropic_list(cfg, rec, head.path) {
                Ok(v) => HeadAction::Reply(self.ok_json(&v)),
                Err(e) => HeadAction::Reply(self.fail(e)),
            },
            Endpoint::AnthropicGetModel(id) => match super::models::anthropic_get(cfg, rec, id) {
                Ok(v) => HeadAction::Reply(self.ok_json(&v)),
                Err(e) => HeadAction::Reply(self.fail(e)),
            },
            Endpoint::GeminiGetModel(id) | Endpoint::GetModel(id)
                if cfg.model(id.trim_start_matches("models/")).is_some_and(|m| !cfg.key_allows(rec, &m.id)) =>
            {
                let id = id.clone();
                HeadAction::Reply(self.fail(super::route::forbidden_model(id.trim_start_matches("models/"))))
            }
            Endpoint::GeminiGetModel(id) | Endpoint::GetModel(id)
                if cfg.model(id.trim_start_matches("models/")).is_none() =>
            {
                let id = id.clone();
                HeadAction::Reply(self.fail(
                    GatewayError::new(Code::NotFound, format!("The model '{id}' does not exist")).with_param("model"),
                ))
            }
            Endpoint::GeminiGetModel(id) => match cfg.model(id.trim_start_matches("models/")) {
                Some(m) => HeadAction::Reply(self.ok_json(&gemini_model_json(m))),
                None => HeadAction::Reply(self.fail(GatewayError::new(Code::NotFound, "model not found"))),
            },
            Endpoint::GetModel(id) => match cfg.model(id) {
                Some(m) => HeadAction::Reply(self.ok_json(&model_json(m))),
                None => {
                    let id = id.clone();
                    HeadAction::Reply(
                        self.fail(
                            GatewayError::new(Code::NotFound, format!("The model '{id}' does not exist"))
                                .with_param("model"),
                        ),
                    )
                }
            },
            Endpoint::MethodNotAllowed => {
                self.note_rate(cfg, env);
                HeadAction::Reply(self.fail(GatewayError::new(
                    Code::MethodNotAllowed,
                    format!("Method {} is not allowed on {}", head.method, endpoints::split_query(head.path).0),
                )))
            }
            Endpoint::Unknown => {
                self.note_rate(cfg, env);
                HeadAction::Reply(self.fail(GatewayError::new(
                    Code::NotFound,
                    format!("Unknown endpoint {} {}", head.method, endpoints::split_query(head.path).0),
                )))
            }
            _ => {
                // What the headers already decide is refused before a byte of the body is read:
                // an account over its rate (a read-only look; the request is counted only once
                // its body is valid, so refusals still consume nothing), a declared length over
                // this endpoint's cap.
                if let Err(e) = self.peek_rpm(cfg, env) {
                    return HeadAction::Reply(self.fail(e));
                }
                if self.endpoint != Endpoint::Transcriptions {
                    let cap = self.body_cap(cfg);
                    if let Some(n) = head.content_length.filter(|n| *n > cap as u64) {
                        return HeadAction::Reply(self.fail(too_large_body(cap, n)));
                    }
                }
                if head.end_of_stream {
                    return HeadAction::Reply(self.fail(GatewayError::new(
                        Code::BadRequest,
                        "The request body is empty; a JSON object is required",
                    )));
                }
                let mut edits = client_credential_removals();
                edits.push(remove(cfg.cluster_header.clone()));
                if self.endpoint == Endpoint::Transcriptions {
                    if let Err(e) = self.start_upload(cfg, head) {
                        return HeadAction::Reply(self.fail(e));
                    }
                } else {
                    edits.push(remove("content-length"));
                }
                HeadAction::ReadBody(edits)
            }
        }
    }

    fn ok_json(&mut self, v: &Value) -> LocalReply {
        self.local_reply = true;
        self.status = 200;
        self.first_byte_ms.get_or_insert(self.now_ms);
        let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
        headers.extend(self.rate_headers());
        LocalReply { status: 200, headers, body: serde_json::to_vec(v).unwrap_or_default() }
    }
}

pub(super) fn client_credential_removals() -> Vec<HeaderEdit> {
    vec![remove("authorization"), remove("x-api-key"), remove("x-goog-api-key")]
}

/// The dialect of a path's namespace, for the errors of paths the gateway does not serve there:
/// Anthropic's under `/v1/messages/` (batches, count_tokens), Gemini's under `/v1beta/`,
/// `/v1alpha/` and model actions (`/v1/models/{model}:{action}`); also under `/api`.
fn namespace_dialect(full_path: &str) -> Option<Dialect> {
    let path = full_path.split(['?', '#']).next().unwrap_or(full_path);
    let path = path.strip_prefix("/api").unwrap_or(path);
    if path.starts_with("/v1/messages/") {
        Some(Dialect::Anthropic)
    } else if endpoints::in_gemini_namespace(full_path) || path == "/v1alpha" || path.starts_with("/v1alpha/") {
        Some(Dialect::Gemini)
    } else {
        None
    }
}

fn gemini_model_json(m: &Model) -> Value {
    let methods = super::models::gemini_methods(m.model_type);
    json!({"name": format!("models/{}", m.id), "displayName": m.id, "version": "1", "supportedGenerationMethods": methods})
}

fn model_json(m: &Model) -> Value {
    json!({"id": m.id, "object": "model", "created": 0, "owned_by": m.owned_by, "type": m.model_type.as_str()})
}
