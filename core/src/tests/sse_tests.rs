//! Tests of `sse.rs` (in their own file, so test code is found by its path).
use super::*;

/// The capacity of an owned event's data string (0 when borrowed).
fn capacity(e: &Event) -> usize {
    match &e.data {
        Cow::Owned(s) => s.capacity(),
        Cow::Borrowed(_) => 0,
    }
}

fn frame_all(chunks: &[&[u8]]) -> Vec<Event> {
    let mut f = Framer::default();
    let mut out = Vec::new();
    for c in chunks {
        f.push(c, &mut out).unwrap();
    }
    f.finish(&mut out);
    out
}

fn ev(event: Option<&str>, data: &str) -> Event {
    Event { event: event.map(|e| Cow::Owned(e.to_string())), data: Cow::Owned(data.to_string()) }
}

#[test]
fn basic_events_and_line_endings() {
    let s = b"data: a\n\ndata:b\r\n\r\nevent: x\rdata: c\r\r: keepalive\n\ndata: d1\ndata: d2\n\n";
    assert_eq!(frame_all(&[s]), vec![ev(None, "a"), ev(None, "b"), ev(Some("x"), "c"), ev(None, "d1\nd2")]);
}

#[test]
fn unterminated_last_event_is_delivered_at_finish() {
    assert_eq!(frame_all(&[b"data: [DONE]"]), vec![ev(None, "[DONE]")]);
    assert_eq!(frame_all(&[b": only a comment\n"]), vec![]);
}

#[test]
fn every_split_gives_the_same_events() {
    let s = "event: message_start\r\ndata: {\"t\":\"h\u{e9}llo \u{1F600}\"}\r\n\r\n: ping\n\ndata:x\rdata: y\r\rdata: \u{4e16}\n\n".as_bytes();
    let whole = frame_all(&[s]);
    assert_eq!(whole.len(), 3);
    for i in 0..=s.len() {
        for j in i..=s.len() {
            let got = frame_all(&[&s[..i], &s[i..j], &s[j..]]);
            assert_eq!(got, whole, "split at {i},{j}");
        }
    }
    // byte by byte
    let pieces: Vec<&[u8]> = s.chunks(1).collect();
    assert_eq!(frame_all(&pieces), whole);
}

#[test]
fn cr_at_chunk_end_then_lf() {
    assert_eq!(frame_all(&[b"data: a\r", b"\n\r", b"\n"]), vec![ev(None, "a")]);
    assert_eq!(frame_all(&[b"data: a\r", b"", b"\n\r\n"]), vec![ev(None, "a")]);
}

#[test]
fn lf_chunk_after_cr_is_consumed_once() {
    // Found by the sse_framer fuzz target: "\r" | "\n" | "\n" lost the blank line, merging
    // two events into one.
    let want = vec![ev(None, "a"), ev(None, "b")];
    assert_eq!(frame_all(&[b"data: a\r", b"\n", b"\ndata: b\n\n"]), want);
    assert_eq!(frame_all(&[b"data: a\r", b"\n", b"", b"\n", b"data: b\n\n"]), want);
    assert_eq!(frame_all(&[b"data: a\r\n\ndata: b\n\n"]), want);
}

#[test]
fn oversize_event_is_refused() {
    let mut f = Framer::new(16);
    let mut out = Vec::new();
    assert!(f.push(b"data: 0123456789", &mut out).is_ok());
    assert_eq!(f.push(b"abcdefghij", &mut out), Err(TooLarge));
    let mut f = Framer::new(16);
    assert!(f.push(b"data: 01234\n\ndata: 0123456789\n\n", &mut out).is_ok());
}

