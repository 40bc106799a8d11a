//! The catalog in the Anthropic and Gemini shapes (the OpenAI one is in `auth`): what the
//! anthropic SDK's `models.list()` / `models.retrieve()` and google-genai's `models.list()` /
//! `models.get()` parse.

use serde_json::{json, Value};

use crate::config::{Config, KeyRecord};
use crate::endpoints::{self, Endpoint};
use crate::errors::{Code, GatewayError};
use crate::routing::{Model, ModelType};

/// Anthropic's default page size of the model list.
const DEFAULT_LIMIT: usize = 20;
/// Anthropic's largest page size.
const MAX_LIMIT: usize = 1000;
/// The catalog has no creation dates: every model says the epoch (the OpenAI list says `created: 0`).
const CREATED_AT: &str = "1970-01-01T00:00:00Z";

/// An OpenAI-path model request carrying `anthropic-version` becomes its Anthropic twin.
pub(super) fn anthropic_catalog(endpoint: &mut Endpoint) {
    match endpoint {
        Endpoint::ListModels => *endpoint = Endpoint::AnthropicListModels,
        Endpoint::GetModel(id) => *endpoint = Endpoint::AnthropicGetModel(std::mem::take(id)),
        _ => {}
    }
}

/// The models an Anthropic client can use (text models, through `/v1/messages`) that `rec` may use.
fn anthropic_models<'a>(cfg: &'a Config, rec: &'a KeyRecord) -> impl Iterator<Item = &'a Model> + 'a {
    cfg.models.iter().filter(move |m| m.model_type == ModelType::Text && cfg.key_allows(rec, &m.id))
}

fn anthropic_model_json(m: &Model) -> Value {
    json!({"type": "model", "id": m.id, "display_name": m.id, "created_at": CREATED_AT})
}

/// `GET /v1/models` for an Anthropic client: one page (`limit`, default 20, 1 to 1000), after
/// `after_id` or before `before_id` when given, with `has_more`, `first_id` and `last_id`.
pub(super) fn anthropic_list(cfg: &Config, rec: &KeyRecord, path: &str) -> Result<Value, GatewayError> {
    let param = |name: &str| endpoints::query_param(path, name).map(endpoints::percent_decode);
    let limit = match param("limit") {
        None => DEFAULT_LIMIT,
        Some(v) => v.parse::<usize>().ok().filter(|n| (1..=MAX_LIMIT).contains(n)).ok_or_else(|| {
            GatewayError::new(Code::BadRequest, format!("limit: must be an integer from 1 to {MAX_LIMIT}"))
                .with_param("limit")
        })?,
    };
    let all: Vec<&Model> = anthropic_models(cfg, rec).collect();
    let position = |id: &str| all.iter().position(|m| m.id == id);
    let (start, end) = match (param("after_id"), param("before_id")) {
        (Some(after), _) => {
            let start = position(&after).map_or(all.len(), |i| i + 1);
            (start, all.len().min(start.saturating_add(limit)))
        }
        (None, Some(before)) => {
            let end = position(&before).unwrap_or(0);
            (end.saturating_sub(limit), end)
        }
        (None, None) => (0, all.len().min(limit)),
    };
    let page = all.get(start..end).unwrap_or(&[]);
    // `has_more`: more in the direction of travel (backwards for `before_id`).
    let has_more =
        if param("after_id").is_none() && param("before_id").is_some() { start > 0 } else { end < all.len() };
    Ok(json!({
        "data": page.iter().map(|m| anthropic_model_json(m)).collect::<Vec<_>>(),
        "has_more": has_more,
        "first_id": page.first().map(|m| m.id.as_str()),
        "last_id": page.last().map(|m| m.id.as_str()),
    }))
}

/// `GET /v1/models/{id}` for an Anthropic client: 404 `not_found_error` for a model it cannot
/// use through `/v1/messages`, 403 for one its key may not use.
pub(super) fn anthropic_get(cfg: &Config, rec: &KeyRecord, id: &str) -> Result<Value, GatewayError> {
    match cfg.model(id).filter(|m| m.model_type == ModelType::Text) {
        Some(m) if cfg.key_allows(rec, &m.id) => Ok(anthropic_model_json(m)),
        Some(_) => Err(super::route::forbidden_model(id)),
        None => Err(GatewayError::new(Code::NotFound, format!("The model '{id}' does not exist")).with_param("model")),
    }
}

/// The methods a model supports in Gemini's catalog (`supportedGenerationMethods`): what the
/// gateway serves for its type on the Gemini front.
pub(super) fn gemini_methods(t: ModelType) -> &'static [&'static str] {
    match t {
        ModelType::Text => &["generateContent", "streamGenerateContent", "countTokens"],
        ModelType::Embedding => &["embedContent", "batchEmbedContents"],
        _ => &[],
    }
}
