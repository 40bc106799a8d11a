//! The commonest event of an Anthropic stream, a non-empty `text_delta`, read without a
//! `Value`: by bytes in its usual form (no escape in any string or key, integers only, each
//! member once), else by serde into borrowed fields. Anything else (another event, a repeated
//! key, an array where an object belongs) is `None`, and the event is read whole as before.

use std::borrow::Cow;

use serde::Deserialize;

use crate::dialect::cursor::Cursor;
use crate::dialect::frame::Frame;
use crate::dialect::stream::Obj;

/// The text of a non-empty `text_delta` event: by `frame` when the event is the frame of the latest one read by bytes around
/// another non-empty text; an event read by bytes leaves its frame there.
pub(super) fn text_delta_framed<'a>(data: &'a str, frame: &mut Frame) -> Option<Cow<'a, str>> {
    if let Some((a, b)) = frame.text_span(data).filter(|&(a, b)| a < b) {
        return data.get(a..b).map(Cow::Borrowed);
    }
    if let Some((a, b)) = scan_span(data) {
        frame.remember(data, a, b);
        return data.get(a..b).map(Cow::Borrowed);
    }
    let e: TextDeltaIn<'_> = serde_json::from_slice(data.as_bytes()).ok()?;
    if e.ty != "content_block_delta" || e.delta.0.ty != "text_delta" || e.delta.0.text.is_empty() {
        return None;
    }
    Some(e.delta.0.text)
}

/// `text_delta_framed` by bytes, as the span of the text; `None` for anything it does not read
/// (serde decides then). The read depends on the text in no way but its being a non-empty
/// string without escapes or control characters.
pub(super) fn scan_span(data: &str) -> Option<(usize, usize)> {
    let mut c = Cursor::new(data);
    let (mut ty, mut text) = (None, None);
    c.members(|c, key| {
        match key {
            b"type" if ty.is_none() => ty = Some(c.plain_bytes()?),
            b"delta" if text.is_none() => text = Some(delta(c)?),
            b"type" | b"delta" => return None,
            _ => c.skip_value(0)?,
        }
        Some(())
    })?;
    c.end()?;
    let text = text?;
    (ty? == b"content_block_delta" && text.0 < text.1).then_some(text)
}

/// `{"type":"text_delta","text":..}`: the span of its text.
fn delta(c: &mut Cursor<'_>) -> Option<(usize, usize)> {
    let (mut ty, mut text) = (None, None);
    c.members(|c, key| {
        match key {
            b"type" if ty.is_none() => ty = Some(c.plain_bytes()?),
            b"text" if text.is_none() => text = Some(c.plain_span()?),
            b"type" | b"text" => return None,
            _ => c.skip_value(1)?,
        }
        Some(())
    })?;
    (ty? == b"text_delta").then_some(())?;
    text
}

/// `{"type":"content_block_delta","index":..,"delta":{"type":"text_delta","text":..}}`, borrowed
/// from the event (a repeated key or another shape fails the read: the event is then read whole).
#[derive(Deserialize)]
struct TextDeltaIn<'a> {
    #[serde(rename = "type", borrow)]
    ty: Cow<'a, str>,
    #[serde(borrow)]
    delta: Obj<TextIn<'a>>,
}

#[derive(Deserialize)]
struct TextIn<'a> {
    #[serde(rename = "type", borrow)]
    ty: Cow<'a, str>,
    #[serde(borrow)]
    text: Cow<'a, str>,
}

#[cfg(test)]
#[path = "../tests/anthropic_text_in_tests.rs"]
mod tests;