/// Nothing of an event that passes the cap is delivered, wherever the stream is split: not its
/// fields, not its partial line at `finish`, not the events after it; the events before it are.
#[test]
fn oversized_event_is_never_flushed_at_any_split() {
    let before = b"event: a\ndata: ok\n\n".as_slice();
    // An oversized event (a named one, so a flushed partial would show as `Some("big")`),
    // unterminated, then a valid event that must not be delivered either.
    let mut stream = before.to_vec();
    stream.extend_from_slice(b"event: big\ndata: ");
    stream.extend_from_slice(&[b'x'; 64]);
    stream.extend_from_slice(b"\n\ndata: after\n\n");
    let cases: [&[u8]; 2] = [&stream, &stream[..stream.len() - 17]];
    for s in cases {
        let want = vec![ev(Some("a"), "ok")];
        for cut in 0..=s.len() {
            let mut f = Framer::new(32);
            let (mut out, mut errors) = (Vec::new(), 0);
            for piece in [&s[..cut], &s[cut..]] {
                errors += usize::from(f.push(piece, &mut out).is_err());
            }
            f.finish(&mut out);
            assert_eq!(out, want, "cut {cut}");
            assert_eq!(errors, 1, "cut {cut}: the cap is reported once");
            assert_eq!(f.pending(), 0);
        }
        // Byte by byte.
        let mut f = Framer::new(32);
        let (mut out, mut errors) = (Vec::new(), 0);
        for b in s {
            errors += usize::from(f.push(std::slice::from_ref(b), &mut out).is_err());
        }
        f.finish(&mut out);
        assert_eq!((out, errors), (want, 1));
    }
}

/// An event read whole from one chunk with one `data:` line is handed out borrowed from the
/// chunk (its name too): nothing of it is copied. One split across chunks, or with several
/// `data:` lines, is gathered into the framer's strings and reads the same.
#[test]
fn a_whole_one_line_event_is_lent_from_the_chunk() {
    let chunk = b"data: {\"a\":1}\n\nevent: x\r\ndata:y\r\n\r\ndata: d1\ndata: d2\n\ndata: pa";
    let range = chunk.as_ptr_range();
    let inside = |s: &str| range.contains(&s.as_ptr()) && s.len() < chunk.len();
    let mut f = Framer::default();
    let mut seen = Vec::new();
    f.push_each(chunk, |ev| {
        let lent = inside(&ev.data) && matches!(ev.data, Cow::Borrowed(_));
        let name_lent = ev.event.as_deref().map(inside);
        seen.push((ev.event.as_deref().map(str::to_string), ev.data.to_string(), lent, name_lent));
    })
    .unwrap();
    f.push_each(b"rt\n\n", |ev| seen.push((None, ev.data.to_string(), inside(&ev.data), None))).unwrap();
    let want = [
        (None, "{\"a\":1}", true, None),
        (Some("x"), "y", true, Some(true)),
        (None, "d1\nd2", false, None),
        (None, "part", false, None),
    ];
    let want: Vec<_> = want.iter().map(|(e, d, l, n)| (e.map(str::to_string), d.to_string(), *l, *n)).collect();
    assert_eq!(seen, want);
}

proptest::proptest! {
    /// Any split of any stream (UTF-8 split inside a character, `\r` and `\n` apart, bytes
    /// that are not UTF-8, several `data:` lines) frames the events of the whole stream.
    #[test]
    fn every_split_frames_the_events_of_the_whole(
        parts in proptest::collection::vec(proptest::sample::select(vec![
            "data: ", "data:", "event: ", "\n", "\r", "\r\n", ": c", "x", "\u{e9}", "\u{1F600}", "id: 1", "\u{ff}",
        ]), 0..40),
        bad in proptest::prelude::any::<bool>(),
        cuts in proptest::collection::vec(0usize..200, 0..6),
    ) {
        let mut s = parts.concat().into_bytes();
        if bad && !s.is_empty() {
            // A byte that is not UTF-8 in the middle.
            let at = s.len() / 2;
            s.insert(at, 0xff);
        }
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(s.len())).collect();
        cuts.sort_unstable();
        let mut chunks: Vec<&[u8]> = Vec::new();
        let mut at = 0;
        for c in cuts {
            chunks.push(&s[at..c]);
            at = c;
        }
        chunks.push(&s[at..]);
        proptest::prop_assert_eq!(frame_all(&chunks), frame_all(&[&s]));
    }
}

/// Frames `chunks` handing every chunk's events back with `recycle` before the next chunk (as
/// the exchange does), collecting copies of them.
fn frame_recycled(chunks: &[&[u8]]) -> Vec<Event> {
    let mut f = Framer::default();
    let mut events = Vec::new();
    let mut all = Vec::new();
    for c in chunks {
        f.recycle(&mut events);
        f.push(c, &mut events).unwrap();
        all.extend(events.iter().cloned());
    }
    f.recycle(&mut events);
    f.finish(&mut events);
    all.extend(events);
    all
}

