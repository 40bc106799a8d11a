//! The stream path as the exchange runs it (events lent by the framer straight from the chunk,
//! written into a `ChunkOut` that stays a view of the chunk while the events pass unchanged)
//! gives the client the same bytes, chunk by chunk, as framing owned copies of the events and
//! writing every one of them into a buffer; a chunk is let through as it came exactly when those
//! bytes are the chunk's. Every split of the stream, any mix of events the OpenAI fast path
//! passes, rewrites or drops, and lines the framer reads its own way (`data:` without the space,
//! `\r\n`, comments, several `data:` lines, bytes that are not UTF-8).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::borrow::Cow;

use proptest::prelude::*;
use tollgate_core::dialect::Dialect;
use tollgate_core::sse::{ChunkOut, EventOf, Framer};
use tollgate_core::translate::StreamPipe;

/// Per chunk: the client's bytes and whether the chunk is let through as it came.
type Pieces = Vec<(Vec<u8>, bool)>;

fn pipe(kind: u8) -> StreamPipe {
    match kind {
        0 => StreamPipe::new(Dialect::OpenAi, Dialect::OpenAi, "m", "m", false),
        1 => StreamPipe::new(Dialect::OpenAi, Dialect::OpenAi, "m", "m", true),
        2 => StreamPipe::new(Dialect::OpenAi, Dialect::OpenAi, "alias", "m", false),
        _ => StreamPipe::new(Dialect::Anthropic, Dialect::OpenAi, "m", "m", true),
    }
}

/// The exchange's way (`exchange/response.rs`); with `head_min`, the chunk's unchanged first
/// bytes left out of the buffer when at least that many (as the glue asks), then joined here.
fn lent(kind: u8, chunks: &[&[u8]], head_min: usize) -> (Pieces, Option<u64>, u64) {
    let (mut framer, mut p, mut out) = (Framer::default(), pipe(kind), Vec::new());
    let mut pieces = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let last = i + 1 == chunks.len();
        let mut o = ChunkOut::with_head(chunk, &mut out, head_min);
        framer.push_each(chunk, |ev| p.on_event_out(ev, &mut o)).unwrap();
        if last {
            framer.finish_each(|ev| p.on_event_out(ev, &mut o));
            p.finish_out(&mut o);
        }
        let passed = o.is_chunk();
        let (head, rest) = o.pieces();
        assert!(head_min == usize::MAX || o.head() == 0 || o.head() >= head_min, "a head shorter than asked");
        pieces.push(([head, rest].concat(), passed));
    }
    (pieces, p.usage().map(|u| u.completion_tokens), p.text_bytes())
}

/// Owned copies of the events, each written into a buffer, the buffer compared with the chunk.
fn copied(kind: u8, chunks: &[&[u8]]) -> (Pieces, Option<u64>, u64) {
    let (mut framer, mut p) = (Framer::default(), pipe(kind));
    let mut pieces = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let mut events = Vec::new();
        framer.push(chunk, &mut events).unwrap();
        let mut out = Vec::new();
        if i + 1 == chunks.len() {
            framer.finish(&mut events);
        }
        for ev in &events {
            let owned = EventOf { event: ev.event.clone(), data: Cow::Owned(ev.data.to_string()) };
            p.on_event(&owned, &mut out);
        }
        if i + 1 == chunks.len() {
            p.finish(&mut out);
        }
        let passed = out.as_slice() == *chunk;
        pieces.push((out, passed));
    }
    (pieces, p.usage().map(|u| u.completion_tokens), p.text_bytes())
}

const TEXT: &str =
    "data: {\"id\":\"c\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"h\u{e9}\"}}]}\n\n";
const USAGE: &str =
    "data: {\"id\":\"c\",\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":3}}\n\n";

fn piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => Just(TEXT.as_bytes().to_vec()),
        1 => Just(USAGE.as_bytes().to_vec()),
        1 => Just(b"data: [DONE]\n\n".to_vec()),
        1 => Just(b"data:{\"a\":1}\n\n".to_vec()),
        1 => Just(b"data: {\"a\":1}\r\n\r\n".to_vec()),
        1 => Just(b": keepalive\n\n".to_vec()),
        1 => Just(b"data: {\"a\":\ndata: 1}\n\n".to_vec()),
        1 => Just(b"data: {\"a\":\"\xff\"}\n\n".to_vec()),
        1 => Just(b"data:  {\"a\":2} \n\n".to_vec()),
        1 => Just(b"event: x\ndata: {\"b\":[]}\n\n".to_vec()),
        1 => Just(b"data: not json\n\n".to_vec()),
        1 => proptest::collection::vec(proptest::sample::select(b"data: {}\r\n:x".to_vec()), 0..12),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn lent_events_give_the_bytes_of_copied_events_at_every_split(
        parts in proptest::collection::vec(piece(), 1..8),
        cuts in proptest::collection::vec(0usize..400, 0..5),
        kind in 0u8..4,
        head_min in prop_oneof![Just(usize::MAX), Just(0usize), 1usize..200],
    ) {
        let stream = parts.concat();
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(stream.len())).collect();
        cuts.sort_unstable();
        let mut chunks: Vec<&[u8]> = Vec::new();
        let mut at = 0;
        for c in cuts {
            chunks.push(&stream[at..c]);
            at = c;
        }
        chunks.push(&stream[at..]);
        prop_assert_eq!(lent(kind, &chunks, head_min), copied(kind, &chunks));
    }
}

