//! What the stream translator tests share: the recorded-shape fixtures, a translator driven
//! one SSE event at a time, the framer run over pieces, and what the pivot chunks say.
// Each test file uses part of it.
#![allow(dead_code)]

use serde_json::{json, Value};
use tollgate_core::dialect::openai;
use tollgate_core::dialect::stream::{FrontStream, UpstreamStream};
use tollgate_core::sse::{Event, Framer};
use tollgate_core::usage::Usage;

pub const ANTHROPIC_TEXT: &[u8] = include_bytes!("../fixtures/anthropic_text.sse");
pub const ANTHROPIC_TOOL: &[u8] = include_bytes!("../fixtures/anthropic_tool.sse");
pub const GEMINI_TEXT: &[u8] = include_bytes!("../fixtures/gemini_text.sse");
pub const GEMINI_TOOL: &[u8] = include_bytes!("../fixtures/gemini_tool.sse");
pub const OPENAI_TEXT: &[u8] = include_bytes!("../fixtures/openai_text.sse");
pub const OPENAI_TOOL: &[u8] = include_bytes!("../fixtures/openai_tool.sse");
// Short streams, split in three pieces at every pair of byte boundaries.
pub const ANTHROPIC_SHORT: &[u8] = include_bytes!("../fixtures/anthropic_short.sse");
pub const GEMINI_SHORT: &[u8] = include_bytes!("../fixtures/gemini_short.sse");
pub const OPENAI_SHORT: &[u8] = include_bytes!("../fixtures/openai_short.sse");

/// A translator driven one SSE event at a time, producing bytes.
pub trait Drive {
    fn event(&mut self, ev: &Event, out: &mut Vec<u8>);
    fn end(&mut self, out: &mut Vec<u8>);
}

pub fn write_chunks(chunks: Vec<Value>, out: &mut Vec<u8>) {
    for c in chunks {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(serde_json::to_string(&c).unwrap().as_bytes());
        out.extend_from_slice(b"\n\n");
    }
}

/// An upstream half alone: its pivot chunks written as OpenAI SSE.
pub struct Up<U: UpstreamStream>(pub U);
impl<U: UpstreamStream> Drive for Up<U> {
    fn event(&mut self, ev: &Event, out: &mut Vec<u8>) {
        let mut chunks = Vec::new();
        self.0.on_event(ev, &mut chunks);
        write_chunks(chunks, out);
    }
    fn end(&mut self, out: &mut Vec<u8>) {
        let mut chunks = Vec::new();
        self.0.finish(&mut chunks);
        write_chunks(chunks, out);
    }
}

/// An upstream half into a front half, through the pivot chunks.
pub struct Pair<U: UpstreamStream, F: FrontStream>(pub U, pub F);
impl<U: UpstreamStream, F: FrontStream> Drive for Pair<U, F> {
    fn event(&mut self, ev: &Event, out: &mut Vec<u8>) {
        let mut chunks = Vec::new();
        self.0.on_event(ev, &mut chunks);
        // As `StreamPipe`: the upstream's early prompt count goes to the front.
        if let Some(u) = self.0.usage().filter(|u| u.prompt_tokens > 0) {
            self.1.prompt_hint(u);
        }
        chunks.iter().for_each(|c| self.1.on_chunk(c, out));
        if self.0.ended() {
            self.1.on_done(out);
        }
    }
    fn end(&mut self, out: &mut Vec<u8>) {
        let mut chunks = Vec::new();
        self.0.finish(&mut chunks);
        chunks.iter().for_each(|c| self.1.on_chunk(c, out));
        self.1.on_done(out);
    }
}

/// An OpenAI upstream into a front half.
pub fn to_front<F: FrontStream>(f: F) -> Pair<openai::StreamToPivot, F> {
    Pair(openai::StreamToPivot::new(), f)
}

/// Feeds the pieces through a framer and the translator, as the filter does chunk by chunk.
pub fn run(d: &mut dyn Drive, pieces: &[&[u8]]) -> Vec<u8> {
    let mut framer = Framer::default();
    let mut out = Vec::new();
    for p in pieces {
        let mut events = Vec::new();
        framer.push(p, &mut events).unwrap();
        for ev in &events {
            d.event(ev, &mut out);
        }
    }
    let mut events = Vec::new();
    framer.finish(&mut events);
    for ev in &events {
        d.event(ev, &mut out);
    }
    d.end(&mut out);
    out
}

pub fn events_of(bytes: &[u8]) -> Vec<Event> {
    let mut f = Framer::default();
    let mut evs = Vec::new();
    f.push(bytes, &mut evs).unwrap();
    f.finish(&mut evs);
    evs
}

pub fn chunks_of(bytes: &[u8]) -> Vec<Value> {
    events_of(bytes).iter().filter(|e| e.data != "[DONE]").map(|e| serde_json::from_str(&e.data).unwrap()).collect()
}

// ---- what the pivot chunks say ----------------------------------------------------------------

#[derive(Debug, Default, PartialEq)]
pub struct Said {
    pub text: String,
    /// (index, id, name, arguments)
    pub tools: Vec<(u64, String, String, String)>,
    pub finish: Option<String>,
    pub usage: Option<Usage>,
    pub usage_chunks: usize,
}

pub fn said(chunks: &[Value]) -> Said {
    let mut s = Said::default();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant", "the first chunk carries the role");
    for c in chunks {
        assert_eq!(c["object"], "chat.completion.chunk");
        if let Some(u) = tollgate_core::usage::from_openai(c) {
            s.usage = Some(u);
            s.usage_chunks += 1;
            assert_eq!(c["choices"], json!([]));
        }
        for ch in c["choices"].as_array().unwrap() {
            let d = &ch["delta"];
            if let Some(t) = d["content"].as_str() {
                s.text.push_str(t);
            }
            for tc in d["tool_calls"].as_array().into_iter().flatten() {
                let k = tc["index"].as_u64().unwrap();
                match s.tools.iter_mut().find(|t| t.0 == k) {
                    Some(t) => {
                        assert!(tc.get("id").is_none(), "id only on the first fragment");
                        t.3.push_str(tc["function"]["arguments"].as_str().unwrap());
                    }
                    None => {
                        assert_eq!(tc["type"], "function");
                        s.tools.push((
                            k,
                            tc["id"].as_str().unwrap().to_string(),
                            tc["function"]["name"].as_str().unwrap().to_string(),
                            tc["function"]["arguments"].as_str().unwrap().to_string(),
                        ));
                    }
                }
            }
            if let Some(f) = ch["finish_reason"].as_str() {
                assert!(s.finish.is_none(), "one finish chunk");
                s.finish = Some(f.to_string());
            }
        }
    }
    if s.usage.is_some() {
        assert!(chunks.last().unwrap()["usage"].is_object(), "usage chunk comes last");
    }
    s
}
