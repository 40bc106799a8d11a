//! An OpenAI upstream: the request body sent to it; its response and stream read.

use std::borrow::Cow;

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::chunk;
use super::completion::UsageField;
use crate::dialect::frame::Frame;
use crate::dialect::pivot::PivotRequest;
use crate::dialect::stream::{object_data, Obj, TextChunk, UpstreamStream};
use crate::sse::{self, EventOf};
use crate::usage::{self, Usage};

/// The body to send to an OpenAI-dialect upstream for an OpenAI client's request: the
/// upstream's model id, and on streams `stream_options.include_usage` so the upstream reports
/// usage (`wants_usage`: the client asked for it itself). `None`: send the original bytes.
pub fn upstream_chat_body(req: &PivotRequest, wants_usage: bool, upstream_model: &str) -> Option<Vec<u8>> {
    let needs_model = req.model != upstream_model;
    let needs_usage = req.stream && !wants_usage;
    if !needs_model && !needs_usage {
        return None;
    }
    let mut body = req.body.clone();
    if needs_model {
        body.insert("model".to_string(), Value::String(upstream_model.to_string()));
    }
    if needs_usage {
        let mut opts = match body.remove("stream_options") {
            Some(Value::Object(o)) => o,
            _ => Map::new(),
        };
        opts.insert("include_usage".to_string(), Value::Bool(true));
        body.insert("stream_options".to_string(), Value::Object(opts));
    }
    serde_json::to_vec(&Value::Object(body)).ok()
}

/// Rewrites a non-streamed OpenAI response for the client: the client's model name back, and the
/// usage read. Returns the new body (`None`: unchanged) and the usage.
pub fn rewrite_response(body: &[u8], client_model: Option<&str>) -> (Option<Vec<u8>>, Option<Usage>) {
    if client_model.is_none() {
        // Nothing to rename: read only `usage` and skip the rest without building it.
        if let Some(u) = usage_only(body) {
            return (None, u);
        }
    }
    let mut v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) => return (None, None),
    };
    let usage = usage::from_openai(&v);
    let mut out = None;
    if let (Some(name), Some(obj)) = (client_model, v.as_object_mut()) {
        if obj.contains_key("model") {
            obj.insert("model".to_string(), Value::String(name.to_string()));
            out = serde_json::to_vec(&v).ok();
        }
    }
    (out, usage)
}

/// The usage of a JSON object body, reading nothing else into memory: `Some(usage)` when the body
/// is an object with at most one `usage` member (valid JSON throughout), `None` to let the caller
/// take the general path (which then decides exactly as before).
fn usage_only(body: &[u8]) -> Option<Option<Usage>> {
    // `usage` read typed (its counts as `usage::from_openai` reads them, the rest of it parsed
    // as a `Value` parse would), never built.
    #[derive(serde::Deserialize)]
    struct Only {
        usage: Option<UsageField>,
    }
    // A derived struct would also accept a JSON array (fields by position): objects only.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return None;
    }
    let only: Only = serde_json::from_slice(body).ok()?;
    Some(only.usage.and_then(|u| u.usage()))
}

/// OpenAI upstream stream -> OpenAI client stream: model renamed, usage read, the usage chunk
/// dropped for clients that did not ask for it.
#[derive(Debug)]
pub struct OpenAiStream {
    /// Rename `model` to this (the client's name) when it differs from the upstream's.
    pub client_model: Option<String>,
    pub client_wants_usage: bool,
    pub usage: Option<Usage>,
    pub saw_done: bool,
    /// Completion text seen, in bytes (for estimates when usage never comes).
    pub completion_bytes: u64,
    /// The frame of the latest event passed as it came: the next one in it is counted without
    /// the scan.
    pass: PassFrame,
}

/// The frame (`Frame`) of an event the pass-through passed, and the text count of its bytes
/// around the text. The text's string is a counted value (checked when it is remembered, see
/// `remember`): the count reads such a string's length only, so an event that is the same
/// bytes around another plain string counts `base` plus that string's length, and holds
/// `"usage"` only when that string is `usage` (the frame's bytes hold none, and a string
/// without quotes meets the frame's bytes only at its two quotes).
#[derive(Debug, Default)]
struct PassFrame {
    frame: Frame,
    /// The count of the frame's bytes around an empty text.
    base: u64,
    /// Events in a row that did not fit the frame: at `PassFrame::MAX_MISSES`, no frame is
    /// remembered any more on this stream (its events differ in more than their text).
    misses: u8,
}

impl PassFrame {
    const MAX_MISSES: u8 = 2;

