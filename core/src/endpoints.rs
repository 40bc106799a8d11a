//! Which endpoint a request is for, from its method and path alone.
//!
//! Paths are accepted under `/v1` and under the `/api/v1` prefix some platforms document. Gemini's
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
    /// `POST /v1/responses` (the OpenAI Responses API).
    Responses,
    /// `POST /v1/messages` (Anthropic Messages).
    Messages,
    /// `POST /v1beta/models/{model}:generateContent` or `:streamGenerateContent` (Gemini).
    Gemini { model: String, stream: bool },
    /// `POST /v1/images/generations`.
    Images,
    /// `POST /v1/videos/generations`.
    Videos,
    /// `POST /v1/audio/speech`, and the platform-style `POST /api/v1/tts/text_to_audio`.
    Speech,
    /// `POST /v1/audio/transcriptions` (multipart upload).
    Transcriptions,
    /// `POST /v1/embeddings`.
    Embeddings,
    /// `POST /v1beta/models/{model}:embedContent` or `:batchEmbedContents` (Gemini), served by an
    /// OpenAI-dialect embeddings upstream.
    GeminiEmbed { model: String, batch: bool },
    /// `POST /v1/messages/count_tokens` (Anthropic).
    CountTokens,
    /// `POST /v1beta/models/{model}:countTokens` (Gemini).
    GeminiCountTokens { model: String },
    /// `GET /v1beta/models`: the catalog in Gemini's shape.
    GeminiListModels,
    /// `GET /v1beta/models/{id}`: one model in Gemini's shape.
    GeminiGetModel(String),
    /// `GET /v1/models` with an `anthropic-version` header (the anthropic SDK's `models.list()`):
    /// the catalog's text models in Anthropic's shape.
    AnthropicListModels,
    /// `GET /v1/models/{id}` with an `anthropic-version` header: one model in Anthropic's shape.
    AnthropicGetModel(String),
    /// A known path with the wrong method.
    MethodNotAllowed,
    /// Anything else.
    Unknown,
}

impl Endpoint {
    /// The dialect errors for this endpoint are rendered in.
    pub fn dialect(&self) -> Dialect {
        match self {
            Endpoint::Messages
            | Endpoint::CountTokens
            | Endpoint::AnthropicListModels
            | Endpoint::AnthropicGetModel(_) => Dialect::Anthropic,
            Endpoint::Responses => Dialect::OpenAiResponses,
            Endpoint::Gemini { .. }
            | Endpoint::GeminiCountTokens { .. }
            | Endpoint::GeminiEmbed { .. }
            | Endpoint::GeminiListModels
            | Endpoint::GeminiGetModel(_) => Dialect::Gemini,
            _ => Dialect::OpenAi,
        }
    }

    /// A chat endpoint, in any dialect.
    pub fn is_chat(&self) -> bool {
        matches!(self, Endpoint::ChatCompletions | Endpoint::Messages | Endpoint::Gemini { .. } | Endpoint::Responses)
    }

    /// A model list or a model of the catalog, in any dialect (answered by the filter).
    pub fn is_catalog(&self) -> bool {
        matches!(
            self,
            Endpoint::ListModels
                | Endpoint::GetModel(_)
                | Endpoint::GeminiListModels
                | Endpoint::GeminiGetModel(_)
                | Endpoint::AnthropicListModels
                | Endpoint::AnthropicGetModel(_)
        )
    }

    /// A token counter, in any dialect.
    pub fn is_count(&self) -> bool {
        matches!(self, Endpoint::CountTokens | Endpoint::GeminiCountTokens { .. })
    }

    /// Whether the endpoint carries a JSON body the filter must read before routing.
    pub fn needs_body(&self) -> bool {
        self.is_chat()
            || self.is_count()
            || matches!(
                self,
                Endpoint::Images
                    | Endpoint::Videos
                    | Endpoint::Speech
                    | Endpoint::Transcriptions
                    | Endpoint::Embeddings
                    | Endpoint::GeminiEmbed { .. }
            )
    }

