//! A byte-level read of the commonest event of an OpenAI stream: a chunk of nothing but text for
//! choice 0, in its usual form (no escape in any string, integers only). It accepts a subset of
//! what the serde read in `upstream.rs` (`TextIn`) accepts, and gives the same id and text for
//! it; anything else (an escape, a fraction, a `usage` member, a repeated key, deep nesting) is
//! `None`, and the caller reads the event with serde as before.

use crate::dialect::cursor::Cursor;

/// Where a text chunk's id and text are in its event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Spans {
    /// `None`: no `id` member (the id is empty).
    pub id: Option<(usize, usize)>,
    /// `None`: no `content` member (the text is empty).
    pub text: Option<(usize, usize)>,
}

impl Spans {
    pub(super) fn id<'a>(&self, data: &'a str) -> Option<&'a str> {
        self.id.map_or(Some(""), |(a, b)| data.get(a..b))
    }

    pub(super) fn text<'a>(&self, data: &'a str) -> Option<&'a str> {
        self.text.map_or(Some(""), |(a, b)| data.get(a..b))
    }
}

/// `text_chunk`'s read, as the spans of the id and the text. The read depends on the text in
/// no way but its being a string without escapes or control characters.
pub(super) fn spans(data: &str) -> Option<Spans> {
    let mut c = Cursor::new(data);
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
            b"id" if id.is_none() => id = Some(c.plain_span()?),
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
    c.end()?;
    Some(Spans { id, text: text? })
}

impl<'a> Cursor<'a> {
    /// `[{choice}]`: exactly one choice, index 0, no finish reason, a delta of text: the span
    /// of its text (`None`: no `content`).
    fn choices(&mut self) -> Option<Option<(usize, usize)>> {
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

    /// `{b"content": "...", b"role": ..., b"refusal": null}`, each at most once, nothing else:
    /// the span of the content (`None`: no `content`).
    fn delta(&mut self) -> Option<Option<(usize, usize)>> {
        self.eat(b'{')?;
        self.ws();
        let (mut content, mut role, mut refusal) = (None, false, false);
        if self.eat(b'}').is_some() {
            return Some(None);
        }
        loop {
            self.ws();
            let key = self.plain_bytes()?;
            self.ws();
            self.eat(b':')?;
            self.ws();
            match key {
                b"content" if content.is_none() => content = Some(self.plain_span()?),
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
        Some(content)
    }
}

#[cfg(test)]
#[path = "../tests/openai_chunk_tests.rs"]
mod tests;
