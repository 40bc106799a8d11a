//! Client keys: extraction from the request, SHA-256 hashing, lookup among configured hashes.
//!
//! Only hashes are configured. Lookup is a binary search over sorted 32-byte hashes (36 bytes a
//! key in memory, no per-entry allocation), followed by a constant-time comparison of the whole
//! hash. The search's timing depends only on the SHA-256 of the presented key, which tells an
//! attacker nothing about any configured key.

use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

pub fn sha256(data: &[u8]) -> Hash {
    let out = Sha256::digest(data);
    let mut h = [0u8; 32];
    h.copy_from_slice(&out);
    h
}

pub fn to_hex(h: &Hash) -> String {
    fn digit(n: u8) -> char {
        char::from(if n < 10 { b'0' + n } else { b'a' + n - 10 })
    }
    let mut s = String::with_capacity(64);
    for b in h {
        s.push(digit(b >> 4));
        s.push(digit(b & 15));
    }
    s
}

pub fn from_hex(s: &str) -> Option<Hash> {
    let bytes = s.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut h = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let hi = hex_val(*pair.first()?)?;
        let lo = hex_val(*pair.get(1)?)?;
        *h.get_mut(i)? = (hi << 4) | lo;
    }
    Some(h)
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Compares two hashes in time independent of where they differ.
pub fn ct_eq(a: &Hash, b: &Hash) -> bool {
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b.iter()) {
        diff |= x ^ y;
    }
    diff == 0
}

/// Sorted table of configured key hashes -> key index.
#[derive(Debug, Default, Clone)]
pub struct KeyTable {
    entries: Vec<(Hash, u32)>,
}

impl KeyTable {
    /// Builds the table; on a duplicated hash, returns the hash and the two key indices that
    /// carry it (lower index first).
    pub fn build(mut entries: Vec<(Hash, u32)>) -> Result<Self, (Hash, u32, u32)> {
        // By hash, then key index (so the two indices a repeated hash reports are its lowest
        // two), with a byte-wise radix sort in place: no comparisons chasing memory at a
        // million keys, and none of the standard sort's code in the .wasm.
        crate::sort::radix_sort(&mut entries);
        for w in entries.windows(2) {
            if let [a, b] = w {
                if a.0 == b.0 {
                    return Err((a.0, a.1.min(b.1), a.1.max(b.1)));
                }
            }
        }
        Ok(KeyTable { entries })
    }

    pub fn lookup(&self, hash: &Hash) -> Option<u32> {
        let i = self.entries.binary_search_by(|e| e.0.cmp(hash)).ok()?;
        let (h, idx) = self.entries.get(i)?;
        if ct_eq(h, hash) {
            Some(*idx)
        } else {
            None
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Where a client's key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    Bearer,
    XApiKey,
    XGoogApiKey,
    QueryKey,
}

/// Outcome of reading the key from the request headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented<'a> {
    Key(&'a str, KeySource),
    Missing,
    /// Present but unusable (e.g. `Authorization: Basic ...`, empty bearer, two different keys).
    Malformed(&'static str),
}

/// Reads the client's key from `Authorization: Bearer` or `x-api-key` (and, on Gemini paths,
/// `x-goog-api-key` or `?key=`). Two different keys in one request are refused.
pub fn extract<'a>(
    authorization: Option<&'a str>,
    x_api_key: Option<&'a str>,
    x_goog_api_key: Option<&'a str>,
    query_key: Option<&'a str>,
) -> Presented<'a> {
    let mut found: Option<(&'a str, KeySource)> = None;
    if let Some(auth) = authorization {
        let auth = auth.trim();
        let (scheme, rest) = auth.split_once(' ').unwrap_or((auth, ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Presented::Malformed("the Authorization header must use the Bearer scheme");
        }
        let token = rest.trim();
        if token.is_empty() {
            return Presented::Malformed("the Authorization header has an empty bearer token");
        }
        found = Some((token, KeySource::Bearer));
    }
    for (value, source) in
        [(x_api_key, KeySource::XApiKey), (x_goog_api_key, KeySource::XGoogApiKey), (query_key, KeySource::QueryKey)]
    {
        if let Some(v) = value {
            let v = v.trim();
            if v.is_empty() {
                continue;
            }
            match found {
                Some((k, _)) if k != v => return Presented::Malformed("the request carries two different API keys"),
                Some(_) => {}
                None => found = Some((v, source)),
            }
        }
    }
    match found {
        Some((k, _)) if k.bytes().any(|b| b == b',' || b.is_ascii_whitespace() || b.is_ascii_control()) => {
            // A comma is how repeated headers are joined: two keys in one value.
            Presented::Malformed("the API key contains a comma, a space or a control character (more than one key?)")
        }
        Some((k, s)) => Presented::Key(k, s),
        None => Presented::Missing,
    }
}

#[cfg(test)]
#[path = "tests/keys_tests.rs"]
mod tests;
