//! A typed read of the commonest event of a Gemini stream: one candidate (index 0) whose
//! content is one text part, with no finish reason, and no error. What the event says besides
//! the text (the response id, the model, the cumulative usage) is read the way the `Value` read
//! in `upstream.rs` reads it. Anything else (more candidates or parts, a thought, a finish
//! reason, an `error` member, a field given both in camelCase and in snake_case, a count that
//! is not an unsigned integer, a repeated key) is `None`, and the event is read whole as before.

use std::borrow::Cow;

use serde::de::IgnoredAny;
use serde::Deserialize;

use crate::dialect::stream::Obj;
use crate::usage::Usage;

/// The text of a text-only event, and what else the stream half notes from it.
pub(super) struct TextEvent<'a> {
    pub text: Cow<'a, str>,
    pub id: Option<Cow<'a, str>>,
    pub model: Option<Cow<'a, str>>,
    /// `Some` when the event carried a `usageMetadata` object.
    pub usage: Option<Usage>,
}

/// The event's text and fields, when it is a text-only event with non-empty text.
pub(super) fn read(data: &str) -> Option<TextEvent<'_>> {
    let Obj(e): Obj<EventIn<'_>> = serde_json::from_str(data).ok()?;
    if e.error.is_some() {
        return None;
    }
    let [Obj(cand)] = e.candidates?;
    if cand.index.unwrap_or(0) != 0 || cand.finish.is_some() {
        return None;
    }
    let [Obj(part)] = cand.content?.0.parts?;
    if part.thought == Some(true) || part.text.is_empty() {
        return None;
    }
    let usage = e.usage.map(|Obj(u)| {
        let n = |x: Option<u64>| x.unwrap_or(0);
        let thoughts = n(u.thoughts);
        Usage {
            prompt_tokens: n(u.prompt).saturating_add(n(u.tool_use_prompt)),
            completion_tokens: n(u.candidates).saturating_add(thoughts),
            cached_tokens: n(u.cached),
            reasoning_tokens: thoughts,
        }
    });
    Some(TextEvent { text: part.text, id: e.id, model: e.model, usage })
}

#[derive(Deserialize)]
struct EventIn<'a> {
    /// Present at all (even `null`): the event is an error.
    #[serde(default, deserialize_with = "present")]
    error: Option<IgnoredAny>,
    #[serde(borrow)]
    candidates: Option<[Obj<CandIn<'a>>; 1]>,
    #[serde(rename = "usageMetadata", alias = "usage_metadata")]
    usage: Option<Obj<UsageIn>>,
    #[serde(rename = "responseId", alias = "response_id", borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(rename = "modelVersion", alias = "model_version", borrow)]
    model: Option<Cow<'a, str>>,
}

/// `Some` for any value, `null` included.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<IgnoredAny>, D::Error> {
    IgnoredAny::deserialize(d).map(Some)
}

#[derive(Deserialize)]
struct CandIn<'a> {
    index: Option<u64>,
    #[serde(borrow)]
    content: Option<Obj<ContentIn<'a>>>,
    #[serde(rename = "finishReason", alias = "finish_reason")]
    finish: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct ContentIn<'a> {
    #[serde(borrow)]
    parts: Option<[Obj<PartIn<'a>>; 1]>,
}

#[derive(Deserialize)]
struct PartIn<'a> {
    #[serde(borrow)]
    text: Cow<'a, str>,
    thought: Option<bool>,
}

#[derive(Deserialize)]
struct UsageIn {
    #[serde(rename = "promptTokenCount", alias = "prompt_token_count")]
    prompt: Option<u64>,
    #[serde(rename = "toolUsePromptTokenCount", alias = "tool_use_prompt_token_count")]
    tool_use_prompt: Option<u64>,
    #[serde(rename = "candidatesTokenCount", alias = "candidates_token_count")]
    candidates: Option<u64>,
    #[serde(rename = "thoughtsTokenCount", alias = "thoughts_token_count")]
    thoughts: Option<u64>,
    #[serde(rename = "cachedContentTokenCount", alias = "cached_content_token_count")]
    cached: Option<u64>,
}
