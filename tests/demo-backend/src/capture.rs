//! Ring buffer of the last requests, for tests (`/__demo/requests`), and optionally a log file
//! of every request (`--capture-log PATH`): one JSON line per request with all its headers and
//! its whole body, appended as requests arrive, never trimmed or cleared, so that a test can
//! search everything a session sent upstream.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::path::Path;
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
    log: Option<Mutex<File>>,
}

impl Capture {
    pub fn new(enabled: bool, name: &str) -> Self {
        Capture {
            enabled,
            name: name.to_string(),
            ring: Mutex::new(VecDeque::with_capacity(if enabled { CAPACITY } else { 0 })),
            log: None,
        }
    }

    /// Also append every request to the file at `path` (created, or appended to).
    pub fn with_log(mut self, path: &Path) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        self.log = Some(Mutex::new(file));
        Ok(self)
    }

    /// Appends one request to the log file, if there is one. `complete`: the whole body was
    /// read (else `body` is empty and the request was refused or cut while its body was read).
    /// A failed write is reported on stderr and turns the log's last line into `"log_error"`
    /// the next time it works, so a reader can never mistake a gap for a clean log.
    pub fn log(&self, parts: &Parts, body: &[u8], complete: bool) {
        let Some(log) = &self.log else { return };
        let line = json!({
            "ts_ms": unix_millis(),
            "method": parts.method.as_str(),
            "path": parts.uri.path_and_query().map_or_else(|| parts.uri.path().to_string(), |pq| pq.as_str().to_string()),
            "headers": parts.headers.iter().map(|(k, v)| json!([k.as_str(), String::from_utf8_lossy(v.as_bytes())])).collect::<Vec<_>>(),
            "body_size": body.len(),
            "body": String::from_utf8_lossy(body),
            "complete": complete,
        });
        let mut bytes = line.to_string().into_bytes();
        bytes.push(b'\n');
        let mut file = log.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = file.write_all(&bytes).and_then(|()| file.flush()) {
            eprintln!("demo-backend: cannot write the capture log: {e}");
            let _ = file.write_all(b"\"log_error\"\n");
        }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Entry>> {
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn record(&self, parts: &Parts, body: &[u8]) {
        self.log(parts, body, true);
        if !self.enabled {
            return;
        }
        let entry = Entry {
            ts_ms: unix_millis(),
            method: parts.method.as_str().to_string(),
            path: parts.uri.path_and_query().map_or_else(|| parts.uri.path().to_string(), |pq| pq.as_str().to_string()),
            headers: parts
                .headers
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
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
