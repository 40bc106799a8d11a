//! What the upstream says never carries the cluster's credentials: its error messages are
//! relayed with them replaced by `[redacted]`, and cut to a bounded length.

use serde_json::Value;

/// The message of an error body in any dialect, or its text; credentials redacted before it is
/// cut (so no prefix of one survives the cut).
pub(super) fn upstream_message(body: &[u8], redact: &[String]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        let m =
            v.pointer("/error/message").or_else(|| v.get("message")).or_else(|| v.get("error")).and_then(Value::as_str);
        if let Some(m) = m {
            return truncate(&redact_text(m, redact), 500);
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        "no details".to_string()
    } else {
        truncate(&redact_text(text, redact), 500)
    }
}

/// `text` with every occurrence of each of `secrets` replaced by `[redacted]`.
pub fn redact_text(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), "[redacted]");
        }
    }
    out
}

/// A searcher for `error`, built once (building one per chunk costs more than the search).
pub(super) fn error_finder() -> &'static memchr::memmem::Finder<'static> {
    static FINDER: std::sync::OnceLock<memchr::memmem::Finder<'static>> = std::sync::OnceLock::new();
    FINDER.get_or_init(|| memchr::memmem::Finder::new(b"error"))
}

/// `redact_text` on bytes, in place: each credential as it is and as it reads inside a JSON
/// string (where a `"` or `\` in it is escaped).
pub(super) fn redact_bytes(buf: &mut Vec<u8>, secrets: &[String]) {
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        redact_needle(buf, s.as_bytes());
        let escaped = serde_json::to_string(s).unwrap_or_default();
        if let Some(inner) = escaped.get(1..escaped.len().saturating_sub(1)).filter(|e| *e != s.as_str()) {
            redact_needle(buf, inner.as_bytes());
        }
    }
}

fn redact_needle(buf: &mut Vec<u8>, needle: &[u8]) {
    if needle.is_empty() || memchr::memmem::find(buf, needle).is_none() {
        return;
    }
    let mut out = Vec::with_capacity(buf.len());
    let mut rest: &[u8] = buf;
    while let Some(i) = memchr::memmem::find(rest, needle) {
        out.extend_from_slice(rest.get(..i).unwrap_or(&[]));
        out.extend_from_slice(b"[redacted]");
        rest = rest.get(i.saturating_add(needle.len())..).unwrap_or(&[]);
    }
    out.extend_from_slice(rest);
    *buf = out;
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", s.get(..end).unwrap_or(""))
}