#[test]
fn recycled_events_reuse_their_memory_and_frame_the_same() {
    let mut f = Framer::default();
    let mut events = Vec::new();
    let long = format!("data: {}\n\n", "a".repeat(300));
    f.push(long.as_bytes(), &mut events).unwrap();
    assert_eq!(events.len(), 1);
    let cap = events.iter().map(capacity).sum::<usize>();
    assert!(cap >= 300);
    f.recycle(&mut events);
    assert_eq!(events.len(), 0);
    // The event being read when the old one was delivered already has its string; the one
    // after it is written into the recycled string, and neither carries anything of the old
    // event.
    f.push(b"event: e\ndata: b\n\ndata: c\n\n", &mut events).unwrap();
    assert_eq!(events, vec![ev(Some("e"), "b"), ev(None, "c")]);
    assert_eq!(events.iter().filter(|e| capacity(e) >= 300).count(), 1);
}

#[test]
fn a_recycled_string_over_the_cap_is_not_kept() {
    let mut f = Framer::default();
    let mut events = Vec::new();
    let big = format!("data: {}\n\n", "a".repeat(70 * 1024));
    f.push(big.as_bytes(), &mut events).unwrap();
    f.recycle(&mut events);
    f.push(b"data: b\n\ndata: c\n\n", &mut events).unwrap();
    assert_eq!(events, vec![ev(None, "b"), ev(None, "c")]);
    assert_eq!(events.iter().filter(|e| capacity(e) >= 70 * 1024).count(), 0);
}

proptest::proptest! {
    #[test]
    fn recycling_frames_the_same_events(
        s in proptest::collection::vec(proptest::sample::select(b"data: x\n\r:event".to_vec()), 0..120),
        cuts in proptest::collection::vec(0usize..120, 0..6),
    ) {
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(s.len())).collect();
        cuts.sort_unstable();
        let mut chunks: Vec<&[u8]> = Vec::new();
        let mut at = 0;
        for c in cuts {
            chunks.push(&s[at..c]);
            at = c;
        }
        chunks.push(&s[at..]);
        proptest::prop_assert_eq!(frame_recycled(&chunks), frame_all(&chunks));
    }
}

proptest::proptest! {
    #[test]
    fn json_special_finds_the_first_quote_backslash_or_control(
        b in proptest::collection::vec(proptest::sample::select(vec![b'a', b'"', b'\\', 0x1f, 0x20, 0x21, 0x7f, 0x80, 0xa2, 0xdc, 0xff, 0]), 0..40),
    ) {
        proptest::prop_assert_eq!(json_special(&b), b.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20));
    }

    #[test]
    fn write_json_str_writes_what_serde_writes(s in "[a\"\\\\\u{0}\u{1f}\u{7f}\u{e9}\u{2028}\u{1F600} ]{0,30}") {
        let mut out = Vec::new();
        write_json_str(&mut out, &s);
        proptest::prop_assert_eq!(out, serde_json::to_vec(&s).unwrap());
    }

    #[test]
    fn write_u64_writes_what_serde_writes(n in proptest::prelude::any::<u64>()) {
        let mut out = Vec::new();
        write_u64(&mut out, n);
        proptest::prop_assert_eq!(out, serde_json::to_vec(&n).unwrap());
    }
}

#[test]
fn write_u64_at_the_edges() {
    for n in [0u64, 9, 10, u64::MAX] {
        let mut out = Vec::new();
        write_u64(&mut out, n);
        assert_eq!(out, n.to_string().into_bytes());
    }
}

proptest::proptest! {
    /// The word-at-a-time line end search (the framer's in wasm) finds what memchr finds.
    #[test]
    fn line_end_words_finds_the_first_cr_or_lf(
        b in proptest::collection::vec(proptest::sample::select(vec![b'a', b'\n', b'\r', 0x8a, 0x8d, 0xff, 0, 0x0b]), 0..80),
    ) {
        proptest::prop_assert_eq!(line_end_words(&b), memchr::memchr2(b'\n', b'\r', &b));
    }
}

proptest::proptest! {
    /// `trim` is `str::trim`, white space of every kind at either end (ASCII, `\x0b`, U+0085,
    /// U+00A0, U+3000) or none.
    #[test]
    fn trim_is_str_trim(s in "[ \t\n\x0b\x0c\r\u{1c}\u{85}\u{a0}\u{3000}{}a\u{e9}]{0,12}") {
        proptest::prop_assert_eq!(trim(&s), s.trim());
    }
}
