//! The request headers the filter reads, from the host's raw header pairs: values decoded lossily
//! (a non-UTF-8 byte becomes U+FFFD, so a mangled key fails its lookup instead of failing the
//! VM), and a repeated header joined with ", " as HTTP lists them (RFC 9110, 5.3), so that
//! `x-api-key: A` plus `x-api-key: B` is one malformed value, never the first key.

/// The request headers the exchange needs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HeadValues {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub x_api_key: Option<String>,
    pub x_goog_api_key: Option<String>,
    pub request_id: Option<String>,
    pub content_type: Option<String>,
    pub content_length: Option<String>,
    /// An `anthropic-version` header is present (its value is not needed).
    pub anthropic_version: bool,
}

fn add(slot: &mut Option<String>, value: &[u8]) {
    let v = String::from_utf8_lossy(value);
    match slot {
        Some(s) => {
            s.push_str(", ");
            s.push_str(&v);
        }
        None => *slot = Some(v.into_owned()),
    }
}

/// Picks the headers out of all request header pairs (names are lowercase in Envoy).
pub fn collect<K: AsRef<str>, V: AsRef<[u8]>>(pairs: &[(K, V)]) -> HeadValues {
    let mut h = HeadValues::default();
    let (mut method, mut path) = (None, None);
    for (k, v) in pairs {
        let v = v.as_ref();
        let slot = match k.as_ref() {
            ":method" => &mut method,
            ":path" => &mut path,
            "authorization" => &mut h.authorization,
            "x-api-key" => &mut h.x_api_key,
            "x-goog-api-key" => &mut h.x_goog_api_key,
            "x-request-id" => &mut h.request_id,
            "content-type" => &mut h.content_type,
            "content-length" => &mut h.content_length,
            "anthropic-version" => {
                h.anthropic_version = true;
                continue;
            }
            _ => continue,
        };
        add(slot, v);
    }
    h.method = method.unwrap_or_default();
    h.path = path.unwrap_or_default();
    h
}

/// Client request headers that always go upstream (besides pseudo-headers): what a request
/// needs to be understood, and tracing. Everything else a client sends is removed before the
/// request leaves (an allowlist: unknown headers never pass), unless the configuration names it
/// in `pass_request_headers`. The filter then sets the cluster's own credential and headers.
pub const FORWARDED: &[&str] = &[
    "accept",
    "content-length",
    "content-type",
    "traceparent",
    "tracestate",
    "transfer-encoding",
    "user-agent",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-request-id",
];

/// Headers that carry a client's credential or identity at some provider: never forwarded,
/// whatever the configuration says.
pub const NEVER_FORWARDED: &[&str] = &[
    "api-key",
    "authorization",
    "cookie",
    "openai-organization",
    "openai-project",
    "proxy-authorization",
    "x-api-key",
    "x-goog-api-key",
];

/// Whether `name` (lowercase) is a header that must never be forwarded.
pub fn never_forwarded(name: &str) -> bool {
    NEVER_FORWARDED.contains(&name)
}

/// Whether the client's header `name` (lowercase, as Envoy gives it) may go upstream: a
/// pseudo-header, one of [`FORWARDED`], or one the configuration passes (`extra`: names, or
/// prefixes ending in `*`), and never one of [`NEVER_FORWARDED`].
pub fn forwarded(name: &str, extra: &[String]) -> bool {
    if never_forwarded(name) {
        return false;
    }
    name.starts_with(':')
        || FORWARDED.contains(&name)
        || extra.iter().any(|e| match e.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => e == name,
        })
}

/// The names among the request's headers that must be removed before it goes upstream.
pub fn not_forwarded<'a, K: AsRef<str>, V>(pairs: &'a [(K, V)], extra: &[String]) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for (k, _) in pairs {
        let k = k.as_ref();
        if !forwarded(k, extra) && !out.contains(&k) {
            out.push(k);
        }
    }
    out
}

#[cfg(test)]
#[path = "tests/headers_tests.rs"]
mod tests;
