//! Token usage: what the upstream reported, in one shape for every dialect.

use crate::routing::Price;
use serde_json::{Map, Value};

mod scan;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Prompt tokens served from a cache (included in `prompt_tokens`).
    pub cached_tokens: u64,
    /// Reasoning tokens (included in `completion_tokens`).
    pub reasoning_tokens: u64,
    /// Prompt tokens written to the upstream's cache (Anthropic's `cache_creation_input_tokens`;
    /// included in `prompt_tokens`).
    pub cache_creation_tokens: u64,
}

impl Usage {
    pub fn total(&self) -> u64 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }
}

fn u(v: &Value, k: &str) -> u64 {
    v.get(k).and_then(Value::as_u64).unwrap_or(0)
}

/// Reads an OpenAI `usage` object (chat completion or stream chunk). `None` when absent or null.
pub fn from_openai(obj: &Value) -> Option<Usage> {
    let usage = obj.get("usage")?;
    if !usage.is_object() {
        return None;
    }
    Some(Usage {
        prompt_tokens: u(usage, "prompt_tokens"),
        completion_tokens: u(usage, "completion_tokens"),
        cached_tokens: usage.get("prompt_tokens_details").map(|d| u(d, "cached_tokens")).unwrap_or(0),
        reasoning_tokens: usage.get("completion_tokens_details").map(|d| u(d, "reasoning_tokens")).unwrap_or(0),
        cache_creation_tokens: usage.get("prompt_tokens_details").map(|d| u(d, "cache_creation_tokens")).unwrap_or(0),
    })
}

/// Credits for `u` at `price`: prompt and completion tokens at their per-1k prices; of those,
/// cached prompt tokens at `cached_prompt_per_1k`, prompt tokens written to the cache at
/// `cache_write_per_1k` and reasoning tokens at `reasoning_per_1k` when set (details larger than
/// their total count as the total, cached tokens first).
pub fn credits(price: &Price, u: &Usage) -> f64 {
    let cached = u.cached_tokens.min(u.prompt_tokens);
    let written = u.cache_creation_tokens.min(u.prompt_tokens - cached);
    let reasoning = u.reasoning_tokens.min(u.completion_tokens);
    (u.prompt_tokens - cached - written) as f64 * price.prompt_per_1k / 1000.0
        + cached as f64 * price.cached_per_1k() / 1000.0
        + written as f64 * price.cache_write_per_1k() / 1000.0
        + (u.completion_tokens - reasoning) as f64 * price.completion_per_1k / 1000.0
        + reasoning as f64 * price.reasoning_per_1k() / 1000.0
}

// ---- The estimator -------------------------------------------------------------------------
//
// Used when the upstream reports no usage (it omits it, the stream is cut short, the client
// disconnects, the upstream fails mid-stream). Tokens are estimated from the UTF-8 bytes of the
// text that passed through: one token per 4 bytes (rounded up), the usual figure for English
// with BPE tokenizers, plus 4 tokens of framing per prompt message and 3 for the reply. The
// error on the fixtures is measured by `estimator_error_on_fixtures` in core/tests.

/// Bytes of text per token.
pub const BYTES_PER_TOKEN: u64 = 4;
/// Framing tokens per prompt message (role markers).
pub const TOKENS_PER_MESSAGE: u64 = 4;
/// Framing tokens for the reply.
pub const REPLY_TOKENS: u64 = 3;

/// Tokens for `bytes` bytes of text.
pub fn tokens_from_bytes(bytes: u64) -> u64 {
    bytes.div_ceil(BYTES_PER_TOKEN)
}

/// Prompt tokens of a pivot (OpenAI chat) request: every string in `messages` and `tools`
/// (texts, tool arguments and schemas; image data URLs count at their length, an over-estimate).
pub fn estimate_prompt_tokens(body: &Map<String, Value>) -> u64 {
    let mut bytes = 0u64;
    let mut messages = 0u64;
    if let Some(Value::Array(ms)) = body.get("messages") {
        messages = ms.len() as u64;
        for m in ms {
            bytes = bytes.saturating_add(string_bytes(m, 0));
        }
    }
    if let Some(t) = body.get("tools") {
        bytes = bytes.saturating_add(string_bytes(t, 0));
    }
    tokens_from_bytes(bytes).saturating_add(messages.saturating_mul(TOKENS_PER_MESSAGE)).saturating_add(REPLY_TOKENS)
}

/// Total UTF-8 bytes of the strings in `v` (keys of objects included), bounded in depth.
fn string_bytes(v: &Value, depth: u32) -> u64 {
    if depth > crate::dialect::guard::MAX_JSON_DEPTH as u32 {
        return 0;
    }
    match v {
        Value::String(s) => s.len() as u64,
        Value::Array(a) => a.iter().map(|x| string_bytes(x, depth + 1)).fold(0u64, u64::saturating_add),
        Value::Object(o) => o
            .iter()
            .filter(|(k, _)| k.as_str() != "role" && k.as_str() != "type")
            .map(|(_, x)| string_bytes(x, depth + 1))
            .fold(0u64, u64::saturating_add),
        _ => 0,
    }
}

