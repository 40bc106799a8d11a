//! The model catalog: model name -> type, cluster, upstream model id, prices.

use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelType {
    Text,
    Image,
    Video,
    Audio,
}

impl ModelType {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelType::Text => "text",
            ModelType::Image => "image",
            ModelType::Video => "video",
            ModelType::Audio => "audio",
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
}
