//! A typed read of the commonest event of a Gemini stream: one candidate (index 0) whose
//! content is one text part, with no finish reason, and no error. What the event says besides
//! the text (the response id, the model, the cumulative usage) is read the way the `Value` read
//! in `upstream.rs` reads it. Anything else (more candidates or parts, a thought, a finish
//! reason, an `error` member, a field given both in camelCase and in snake_case, a count that
//! is not an unsigned integer, a repeated key) is `None`, and the event is read whole as before.

use std::borrow::Cow;

use serde::de::IgnoredAny;
use serde::Deserialize;

use crate::dialect::cursor::Cursor;
use crate::dialect::frame::Frame;
use crate::dialect::stream::Obj;
use crate::usage::Usage;

/// The text of a text-only event, and what else the stream half notes from it.
#[derive(Debug, PartialEq)]
pub(super) struct TextEvent<'a> {
    pub text: Cow<'a, str>,
    pub id: Option<Cow<'a, str>>,
    pub model: Option<Cow<'a, str>>,
    /// `Some` when the event carried a `usageMetadata` object.
    pub usage: Option<Usage>,
}

/// The event's text and fields, when it is a text-only event with non-empty text: read by
/// bytes in the usual form, else by serde (`Framed::text_event` reads a stream's events).
#[cfg(test)]
pub(super) fn text_event(data: &str) -> Option<TextEvent<'_>> {
    scan(data).or_else(|| read(data))
}

/// `read` of an event in the usual form (no escape in any string or key, integers only, each
/// member once in one spelling, nesting of at most a few levels), by bytes; `None` for anything
/// else (`read` decides then).
#[cfg(test)]
pub(super) fn scan(data: &str) -> Option<TextEvent<'_>> {
    scan_found(data)?.event(data)
}

/// Where `scan` found the text, the id and the model in an event, and the usage it read.
#[derive(Debug, Clone, Copy)]
struct Found {
    text: (usize, usize),
    id: Option<(usize, usize)>,
    model: Option<(usize, usize)>,
    usage: Option<Usage>,
}

impl Found {
    fn event<'a>(&self, data: &'a str) -> Option<TextEvent<'a>> {
        let at = |s: Option<(usize, usize)>| match s {
            Some((a, b)) => data.get(a..b).map(|t| Some(Cow::Borrowed(t))),
            None => Some(None),
        };
        let text = data.get(self.text.0..self.text.1)?;
        Some(TextEvent { text: Cow::Borrowed(text), id: at(self.id)?, model: at(self.model)?, usage: self.usage })
    }

    /// The spans moved as they are when the text at `from` is replaced by one of `len` bytes
    /// (the spans are never inside the text).
    fn moved(&self, from: (usize, usize), len: usize) -> Found {
        let m = |s: Option<(usize, usize)>| {
            s.map(|(a, b)| if a >= from.1 { (a - from.1 + from.0 + len, b - from.1 + from.0 + len) } else { (a, b) })
        };
        Found { text: (from.0, from.0 + len), id: m(self.id), model: m(self.model), usage: self.usage }
    }
}

/// `scan`'s read, as spans. It depends on the text in no way but its being a non-empty string
/// without escapes or control characters.
fn scan_found(data: &str) -> Option<Found> {
    let mut c = Cursor::new(data);
    let (mut text, mut id, mut model, mut usage) = (None, None, None, None);
    c.members(|c, key| {
        match key {
            b"candidates" if text.is_none() => text = Some(c.one(candidate)?),
            b"responseId" | b"response_id" if id.is_none() => id = Some(c.plain_span()?),
            b"modelVersion" | b"model_version" if model.is_none() => model = Some(c.plain_span()?),
            b"usageMetadata" | b"usage_metadata" if usage.is_none() => usage = Some(usage_counts(c)?),
            b"candidates" | b"responseId" | b"response_id" | b"modelVersion" | b"model_version" | b"usageMetadata"
            | b"usage_metadata" | b"error" => return None,
            _ => c.skip_value(0)?,
        }
        Some(())
    })?;
    c.end()?;
    let text = text.filter(|&(a, b)| a < b)?;
    Some(Found { text, id, model, usage })
}

