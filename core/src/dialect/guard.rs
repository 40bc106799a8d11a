//! The shape every JSON request body must have before anything reads it, checked in one pass
//! over its bytes on every path (the OpenAI fast scan, the full parsers, media bodies), so that
//! the gateway and a lenient upstream cannot read the same body two ways:
//! - nesting at most [`MAX_JSON_DEPTH`] arrays and objects deep;
//! - no key twice in one object, at any depth (a parser keeps the first or the last; the
//!   gateway forwards the raw bytes on its fast path);
//! - no key that differs only in case from a field the gateway reads (Go's `encoding/json`, as
//!   in Ollama, matches keys case-insensitively: `"Model"`, `"N"`, even `"ſtream"` with a long s,
//!   would be read by the upstream and not by the gateway).
//!
//! It does not validate JSON: a body that is not JSON passes here and is refused by the parser
//! that follows (for valid JSON the tokenizing below is exact).

use crate::errors::{Code, GatewayError};
use std::borrow::Cow;

/// The deepest nesting of arrays and objects a request body may have (the top-level object is
/// depth 1). One limit for every endpoint and path.
pub const MAX_JSON_DEPTH: usize = 64;

/// Top-level fields the gateway reads on some endpoint (any dialect). A top-level key equal to
/// one of these ignoring ASCII case must be equal to it exactly.
const TOP_FIELDS: &[&str] = &[
    "model",
    "messages",
    "stream",
    "stream_options",
    "n",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "top_k",
    "presence_penalty",
    "frequency_penalty",
    "stop",
    "stop_sequences",
    "tools",
    "tool_choice",
    "system",
    "metadata",
    "response_format",
    "contents",
    "systemInstruction",
    "system_instruction",
    "generationConfig",
    "generation_config",
    "toolConfig",
    "tool_config",
    "prompt",
    "size",
    "duration",
    "fps",
    "quality",
    "input",
    "text",
    "voice",
    "speed",
];

/// Fields the gateway reads one level down (`stream_options`, `generationConfig`): checked the
/// same way in the objects at depth 2.
const NESTED_FIELDS: &[&str] =
    &["include_usage", "maxOutputTokens", "max_output_tokens", "candidateCount", "candidate_count"];

/// Objects up to this many keys are checked for repeats pairwise; wider ones by sorting.
const PAIRWISE_KEYS: usize = 16;

