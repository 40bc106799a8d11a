//! The compact key list (`key_table`): one JSON string, one line per key (lines separated by
//! `\n`), about 50 bytes a key instead of the ~125 of a `keys` object, read without a JSON object
//! per key. A line is fields separated by one space:
//!
//! ```text
//! SHA256 ACCOUNT_ID [id=KEY_ID] [cap=CREDITS] [quota=N] [log] [rpm=N] [period=month|day] [dev]
//! ```
//!
//! `SHA256` is the key's SHA-256 in unpadded base64url (43 characters) or hex (64); the key's id
//! is `key-` and the first 12 hex digits of the SHA-256 unless `id=` gives one (what
//! `tollgate-keytool add-key` mints); `cap=`, `quota=` and `log` are a `keys` entry's
//! `spend_cap`, `sandbox_daily_quota` and `log_content`; `rpm=`, `period=` (with `cap=`) and `dev`
//! its `rpm`, `spend_cap_period` and `environment: "development"`. A trailing newline is allowed, an empty
//! line is not. Every error names its line (1-based).

use std::fmt;

use serde::de::Visitor;
use serde::{Deserialize, Deserializer};

use super::key_id::KeyId;
use super::{CapPeriod, KeyPolicy, RawKeys};
use crate::keys::{self, Hash};

/// The keys read from a `key_table`, line by line.
#[derive(Debug, Default)]
pub(super) struct KeyLines {
    pub(super) keys: RawKeys,
    /// Lines read so far.
    lines: usize,
}

/// A line that valid JSON text cannot hold as written (a control character or bytes that are
/// not UTF-8): the piece reader sends such a document to the whole parser, whose error it is.
#[derive(Debug)]
pub(super) struct NotText;

/// The most keys a `key_table` in a document of `len` bytes can hold: a line is at least 47
/// bytes (43 of base64url, a space, a one-character account, a two-byte `\n` escape).
pub(super) fn line_capacity(len: usize) -> usize {
    len / 47 + 1
}

impl KeyLines {
    pub(super) fn with_capacity(cap: usize) -> KeyLines {
        KeyLines { keys: RawKeys::with_capacity(cap), lines: 0 }
    }

    /// Reads one line (without its `\n`). `raw`: the line as written in the document (the piece
    /// reader), where a control character or bytes that are not UTF-8 mean the document is not
    /// JSON; decoded from the document's escapes, a control character is the line's error.
    /// After the first invalid line, later lines are only counted: the first error is reported.
    pub(super) fn line(&mut self, line: &[u8], raw: bool) -> Result<(), NotText> {
        self.lines += 1;
        let n = self.lines;
        let text = std::str::from_utf8(line);
        if raw && (text.is_err() || line.iter().any(|&b| b < 0x20)) {
            return Err(NotText);
        }
        if self.keys.invalid.is_some() {
            return Ok(());
        }
        let parsed = match text {
            Ok(text) => fields(text),
            Err(_) => Err("not UTF-8 text".to_string()),
        };
        match parsed {
            Err(msg) => {
                let i = self.keys.records.len();
                self.keys.invalid = Some((i, 0, format!("key_table line {n}: {msg}")));
                Ok(())
            }
            Ok(f) => {
                let id = match f.id {
                    Some(id) => KeyId::new(id),
                    None => default_key_id(&f.hash),
                };
                self.keys.push_parsed(f.hash, id, f.account, f.cap, f.quota, f.log).map_err(|_| NotText)?;
                if let Some(r) = self.keys.records.last_mut() {
                    r.set_policy(f.policy);
                }
                Ok(())
            }
        }
    }

    /// Reads the text after the last `\n` (empty after a trailing newline or in an empty table).
    pub(super) fn last(&mut self, line: &[u8], raw: bool) -> Result<(), NotText> {
        if line.is_empty() {
            return Ok(());
        }
        self.line(line, raw)
    }

    /// The whole table's text at once (the document parsed whole).
    fn text(&mut self, text: &[u8]) -> Result<(), NotText> {
        let mut rest = text;
        while let Some(at) = memchr::memchr(b'\n', rest) {
            self.line(rest.get(..at).unwrap_or_default(), false)?;
            rest = rest.get(at + 1..).unwrap_or_default();
        }
        self.last(rest, false)
    }

    pub(super) fn into_keys(self) -> RawKeys {
        self.keys
    }
}

/// One line's fields.
struct Fields<'a> {
    hash: Hash,
    account: &'a str,
    id: Option<&'a str>,
    cap: Option<f64>,
    quota: Option<u32>,
    log: bool,
    /// `rpm=`, `period=`, `dev`.
    policy: KeyPolicy,
}

/// The id of a key whose line gives none: `key-` and the first 12 hex digits of its SHA-256.
pub fn default_id(hash: &Hash) -> String {
    default_key_id(hash).to_string()
}

/// `default_id` as the key records hold it (inline: no allocation).
fn default_key_id(hash: &Hash) -> KeyId {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = *b"key-000000000000";
    for (pair, &b) in id.get_mut(4..).unwrap_or_default().chunks_exact_mut(2).zip(hash.iter()) {
        for (out, d) in pair.iter_mut().zip([b >> 4, b & 15]) {
            *out = HEX.get(usize::from(d)).copied().unwrap_or(b'0');
        }
    }
    KeyId::new(std::str::from_utf8(&id).unwrap_or_default())
}