/// `text_event` with the frame of the latest event read by bytes: an event in that frame around
/// another non-empty text reads as that one did, by comparing bytes.
#[derive(Debug, Default)]
pub(super) struct Framed {
    frame: Frame,
    /// The latest event's spans, the text's at the frame's split and empty.
    found: Option<Found>,
}

impl Framed {
    pub(super) fn text_event<'a>(&mut self, data: &'a str) -> Option<TextEvent<'a>> {
        if let (Some((a, b)), Some(f)) = (self.frame.text_span(data).filter(|&(a, b)| a < b), &self.found) {
            return f.moved((a, a), b - a).event(data);
        }
        if let Some(f) = scan_found(data) {
            self.frame.remember(data, f.text.0, f.text.1);
            self.found = Some(f.moved(f.text, 0));
            return f.event(data);
        }
        read(data)
    }
}

/// A candidate of index 0 without a finish reason, whose content is one text part: its text.
fn candidate(c: &mut Cursor<'_>) -> Option<(usize, usize)> {
    let (mut index, mut text) = (false, None);
    c.members(|c, key| {
        match key {
            b"index" if !index => {
                index = true;
                (c.integer()? == b"0").then_some(())?;
            }
            b"content" if text.is_none() => {
                let mut parts = None;
                c.members(|c, key| {
                    match key {
                        b"parts" if parts.is_none() => parts = Some(c.one(text_part)?),
                        b"parts" => return None,
                        _ => c.skip_value(2)?,
                    }
                    Some(())
                })?;
                text = Some(parts?);
            }
            b"index" | b"content" | b"finishReason" | b"finish_reason" => return None,
            _ => c.skip_value(1)?,
        }
        Some(())
    })?;
    text
}

/// A part of text that is not a thought: the span of its text.
fn text_part(c: &mut Cursor<'_>) -> Option<(usize, usize)> {
    let (mut text, mut thought) = (None, false);
    c.members(|c, key| {
        match key {
            b"text" if text.is_none() => text = Some(c.plain_span()?),
            b"thought" if !thought => {
                thought = true;
                c.lit(b"false")?;
            }
            b"text" | b"thought" => return None,
            _ => c.skip_value(3)?,
        }
        Some(())
    })?;
    text
}

/// A `usageMetadata` object: the counts it gives, each in one spelling.
fn usage_counts(c: &mut Cursor<'_>) -> Option<Usage> {
    // promptTokenCount, toolUsePromptTokenCount, candidatesTokenCount, thoughtsTokenCount,
    // cachedContentTokenCount
    let mut n: [Option<u64>; 5] = [None; 5];
    c.members(|c, key| {
        let slot = match key {
            b"promptTokenCount" | b"prompt_token_count" => 0,
            b"toolUsePromptTokenCount" | b"tool_use_prompt_token_count" => 1,
            b"candidatesTokenCount" | b"candidates_token_count" => 2,
            b"thoughtsTokenCount" | b"thoughts_token_count" => 3,
            b"cachedContentTokenCount" | b"cached_content_token_count" => 4,
            _ => return c.skip_value(2),
        };
        let v = n.get_mut(slot)?;
        if v.is_some() {
            return None;
        }
        *v = Some(c.uint()?);
        Some(())
    })?;
    let [prompt, tool_use_prompt, candidates, thoughts, cached] = n.map(|x| x.unwrap_or(0));
    Some(Usage {
        prompt_tokens: prompt.saturating_add(tool_use_prompt),
        completion_tokens: candidates.saturating_add(thoughts),
        cached_tokens: cached,
        reasoning_tokens: thoughts,
        cache_creation_tokens: 0,
    })
}

/// The event's text and fields, when it is a text-only event with non-empty text.
pub(super) fn read(data: &str) -> Option<TextEvent<'_>> {
    let Obj(e): Obj<EventIn<'_>> = serde_json::from_slice(data.as_bytes()).ok()?;
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
            cache_creation_tokens: 0,
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

#[cfg(test)]
#[path = "../tests/gemini_text_in_tests.rs"]
mod tests;
