//! `Config::parse_pieces`: the configuration read from its source a piece at a time, so that
//! its text is never whole in memory (a million keys are 120 MB of JSON, and a wasm VM's memory
//! never shrinks). The `keys` array is split into its entries, each parsed on its own straight
//! into the key table; the other members (a few KB) are gathered and parsed as one object. Both
//! use serde_json's slice parser, the fast one. Anything this splitting does not expect (invalid
//! JSON, an escaped member name, a repeated `keys`, a key that does not parse) sends the whole
//! text to `Config::parse`, so the result and every error message are `parse`'s.

use super::key_table::{line_capacity, KeyLines};
use super::raw_keys::key_capacity;
use super::{compile, Config, RawConfig, RawKey, RawKeys};

/// Reads up to `max` bytes of the configuration from `offset` (fewer or none at its end).
pub type ReadPiece<'a> = dyn FnMut(usize, usize) -> Result<Vec<u8>, String> + 'a;

/// The size of one read.
pub const PIECE: usize = 64 * 1024;

/// Why the splitting stopped: the source failed (its message), or the text needs `parse`.
enum Stop {
    Read(String),
    Whole,
}

struct Scanner<'r, 'a> {
    read: &'r mut ReadPiece<'a>,
    /// Read so far, from `pos` on not yet consumed.
    buf: Vec<u8>,
    pos: usize,
    /// Where the next piece starts in the text.
    offset: usize,
    eof: bool,
}

impl Scanner<'_, '_> {
    /// Reads the next piece after what is unconsumed; false at the end of the text.
    fn fill(&mut self) -> Result<bool, Stop> {
        if self.eof {
            return Ok(false);
        }
        self.buf.drain(..self.pos.min(self.buf.len()));
        self.pos = 0;
        let piece = (self.read)(self.offset, PIECE).map_err(Stop::Read)?;
        if piece.is_empty() {
            self.eof = true;
            return Ok(false);
        }
        self.offset += piece.len();
        self.buf.extend_from_slice(&piece);
        Ok(true)
    }

    /// The next byte that is not JSON whitespace (not consumed); None at the end of the text.
    fn peek(&mut self) -> Result<Option<u8>, Stop> {
        loop {
            while let Some(&b) = self.buf.get(self.pos) {
                if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                    return Ok(Some(b));
                }
                self.pos += 1;
            }
            if !self.fill()? {
                return Ok(None);
            }
        }
    }

    /// Consumes the next non-whitespace byte, which must be `want`.
    fn expect(&mut self, want: u8) -> Result<(), Stop> {
        if self.peek()? != Some(want) {
            return Err(Stop::Whole);
        }
        self.pos += 1;
        Ok(())
    }

    /// Consumes the next JSON value (after whitespace) and gives its place in `buf`, valid
    /// until the next read. Only its extent is found here; serde checks the rest.
    fn value(&mut self) -> Result<(usize, usize), Stop> {
        self.peek()?;
        loop {
            let rest = self.buf.get(self.pos..).unwrap_or_default();
            if let Some(n) = value_len(rest, self.eof)? {
                let start = self.pos;
                self.pos += n;
                return Ok((start, start + n));
            }
            if !self.fill()? && self.eof {
                // At the end: a scalar ends there; anything else is cut short.
                let rest = self.buf.get(self.pos..).unwrap_or_default();
                let n = value_len(rest, true)?.ok_or(Stop::Whole)?;
                let start = self.pos;
                self.pos += n;
                return Ok((start, start + n));
            }
        }
    }
}

