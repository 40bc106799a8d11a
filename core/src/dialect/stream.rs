//! The two halves of a translated stream, as traits: an upstream's stream read into pivot
//! chunks (`UpstreamStream`), and pivot chunks written out to a client (`FrontStream`). Each
//! pivot chunk is an OpenAI `chat.completion.chunk`, parsed or built once and handed from one
//! half to the other by reference. `ChunkWriter` holds what every upstream half writes the same
//! way: the message id and model, the role chunk first, the usage chunk once.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};

use crate::dialect::frame;
use crate::dialect::pivot::{self, Finish};
use crate::sse::{self, EventOf};
use crate::usage::Usage;

/// An upstream's stream read into pivot chunks, one SSE event at a time.
pub trait UpstreamStream {
    /// One upstream event: zero or more pivot chunks appended to `out`.
    fn on_event(&mut self, ev: &EventOf<'_>, out: &mut Vec<Value>);
    /// The end of the upstream's bytes: whatever is still owed (the usage chunk) to `out`.
    fn finish(&mut self, out: &mut Vec<Value>);
    /// The usage the upstream reported so far (the latest cumulative count).
    fn usage(&self) -> Option<Usage>;
    /// The message of an error the upstream sent in the stream (or of an event it could not
    /// read), if any.
    fn error(&self) -> Option<&str>;
    /// The upstream ended the stream itself (OpenAI's `[DONE]`).
    fn ended(&self) -> bool {
        false
    }

    /// An event whose whole effect is one pivot chunk of nothing but text for choice 0 (most
    /// of a stream), read into borrowed fields (from the event, or the half's own id) instead
    /// of a `Value`; `None`: not one (then `on_event` reads it). What the half notes from such
    /// an event (a cumulative usage, the model name) it notes here as `on_event` would.
    fn text_event<'a>(&'a mut self, _ev: &'a EventOf<'_>) -> Option<TextChunk<'a>> {
        None
    }
}

/// An event's data when it is a JSON object (first byte `{`): a typed read of anything else
/// (a struct also reads from a JSON array) would not mean what the `Value` read means.
pub fn object_data<'a>(ev: &'a EventOf<'_>) -> Option<&'a str> {
    let d: &str = &ev.data;
    // An event that starts and ends with a brace (the usual one) has nothing to trim.
    let d = if d.starts_with('{') && d.ends_with('}') { d } else { d.trim() };
    d.starts_with('{').then_some(d)
}

/// `T` read from a JSON object only: a derived struct also reads from an array, where the
/// `Value` read of the same event finds no field at all.
pub struct Obj<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ObjVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjVisitor<T> {
            type Value = Obj<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Obj<T>, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map)).map(Obj)
            }
        }
        d.deserialize_map(ObjVisitor(PhantomData))
    }
}

/// A pivot chunk whose only content is text for choice 0: no finish reason, no usage, no
/// other delta field.
#[derive(Debug)]
pub struct TextChunk<'a> {
    pub id: Cow<'a, str>,
    /// Empty for a chunk without content (the role chunk).
    pub text: Cow<'a, str>,
}

impl TextChunk<'_> {
    /// The same chunk as a `Value`, for a front that reads only those.
    pub fn to_value(&self) -> Value {
        pivot::chunk(&self.id, "", json!({"content": self.text}), None)
    }
}

/// The bytes a front writes after each text delta's text, built once and kept while what they
/// say (`key`: the chunk's id, the block's index) stays the same.
#[derive(Debug, Default)]
pub struct TextTail {
    key: Vec<u8>,
    bytes: Vec<u8>,
    built: bool,
}

impl TextTail {
    /// The bytes for `key`: those built for it last, or written by `build` now.
    pub fn get(&mut self, key: &[u8], build: impl FnOnce(&mut Vec<u8>)) -> &[u8] {
        if !self.built || !frame::same(&self.key, key) {
            self.key.clear();
            self.key.extend_from_slice(key);
            self.bytes.clear();
            build(&mut self.bytes);
            self.built = true;
        }
        &self.bytes
    }
}