/// Completion text bytes in a pivot chunk or completion: `content`, `refusal`, `reasoning_content`
/// and tool-call `arguments`, in `delta` or `message` of every choice.
pub fn pivot_text_bytes(v: &Value) -> u64 {
    let Some(choices) = v.get("choices").and_then(Value::as_array) else { return 0 };
    let mut n = 0u64;
    for c in choices {
        let Some(m) = c.get("delta").or_else(|| c.get("message")) else { continue };
        for f in ["content", "refusal", "reasoning_content"] {
            if let Some(s) = m.get(f).and_then(Value::as_str) {
                n = n.saturating_add(s.len() as u64);
            }
        }
        if let Some(calls) = m.get("tool_calls").and_then(Value::as_array) {
            for tc in calls {
                let f = tc.get("function");
                for k in ["name", "arguments"] {
                    if let Some(s) = f.and_then(|f| f.get(k)).and_then(Value::as_str) {
                        n = n.saturating_add(s.len() as u64);
                    }
                }
            }
        }
    }
    n
}

/// Completion text bytes in raw JSON, without parsing it: the lengths of the string values of
/// `"content"`, `"text"`, `"refusal"`, `"arguments"` and `"partial_json"` keys, escapes counted
/// as the byte they stand for (approximately: `\uXXXX` counts 1). For the fast stream path.
pub fn text_len_hint(data: impl AsRef<[u8]>) -> u64 {
    let b = data.as_ref();
    match scan::text_len(b, false) {
        Some((total, _)) => total,
        None => text_len_walk(b, &mut Marks::new(b)),
    }
}

/// `text_len_hint`, and whether `"usage"` appears anywhere in `data` (as a key or not): both
/// from one look at the bytes.
pub fn text_len_and_usage_key(data: &[u8]) -> (u64, bool) {
    if let Some(r) = scan::text_len(data, true) {
        return r;
    }
    let mut marks = Marks::new(data);
    let total = text_len_walk(data, &mut marks);
    // The marks the walk did not need (after an escape) are still looked at for `"usage"`.
    marks.by_ref().for_each(drop);
    (total, marks.usage)
}

fn text_len_walk(b: &[u8], marks: &mut Marks<'_>) -> u64 {
    let mut total = 0u64;
    // Where the search for the next string starts (outside any string), as in `text_len_from`:
    // from the first escape met inside a string, that walk takes over from here.
    let mut i = 0usize;
    // Without an escape every quote closes the string the one before it opened: the strings
    // are read from the positions of the quotes alone.
    loop {
        // The next string's opening quote (a backslash outside strings is not looked at).
        let start = loop {
            match marks.next() {
                None => return total,
                Some(p) if b.get(p) == Some(&b'"') => break p,
                Some(_) => {}
            }
        };
        let end = match marks.next() {
            // Unterminated: skipped (a key needs its closing quote), nothing more to count.
            None => return total,
            Some(p) if b.get(p) == Some(&b'"') => p,
            Some(_) => return text_len_from(b, i, total),
        };
        let name = b.get(start + 1..end).unwrap_or(&[]);
        if !matches!(name, b"content" | b"text" | b"refusal" | b"arguments" | b"partial_json") {
            i = end + 1;
            continue;
        }
        let mut j = end + 1;
        while matches!(b.get(j), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            j += 1;
        }
        if b.get(j) != Some(&b':') {
            i = end + 1;
            continue;
        }
        j += 1;
        while matches!(b.get(j), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            j += 1;
        }
        if b.get(j) != Some(&b'"') {
            // The next mark is at `j` or after it (a backslash there is outside strings).
            i = j;
            continue;
        }
        // The value's opening quote is the next mark; its closing quote the one after.
        let _ = marks.next();
        match marks.next() {
            None => return total.saturating_add(b.len().saturating_sub(j + 1) as u64),
            Some(p) if b.get(p) == Some(&b'"') => {
                total = total.saturating_add((p - j - 1) as u64);
                i = p + 1;
            }
            Some(_) => return text_len_from(b, i, total),
        }
    }
}

/// The positions of the quotes and backslashes of `b`, in order, found eight bytes at a time
/// (a stream event's strings are a few bytes long: a search per string costs more to start than
/// to run).
struct Marks<'a> {
    b: &'a [u8],
    /// Where the word after the current one starts.
    at: usize,
    /// A bit (the high bit of its byte) for each mark of the current word not handed out yet.
    mask: u64,
    /// A quote handed out opens `"usage"`.
    usage: bool,
}

impl<'a> Marks<'a> {
    fn new(b: &'a [u8]) -> Self {
        Marks { b, at: 0, mask: 0, usage: false }
    }
}