    /// The text count of `data` when it fits the frame (and its text is not `usage`).
    #[inline]
    fn count(&mut self, data: &str) -> Option<u64> {
        if !self.frame.is_set() {
            return None;
        }
        match self.frame.text_span(data) {
            Some((s, e)) if data.as_bytes().get(s..e) != Some(b"usage") => {
                self.misses = 0;
                Some(self.base.saturating_add((e - s) as u64))
            }
            _ => {
                self.misses = self.misses.saturating_add(1);
                None
            }
        }
    }

    /// Remembers the frame of `data` (counted by the scan, without `"usage"`) around the plain
    /// start of its last `content` or `arguments` string value, when that string is counted:
    /// the same bytes around an empty text and around `ab` count 2 apart (a string that is not
    /// a counted value counts 0 for either, neither being a key).
    #[cold]
    fn remember(&mut self, data: &str) {
        self.frame.clear();
        if self.misses >= Self::MAX_MISSES {
            return;
        }
        let b = data.as_bytes();
        let Some((s, e)) = [&b"\"content\":\""[..], b"\"arguments\":\""].iter().find_map(|key| {
            let s = memchr::memmem::rfind(b, key)? + key.len();
            Some((s, s + sse::json_special(b.get(s..)?)?))
        }) else {
            return;
        };
        let (pre, suf) = (b.get(..s).unwrap_or(&[]), b.get(e..).unwrap_or(&[]));
        let mut probe = Vec::with_capacity(pre.len() + suf.len() + 2);
        probe.extend_from_slice(pre);
        probe.extend_from_slice(suf);
        // (The frame's bytes hold no `"usage"`: `data`, scanned, holds none.)
        let empty = usage::text_len_hint(&probe);
        probe.truncate(pre.len());
        probe.extend_from_slice(b"ab");
        probe.extend_from_slice(suf);
        if usage::text_len_hint(&probe) != empty.saturating_add(2) {
            return;
        }
        self.base = empty;
        self.frame.remember(data, s, e);
    }
}

impl OpenAiStream {
    pub fn new(client_model: Option<String>, client_wants_usage: bool) -> Self {
        OpenAiStream {
            client_model,
            client_wants_usage,
            usage: None,
            saw_done: false,
            completion_bytes: 0,
            pass: PassFrame::default(),
        }
    }

    /// Whether the next event in the latest passed event's frame is counted from it (for tests).
    #[cfg(test)]
    pub(crate) fn counts_by_frame(&self) -> bool {
        self.pass.frame.is_set()
    }

    /// Translates one upstream event, appending what the client gets to `out`.
    pub fn on_event(&mut self, ev: &EventOf<'_>, out: &mut Vec<u8>) {
        match self.passed(ev) {
            Some(data) => sse::write_event(out, None, data.as_bytes(), b"\n"),
            None => self.rewrite(ev, out),
        }
    }

    /// As `on_event`, into a chunk's output: an event passed on unchanged is not copied.
    pub fn on_event_out(&mut self, ev: &EventOf<'_>, out: &mut sse::ChunkOut<'_, '_>) {
        match self.passed(ev) {
            Some(data) => out.data_event(data),
            None => self.rewrite(ev, out.buf()),
        }
    }

    /// The event's data when the client gets it as it is (`data: {data}`): no model to rename,
    /// no usage in it, not the end marker. Its text is counted then; `None` (nothing noted):
    /// the event is for `rewrite`.
    fn passed<'e>(&mut self, ev: &'e EventOf<'_>) -> Option<&'e str> {
        if self.client_model.is_some() {
            return None;
        }
        let data = sse::trim(&ev.data);
        if data == "[DONE]" {
            return None;
        }
        if let Some(text) = self.pass.count(data) {
            self.completion_bytes = self.completion_bytes.saturating_add(text);
            return Some(data);
        }
        let (text, has_usage) = usage::text_len_and_usage_key(data.as_bytes());
        if has_usage {
            return None;
        }
        self.completion_bytes = self.completion_bytes.saturating_add(text);
        self.pass.remember(data);
        Some(data)
    }