/// `head`, `text` as a JSON string (as `sse::write_json_str`), then `tail`, reserved at once.
pub fn write_text_event(out: &mut Vec<u8>, head: &[u8], text: &str, tail: &[u8]) {
    out.reserve(head.len() + text.len() + 2 + tail.len());
    out.extend_from_slice(head);
    sse::write_json_str(out, text);
    out.extend_from_slice(tail);
}

/// Pivot chunks written out to a client in its dialect's stream shape.
pub trait FrontStream {
    /// One pivot chunk: the client's bytes for it appended to `out`.
    fn on_chunk(&mut self, chunk: &Value, out: &mut Vec<u8>);
    /// The pivot stream ended (`[DONE]`, or the upstream's bytes ended): the client's stream
    /// is closed, once.
    fn on_done(&mut self, out: &mut Vec<u8>);
    /// An error after the stream began, as the client's last event; nothing follows it.
    fn error(&mut self, message: &str, out: &mut Vec<u8>);

    /// A text-only pivot chunk: the same bytes as `on_chunk` of it.
    fn on_text(&mut self, chunk: &TextChunk, out: &mut Vec<u8>) {
        self.on_chunk(&chunk.to_value(), out);
    }

    /// The prompt's size before the final usage: the upstream's own count when it sent one
    /// early (Anthropic's `message_start`), else the gateway's estimate. A front that announces
    /// the prompt size at the start of its stream says it; the others ignore it.
    fn prompt_hint(&mut self, _usage: Usage) {}
}

/// What every upstream half writes the same way: the message id and model on every chunk (the
/// client's model name when set), the role chunk before anything else, the usage chunk once.
#[derive(Debug, Default)]
pub struct ChunkWriter {
    pub id: String,
    /// The upstream's model name, as its stream reports it.
    pub model: String,
    /// The name the chunks carry instead of the upstream's (the client's).
    pub model_override: Option<String>,
    role_sent: bool,
    usage_sent: bool,
}

impl ChunkWriter {
    /// Whether the role chunk went out (a text-only chunk may follow it directly).
    pub fn role_sent(&self) -> bool {
        self.role_sent
    }

    /// The model name the chunks carry.
    pub fn model(&self) -> &str {
        self.model_override.as_deref().unwrap_or(&self.model)
    }

    /// The role chunk (`{"role":"assistant","content":""}`), if not written yet.
    pub fn role(&mut self, out: &mut Vec<Value>) {
        if !self.role_sent {
            self.role_sent = true;
            out.push(pivot::chunk(&self.id, self.model(), json!({"role": "assistant", "content": ""}), None));
        }
    }

    /// A chunk for choice `index`, after the role chunk.
    pub fn push_at(&mut self, out: &mut Vec<Value>, index: u64, delta: Value, finish: Option<&str>) {
        self.role(out);
        out.push(pivot::chunk_at(&self.id, self.model(), index, delta, finish));
    }

    /// A chunk for choice 0, after the role chunk.
    pub fn push(&mut self, out: &mut Vec<Value>, delta: Value, finish: Option<&str>) {
        self.push_at(out, 0, delta, finish);
    }

    /// The usage chunk (`choices: []`), once, when the usage is known.
    pub fn usage_once(&mut self, out: &mut Vec<Value>, usage: Option<Usage>) {
        if self.usage_sent {
            return;
        }
        if let Some(u) = usage {
            self.usage_sent = true;
            out.push(pivot::usage_chunk(&self.id, self.model(), &u));
        }
    }
}

/// Choice 0 of a pivot chunk: what a front relays (a streamed message is one choice).
pub struct Choice<'a> {
    pub delta: Option<&'a Value>,
    pub finish: Option<&'a str>,
}

