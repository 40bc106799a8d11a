//! A byte-level reader of JSON in its usual form (strings without escapes, integers, bounded
//! nesting), for the commonest stream events: what it cannot read it refuses (`None`), and the
//! caller reads the event with serde instead.

use crate::sse;

/// Nesting of skipped members deeper than this is refused.
const MAX_DEPTH: u32 = 8;

/// A position in a JSON text.
pub(crate) struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    /// The cursor's offset in the text.
    pub(crate) fn pos(&self) -> usize {
        self.i
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    pub(crate) fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    pub(crate) fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek() == Some(byte)).then(|| self.i += 1)
    }

    pub(crate) fn lit(&mut self, word: &[u8]) -> Option<()> {
        let rest = self.b.get(self.i..)?;
        rest.starts_with(word).then(|| self.i += word.len())
    }

    /// A string without escapes or control characters, borrowed (for keys, compared as bytes).
    pub(crate) fn plain_bytes(&mut self) -> Option<&'a [u8]> {
        let (start, end) = self.plain_span()?;
        self.b.get(start..end)
    }

    /// The span of a string without escapes or control characters (cut at ASCII quotes of a
    /// `str`: on character boundaries); the cursor past it.
    pub(crate) fn plain_span(&mut self) -> Option<(usize, usize)> {
        self.eat(b'"')?;
        let start = self.i;
        let len = sse::json_special(self.b.get(start..)?)?;
        let end = start + len;
        if self.b.get(end) != Some(&b'"') {
            return None;
        }
        self.i = end + 1;
        Some((start, end))
    }

    /// An integer: `-?(0|[1-9][0-9]*)`; a fraction or an exponent is left to serde.
    pub(crate) fn integer(&mut self) -> Option<&'a [u8]> {
        let start = self.i;
        let _ = self.eat(b'-');
        match self.peek()? {
            b'0' => self.i += 1,
            b'1'..=b'9' => {
                while matches!(self.peek(), Some(b'0'..=b'9')) {
                    self.i += 1;
                }
            }
            _ => return None,
        }
        if matches!(self.peek(), Some(b'.' | b'e' | b'E' | b'0'..=b'9')) {
            return None;
        }
        self.b.get(start..self.i)
    }

    /// Any value in the usual form, read and dropped.
    pub(crate) fn skip_value(&mut self, depth: u32) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'"' => self.plain_bytes().map(drop),
            b'n' => self.lit(b"null"),
            b't' => self.lit(b"true"),
            b'f' => self.lit(b"false"),
            b'[' => {
                self.i += 1;
                self.ws();
                if self.eat(b']').is_some() {
                    return Some(());
                }
                loop {
                    self.ws();
                    self.skip_value(depth + 1)?;
                    self.ws();
                    if self.eat(b',').is_none() {
                        return self.eat(b']');
                    }
                }
            }
            b'{' => {
                self.i += 1;
                self.ws();
                if self.eat(b'}').is_some() {
                    return Some(());
                }
                loop {
                    self.ws();
                    self.plain_bytes()?;
                    self.ws();
                    self.eat(b':')?;
                    self.ws();
                    self.skip_value(depth + 1)?;
                    self.ws();
                    if self.eat(b',').is_none() {
                        return self.eat(b'}');
                    }
                }
            }
            _ => self.integer().map(drop),
        }
    }

    pub(crate) fn new(data: &'a str) -> Self {
        Cursor { b: data.as_bytes(), i: 0 }
    }

    /// Only whitespace is left.
    pub(crate) fn end(&mut self) -> Option<()> {
        self.ws();
        (self.i == self.b.len()).then_some(())
    }

    /// An unsigned integer that fits in a `u64`.
    pub(crate) fn uint(&mut self) -> Option<u64> {
        if self.peek() == Some(b'-') {
            return None;
        }
        std::str::from_utf8(self.integer()?).ok()?.parse().ok()
    }

    /// The members of an object: `member` is called with each key, the cursor at its value,
    /// and must read the value.
    pub(crate) fn members(&mut self, mut member: impl FnMut(&mut Self, &'a [u8]) -> Option<()>) -> Option<()> {
        self.ws();
        self.eat(b'{')?;
        self.ws();
        if self.eat(b'}').is_some() {
            return Some(());
        }
        loop {
            self.ws();
            let key = self.plain_bytes()?;
            self.ws();
            self.eat(b':')?;
            self.ws();
            member(self, key)?;
            self.ws();
            if self.eat(b',').is_none() {
                return self.eat(b'}');
            }
        }
    }

    /// An array of exactly one element, read by `element`.
    pub(crate) fn one<T>(&mut self, element: impl FnOnce(&mut Self) -> Option<T>) -> Option<T> {
        self.eat(b'[')?;
        self.ws();
        let v = element(self)?;
        self.ws();
        self.eat(b']')?;
        Some(v)
    }
}