impl Iterator for Marks<'_> {
    type Item = usize;

    #[inline(always)]
    fn next(&mut self) -> Option<usize> {
        const LO: u64 = 0x0101_0101_0101_0101;
        const L7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
        const HI: u64 = 0x8080_8080_8080_8080;
        // The high bit of each zero byte of `x`, exactly (no carry crosses a byte).
        let zero = |x: u64| !(((x & L7) + L7) | x) & HI;
        while self.mask == 0 {
            let rest = self.b.get(self.at..).filter(|r| !r.is_empty())?;
            let v = match rest.first_chunk::<8>() {
                Some(w) => u64::from_le_bytes(*w),
                None => {
                    let mut word = [0u8; 8];
                    for (d, s) in word.iter_mut().zip(rest) {
                        *d = *s;
                    }
                    u64::from_le_bytes(word)
                }
            };
            // The zero bytes padding a short last word are neither mark.
            self.mask = zero(v ^ (LO * u64::from(b'"'))) | zero(v ^ (LO * u64::from(b'\\')));
            self.at += 8;
        }
        let bit = self.mask.trailing_zeros() as usize;
        self.mask &= self.mask - 1;
        let p = self.at - 8 + bit / 8;
        if self.b.get(p + 1) == Some(&b'u') && self.b.get(p..p + 7) == Some(b"\"usage\"") {
            self.usage = true;
        }
        Some(p)
    }
}

/// `text_len_hint` from `i` (outside any string) with `total` counted before it: string by
/// string, escapes read.
fn text_len_from(b: &[u8], mut i: usize, mut total: u64) -> u64 {
    // The gaps between strings are a byte or a few (`":"`, `,"`, `:123,"`): looked through a
    // byte at a time, which costs less there than a search's setup.
    while let Some(off) = b.get(i..).and_then(|rest| rest.iter().position(|&c| c == b'"')) {
        let start = i + off;
        let rest = b.get(start..).unwrap_or(&[]);
        // The keys counted start with different letters: the second byte names the only one
        // this string can be.
        let key: &[u8] = match rest.get(1) {
            Some(b'c') => b"\"content\"",
            Some(b't') => b"\"text\"",
            Some(b'r') => b"\"refusal\"",
            Some(b'a') => b"\"arguments\"",
            Some(b'p') => b"\"partial_json\"",
            _ => b"",
        };
        if key.is_empty() || !rest.starts_with(key) {
            // Skip this string (key or value) entirely so values are never read as keys.
            i = string_end(b, start + 1);
            continue;
        }
        let mut j = start + key.len();
        while matches!(b.get(j), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            j += 1;
        }
        if b.get(j) != Some(&b':') {
            i = start + key.len();
            continue;
        }
        j += 1;
        while matches!(b.get(j), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            j += 1;
        }
        if b.get(j) != Some(&b'"') {
            i = j;
            continue;
        }
        let (len, end) = string_len(b, j + 1);
        total = total.saturating_add(len);
        i = end;
    }
    total
}

/// The first index in `b` of `x` or `y`. The strings of a stream event and the gaps between
/// them are a few bytes long, where memchr's setup costs more than the search: the first
/// `SHORT` bytes are looked at eight at a time in a word, the rest with memchr.
#[inline]
fn find2(x: u8, y: u8, b: &[u8]) -> Option<usize> {
    const SHORT: usize = 64;
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let (head, tail) = b.split_at(b.len().min(SHORT));
    let mut words = head.chunks_exact(8);
    let mut base = 0usize;
    for w in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(w);
        let v = u64::from_le_bytes(bytes);
        let (vx, vy) = (v ^ (LO * u64::from(x)), v ^ (LO * u64::from(y)));
        // The high bit of each byte that is zero in `vx` or `vy`; the lowest one is exact.
        let found = (vx.wrapping_sub(LO) & !vx | vy.wrapping_sub(LO) & !vy) & HI;
        if found != 0 {
            return Some(base + (found.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    if let Some(p) = words.remainder().iter().position(|&c| c == x || c == y) {
        return Some(base + p);
    }
    memchr::memchr2(x, y, tail).map(|p| p + head.len())
}

/// Index just past the closing quote of the JSON string whose content starts at `i` (the end
/// of `b` when it is not closed).
fn string_end(b: &[u8], mut i: usize) -> usize {
    while let Some(rest) = b.get(i..) {
        let Some(off) = find2(b'"', b'\\', rest) else { return b.len() };
        i += off;
        if rest.get(off) == Some(&b'"') {
            return i + 1;
        }
        i += if b.get(i + 1) == Some(&b'u') { 6 } else { 2 };
    }
    i
}

/// (decoded length, index past the closing quote) of the JSON string whose content starts at `i`.
fn string_len(b: &[u8], mut i: usize) -> (u64, usize) {
    let mut n = 0u64;
    while let Some(rest) = b.get(i..) {
        let Some(off) = find2(b'"', b'\\', rest) else {
            // Unterminated: every byte left counts.
            n = n.saturating_add(rest.len() as u64);
            return (n, b.len());
        };
        n = n.saturating_add(off as u64);
        i += off;
        if rest.get(off) == Some(&b'"') {
            return (n, i + 1);
        }
        i += if b.get(i + 1) == Some(&b'u') { 6 } else { 2 };
        n += 1;
    }
    (n, i)
}

#[cfg(test)]
#[path = "tests/usage_tests.rs"]
mod tests;