    /// The model type the endpoint serves.
    pub fn model_type(&self) -> Option<ModelType> {
        match self {
            Endpoint::ChatCompletions | Endpoint::Messages | Endpoint::Gemini { .. } | Endpoint::Responses => {
                Some(ModelType::Text)
            }
            Endpoint::Images => Some(ModelType::Image),
            Endpoint::Videos => Some(ModelType::Video),
            Endpoint::Speech | Endpoint::Transcriptions => Some(ModelType::Audio),
            Endpoint::Embeddings | Endpoint::GeminiEmbed { .. } => Some(ModelType::Embedding),
            Endpoint::CountTokens | Endpoint::GeminiCountTokens { .. } => Some(ModelType::Text),
            _ => None,
        }
    }

    /// The path below the API version the upstream is called at (after the cluster's base path).
    pub fn upstream_suffix(&self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "/chat/completions",
            Endpoint::Images => "/images/generations",
            Endpoint::Videos => "/videos/generations",
            Endpoint::Speech => "/audio/speech",
            Endpoint::Transcriptions => "/audio/transcriptions",
            Endpoint::Embeddings | Endpoint::GeminiEmbed { .. } => "/embeddings",
            _ => "",
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Endpoint::ListModels => "models",
            Endpoint::GetModel(_) => "model",
            Endpoint::ChatCompletions => "chat_completions",
            Endpoint::Messages => "messages",
            Endpoint::Responses => "responses",
            Endpoint::Gemini { .. } => "generate_content",
            Endpoint::GeminiListModels
            | Endpoint::GeminiGetModel(_)
            | Endpoint::AnthropicListModels
            | Endpoint::AnthropicGetModel(_) => "models",
            Endpoint::Images => "images",
            Endpoint::Videos => "videos",
            Endpoint::Speech => "speech",
            Endpoint::Transcriptions => "transcriptions",
            Endpoint::Embeddings | Endpoint::GeminiEmbed { .. } => "embeddings",
            Endpoint::CountTokens | Endpoint::GeminiCountTokens { .. } => "count_tokens",
            Endpoint::MethodNotAllowed => "method_not_allowed",
            Endpoint::Unknown => "unknown",
        }
    }
}

/// Splits `path?query` into the path and the query.
pub fn split_query(path: &str) -> (&str, Option<&str>) {
    // A byte search ('?' is ASCII, so both sides stay on character boundaries): its cost does
    // not hang on how the compiler happens to inline `str`'s char searcher.
    match memchr::memchr(b'?', path.as_bytes()) {
        Some(i) => (path.get(..i).unwrap_or(path), path.get(i + 1..)),
        None => (path, None),
    }
}

/// Classifies a request.
/// Whether a path (known or not) lies in Gemini's namespace: `/v1beta/...` (also under `/api`),
/// or a model action `/v1/models/{model}:{action}`.
pub fn in_gemini_namespace(full_path: &str) -> bool {
    let (path, _query) = split_query(full_path);
    let path = path.strip_prefix("/api").unwrap_or(path);
    path == "/v1beta" || path.starts_with("/v1beta/") || (path.starts_with("/v1/models/") && path.contains(':'))
}