/// A chunk of whole events the fast path passes goes out as it came, without being copied
/// into the output buffer.
#[test]
fn an_unchanged_chunk_is_passed_without_a_copy() {
    let chunk = [TEXT, TEXT, TEXT].concat();
    let (mut framer, mut p, mut out) = (Framer::default(), pipe(0), Vec::new());
    let mut o = ChunkOut::new(chunk.as_bytes(), &mut out);
    framer.push_each(chunk.as_bytes(), |ev| p.on_event_out(ev, &mut o)).unwrap();
    assert!(o.is_chunk());
    assert_eq!(o.bytes(), chunk.as_bytes());
    assert_eq!((out.len(), out.capacity()), (0, 0), "nothing written into the buffer");
    assert_eq!(p.text_bytes(), 9, "the text is still counted (3 x 3 bytes: \"h\u{e9}\")");
}

/// From the first event that is not passed as it came (here the usage chunk a client that did
/// not ask for usage never sees), the output is written: the events before it once, then the
/// rest.
#[test]
fn a_chunk_is_written_from_the_first_event_that_changes() {
    let chunk = [TEXT, USAGE, TEXT].concat();
    let (mut framer, mut p, mut out) = (Framer::default(), pipe(0), Vec::new());
    let mut o = ChunkOut::new(chunk.as_bytes(), &mut out);
    framer.push_each(chunk.as_bytes(), |ev| p.on_event_out(ev, &mut o)).unwrap();
    assert!(!o.is_chunk());
    assert_eq!(o.bytes(), [TEXT, TEXT].concat().as_bytes());
    assert_eq!(out, [TEXT, TEXT].concat().as_bytes());
    assert_eq!(p.usage().map(|u| (u.prompt_tokens, u.completion_tokens)), Some((2, 3)));
}

/// With a head asked for, the events before the first one that changes stay out of the buffer:
/// the output is the chunk's first bytes, then the buffer (nothing copied twice).
#[test]
fn the_unchanged_head_of_a_written_chunk_can_stay_out_of_the_buffer() {
    let chunk = [TEXT, TEXT, USAGE, TEXT].concat();
    let head = 2 * TEXT.len();
    for (head_min, want_head) in [(head, head), (head + 1, 0), (1, head)] {
        let (mut framer, mut p, mut out) = (Framer::default(), pipe(0), Vec::new());
        let mut o = ChunkOut::with_head(chunk.as_bytes(), &mut out, head_min);
        framer.push_each(chunk.as_bytes(), |ev| p.on_event_out(ev, &mut o)).unwrap();
        assert!(!o.is_chunk());
        assert_eq!(o.head(), want_head, "head_min {head_min}");
        let (h, rest) = o.pieces();
        assert_eq!([h, rest].concat(), [TEXT, TEXT, TEXT].concat().as_bytes());
        assert_eq!(out.len(), 3 * TEXT.len() - want_head, "head_min {head_min}");
    }
}

/// A needle in the output is found in the head, in the buffer and across the two.
#[test]
fn a_needle_is_found_across_the_head_and_the_buffer() {
    let chunk = [TEXT, USAGE].concat();
    let mut out = Vec::new();
    let mut o = ChunkOut::with_head(chunk.as_bytes(), &mut out, 1);
    o.data_event(TEXT.strip_prefix("data: ").and_then(|t| t.strip_suffix("\n\n")).unwrap());
    o.buf().extend_from_slice(b"error");
    assert_eq!(o.head(), TEXT.len());
    for (needle, found) in [
        ("}]}\n\ner", true),
        ("}]}\n\ne", true),
        ("\nerror", true),
        ("\n\nerror", true),
        ("h\u{e9}", true),
        ("rror", true),
        ("\n\nx", false),
    ] {
        let finder = memchr::memmem::Finder::new(needle.as_bytes());
        assert_eq!(o.contains(&finder), found, "{needle:?}");
    }
    assert_eq!(o.join().as_slice(), [TEXT, "error"].concat().as_bytes());
    assert_eq!(o.head(), 0);
    assert!(o.contains(&memchr::memmem::Finder::new(b"}]}\n\ner")), "joined");
}
