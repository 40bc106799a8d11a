//! The commonest event of an Anthropic stream, a non-empty `text_delta`, read without a
//! `Value`: by bytes in its usual form (no escape in any string or key, integers only, each
//! member once), else by serde into borrowed fields. Anything else (another event, a repeated
//! key, an array where an object belongs) is `None`, and the event is read whole as before.

use std::borrow::Cow;

use serde::Deserialize;

use crate::dialect::cursor::Cursor;
use crate::dialect::stream::Obj;

/// The text of a non-empty `text_delta` event.
pub(super) fn text_delta(data: &str) -> Option<Cow<'_, str>> {
    if let Some(t) = scan(data) {
        return Some(Cow::Borrowed(t));
    }
    let e: TextDeltaIn<'_> = serde_json::from_slice(data.as_bytes()).ok()?;
    if e.ty != "content_block_delta" || e.delta.0.ty != "text_delta" || e.delta.0.text.is_empty() {
        return None;
    }
    Some(e.delta.0.text)
}

/// `text_delta` by bytes; `None` for anything it does not read (serde decides then).
pub(super) fn scan(data: &str) -> Option<&str> {
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
    (ty? == b"content_block_delta" && !text.is_empty()).then_some(text)
}

/// `{"type":"text_delta","text":..}`: its text.
fn delta<'a>(c: &mut Cursor<'a>) -> Option<&'a str> {
    let (mut ty, mut text) = (None, None);
    c.members(|c, key| {
        match key {
            b"type" if ty.is_none() => ty = Some(c.plain_bytes()?),
            b"text" if text.is_none() => text = Some(c.plain_str()?),
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
