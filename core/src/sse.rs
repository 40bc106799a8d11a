//! Incremental Server-Sent Events framer: bytes in, complete events out.
//!
//! Chunks may split an event at any byte: inside a UTF-8 character, between `\r` and `\n`, inside
//! a field name. The framer keeps the unfinished line between calls, so feeding a stream in one
//! piece or byte by byte yields the same events. Lines end with `\r\n`, `\n` or `\r`; `data:` with
//! or without the space; comment lines (`: keepalive`) are dropped; an unfinished event larger than
//! the cap is an error rather than unbounded memory: that event and everything after it are
//! dropped (nothing of it is ever delivered, not even at `finish`).
//!
//! An event read whole from one chunk, with one `data:` line, is handed out borrowed from the
//! chunk (`push_each`): nothing of it is copied. Only an event split across chunks or with
//! several `data:` lines is gathered into the framer's own strings, which are reused from event
//! to event.

use std::borrow::Cow;

/// One event, its text borrowed (from the chunk it was read from, or the framer) or owned.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventOf<'a> {
    /// The `event:` field, if any.
    pub event: Option<Cow<'a, str>>,
    /// The `data:` lines joined with `\n`.
    pub data: Cow<'a, str>,
}

/// An event that owns its text (`Framer::push`).
pub type Event = EventOf<'static>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooLarge;

/// Where a field of the event being read is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// Not seen yet.
    Absent,
    /// Bytes `start..end` of the chunk being read (not checked as UTF-8 yet).
    Chunk(usize, usize),
    /// In the framer's own string.
    Owned,
}

#[derive(Debug)]
pub struct Framer {
    line: Vec<u8>,
    /// The previous chunk ended in `\r`: a `\n` at the start of the next one belongs to it.
    after_cr: bool,
    /// The current event's `event:` field, and its text when owned.
    name: Part,
    name_buf: String,
    /// The current event's data (`Absent`: no `data:` line yet), and its text when owned.
    data: Part,
    data_buf: String,
    has_fields: bool,
    event_bytes: usize,
    max_event_bytes: usize,
    /// An event passed the cap: the rest of the stream is dropped.
    failed: bool,
    /// Emptied `data` strings of delivered owned events (`recycle`), reused by `push`.
    spare: Vec<String>,
}

pub const DEFAULT_MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

impl Default for Framer {
    fn default() -> Self {
        Framer::new(DEFAULT_MAX_EVENT_BYTES)
    }
}

/// `b` as text: borrowed when it is UTF-8, repaired (U+FFFD) otherwise.
fn text(b: &[u8]) -> Cow<'_, str> {
    // ASCII (most events) is checked 16 bytes at a time; the lossy path is for broken input only.
    match crate::ascii::utf8(b) {
        Some(t) => Cow::Borrowed(t),
        None => String::from_utf8_lossy(b),
    }
}

impl Framer {
    pub fn new(max_event_bytes: usize) -> Self {
        Framer {
            line: Vec::new(),
            after_cr: false,
            name: Part::Absent,
            name_buf: String::new(),
            data: Part::Absent,
            data_buf: String::new(),
            has_fields: false,
            event_bytes: 0,
            max_event_bytes,
            failed: false,
            spare: Vec::new(),
        }
    }

    /// Takes back the events the caller is done with (leaving `events` empty): their `data`
    /// strings are reused for the next events `push` delivers. A few are kept, none larger than
    /// `SPARE_MAX`.
    pub fn recycle(&mut self, events: &mut Vec<Event>) {
        const SPARE_COUNT: usize = 16;
        const SPARE_MAX: usize = 64 * 1024;
        for ev in events.drain(..) {
            if let Cow::Owned(mut data) = ev.data {
                if self.spare.len() < SPARE_COUNT && data.capacity() <= SPARE_MAX {
                    data.clear();
                    self.spare.push(data);
                }
            }
        }
    }