    /// An event that is not passed as it is: the end marker, a usage read (and the usage chunk
    /// dropped or its usage removed for clients that did not ask for it), the model renamed.
    fn rewrite(&mut self, ev: &EventOf<'_>, out: &mut Vec<u8>) {
        let data = sse::trim(&ev.data);
        if data == "[DONE]" {
            self.saw_done = true;
            out.extend_from_slice(b"data: [DONE]\n\n");
            return;
        }
        let mut v: Value = match serde_json::from_slice(data.as_bytes()) {
            Ok(v) => v,
            Err(_) => {
                // Not JSON: forward as it came; the client's parser decides.
                sse::write_event(out, None, data.as_bytes(), b"\n");
                return;
            }
        };
        self.completion_bytes = self.completion_bytes.saturating_add(usage::text_len_hint(data));
        let Some(obj) = v.as_object_mut() else {
            sse::write_event(out, None, data.as_bytes(), b"\n");
            return;
        };
        if let Some(u) = obj.get("usage").filter(|u| u.is_object()) {
            let _ = u;
            if let Some(found) = usage::from_openai(&Value::Object(obj.clone())) {
                self.usage = Some(found);
            }
            if !self.client_wants_usage {
                let no_choices = obj.get("choices").and_then(Value::as_array).is_none_or(|a| a.is_empty());
                if no_choices {
                    return; // the extra chunk we asked for: the client never sees it
                }
                obj.remove("usage");
            }
        }
        if let Some(name) = &self.client_model {
            if obj.contains_key("model") {
                obj.insert("model".to_string(), Value::String(name.clone()));
            }
        }
        match serde_json::to_vec(&v) {
            Ok(bytes) => sse::write_event(out, None, &bytes, b"\n"),
            Err(_) => sse::write_event(out, None, data.as_bytes(), b"\n"),
        }
    }
}

/// An OpenAI upstream's stream read into pivot chunks, for a client of another dialect: each
/// event parsed once, and handed on as it came.
#[derive(Debug, Default)]
pub struct StreamToPivot {
    usage: Option<Usage>,
    error: Option<&'static str>,
    ended: bool,
    /// The frame of the latest text chunk read by bytes, and where its id is (in the part
    /// before the text): the next chunk in the same frame is read by comparing bytes.
    frame: Frame,
    frame_id: Option<(usize, usize)>,
}

impl StreamToPivot {
    pub fn new() -> Self {
        Self::default()
    }
}

impl UpstreamStream for StreamToPivot {
    fn on_event(&mut self, ev: &EventOf<'_>, out: &mut Vec<Value>) {
        let d = ev.data.trim();
        if d == "[DONE]" {
            self.ended = true;
        } else if let Ok(v) = serde_json::from_slice::<Value>(d.as_bytes()) {
            if let Some(u) = usage::from_openai(&v) {
                self.usage = Some(u);
            }
            out.push(v);
        } else if !d.is_empty() {
            self.error = Some("The generation service sent an invalid stream event");
        }
    }

    fn finish(&mut self, _out: &mut Vec<Value>) {}

    fn usage(&self) -> Option<Usage> {
        self.usage
    }

    fn error(&self) -> Option<&str> {
        self.error
    }

    fn ended(&self) -> bool {
        self.ended
    }

    fn text_event<'a>(&'a mut self, ev: &'a EventOf<'_>) -> Option<TextChunk<'a>> {
        let d = object_data(ev)?;
        if let Some((a, b)) = self.frame.text_span(d) {
            // The latest text chunk's bytes around another plain text: read as it was.
            let s = chunk::Spans { id: self.frame_id, text: Some((a, b)) };
            return Some(TextChunk { id: Cow::Borrowed(s.id(d)?), text: Cow::Borrowed(s.text(d)?) });
        }
        if let Some(s) = chunk::spans(d) {
            if let Some((a, b)) = s.text.filter(|&(a, _)| s.id.is_none_or(|(_, id_end)| id_end < a)) {
                self.frame.remember(d, a, b);
                self.frame_id = s.id;
            }
            return Some(TextChunk { id: Cow::Borrowed(s.id(d)?), text: Cow::Borrowed(s.text(d)?) });
        }
        text_event_serde(d)
    }
}

/// `text_event` by serde: every form of a text-only chunk JSON allows.
pub(super) fn text_event_serde(d: &str) -> Option<TextChunk<'_>> {
    let t: TextIn<'_> = serde_json::from_slice(d.as_bytes()).ok()?;
    let [Obj(c)] = t.choices;
    if t.usage.is_some() || c.index != 0 || c.finish_reason.is_some() || c.delta.0.refusal.is_some() {
        return None;
    }
    Some(TextChunk { id: t.id, text: c.delta.0.content })
}

/// A chunk of nothing but text for choice 0, borrowed from the event. Any other delta field, a
/// finish reason, a usage, more than one choice or a repeated key fails the read or is refused
/// (the event is then read whole, as before).
#[derive(Deserialize)]
struct TextIn<'a> {
    #[serde(borrow, default)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    choices: [Obj<ChoiceIn<'a>>; 1],
    usage: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct ChoiceIn<'a> {
    #[serde(default)]
    index: u64,
    #[serde(borrow)]
    delta: Obj<DeltaIn<'a>>,
    finish_reason: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeltaIn<'a> {
    #[serde(borrow, default)]
    content: Cow<'a, str>,
    /// Present on the first chunk; it carries nothing a front writes.
    #[serde(rename = "role")]
    _role: Option<IgnoredAny>,
    /// `null` is allowed (as in OpenAI's chunks); a refusal's text is not text content.
    refusal: Option<IgnoredAny>,
}