/// Checks the body's shape (see the module). The error is a 400 `bad_request`; for a key, its
/// `param` names the key.
pub fn check(raw: &[u8]) -> Result<(), GatewayError> {
    // (is an object, index of its first key in `keys`), on the stack: at most MAX_JSON_DEPTH.
    let mut frames = [(false, 0usize); MAX_JSON_DEPTH];
    let mut depth = 0usize;
    let mut keys: Vec<Cow<'_, [u8]>> = Vec::with_capacity(16);
    let mut expect_key = false;
    let mut i = 0usize;
    while let Some(&b) = raw.get(i) {
        match b {
            b'{' | b'[' => {
                match frames.get_mut(depth) {
                    Some(f) => *f = (b == b'{', keys.len()),
                    None => return Err(too_deep()),
                }
                depth += 1;
                expect_key = b == b'{';
            }
            b'}' | b']' => {
                if let Some(&(is_object, start)) = depth.checked_sub(1).and_then(|d| frames.get(d)) {
                    depth -= 1;
                    if is_object {
                        repeated(keys.get_mut(start..).unwrap_or_default())?;
                    }
                    keys.truncate(start);
                }
                expect_key = false;
            }
            b',' => expect_key = depth.checked_sub(1).and_then(|d| frames.get(d)).is_some_and(|f| f.0),
            b'"' => {
                let Some(end) = string_end(raw, i + 1) else { return Ok(()) };
                if expect_key {
                    let key = match raw.get(i + 1..end) {
                        Some(k) if memchr::memchr(b'\\', k).is_none() => Cow::Borrowed(k),
                        _ => match raw.get(i..=end).and_then(|q| serde_json::from_slice::<String>(q).ok()) {
                            Some(s) => Cow::Owned(s.into_bytes()),
                            // Not JSON: the parser that follows refuses it.
                            None => return Ok(()),
                        },
                    };
                    let read = match depth {
                        1 => TOP_FIELDS,
                        2 => NESTED_FIELDS,
                        _ => &[],
                    };
                    case_variant(&key, read)?;
                    keys.push(key);
                    expect_key = false;
                }
                i = end;
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// The index of the quote that closes a string whose content starts at `from`.
fn string_end(raw: &[u8], from: usize) -> Option<usize> {
    // Most keys and many values are short: look at their first bytes directly.
    for (i, &b) in raw.get(from..)?.iter().take(24).enumerate() {
        match b {
            b'"' => return Some(from + i),
            b'\\' => return string_end_slow(raw, from),
            _ => {}
        }
    }
    string_end_slow(raw, from)
}

fn string_end_slow(raw: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    loop {
        let rest = raw.get(at..)?;
        let off = memchr::memchr2(b'"', b'\\', rest)?;
        let pos = at + off;
        if raw.get(pos) == Some(&b'"') {
            return Some(pos);
        }
        at = pos + 2;
    }
}

fn case_variant(key: &[u8], read: &[&str]) -> Result<(), GatewayError> {
    let ascii = key.is_ascii();
    for field in read {
        let f = field.as_bytes();
        let variant = if ascii {
            f.len() == key.len() && f != key && f.eq_ignore_ascii_case(key)
        } else {
            (f.len()..=f.len() * 3).contains(&key.len()) && folds_to(key, f)
        };
        if variant {
            let k = String::from_utf8_lossy(key);
            return Err(GatewayError::bad(
                &k,
                format!("The key '{k}' differs from '{field}' only in case; send '{field}' exactly, once"),
            ));
        }
    }
    Ok(())
}

/// Whether `key` matches the ASCII name `field` the way Go's `encoding/json` matches keys: ASCII
/// case folded, and the four non-ASCII letters whose case folding lands on ASCII (the Kelvin
/// sign, long s, dotted and dotless i) taken for it.
fn folds_to(key: &[u8], field: &[u8]) -> bool {
    let Ok(key) = std::str::from_utf8(key) else { return false };
    let mut f = field.iter();
    for c in key.chars() {
        let c = match c {
            '\u{212A}' => b'k',
            '\u{17F}' => b's',
            '\u{130}' | '\u{131}' => b'i',
            c if c.is_ascii() => c as u8,
            _ => return false,
        };
        match f.next() {
            Some(b) if b.eq_ignore_ascii_case(&c) => {}
            _ => return false,
        }
    }
    f.next().is_none()
}

fn repeated(keys: &mut [Cow<'_, [u8]>]) -> Result<(), GatewayError> {
    let twice = if keys.len() <= PAIRWISE_KEYS {
        keys.iter().enumerate().find_map(|(i, k)| keys.get(i + 1..).unwrap_or_default().contains(k).then_some(k))
    } else {
        crate::sort::heap_sort_by(keys, |a, b| a < b);
        keys.windows(2).find_map(|w| match w {
            [a, b] if a == b => Some(a),
            _ => None,
        })
    };
    match twice {
        Some(k) => {
            let k = String::from_utf8_lossy(k);
            Err(GatewayError::bad(
                &k,
                format!("The key '{k}' appears more than once in one object of the request body"),
            ))
        }
        None => Ok(()),
    }
}

fn too_deep() -> GatewayError {
    GatewayError::new(
        Code::BadRequest,
        format!("The request body nests arrays and objects deeper than {MAX_JSON_DEPTH} levels"),
    )
}

#[cfg(test)]
#[path = "tests/guard_tests.rs"]
mod tests;
