//! The model catalog: model name -> type, cluster, upstream model id, prices.

use serde::Deserialize;

use crate::router::{Router, Supports};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelType {
    Text,
    Image,
    Video,
    Audio,
    /// Embeddings (`/v1/embeddings`), billed per input token at `prompt_per_1k`.
    Embedding,
}

impl ModelType {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelType::Text => "text",
            ModelType::Image => "image",
            ModelType::Video => "video",
            ModelType::Audio => "audio",
            ModelType::Embedding => "embedding",
        }
    }
}

/// Prices in credits.
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    #[serde(default)]
    pub prompt_per_1k: f64,
    #[serde(default)]
    pub completion_per_1k: f64,
    #[serde(default)]
    pub per_image: f64,
    #[serde(default)]
    pub per_second: f64,
    /// Text to speech: credits per 1000 characters of input.
    #[serde(default)]
    pub per_1k_chars: f64,
    /// Prompt tokens served from the upstream's cache, per 1000; unset: `prompt_per_1k`.
    #[serde(default)]
    pub cached_prompt_per_1k: Option<f64>,
    /// Reasoning tokens, per 1000; unset: `completion_per_1k` (they are completion tokens).
    #[serde(default)]
    pub reasoning_per_1k: Option<f64>,
    /// Prompt tokens written to the upstream's cache, per 1000; unset: `prompt_per_1k`.
    #[serde(default)]
    pub cache_write_per_1k: Option<f64>,
}

impl Price {
    /// The price of a cached prompt token, per 1000.
    pub fn cached_per_1k(&self) -> f64 {
        self.cached_prompt_per_1k.unwrap_or(self.prompt_per_1k)
    }

    /// The price of a prompt token written to the cache, per 1000.
    pub fn cache_write_per_1k(&self) -> f64 {
        self.cache_write_per_1k.unwrap_or(self.prompt_per_1k)
    }

    /// The price of a reasoning token, per 1000.
    pub fn reasoning_per_1k(&self) -> f64 {
        self.reasoning_per_1k.unwrap_or(self.completion_per_1k)
    }
}

/// What an `audio` model does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AudioTask {
    /// Text to speech (`/v1/audio/speech`, `/api/v1/tts/text_to_audio`).
    Speech,
    /// Speech to text (`/v1/audio/transcriptions`).
    Transcription,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub id: String,
    pub model_type: ModelType,
    /// Index into `Config::clusters`.
    pub cluster: usize,
    /// The model id sent upstream.
    pub upstream_model: String,
    pub price: Price,
    /// Free model with a per-key daily quota.
    pub sandbox: bool,
    /// Completion budget assumed when a request gives no `max_tokens`.
    pub default_max_tokens: u32,
    pub owned_by: String,
    /// Image and video models: the sizes (`WxH`) accepted; empty accepts any `WxH`.
    pub sizes: Vec<String>,
    /// Video models: the longest video, in seconds.
    pub max_seconds: f64,
    /// Audio models: speech or transcription (`None`: either).
    pub task: Option<AudioTask>,
    /// Text models: the context window in tokens (prompt and completion), for router models.
    pub context_window: Option<u64>,
    /// Text models: what they accept besides text, for router models.
    pub supports: Supports,
    /// A router model (`auto`): the rules that pick the model that serves.
    pub router: Option<Box<Router>>,
    /// Text models: the models (indices into `Config::models`) that serve a request in its place
    /// when its upstream fails, in order (`crate::config::fallbacks`).
    pub fallbacks: Vec<usize>,
}
