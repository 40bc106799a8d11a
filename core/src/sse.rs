//! Incremental Server-Sent Events framer: bytes in, complete events out.
//!
//! Chunks may split an event at any byte: inside a UTF-8 character, between `\r` and `\n`, inside
//! a field name. The framer keeps the unfinished line between calls, so feeding a stream in one
//! piece or byte by byte yields the same events. Lines end with `\r\n`, `\n` or `\r`; `data:` with
//! or without the space; comment lines (`: keepalive`) are dropped; an unfinished event larger than
//! the cap is an error rather than unbounded memory: that event and everything after it are
//! dropped (nothing of it is ever delivered, not even at `finish`).

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooLarge;

#[derive(Debug)]
pub struct Framer {
    line: Vec<u8>,
    /// The previous chunk ended in `\r`: a `\n` at the start of the next one belongs to it.
    after_cr: bool,
    current: Event,
    has_fields: bool,
    data_seen: bool,
    event_bytes: usize,
    max_event_bytes: usize,
    /// An event passed the cap: the rest of the stream is dropped.
    failed: bool,
    /// Emptied `data` strings of delivered events (`recycle`), reused for the next events so
    /// a stream does not allocate per event.
    spare: Vec<String>,
}

pub const DEFAULT_MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

impl Default for Framer {
    fn default() -> Self {
        Framer::new(DEFAULT_MAX_EVENT_BYTES)
    }
}

impl Framer {
    pub fn new(max_event_bytes: usize) -> Self {
        Framer {
            line: Vec::new(),
            after_cr: false,
            current: Event::default(),
            has_fields: false,
            data_seen: false,
            event_bytes: 0,
            max_event_bytes,
            failed: false,
            spare: Vec::new(),
        }
    }

    /// Takes back the events the caller is done with (leaving `events` empty): their `data`
    /// strings are reused for the next events. A few are kept, none larger than `SPARE_MAX`.
    pub fn recycle(&mut self, events: &mut Vec<Event>) {
        const SPARE_COUNT: usize = 16;
        const SPARE_MAX: usize = 64 * 1024;
        for ev in events.drain(..) {
            let mut data = ev.data;
            if self.spare.len() < SPARE_COUNT && data.capacity() <= SPARE_MAX {
                data.clear();
                self.spare.push(data);
            }
        }
    }

    /// Feeds a chunk; complete events are appended to `out`. `Err(TooLarge)` once, from the chunk
    /// in which an event passes the cap: the events completed before it in that chunk are still
    /// delivered; the oversized event and the rest of the stream never are (later calls drop
    /// their input and return `Ok`).
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<Event>) -> Result<(), TooLarge> {
        if self.failed {
            return Ok(());
        }
        let r = self.push_inner(chunk, out);
        if r.is_err() {
            self.failed = true;
            self.line = Vec::new();
            self.current = Event::default();
            self.has_fields = false;
            self.data_seen = false;
            self.event_bytes = 0;
            self.after_cr = false;
        }
        r
    }

    fn push_inner(&mut self, mut chunk: &[u8], out: &mut Vec<Event>) -> Result<(), TooLarge> {
        if self.after_cr {
            // The `\n` of a `\r\n` split across chunks is consumed once; an empty chunk keeps
            // the state for the next one.
            if let Some(rest) = chunk.strip_prefix(b"\n") {
                chunk = rest;
                self.after_cr = false;
            } else if !chunk.is_empty() {
                self.after_cr = false;
            }
        }
        while !chunk.is_empty() {
            match memchr::memchr2(b'\n', b'\r', chunk) {
                None => {
                    self.event_bytes = self.event_bytes.saturating_add(chunk.len());
                    if self.event_bytes > self.max_event_bytes {
                        return Err(TooLarge);
                    }
                    self.line.extend_from_slice(chunk);
                    return Ok(());
                }
                Some(pos) => {
                    let (head, tail) = chunk.split_at(pos);
                    self.event_bytes = self.event_bytes.saturating_add(head.len());
                    if self.event_bytes > self.max_event_bytes {
                        return Err(TooLarge);
                    }
                    let is_cr = tail.first() == Some(&b'\r');
                    let mut rest = tail.get(1..).unwrap_or(&[]);
                    if is_cr {
                        match rest.first() {
                            Some(b'\n') => rest = rest.get(1..).unwrap_or(&[]),
                            None => self.after_cr = true,
                            Some(_) => {}
                        }
                    }
                    if self.line.is_empty() {
                        self.process_line(head, out);
                    } else {
                        self.line.extend_from_slice(head);
                        let mut line = std::mem::take(&mut self.line);
                        self.process_line(&line, out);
                        line.clear();
                        self.line = line;
                    }
                    chunk = rest;
                }
            }
        }
        Ok(())
    }

    /// End of stream: an event that was not closed by a blank line is still delivered.
    pub fn finish(&mut self, out: &mut Vec<Event>) {
        if self.failed {
            return;
        }
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.process_line(&line, out);
        }
        self.dispatch(out);
    }

    /// Bytes held for an unfinished event.
    pub fn pending(&self) -> usize {
        self.event_bytes
    }

    fn process_line(&mut self, line: &[u8], out: &mut Vec<Event>) {
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line.first() == Some(&b':') {
            return;
        }
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let (n, v) = line.split_at(i);
                let v = v.get(1..).unwrap_or(&[]);
                (n, v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &[][..]),
        };
        match name {
            b"data" => {
                if self.has_data() {
                    self.current.data.push('\n');
                }
                // `from_utf8` checks ASCII a word at a time; the lossy path is for broken input only.
                match std::str::from_utf8(value) {
                    Ok(text) => self.current.data.push_str(text),
                    Err(_) => self.current.data.push_str(&String::from_utf8_lossy(value)),
                }
                self.has_fields = true;
                self.data_seen = true;
            }
            b"event" => {
                self.current.event = Some(String::from_utf8_lossy(value).into_owned());
                self.has_fields = true;
            }
            _ => {} // id, retry and unknown fields carry nothing we translate
        }
    }

    fn has_data(&self) -> bool {
        self.data_seen
    }

    fn dispatch(&mut self, out: &mut Vec<Event>) {
        if self.has_fields {
            let fresh = Event { event: None, data: self.spare.pop().unwrap_or_default() };
            out.push(std::mem::replace(&mut self.current, fresh));
        } else {
            self.current.event = None;
            self.current.data.clear();
        }
        self.has_fields = false;
        self.data_seen = false;
        self.event_bytes = 0;
    }
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

#[cfg(test)]
#[path = "tests/sse_tests.rs"]
mod tests;