impl<'a> Choice<'a> {
    /// Choice 0 of `chunk`, if the chunk has one.
    pub fn first(chunk: &'a Value) -> Option<Self> {
        let c = chunk
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|c| c.iter().find(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0) == 0))?;
        Some(Choice { delta: c.get("delta"), finish: c.get("finish_reason").and_then(Value::as_str) })
    }

    /// The delta's text fields (`content`, then `refusal`), empty ones left out.
    pub fn texts(&self) -> impl Iterator<Item = &'a str> + '_ {
        ["content", "refusal"]
            .into_iter()
            .filter_map(|f| self.delta.and_then(|d| d.get(f)).and_then(Value::as_str).filter(|t| !t.is_empty()))
    }

    /// The delta's tool-call fragments.
    pub fn tool_calls(&self) -> &'a [Value] {
        self.delta.and_then(|d| d.get("tool_calls")).and_then(Value::as_array).map_or(&[], Vec::as_slice)
    }
}

/// What every front half tracks the same way: the finish reason and usage the pivot chunks
/// said, and whether the client's stream is closed.
#[derive(Debug, Default)]
pub struct FrontState {
    pub finish: Option<Finish>,
    pub usage: Option<Usage>,
    pub closed: bool,
}

/// A front half that relays choice 0 of each pivot chunk and closes the client's message once
/// both the finish reason and the usage are known (the usage comes in a chunk after the finish
/// chunk), at `[DONE]`, or at the end. Implementing it gives `FrontStream`.
pub trait ChoiceFront {
    fn state(&mut self) -> &mut FrontState;
    /// Anything else the front keeps from a chunk (its id, a price), before its choice.
    fn chunk_seen(&mut self, _chunk: &Value) {}
    /// Choice 0 of a chunk: the client's bytes for its delta.
    fn choice(&mut self, chunk: &Value, choice: &Choice, out: &mut Vec<u8>);
    /// A text-only chunk: the same bytes as `choice` of it (a front may write it without
    /// building the chunk).
    fn text(&mut self, chunk: &TextChunk, out: &mut Vec<u8>)
    where
        Self: Sized,
    {
        FrontStream::on_chunk(self, &chunk.to_value(), out);
    }
    /// As `FrontStream::prompt_hint`.
    fn prompt_hint(&mut self, _usage: Usage) {}
    /// The finish reason arrived (it is in `state().finish`).
    fn finished(&mut self, _out: &mut Vec<u8>) {}
    /// The client's closing events; `state().closed` is set after.
    fn end(&mut self, out: &mut Vec<u8>);
    /// The client's error event; `state().closed` is set after.
    fn write_error(&mut self, message: &str, out: &mut Vec<u8>);
}

impl<T: ChoiceFront> FrontStream for T {
    fn on_chunk(&mut self, chunk: &Value, out: &mut Vec<u8>) {
        if self.state().closed {
            return;
        }
        if let Some(u) = pivot::usage_of(chunk) {
            self.state().usage = Some(u);
        }
        self.chunk_seen(chunk);
        if let Some(choice) = Choice::first(chunk) {
            self.choice(chunk, &choice, out);
            if let Some(f) = choice.finish {
                self.state().finish = Some(Finish::from_openai(f));
                self.finished(out);
            }
        }
        let s = self.state();
        if s.finish.is_some() && s.usage.is_some() {
            self.on_done(out);
        }
    }

    /// No usage and no finish reason in it: only choice 0's text (a message is never closed by
    /// one, as it was open after the chunk before).
    fn on_text(&mut self, chunk: &TextChunk, out: &mut Vec<u8>) {
        if !self.state().closed {
            self.text(chunk, out);
        }
    }

    fn prompt_hint(&mut self, usage: Usage) {
        ChoiceFront::prompt_hint(self, usage);
    }

    fn on_done(&mut self, out: &mut Vec<u8>) {
        if !self.state().closed {
            self.end(out);
            self.state().closed = true;
        }
    }

    fn error(&mut self, message: &str, out: &mut Vec<u8>) {
        if !self.state().closed {
            self.write_error(message, out);
            self.state().closed = true;
        }
    }
}

#[cfg(test)]
#[path = "tests/stream_tests.rs"]
mod tests;