pub fn classify(method: &str, full_path: &str) -> Endpoint {
    let (path, _query) = split_query(full_path);
    let path = path.strip_suffix('/').unwrap_or(path);
    let (rest, beta) = match path.strip_prefix("/api/v1/").or_else(|| path.strip_prefix("/v1/")) {
        Some(r) => (r, false),
        None => match path.strip_prefix("/api/v1beta/").or_else(|| path.strip_prefix("/v1beta/")) {
            Some(r) => (r, true),
            None => return Endpoint::Unknown,
        },
    };
    let is_get = method.eq_ignore_ascii_case("GET");
    let is_post = method.eq_ignore_ascii_case("POST");
    let want = |ok: bool, ep: Endpoint| if ok { ep } else { Endpoint::MethodNotAllowed };
    match rest {
        "models" if beta => want(is_get, Endpoint::GeminiListModels),
        "models" => want(is_get, Endpoint::ListModels),
        "chat/completions" => want(is_post, Endpoint::ChatCompletions),
        "messages" => want(is_post, Endpoint::Messages),
        "messages/count_tokens" => want(is_post, Endpoint::CountTokens),
        "responses" => want(is_post, Endpoint::Responses),
        "images/generations" => want(is_post, Endpoint::Images),
        "videos/generations" => want(is_post, Endpoint::Videos),
        "audio/speech" => want(is_post, Endpoint::Speech),
        "audio/transcriptions" => want(is_post, Endpoint::Transcriptions),
        "embeddings" => want(is_post, Endpoint::Embeddings),
        // Some platforms put text to speech one level up: /api/v1/tts/text_to_audio.
        "tts/text_to_audio" if path.starts_with("/api/v1/") => want(is_post, Endpoint::Speech),
        _ => {
            if let Some((model, action)) = rest.strip_prefix("models/").and_then(|r| r.rsplit_once(':')) {
                if model.is_empty() || model.contains('/') {
                    return Endpoint::Unknown;
                }
                let stream = match action {
                    "generateContent" => false,
                    "streamGenerateContent" => true,
                    "countTokens" => {
                        return want(is_post, Endpoint::GeminiCountTokens { model: percent_decode(model) })
                    }
                    "embedContent" | "batchEmbedContents" => {
                        let batch = action == "batchEmbedContents";
                        return want(is_post, Endpoint::GeminiEmbed { model: percent_decode(model), batch });
                    }
                    _ => return Endpoint::Unknown,
                };
                return want(is_post, Endpoint::Gemini { model: percent_decode(model), stream });
            }
            if let Some(id) = rest.strip_prefix("models/") {
                if !id.is_empty() && !id.contains('/') && !id.contains(':') {
                    let id = percent_decode(id);
                    return want(is_get, if beta { Endpoint::GeminiGetModel(id) } else { Endpoint::GetModel(id) });
                }
            }
            Endpoint::Unknown
        }
    }
}

/// A streamed Gemini request without `alt=sse`: the real service then streams one JSON array,
/// which the gateway does not produce (it streams Server-Sent Events only), so it refuses it.
pub fn gemini_stream_without_sse(endpoint: &Endpoint, full_path: &str) -> bool {
    matches!(endpoint, Endpoint::Gemini { stream: true, .. }) && query_param(full_path, "alt") != Some("sse")
}

/// The value of query parameter `name`, if present.
pub fn query_param<'a>(full_path: &'a str, name: &str) -> Option<&'a str> {
    let (_, q) = split_query(full_path);
    q?.split('&').find_map(|kv| match kv.split_once('=') {
        Some((k, v)) if k == name => Some(v),
        None if kv == name => Some(""),
        _ => None,
    })
}

/// The path without the query parameter `name` (`None` when it has none): a key in `?key=`
/// must not reach the upstream or Envoy's access log. The name matches in any case and
/// percent-encoded (`KEY=`, `%6Bey=`), so no spelling of it is left behind.
pub fn without_query_param(full_path: &str, name: &str) -> Option<String> {
    let (path, q) = split_query(full_path);
    let q = q?;
    let is_it = |kv: &&str| {
        let k = kv.split_once('=').map(|(k, _)| k).unwrap_or(kv);
        if k.contains('%') {
            percent_decode(k).eq_ignore_ascii_case(name)
        } else {
            k.eq_ignore_ascii_case(name)
        }
    };
    if !q.split('&').any(|kv| is_it(&kv)) {
        return None;
    }
    let rest: Vec<&str> = q.split('&').filter(|kv| !is_it(kv)).collect();
    Some(if rest.is_empty() { path.to_string() } else { format!("{path}?{}", rest.join("&")) })
}

/// Decodes `%XX` escapes (model names in Gemini paths); invalid escapes stay as they are.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b.get(i).copied().unwrap_or(0);
        if c == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(v) = hex {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
#[path = "tests/endpoints_tests.rs"]
mod tests;