/// A line's fields, or what is wrong with it.
fn fields(text: &str) -> Result<Fields<'_>, String> {
    if text.is_empty() {
        return Err("an empty line".to_string());
    }
    if text.chars().any(char::is_control) {
        return Err("a control character (fields are separated by one space)".to_string());
    }
    let mut parts = text.split(' ');
    let hash_text = parts.next().unwrap_or_default();
    let hash = match hash_text.len() {
        43 => from_base64url(hash_text.as_bytes()),
        64 => keys::from_hex(hash_text),
        _ => None,
    }
    .ok_or("the first field must be the key's SHA-256, in base64url (43 characters) or hex (64)")?;
    let account = parts.next().filter(|a| !a.is_empty()).ok_or("the second field must be the key's account id")?;
    let mut f = Fields { hash, account, id: None, cap: None, quota: None, log: false, policy: KeyPolicy::default() };
    let mut period = None;
    for part in parts {
        let (name, value) = part.split_once('=').unwrap_or((part, ""));
        let repeated = match (name, part.contains('=')) {
            ("id", true) if !value.is_empty() => f.id.replace(value).is_some(),
            ("cap", true) => {
                let cap = crate::number::parse_f64(value).filter(|c| *c >= 0.0);
                f.cap.replace(cap.ok_or("cap: must be a non-negative number")?).is_some()
            }
            ("quota", true) => {
                f.quota.replace(value.parse::<u32>().map_err(|_| "quota: must be a whole number")?).is_some()
            }
            ("log", false) => std::mem::replace(&mut f.log, true),
            ("rpm", true) => {
                f.policy.rpm.replace(value.parse::<u32>().map_err(|_| "rpm: must be a whole number")?).is_some()
            }
            ("period", true) => {
                period.replace(cap_period(value).ok_or("period: must be total, month or day")?).is_some()
            }
            ("dev", false) => std::mem::replace(&mut f.policy.development, true),
            ("", false) => return Err("an empty field (fields are separated by one space)".to_string()),
            _ => {
                return Err(format!(
                    "unknown field '{part}' (id=KEY_ID, cap=CREDITS, quota=N, log, rpm=N, period=month|day or dev)"
                ))
            }
        };
        if repeated {
            return Err(format!("'{name}' is given twice"));
        }
    }
    if let Some(p) = period {
        if f.cap.is_none() {
            return Err("period: needs cap=".to_string());
        }
        f.policy.cap_period = p;
    }
    Ok(f)
}

/// A `period=` value.
fn cap_period(text: &str) -> Option<CapPeriod> {
    match text {
        "total" => Some(CapPeriod::Total),
        "month" => Some(CapPeriod::Month),
        "day" => Some(CapPeriod::Day),
        _ => None,
    }
}

/// Unpadded base64url of 32 bytes (43 characters, the last one's two low bits zero: one text
/// for each hash).
pub fn from_base64url(s: &[u8]) -> Option<Hash> {
    if s.len() != 43 {
        return None;
    }
    let val = |c: u8| match B64_VALUE.get(usize::from(c)) {
        Some(&v) if v < 64 => Some(u32::from(v)),
        _ => None,
    };
    let mut h = [0u8; 32];
    let mut out = h.iter_mut();
    for chunk in s.chunks(4) {
        let mut acc = 0u32;
        for &c in chunk {
            acc = (acc << 6) | val(c)?;
        }
        // A chunk of n characters carries n*6 bits: 3 bytes from 4, 2 bytes (and 2 spare bits)
        // from the last 3.
        let bytes: &[u32] = if chunk.len() == 4 { &[16, 8, 0] } else { &[10, 2] };
        if chunk.len() == 3 && acc & 3 != 0 {
            return None;
        }
        for &shift in bytes {
            *out.next()? = u8::try_from((acc >> shift) & 0xff).ok()?;
        }
    }
    Some(h)
}

/// Each byte's value as a base64url digit; 64 for a byte that is not one. Built when the crate
/// compiles: an index out of range would fail the build, never the filter.
#[allow(clippy::indexing_slicing)]
const B64_VALUE: [u8; 256] = {
    let mut t = [64u8; 256];
    let mut i = 0;
    while i < 64 {
        t[B64_ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    t
};

const B64_ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Unpadded base64url of a hash (43 characters).
pub fn to_base64url(h: &Hash) -> String {
    let mut s = String::with_capacity(43);
    let mut put = |v: u32| {
        if let Some(&c) = B64_ALPHABET.get(usize::try_from(v & 63).unwrap_or(0)) {
            s.push(char::from(c));
        }
    };
    for chunk in h.chunks(3) {
        let acc = chunk.iter().fold(0u32, |a, &b| (a << 8) | u32::from(b));
        let shifts: &[u32] = if chunk.len() == 3 { &[18, 12, 6, 0] } else { &[10, 4] };
        for &sh in shifts {
            put(acc >> sh);
        }
        if chunk.len() == 2 {
            put(acc << 2);
        }
    }
    s
}

thread_local! {
    /// Room to reserve for a `key_table` parsed whole (see `line_capacity`).
    pub(super) static LINE_CAPACITY: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

impl<'de> Deserialize<'de> for KeyLines {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(LinesVisitor)
    }
}

struct LinesVisitor;

impl Visitor<'_> for LinesVisitor {
    type Value = KeyLines;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string of key lines")
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<KeyLines, E> {
        let mut out = KeyLines::with_capacity(LINE_CAPACITY.with(std::cell::Cell::get).min(s.len() / 44 + 1));
        out.text(s.as_bytes()).map_err(|_| E::custom("key_table: not text"))?;
        Ok(out)
    }
}

#[cfg(test)]
#[path = "../tests/key_table_tests.rs"]
mod tests;