    /// Feeds a chunk; complete events are appended to `out`, owning their text. As `push_each`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<Event>) -> Result<(), TooLarge> {
        let mut spare = std::mem::take(&mut self.spare);
        let r = self.push_each(chunk, |ev| out.push(owned(ev, &mut spare)));
        self.spare = spare;
        r
    }

    /// Feeds a chunk; `emit` is called with each complete event, in order. `Err(TooLarge)` once,
    /// from the chunk in which an event passes the cap: the events completed before it in that
    /// chunk are still delivered; the oversized event and the rest of the stream never are
    /// (later calls drop their input and return `Ok`).
    pub fn push_each(&mut self, chunk: &[u8], mut emit: impl FnMut(&EventOf<'_>)) -> Result<(), TooLarge> {
        if self.failed {
            return Ok(());
        }
        let r = self.push_inner(chunk, &mut emit);
        match r {
            Ok(()) => self.own_parts(chunk),
            Err(TooLarge) => {
                self.failed = true;
                self.line = Vec::new();
                self.name = Part::Absent;
                self.name_buf = String::new();
                self.data = Part::Absent;
                self.data_buf = String::new();
                self.has_fields = false;
                self.event_bytes = 0;
                self.after_cr = false;
            }
        }
        r
    }

    fn push_inner(&mut self, chunk: &[u8], emit: &mut dyn FnMut(&EventOf<'_>)) -> Result<(), TooLarge> {
        let mut at = 0usize;
        if self.after_cr {
            // The `\n` of a `\r\n` split across chunks is consumed once; an empty chunk keeps
            // the state for the next one.
            if chunk.first() == Some(&b'\n') {
                at = 1;
                self.after_cr = false;
            } else if !chunk.is_empty() {
                self.after_cr = false;
            }
        }
        while let Some(rest) = chunk.get(at..).filter(|r| !r.is_empty()) {
            // The blank line that ends an event starts right where the last line ended: found
            // without a search.
            let found = if matches!(rest.first(), Some(b'\n' | b'\r')) { Some(0) } else { line_end(rest) };
            let Some(pos) = found else {
                self.event_bytes = self.event_bytes.saturating_add(rest.len());
                if self.event_bytes > self.max_event_bytes {
                    return Err(TooLarge);
                }
                self.line.extend_from_slice(rest);
                return Ok(());
            };
            self.event_bytes = self.event_bytes.saturating_add(pos);
            if self.event_bytes > self.max_event_bytes {
                return Err(TooLarge);
            }
            let end = at + pos;
            let mut next = end + 1;
            if chunk.get(end) == Some(&b'\r') {
                match chunk.get(next) {
                    Some(b'\n') => next += 1,
                    None => self.after_cr = true,
                    Some(_) => {}
                }
            }
            if self.line.is_empty() {
                self.process_line(chunk, at, end, emit);
            } else {
                self.line.extend_from_slice(chunk.get(at..end).unwrap_or(&[]));
                let line = std::mem::take(&mut self.line);
                self.process_carried(&line, chunk, emit);
                self.line = line;
                self.line.clear();
            }
            at = next;
        }
        Ok(())
    }

    /// End of stream: an event that was not closed by a blank line is still delivered (`push`).
    pub fn finish(&mut self, out: &mut Vec<Event>) {
        let mut spare = std::mem::take(&mut self.spare);
        self.finish_each(|ev| out.push(owned(ev, &mut spare)));
        self.spare = spare;
    }

    /// End of stream: an event that was not closed by a blank line is still delivered.
    pub fn finish_each(&mut self, mut emit: impl FnMut(&EventOf<'_>)) {
        if self.failed {
            return;
        }
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.process_carried(&line, &[], &mut emit);
        }
        self.dispatch(&[], &mut emit);
    }

    /// Bytes held for an unfinished event.
    pub fn pending(&self) -> usize {
        self.event_bytes
    }

    /// A line gathered across chunks (`chunk`: the chunk being read, where fields read before
    /// may still point).
    fn process_carried(&mut self, line: &[u8], chunk: &[u8], emit: &mut dyn FnMut(&EventOf<'_>)) {
        if line.is_empty() {
            self.dispatch(chunk, emit);
            return;
        }
        let Some((name, value)) = split_field(line) else { return };
        match name {
            b"data" => {
                self.own_data(chunk);
                self.append_data(&text(value));
            }
            b"event" => {
                self.name_buf.clear();
                self.name_buf.push_str(&text(value));
                self.name = Part::Owned;
                self.has_fields = true;
            }
            _ => {}
        }
    }

    /// The line `chunk[start..end]`.
    fn process_line(&mut self, chunk: &[u8], start: usize, end: usize, emit: &mut dyn FnMut(&EventOf<'_>)) {
        let line = chunk.get(start..end).unwrap_or(&[]);
        if line.is_empty() {
            self.dispatch(chunk, emit);
            return;
        }
        let Some((name, value)) = split_field(line) else { return };
        let value_start = end - value.len();
        match name {
            b"data" => {
                if self.data == Part::Absent {
                    self.data = Part::Chunk(value_start, end);
                    self.has_fields = true;
                } else {
                    self.own_data(chunk);
                    self.append_data(&text(value));
                }
            }
            b"event" => {
                self.name = Part::Chunk(value_start, end);
                self.has_fields = true;
            }
            _ => {} // id, retry and unknown fields carry nothing we translate
        }
    }

    /// Appends a `data:` line's text to the owned data (after a `\n` if it has some already).
    fn append_data(&mut self, value: &str) {
        if self.data == Part::Owned {
            self.data_buf.push('\n');
        } else {
            self.data_buf.clear();
        }
        self.data_buf.push_str(value);
        self.data = Part::Owned;
        self.has_fields = true;
    }

    /// The data read so far moved into the framer's string, if it is still in `chunk`.
    fn own_data(&mut self, chunk: &[u8]) {
        if let Part::Chunk(s, e) = self.data {
            self.data_buf.clear();
            self.data_buf.push_str(&text(chunk.get(s..e).unwrap_or(&[])));
            self.data = Part::Owned;
        }
    }

    /// The fields of the unfinished event moved out of `chunk`, which goes away after this call.
    fn own_parts(&mut self, chunk: &[u8]) {
        self.own_data(chunk);
        if let Part::Chunk(s, e) = self.name {
            self.name_buf.clear();
            self.name_buf.push_str(&text(chunk.get(s..e).unwrap_or(&[])));
            self.name = Part::Owned;
        }
    }

    fn dispatch(&mut self, chunk: &[u8], emit: &mut dyn FnMut(&EventOf<'_>)) {
        if self.has_fields {
            let event = match self.name {
                Part::Absent => None,
                Part::Chunk(s, e) => Some(text(chunk.get(s..e).unwrap_or(&[]))),
                Part::Owned => Some(Cow::Borrowed(self.name_buf.as_str())),
            };
            let data = match self.data {
                Part::Absent => Cow::Borrowed(""),
                Part::Chunk(s, e) => text(chunk.get(s..e).unwrap_or(&[])),
                Part::Owned => Cow::Borrowed(self.data_buf.as_str()),
            };
            emit(&EventOf { event, data });
        }
        self.name = Part::Absent;
        self.data = Part::Absent;
        self.has_fields = false;
        self.event_bytes = 0;
    }
}

/// `s.trim()`, without decoding a character when `s` starts and ends with ASCII that is not
/// white space (an event's JSON data: `{...}`).
#[inline]
pub fn trim(s: &str) -> &str {
    let kept = |b: Option<&u8>| b.is_some_and(|&b| b < 0x80 && !matches!(b, b'\t'..=b'\r' | b' '));
    if kept(s.as_bytes().first()) && kept(s.as_bytes().last()) {
        s
    } else {
        s.trim()
    }
}

/// A non-empty line's field name and value (one space after the colon dropped); `None` for a
/// comment line.
fn split_field(line: &[u8]) -> Option<(&[u8], &[u8])> {
    if line.first() == Some(&b':') {
        return None;
    }
    // The colon is a few bytes in (`data:`, `event:`): a byte loop finds it before a search
    // would have started.
    Some(match line.iter().position(|&b| b == b':') {
        Some(i) => {
            let (n, v) = line.split_at(i);
            let v = v.get(1..).unwrap_or(&[]);
            (n, v.strip_prefix(b" ").unwrap_or(v))
        }
        None => (line, &[][..]),
    })
}

/// The index of the first `\n` or `\r` in `b`: memchr where it has vector instructions; in
/// wasm without them, eight bytes at a time (`line_end_words`: there memchr's setup costs more
/// than an event's line).
#[inline]
fn line_end(b: &[u8]) -> Option<usize> {
    #[cfg(all(target_arch = "wasm32", not(target_feature = "simd128")))]
    return line_end_words(b);
    #[cfg(not(all(target_arch = "wasm32", not(target_feature = "simd128"))))]
    return memchr::memchr2(b'\n', b'\r', b);
}

/// `line_end`, eight bytes at a time.
#[cfg_attr(not(all(target_arch = "wasm32", not(target_feature = "simd128"))), allow(dead_code))]
#[inline]
pub(crate) fn line_end_words(b: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut words = b.chunks_exact(8);
    let mut base = 0usize;
    for w in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(w);
        let v = u64::from_le_bytes(bytes);
        let (n, r) = (v ^ (LO * u64::from(b'\n')), v ^ (LO * u64::from(b'\r')));
        // The high bit of each byte that is `\n` or `\r` (the lowest one is exact).
        let found = (n.wrapping_sub(LO) & !n | r.wrapping_sub(LO) & !r) & HI;
        if found != 0 {
            return Some(base + (found.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    let rest = words.remainder().iter().position(|&c| c == b'\n' || c == b'\r')?;
    Some(base + rest)
}

/// `ev` with its own copy of its text (the data written into a spare string when there is one).
fn owned(ev: &EventOf<'_>, spare: &mut Vec<String>) -> Event {
    let mut data = spare.pop().unwrap_or_default();
    data.push_str(&ev.data);
    EventOf { event: ev.event.as_deref().map(|e| Cow::Owned(e.to_string())), data: Cow::Owned(data) }
}

/// Writes one SSE event: `event: NAME` (if any), `data` as one `data:` line per line of it (an
/// event's data joins its `data:` lines with `\n`: written raw, a multi-line event would reach
/// the client as a truncated event plus stray lines), then the blank line; every line ends with
/// `eol` (`\n`, or `\r\n` as Gemini frames). The one SSE writer: every stream writes through it.
pub fn write_event(out: &mut Vec<u8>, event: Option<&str>, data: &[u8], eol: &[u8]) {
    if let Some(name) = event {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(eol);
    }
    if memchr::memchr(b'\n', data).is_none() {
        out.reserve(data.len() + 8 + 2 * eol.len());
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(data);
        out.extend_from_slice(eol);
    } else {
        for line in data.split(|&b| b == b'\n') {
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(line);
            out.extend_from_slice(eol);
        }
    }
    out.extend_from_slice(eol);
}

/// `write_event` for a JSON value, serialized straight into `out` (one line: serialized JSON
/// has no raw newline).
pub fn write_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, event: Option<&str>, data: &T, eol: &[u8]) {
    if let Some(name) = event {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(eol);
    }
    out.extend_from_slice(b"data: ");
    // Writing a `Value` or a plain struct to a Vec cannot fail; an empty object is the fallback.
    let start = out.len();
    if serde_json::to_writer(&mut *out, data).is_err() {
        out.truncate(start);
        out.extend_from_slice(b"{}");
    }
    out.extend_from_slice(eol);
    out.extend_from_slice(eol);
}

/// The index of the first byte of `b` that a JSON string cannot hold as it is (`"`, `\\`, a
/// control character), looked for eight bytes at a time.
pub(crate) fn json_special(b: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut words = b.chunks_exact(8);
    let mut base = 0usize;
    for w in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(w);
        let v = u64::from_le_bytes(bytes);
        let (q, bs) = (v ^ (LO * u64::from(b'"')), v ^ (LO * u64::from(b'\\')));
        // The high bit of each byte that is a quote, a backslash or below 0x20 (a byte of 0x80
        // or more never is); the lowest one is exact.
        let found = (q.wrapping_sub(LO) & !q | bs.wrapping_sub(LO) & !bs | v.wrapping_sub(LO * 0x20)) & !v & HI;
        if found != 0 {
            return Some(base + (found.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    let rest = words.remainder().iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
    Some(base + rest)
}

/// `s` as a JSON string, byte for byte as serde_json writes it (it escapes only what
/// `json_special` finds): copied as it is when nothing needs an escape.
pub(crate) fn write_json_str(out: &mut Vec<u8>, s: &str) {
    if json_special(s.as_bytes()).is_none() {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        return;
    }
    let start = out.len();
    // Writing a string to a Vec cannot fail; an empty string is the fallback.
    if serde_json::to_writer(&mut *out, s).is_err() {
        out.truncate(start);
        out.extend_from_slice(b"\"\"");
    }
}

/// `n` in decimal, as serde_json writes it.
pub(crate) fn write_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        if let Some(d) = digits.get_mut(at) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || at == 0 {
            break;
        }
    }
    out.extend_from_slice(digits.get(at..).unwrap_or(&[]));
}

/// The client's bytes for one chunk of a stream, kept as a view of the chunk while they are the
/// chunk's own bytes (events passed on unchanged), so a chunk that goes out as it came is never
/// copied; they are written into `out` from the first event that differs. With a `head_min`,
/// the chunk's bytes before that event stay out of `out` when they are at least that many: the
/// output is then `chunk[..head()]` followed by `out` (the host keeps or re-reads them itself).
pub struct ChunkOut<'c, 'o> {
    chunk: &'c [u8],
    /// `chunk[..same]` is the output so far (while not `written`).
    same: usize,
    /// The output is in `out` (after `chunk[..head]`).
    written: bool,
    /// The chunk's first bytes the output starts with that `out` does not hold.
    head: usize,
    /// The fewest bytes left out of `out` as a head (`usize::MAX`: none ever are).
    head_min: usize,
    out: &'o mut Vec<u8>,
}

impl<'c, 'o> ChunkOut<'c, 'o> {
    /// An output for `chunk`, written (when it must be) into `out`, which is cleared.
    pub fn new(chunk: &'c [u8], out: &'o mut Vec<u8>) -> Self {
        Self::with_head(chunk, out, usize::MAX)
    }

    /// As `new`, a head of at least `head_min` bytes left out of `out` (`head`).
    pub fn with_head(chunk: &'c [u8], out: &'o mut Vec<u8>, head_min: usize) -> Self {
        out.clear();
        ChunkOut { chunk, same: 0, written: false, head: 0, head_min, out }
    }

    /// The output as bytes to write to (from here on it is no longer a view of the chunk).
    pub fn buf(&mut self) -> &mut Vec<u8> {
        if !self.written {
            self.written = true;
            if self.same >= self.head_min {
                self.head = self.same;
                self.out.reserve(self.chunk.len().saturating_sub(self.same) + 64);
            } else {
                self.out.reserve(self.chunk.len() + 64);
                self.out.extend_from_slice(self.chunk.get(..self.same).unwrap_or(&[]));
            }
        }
        self.out
    }

    /// How many of the chunk's first bytes the output starts with outside `out` (0 unless
    /// `with_head` and the output was written).
    pub fn head(&self) -> usize {
        self.head
    }

    /// The output whole in `out`: a head left out is copied in front.
    pub fn join(&mut self) -> &mut Vec<u8> {
        self.buf();
        if self.head > 0 {
            let head = self.chunk.get(..self.head).unwrap_or(&[]);
            self.out.splice(0..0, head.iter().copied());
            self.head = 0;
        }
        self.out
    }

    /// The event `data: {data}\n\n` (as `write_event(out, None, data, b"\n")` writes it): when
    /// those are the chunk's next bytes the view grows over them, nothing is copied.
    pub fn data_event(&mut self, data: &str) {
        if !self.written {
            let d = data.as_bytes();
            let at = self.same;
            let (head, body, tail) = (at..at + 6, at + 6..at + 6 + d.len(), at + 6 + d.len()..at + 8 + d.len());
            // `data` is most often the very bytes of the chunk (the framer lends a one-line
            // event's data, which holds no `\n`): the same address and length are the same
            // bytes, without comparing them. Other data written with a `\n` would be several
            // `data:` lines, not the chunk's bytes.
            let same_body = match self.chunk.get(body) {
                Some(b) => std::ptr::eq(b.as_ptr(), d.as_ptr()) || (b == d && memchr::memchr(b'\n', d).is_none()),
                None => false,
            };
            if same_body && self.chunk.get(head) == Some(b"data: ") && self.chunk.get(tail.clone()) == Some(b"\n\n") {
                self.same = tail.end;
                return;
            }
        }
        write_event(self.buf(), None, data.as_bytes(), b"\n");
    }

    /// The output so far (when no head is left out of `out`: see `pieces`).
    pub fn bytes(&self) -> &[u8] {
        if self.written {
            self.out
        } else {
            self.chunk.get(..self.same).unwrap_or(&[])
        }
    }

    /// The output so far, in (at most) two pieces: the chunk's head and `out`.
    pub fn pieces(&self) -> (&[u8], &[u8]) {
        if self.written {
            (self.chunk.get(..self.head).unwrap_or(&[]), self.out)
        } else {
            (self.chunk.get(..self.same).unwrap_or(&[]), &[])
        }
    }

    /// Whether `finder`'s needle is in the output (across its two pieces too).
    pub fn contains(&self, finder: &memchr::memmem::Finder<'_>) -> bool {
        let (head, rest) = self.pieces();
        if finder.find(head).is_some() || finder.find(rest).is_some() {
            return true;
        }
        // A needle across the two pieces: the head's last bytes then the rest's first.
        let n = finder.needle().len().saturating_sub(1);
        if n == 0 || head.is_empty() || rest.is_empty() {
            return false;
        }
        let mut seam = head.get(head.len().saturating_sub(n)..).unwrap_or(&[]).to_vec();
        seam.extend_from_slice(rest.get(..n.min(rest.len())).unwrap_or(&[]));
        finder.find(&seam).is_some()
    }

    /// Whether the output is exactly the chunk (it can then be let through as it came).
    pub fn is_chunk(&self) -> bool {
        if self.written {
            self.chunk.get(self.head..) == Some(self.out.as_slice())
        } else {
            self.same == self.chunk.len()
        }
    }
}

#[cfg(test)]
#[path = "tests/sse_tests.rs"]
mod tests;
