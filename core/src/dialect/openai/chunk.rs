//! A byte-level read of the commonest event of an OpenAI stream: a chunk of nothing but text for
//! choice 0, in its usual form (no escape in any string, integers only). It accepts a subset of
//! what the serde read in `upstream.rs` (`TextIn`) accepts, and gives the same id and text for
//! it; anything else (an escape, a fraction, a `usage` member, a repeated key, deep nesting) is
//! `None`, and the caller reads the event with serde as before.

use std::borrow::Cow;

use crate::dialect::stream::TextChunk;
use crate::sse;

/// Nesting of skipped members deeper than this is left to serde.
const MAX_DEPTH: u32 = 8;

/// The event's id and text, when it is a text-only chunk for choice 0 in the usual form.
pub(super) fn text_chunk(data: &str) -> Option<TextChunk<'_>> {
    let mut c = Cursor { s: data, b: data.as_bytes(), i: 0 };
    c.ws();
    c.eat(b'{')?;
    let (mut id, mut text) = (None, None);
    loop {
        c.ws();
        let key = c.plain_bytes()?;
        c.ws();
        c.eat(b':')?;
        c.ws();
        match key {
            b"id" if id.is_none() => id = Some(c.plain_str()?),
            b"choices" if text.is_none() => text = Some(c.choices()?),
            b"id" | b"choices" | b"usage" => return None,
            _ => c.skip_value(0)?,
        }
        c.ws();
        if c.eat(b',').is_none() {
            c.eat(b'}')?;
            break;
        }
    }
    c.ws();
    if c.i != c.b.len() {
        return None;
    }
    Some(TextChunk { id: Cow::Borrowed(id.unwrap_or("")), text: Cow::Borrowed(text?) })
}

struct Cursor<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek() == Some(byte)).then(|| self.i += 1)
    }

    fn lit(&mut self, word: &[u8]) -> Option<()> {
        let rest = self.b.get(self.i..)?;
        rest.starts_with(word).then(|| self.i += word.len())
    }

    /// A string without escapes or control characters, borrowed.
    fn plain_str(&mut self) -> Option<&'a str> {
        let (start, end) = self.plain_span()?;
        // Cut at ASCII quotes of a `str`: on character boundaries.
        self.s.get(start..end)
    }

    /// `plain_str`'s bytes (for keys, compared as bytes).
    fn plain_bytes(&mut self) -> Option<&'a [u8]> {
        let (start, end) = self.plain_span()?;
        self.b.get(start..end)
    }

    /// The span of a string without escapes or control characters; the cursor past it.
    fn plain_span(&mut self) -> Option<(usize, usize)> {
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
    fn integer(&mut self) -> Option<&'a [u8]> {
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
    fn skip_value(&mut self, depth: u32) -> Option<()> {
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

    /// `[{choice}]`: exactly one choice, index 0, no finish reason, a delta of text: its text.
    fn choices(&mut self) -> Option<&'a str> {
        self.eat(b'[')?;
        self.ws();
        self.eat(b'{')?;
        let (mut index, mut finish, mut text) = (false, false, None);
        loop {
            self.ws();
            let key = self.plain_bytes()?;
            self.ws();
            self.eat(b':')?;
            self.ws();
            match key {
                b"index" if !index => {
                    index = true;
                    if self.integer()? != b"0" {
                        return None;
                    }
                }
                b"finish_reason" if !finish => {
                    finish = true;
                    self.lit(b"null")?;
                }
                b"delta" if text.is_none() => text = Some(self.delta()?),
                b"index" | b"finish_reason" | b"delta" => return None,
                _ => self.skip_value(1)?,
            }
            self.ws();
            if self.eat(b',').is_none() {
                self.eat(b'}')?;
                break;
            }
        }
        self.ws();
        self.eat(b']')?;
        text
    }

    /// `{b"content": "...", b"role": ..., b"refusal": null}`, each at most once, nothing else.
    fn delta(&mut self) -> Option<&'a str> {
        self.eat(b'{')?;
        self.ws();
        let (mut content, mut role, mut refusal) = (None, false, false);
        if self.eat(b'}').is_some() {
            return Some("");
        }
        loop {
            self.ws();
            let key = self.plain_bytes()?;
            self.ws();
            self.eat(b':')?;
            self.ws();
            match key {
                b"content" if content.is_none() => content = Some(self.plain_str()?),
                b"role" if !role => {
                    role = true;
                    self.skip_value(2)?;
                }
                b"refusal" if !refusal => {
                    refusal = true;
                    self.lit(b"null")?;
                }
                _ => return None,
            }
            self.ws();
            if self.eat(b',').is_none() {
                self.eat(b'}')?;
                break;
            }
        }
        Some(content.unwrap_or(""))
    }
}

#[cfg(test)]
#[path = "../tests/openai_chunk_tests.rs"]
mod tests;
