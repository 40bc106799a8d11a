//! Which endpoint a request is for, from its method and path alone.
//!
//! Paths are accepted under `/v1` and under seed 001's `/api/v1` prefix. Gemini's
//! `models/{model}:generateContent` shares the `/v1/models` prefix with OpenAI's model list, so
//! classification looks at the method and the `:action` suffix, not just the prefix.

use crate::dialect::Dialect;
use crate::routing::ModelType;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET /v1/models`: answered by the filter from the catalog.
    ListModels,
    /// `GET /v1/models/{id}`: one catalog entry.
    GetModel(String),
    /// `POST /v1/chat/completions`.
    ChatCompletions,
    /// `POST /v1/images/generations`.
    Images,
    /// `POST /v1/videos/generations`.
    Videos,
    /// A known path with the wrong method.
    MethodNotAllowed,
    /// Anything else.
    Unknown,
}

impl Endpoint {
    /// The dialect errors for this endpoint are rendered in.
    pub fn dialect(&self) -> Dialect {
        Dialect::OpenAi
    }

    /// Whether the endpoint carries a JSON body the filter must read before routing.
    pub fn needs_body(&self) -> bool {
        matches!(self, Endpoint::ChatCompletions | Endpoint::Images | Endpoint::Videos)
    }

    /// The model type the endpoint serves.
    pub fn model_type(&self) -> Option<ModelType> {
        match self {
            Endpoint::ChatCompletions => Some(ModelType::Text),
            Endpoint::Images => Some(ModelType::Image),
            Endpoint::Videos => Some(ModelType::Video),
            _ => None,
        }
    }

    /// The path below the API version the upstream is called at (after the cluster's base path).
    pub fn upstream_suffix(&self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "/chat/completions",
            Endpoint::Images => "/images/generations",
            Endpoint::Videos => "/videos/generations",
            _ => "",
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Endpoint::ListModels => "models",
            Endpoint::GetModel(_) => "model",
            Endpoint::ChatCompletions => "chat_completions",
            Endpoint::Images => "images",
            Endpoint::Videos => "videos",
            Endpoint::MethodNotAllowed => "method_not_allowed",
            Endpoint::Unknown => "unknown",
        }
    }
}

/// Splits `path?query` into the path and the query.
pub fn split_query(path: &str) -> (&str, Option<&str>) {
    match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    }
}

/// Classifies a request.
pub fn classify(method: &str, full_path: &str) -> Endpoint {
    let (path, _query) = split_query(full_path);
    let path = path.strip_suffix('/').unwrap_or(path);
    let rest = match path.strip_prefix("/api/v1/").or_else(|| path.strip_prefix("/v1/")) {
        Some(r) => r,
        None => return Endpoint::Unknown,
    };
    let is_get = method.eq_ignore_ascii_case("GET");
    let is_post = method.eq_ignore_ascii_case("POST");
    let want = |ok: bool, ep: Endpoint| if ok { ep } else { Endpoint::MethodNotAllowed };
    match rest {
        "models" => want(is_get, Endpoint::ListModels),
        "chat/completions" => want(is_post, Endpoint::ChatCompletions),
        "images/generations" => want(is_post, Endpoint::Images),
        "videos/generations" => want(is_post, Endpoint::Videos),
        _ => {
            if let Some(id) = rest.strip_prefix("models/") {
                if !id.is_empty() && !id.contains('/') && !id.contains(':') {
                    return want(is_get, Endpoint::GetModel(id.to_string()));
                }
            }
            Endpoint::Unknown
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_openai_paths_under_both_prefixes() {
        assert_eq!(classify("GET", "/v1/models"), Endpoint::ListModels);
        assert_eq!(classify("GET", "/api/v1/models"), Endpoint::ListModels);
        assert_eq!(classify("GET", "/v1/models/"), Endpoint::ListModels);
        assert_eq!(classify("POST", "/v1/chat/completions"), Endpoint::ChatCompletions);
        assert_eq!(classify("POST", "/v1/chat/completions?x=1"), Endpoint::ChatCompletions);
        assert_eq!(classify("POST", "/api/v1/images/generations"), Endpoint::Images);
        assert_eq!(classify("POST", "/v1/videos/generations"), Endpoint::Videos);
        assert_eq!(classify("GET", "/v1/models/qai-flash"), Endpoint::GetModel("qai-flash".into()));
    }

    #[test]
    fn wrong_method_and_unknown_paths() {
        assert_eq!(classify("GET", "/v1/chat/completions"), Endpoint::MethodNotAllowed);
        assert_eq!(classify("POST", "/v1/models"), Endpoint::MethodNotAllowed);
        assert_eq!(classify("GET", "/v2/models"), Endpoint::Unknown);
        assert_eq!(classify("GET", "/"), Endpoint::Unknown);
        assert_eq!(classify("POST", "/v1/models/qai-flash:generateContent"), Endpoint::Unknown);
    }
}