/// The length of the JSON value at the start of `s`, None when `s` ends inside it (`eof`: the
/// text ends with `s`, so a scalar ends there too).
fn value_len(s: &[u8], eof: bool) -> Result<Option<usize>, Stop> {
    match s.first() {
        None => Ok(None),
        Some(b'"') => Ok(string_len(s)),
        Some(b'{' | b'[') => {
            let mut depth = 0usize;
            let mut i = 0;
            while let Some(&b) = s.get(i) {
                match b {
                    b'"' => match s.get(i..).and_then(string_len) {
                        Some(n) => {
                            i += n;
                            continue;
                        }
                        None => return Ok(None),
                    },
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.checked_sub(1).ok_or(Stop::Whole)?;
                        if depth == 0 {
                            return Ok(Some(i + 1));
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            Ok(None)
        }
        Some(_) => match s.iter().position(|b| matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')) {
            Some(0) => Err(Stop::Whole),
            Some(n) => Ok(Some(n)),
            None if eof => Ok(Some(s.len())),
            None => Ok(None),
        },
    }
}

/// The length of the JSON string at the start of `s` (its quotes included), None when `s` ends
/// inside it.
fn string_len(s: &[u8]) -> Option<usize> {
    let mut i = 1;
    loop {
        let at = memchr::memchr2(b'"', b'\\', s.get(i..)?)?;
        i += at;
        if s.get(i) == Some(&b'\\') {
            i += 2;
            continue;
        }
        return Some(i + 1);
    }
}

fn split(sc: &mut Scanner, len: usize) -> Result<RawConfig, Stop> {
    sc.expect(b'{')?;
    let mut rest = b"{".to_vec();
    let mut keys: Option<RawKeys> = None;
    let mut lines: Option<KeyLines> = None;
    if sc.peek()? == Some(b'}') {
        sc.pos += 1;
    } else {
        loop {
            let (s, e) = sc.value()?;
            let name = sc.buf.get(s..e).ok_or(Stop::Whole)?;
            if name.first() != Some(&b'"') || name.contains(&b'\\') {
                return Err(Stop::Whole);
            }
            let is_keys = name == b"\"keys\"";
            let is_lines = name == b"\"key_table\"";
            if !is_keys && !is_lines {
                if rest.len() > 1 {
                    rest.push(b',');
                }
                rest.extend_from_slice(name);
                rest.push(b':');
            }
            sc.expect(b':')?;
            if is_keys {
                if keys.is_some() {
                    return Err(Stop::Whole);
                }
                keys = Some(key_list(sc, len)?);
            } else if is_lines {
                if lines.is_some() {
                    return Err(Stop::Whole);
                }
                lines = Some(key_lines(sc, len)?);
            } else {
                let (s, e) = sc.value()?;
                rest.extend_from_slice(sc.buf.get(s..e).ok_or(Stop::Whole)?);
            }
            match sc.peek()? {
                Some(b',') => sc.pos += 1,
                Some(b'}') => {
                    sc.pos += 1;
                    break;
                }
                _ => return Err(Stop::Whole),
            }
        }
    }
    if sc.peek()?.is_some() {
        return Err(Stop::Whole);
    }
    rest.push(b'}');
    let mut raw: RawConfig = serde_json::from_slice(&rest).map_err(|_| Stop::Whole)?;
    if let Some(k) = keys {
        raw.keys = k;
    }
    if let Some(l) = lines {
        raw.key_table = l;
    }
    Ok(raw)
}

fn key_list(sc: &mut Scanner, len: usize) -> Result<RawKeys, Stop> {
    sc.expect(b'[')?;
    let mut out = RawKeys::with_capacity(key_capacity(len));
    if sc.peek()? == Some(b']') {
        sc.pos += 1;
        out.finish();
        return Ok(out);
    }
    loop {
        let (s, e) = sc.value()?;
        let key: RawKey = serde_json::from_slice(sc.buf.get(s..e).ok_or(Stop::Whole)?).map_err(|_| Stop::Whole)?;
        out.push(key).map_err(|_| Stop::Whole)?;
        match sc.peek()? {
            Some(b',') => sc.pos += 1,
            Some(b']') => {
                sc.pos += 1;
                out.finish();
                return Ok(out);
            }
            _ => return Err(Stop::Whole),
        }
    }
}

/// Reads the `key_table` string a line at a time, straight from the pieces: a line is handed on
/// when its `\n` escape or the closing quote is read. Any other escape sends the text to `parse`.
fn key_lines(sc: &mut Scanner, len: usize) -> Result<KeyLines, Stop> {
    sc.expect(b'"')?;
    let mut out = KeyLines::with_capacity(line_capacity(len));
    // How far from `pos` the current line has been searched already.
    let mut searched = 0;
    loop {
        let rest = sc.buf.get(sc.pos..).unwrap_or_default();
        let Some(at) = rest.get(searched..).and_then(|r| memchr::memchr2(b'"', b'\\', r)).map(|a| a + searched) else {
            searched = rest.len();
            if !sc.fill()? {
                return Err(Stop::Whole);
            }
            continue;
        };
        let line = rest.get(..at).unwrap_or_default();
        match rest.get(at) {
            Some(b'"') => {
                out.last(line, true).map_err(|_| Stop::Whole)?;
                sc.pos += at + 1;
                return Ok(out);
            }
            _ => match rest.get(at + 1) {
                Some(b'n') => {
                    out.line(line, true).map_err(|_| Stop::Whole)?;
                    sc.pos += at + 2;
                    searched = 0;
                }
                Some(_) => return Err(Stop::Whole),
                None => {
                    searched = at;
                    if !sc.fill()? {
                        return Err(Stop::Whole);
                    }
                }
            },
        }
    }
}

impl Config {
    /// `parse` of a configuration of `len` bytes read by `read` a piece at a time (see the
    /// module's comment): the same result and the same errors, without the whole text in memory.
    pub fn parse_pieces(read: &mut ReadPiece, len: usize) -> Result<Config, String> {
        let mut sc = Scanner { read, buf: Vec::with_capacity(2 * PIECE), pos: 0, offset: 0, eof: false };
        match split(&mut sc, len) {
            Ok(raw) => compile(raw),
            Err(Stop::Read(e)) => Err(e),
            Err(Stop::Whole) => {
                let mut text = sc.buf;
                text.clear();
                loop {
                    let piece = (sc.read)(text.len(), PIECE)?;
                    if piece.is_empty() {
                        break;
                    }
                    text.extend_from_slice(&piece);
                }
                Config::parse(&text)
            }
        }
    }
}
