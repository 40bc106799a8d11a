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
            _ => continue,
        };
        add(slot, v);
    }
    h.method = method.unwrap_or_default();
    h.path = path.unwrap_or_default();
    h
}

#[cfg(test)]
#[path = "tests/headers_tests.rs"]
mod tests;
