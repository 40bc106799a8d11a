//! Ring buffer of the last requests, for tests (`/__demo/requests`).

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use hyper::http::request::Parts;
use serde_json::{json, Value};

use crate::util::unix_millis;

/// Requests kept.
pub const CAPACITY: usize = 200;
/// Body bytes kept per request.
pub const BODY_PREFIX: usize = 4096;

struct Entry {
    ts_ms: u64,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body_size: usize,
    body: String,
}

pub struct Capture {
    enabled: bool,
    /// The instance's `--name`, kept with every entry.
    name: String,
    ring: Mutex<VecDeque<Entry>>,
}

impl Capture {
    pub fn new(enabled: bool, name: &str) -> Self {
        Capture {
            enabled,
            name: name.to_string(),
            ring: Mutex::new(VecDeque::with_capacity(if enabled { CAPACITY } else { 0 })),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Entry>> {
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn record(&self, parts: &Parts, body: &[u8]) {
        if !self.enabled {
            return;
        }
        let entry = Entry {
            ts_ms: unix_millis(),
            method: parts.method.as_str().to_string(),
            path: parts
                .uri
                .path_and_query()
                .map_or_else(|| parts.uri.path().to_string(), |pq| pq.as_str().to_string()),
            headers: parts
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body_size: body.len(),
            body: String::from_utf8_lossy(&body[..body.len().min(BODY_PREFIX)]).into_owned(),
        };
        let mut ring = self.lock();
        if ring.len() >= CAPACITY {
            ring.pop_front();
        }
        ring.push_back(entry);
    }

    /// All captured requests, oldest first.
    pub fn to_json(&self) -> Value {
        let ring = self.lock();
        Value::Array(
            ring.iter()
                .map(|e| {
                    json!({
                        "ts_ms": e.ts_ms,
                        "backend": self.name,
                        "method": e.method,
                        "path": e.path,
                        "headers": e.headers.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
                        "body_size": e.body_size,
                        "body": e.body,
                    })
                })
                .collect(),
        )
    }

    pub fn clear(&self) {
        self.lock().clear();
    }
}
