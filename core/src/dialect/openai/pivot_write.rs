//! A translated chat request written for an OpenAI upstream straight from the borrowed pivot
//! body: its members in the map's (sorted) order, the pivot-only ones left out, `model` the
//! upstream's and, on a stream, `stream_options` asking for usage. The bytes are those of
//! copying the body, editing the copy and serializing it, without the copy.

use serde_json::{Map, Value};

use crate::dialect::pivot::PIVOT_ONLY_FIELDS;
use crate::sse::write_json_str;

/// The body an OpenAI upstream gets for a pivot request of another front. `None` only if
/// serde_json could not write a value (it cannot, into a `Vec`), as before.
pub fn pivot_chat_body(body: &Map<String, Value>, upstream_model: &str, stream: bool) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(256);
    out.push(b'{');
    // The members written instead of the body's own, in sorted order ("model" < "stream_options"),
    // and whether each is still to be written.
    let mut added = [("model", true), ("stream_options", stream)];
    for (k, v) in body {
        for (name, pending) in added.iter_mut() {
            if *pending && *name < k.as_str() {
                write_added(&mut out, name, upstream_model);
                *pending = false;
            }
        }
        if PIVOT_ONLY_FIELDS.contains(&k.as_str()) {
            continue;
        }
        if let Some((name, pending)) = added.iter_mut().find(|(name, pending)| *pending && *name == k.as_str()) {
            write_added(&mut out, name, upstream_model);
            *pending = false;
            continue;
        }
        member_key(&mut out, k);
        serde_json::to_writer(&mut out, v).ok()?;
    }
    for (name, pending) in added {
        if pending {
            write_added(&mut out, name, upstream_model);
        }
    }
    out.push(b'}');
    Some(out)
}

/// A member's key (after a comma unless it is the first).
fn member_key(out: &mut Vec<u8>, key: &str) {
    if out.len() > 1 {
        out.push(b',');
    }
    write_json_str(out, key);
    out.push(b':');
}

/// One of the members the upstream's body gets in place of the pivot's.
fn write_added(out: &mut Vec<u8>, name: &str, upstream_model: &str) {
    member_key(out, name);
    if name == "model" {
        write_json_str(out, upstream_model);
    } else {
        out.extend_from_slice(br#"{"include_usage":true}"#);
    }
}

#[cfg(test)]
#[path = "../tests/pivot_write_tests.rs"]
mod tests;
