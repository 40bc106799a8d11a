//! A fake proxy-wasm host for driving the glue natively: every ABI function the SDK and the glue
//! import, as `#[no_mangle] extern "C"` functions over thread-local state (headers, bodies,
//! shared data with CAS, metrics, properties, local replies, logs), which also counts the calls
//! by kind. `Envoy` calls the SDK's exported entry points in the order Envoy does.
//!
//! Each test runs on its own thread, and the SDK's dispatcher is thread-local too, so every test
//! is its own host with its own VM.
#![allow(
    dead_code,
    clippy::missing_safety_doc,
    clippy::too_many_arguments,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use proxy_wasm::types::Action;

// Status codes of the ABI.
pub const OK: u32 = 0;
pub const NOT_FOUND: u32 = 1;
pub const BAD_ARGUMENT: u32 = 2;
pub const CAS_MISMATCH: u32 = 8;
pub const INTERNAL_FAILURE: u32 = 10;

// Map and buffer types of the ABI.
pub const REQUEST_HEADERS: u32 = 0;
pub const REQUEST_TRAILERS: u32 = 1;
pub const RESPONSE_HEADERS: u32 = 2;
pub const REQUEST_BODY: u32 = 0;
pub const RESPONSE_BODY: u32 = 1;
pub const HTTP_CALL_RESPONSE_BODY: u32 = 4;
pub const HTTP_CALL_RESPONSE_HEADERS: u32 = 6;
pub const VM_CONFIGURATION: u32 = 6;
pub const PLUGIN_CONFIGURATION: u32 = 7;

pub type Headers = Vec<(String, Vec<u8>)>;

/// A reply the filter sent itself.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalReply {
    pub status: u32,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The host's state for one thread.
#[derive(Default)]
pub struct Host {
    pub maps: HashMap<u32, Headers>,
    pub buffers: HashMap<u32, Vec<u8>>,
    pub properties: HashMap<String, Vec<u8>>,
    pub shared: HashMap<String, (Vec<u8>, u32)>,
    next_cas: u32,
    /// Metrics by name (id = index).
    pub metric_names: Vec<String>,
    pub metrics: BTreeMap<String, i64>,
    pub local_reply: Option<LocalReply>,
    pub logs: Vec<(u32, String)>,
    pub now_ns: u64,
    /// Host calls by ABI function name.
    pub calls: BTreeMap<&'static str, u64>,
    /// Writes the host refuses: (map type, header name) for replace/remove.
    pub refuse_header_writes: Vec<(u32, String)>,
    /// Buffer types whose writes are refused.
    pub refuse_buffer_writes: Vec<u32>,
    /// Buffer types whose reads are refused.
    pub refuse_buffer_reads: Vec<u32>,
    /// Properties whose writes are refused.
    pub refuse_property_writes: Vec<String>,
    /// A stream the filter reset (`proxy_close_stream`): the stream type.
    pub closed: Vec<u32>,
    /// Header writes in order: (map type, "set"/"remove", name).
    pub header_writes: Vec<(u32, &'static str, String)>,
    /// HTTP calls the filter dispatched and nobody answered yet, in order.
    pub http_calls: Vec<HttpCall>,
    /// Refuse `proxy_http_call` with this status (e.g. `BAD_ARGUMENT`: an unknown cluster).
    pub refuse_http_calls: Option<u32>,
    next_token: u32,
    /// The root context's tick period (`proxy_set_tick_period_milliseconds`).
    pub tick_period_ms: Option<u32>,
    /// Streams the filter resumed (`proxy_continue_stream`): the stream type.
    pub continued: Vec<u32>,
}

/// One `proxy_http_call`.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpCall {
    pub token: u32,
    pub cluster: String,
    pub headers: Headers,
    pub body: Vec<u8>,
    pub timeout_ms: u32,
}

impl HttpCall {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }
}

thread_local! {
    pub static HOST: RefCell<Host> = RefCell::new(Host { now_ns: 1_795_434_431_000_000_000, ..Host::default() });
}

pub fn with<R>(f: impl FnOnce(&mut Host) -> R) -> R {
    HOST.with(|h| f(&mut h.borrow_mut()))
}

fn count(name: &'static str) {
    with(|h| *h.calls.entry(name).or_insert(0) += 1);
}

/// Hands bytes to the VM the way the host does: allocated through the module's allocator
/// (`proxy_on_memory_allocate`, the global allocator here), owned by the caller afterwards.
unsafe fn give(bytes: &[u8], data: *mut *mut u8, size: *mut usize) {
    if bytes.is_empty() {
        *data = std::ptr::null_mut();
        *size = 0;
        return;
    }
    let b: Box<[u8]> = bytes.to_vec().into_boxed_slice();
    *size = b.len();
    *data = Box::into_raw(b) as *mut u8;
}

unsafe fn slice<'a>(data: *const u8, size: usize) -> &'a [u8] {
    if size == 0 || data.is_null() {
        &[]
    } else {
        std::slice::from_raw_parts(data, size)
    }
}

unsafe fn text(data: *const u8, size: usize) -> String {
    String::from_utf8_lossy(slice(data, size)).into_owned()
}

pub fn serialize(pairs: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

fn deserialize(bytes: &[u8]) -> Vec<(String, String)> {
    if bytes.is_empty() {
        return Vec::new();
    }
    let n = u32::from_le_bytes(bytes[0..4].try_into().unwrap()) as usize;
    let mut p = 4 + n * 8;
    let mut out = Vec::new();
    for i in 0..n {
        let kl = u32::from_le_bytes(bytes[4 + i * 8..8 + i * 8].try_into().unwrap()) as usize;
        let vl = u32::from_le_bytes(bytes[8 + i * 8..12 + i * 8].try_into().unwrap()) as usize;
        let k = String::from_utf8_lossy(&bytes[p..p + kl]).into_owned();
        p += kl + 1;
        let v = String::from_utf8_lossy(&bytes[p..p + vl]).into_owned();
        p += vl + 1;
        out.push((k, v));
    }
    out
}

fn property_name(path: &[u8]) -> String {
    String::from_utf8_lossy(path).replace('\0', ".")
}

// ---- The ABI the module imports ----

#[no_mangle]
pub unsafe extern "C" fn proxy_log(level: u32, data: *const u8, size: usize) -> u32 {
    count("proxy_log");
    let msg = text(data, size);
    if level >= 5 {
        eprintln!("[critical] {msg}");
    }
    with(|h| h.logs.push((level, msg)));
    OK
}

#[no_mangle]
pub unsafe extern "C" fn proxy_get_log_level(level: *mut u32) -> u32 {
    count("proxy_get_log_level");
    *level = 2;
    OK
}

#[no_mangle]
pub unsafe extern "C" fn proxy_get_current_time_nanoseconds(t: *mut u64) -> u32 {
    count("proxy_get_current_time_nanoseconds");
    *t = with(|h| h.now_ns);
    OK
}

#[no_mangle]
pub unsafe extern "C" fn proxy_set_tick_period_milliseconds(p: u32) -> u32 {
    count("proxy_set_tick_period_milliseconds");
    with(|h| h.tick_period_ms = Some(p));
    OK
}

#[no_mangle]
pub unsafe extern "C" fn proxy_get_buffer_bytes(
    kind: u32,
    start: usize,
    max: usize,
    data: *mut *mut u8,
    size: *mut usize,
) -> u32 {
    count("proxy_get_buffer_bytes");
    let got = with(|h| {
        if h.refuse_buffer_reads.contains(&kind) {
            return Err(INTERNAL_FAILURE);
        }
        let b = h.buffers.get(&kind).cloned().unwrap_or_default();
        let start = start.min(b.len());
        let end = start.saturating_add(max).min(b.len());
        Ok(b[start..end].to_vec())
    });
    match got {
        Ok(b) => {
            give(&b, data, size);
            OK
        }
        Err(s) => s,
    }
}

#[no_mangle]
pub unsafe extern "C" fn proxy_set_buffer_bytes(
    kind: u32,
    start: usize,
    len: usize,
    data: *const u8,
    size: usize,
) -> u32 {
    count("proxy_set_buffer_bytes");
    let new = slice(data, size).to_vec();
    with(|h| {
        if h.refuse_buffer_writes.contains(&kind) {
            return INTERNAL_FAILURE;
        }
        // As Envoy's `Buffer::copyFrom` on a body: from the start, `len` bytes dropped and the
        // data put in front of what is left; at or past the end, appended; anywhere else
        // refused.
        let b = h.buffers.entry(kind).or_default();
        if start == 0 {
            b.splice(..len.min(b.len()), new);
        } else if start >= b.len() {
            b.extend_from_slice(&new);
        } else {
            return BAD_ARGUMENT;
        }
        OK
    })
}

#[no_mangle]
pub unsafe extern "C" fn proxy_get_header_map_pairs(map: u32, data: *mut *mut u8, size: *mut usize) -> u32 {
    count("proxy_get_header_map_pairs");
    let bytes = with(|h| serialize(h.maps.get(&map).map(Vec::as_slice).unwrap_or(&[])));
    give(&bytes, data, size);
    OK
}

#[no_mangle]
pub unsafe extern "C" fn proxy_set_header_map_pairs(map: u32, data: *const u8, size: usize) -> u32 {
    count("proxy_set_header_map_pairs");
    let pairs = deserialize(slice(data, size));
    with(|h| h.maps.insert(map, pairs.into_iter().map(|(k, v)| (k, v.into_bytes())).collect()));
    OK
}

#[no_mangle]
pub unsafe extern "C" fn proxy_get_header_map_value(
    map: u32,
    key: *const u8,
    key_size: usize,
    data: *mut *mut u8,
    size: *mut usize,
) -> u32 {
    count("proxy_get_header_map_value");
    let k = text(key, key_size);
    let v = with(|h| {
        h.maps.get(&map).and_then(|m| m.iter().find(|(n, _)| n.eq_ignore_ascii_case(&k)).map(|(_, v)| v.clone()))
    });
    match v {
        Some(v) => {
            give(&v, data, size);
            OK
        }
        None => NOT_FOUND,
    }
}

fn refused(h: &Host, map: u32, k: &str) -> bool {
    h.refuse_header_writes.iter().any(|(m, n)| *m == map && n.eq_ignore_ascii_case(k))
}

#[no_mangle]
pub unsafe extern "C" fn proxy_replace_header_map_value(
    map: u32,
    key: *const u8,
    key_size: usize,
    value: *const u8,
    value_size: usize,
) -> u32 {
    count("proxy_replace_header_map_value");
    let k = text(key, key_size);
    let v = slice(value, value_size).to_vec();
    with(|h| {
        h.header_writes.push((map, "set", k.clone()));
        if refused(h, map, &k) {
            return BAD_ARGUMENT;
        }
        let m = h.maps.entry(map).or_default();
        m.retain(|(n, _)| !n.eq_ignore_ascii_case(&k));
        m.push((k, v));
        OK
    })
}

#[no_mangle]
pub unsafe extern "C" fn proxy_add_header_map_value(
    map: u32,
    key: *const u8,
    key_size: usize,
    value: *const u8,
    value_size: usize,
) -> u32 {
    count("proxy_add_header_map_value");
    let k = text(key, key_size);
    let v = slice(value, value_size).to_vec();
    with(|h| {
        if refused(h, map, &k) {
            return BAD_ARGUMENT;
        }
        h.maps.entry(map).or_default().push((k, v));
        OK
    })
}

#[no_mangle]
pub unsafe extern "C" fn proxy_remove_header_map_value(map: u32, key: *const u8, key_size: usize) -> u32 {
    count("proxy_remove_header_map_value");
    let k = text(key, key_size);
    with(|h| {
        h.header_writes.push((map, "remove", k.clone()));
        if refused(h, map, &k) {
            return BAD_ARGUMENT;
        }
        h.maps.entry(map).or_default().retain(|(n, _)| !n.eq_ignore_ascii_case(&k));
        OK
    })
}

#[no_mangle]
pub unsafe extern "C" fn proxy_get_property(
    path: *const u8,
    path_size: usize,
    data: *mut *mut u8,
    size: *mut usize,
) -> u32 {
    count("proxy_get_property");
    let name = property_name(slice(path, path_size));
    match with(|h| h.properties.get(&name).cloned()) {
        Some(v) => {
            give(&v, data, size);
            OK
        }
        None => NOT_FOUND,
    }
}

#[no_mangle]
pub unsafe extern "C" fn proxy_set_property(path: *const u8, path_size: usize, data: *const u8, size: usize) -> u32 {
    count("proxy_set_property");
    let name = property_name(slice(path, path_size));
    let v = slice(data, size).to_vec();
    with(|h| {
        if h.refuse_property_writes.contains(&name) {
            return INTERNAL_FAILURE;
        }
        h.properties.insert(name, v);
        OK
    })
}

#[no_mangle]
pub unsafe extern "C" fn proxy_get_shared_data(
    key: *const u8,
    key_size: usize,
    data: *mut *mut u8,
    size: *mut usize,
    cas: *mut u32,
) -> u32 {
    count("proxy_get_shared_data");
    let k = text(key, key_size);
    match with(|h| h.shared.get(&k).cloned()) {
        Some((v, c)) => {
            give(&v, data, size);
            *cas = c;
            OK
        }
        None => NOT_FOUND,
    }
}

#[no_mangle]
pub unsafe extern "C" fn proxy_set_shared_data(
    key: *const u8,
    key_size: usize,
    data: *const u8,
    size: usize,
    cas: u32,
) -> u32 {
    count("proxy_set_shared_data");
    let k = text(key, key_size);
    let v = slice(data, size).to_vec();
    with(|h| {
        let current = h.shared.get(&k).map(|(_, c)| *c);
        if cas != 0 && current.is_some_and(|c| c != cas) {
            return CAS_MISMATCH;
        }
        h.next_cas += 1;
        let c = h.next_cas;
        h.shared.insert(k, (v, c));
        OK
    })
}

#[no_mangle]
pub unsafe extern "C" fn proxy_register_shared_queue(_n: *const u8, _s: usize, _id: *mut u32) -> u32 {
    count("proxy_register_shared_queue");
    INTERNAL_FAILURE
}

#[no_mangle]
pub unsafe extern "C" fn proxy_resolve_shared_queue(
    _v: *const u8,
    _vs: usize,
    _n: *const u8,
    _ns: usize,
    _id: *mut u32,
) -> u32 {
    count("proxy_resolve_shared_queue");
    NOT_FOUND
}

#[no_mangle]
pub unsafe extern "C" fn proxy_dequeue_shared_queue(_q: u32, _d: *mut *mut u8, _s: *mut usize) -> u32 {
    count("proxy_dequeue_shared_queue");
    NOT_FOUND
}

#[no_mangle]
pub unsafe extern "C" fn proxy_enqueue_shared_queue(_q: u32, _d: *const u8, _s: usize) -> u32 {
    count("proxy_enqueue_shared_queue");
    NOT_FOUND
}

#[no_mangle]
pub unsafe extern "C" fn proxy_continue_stream(t: u32) -> u32 {
    count("proxy_continue_stream");
    with(|h| h.continued.push(t));
    OK
}

#[no_mangle]
pub unsafe extern "C" fn proxy_close_stream(t: u32) -> u32 {
    count("proxy_close_stream");
    with(|h| h.closed.push(t));
    OK
}

#[no_mangle]
pub unsafe extern "C" fn proxy_send_local_response(
    status: u32,
    _details: *const u8,
    _details_size: usize,
    body: *const u8,
    body_size: usize,
    headers: *const u8,
    headers_size: usize,
    _grpc: i32,
) -> u32 {
    count("proxy_send_local_response");
    let r = LocalReply {
        status,
        headers: deserialize(slice(headers, headers_size)),
        body: slice(body, body_size).to_vec(),
    };
    with(|h| {
        assert!(h.local_reply.is_none(), "a second local reply: {r:?}");
        h.local_reply = Some(r);
    });
    OK
}

#[no_mangle]
pub unsafe extern "C" fn proxy_http_call(
    u: *const u8,
    us: usize,
    hd: *const u8,
    hs: usize,
    b: *const u8,
    bs: usize,
    _t: *const u8,
    _ts: usize,
    timeout: u32,
    token: *mut u32,
) -> u32 {
    count("proxy_http_call");
    let call = HttpCall {
        token: 0,
        cluster: text(u, us),
        headers: deserialize(slice(hd, hs)).into_iter().map(|(k, v)| (k, v.into_bytes())).collect(),
        body: slice(b, bs).to_vec(),
        timeout_ms: timeout,
    };
    with(|h| {
        if let Some(status) = h.refuse_http_calls {
            return status;
        }
        h.next_token += 1;
        let t = h.next_token;
        *token = t;
        h.http_calls.push(HttpCall { token: t, ..call });
        OK
    })
}

#[no_mangle]
pub unsafe extern "C" fn proxy_grpc_call(
    _u: *const u8,
    _us: usize,
    _s: *const u8,
    _ss: usize,
    _m: *const u8,
    _ms: usize,
    _i: *const u8,
    _is: usize,
    _d: *const u8,
    _ds: usize,
    _timeout: u32,
    _token: *mut u32,
) -> u32 {
    count("proxy_grpc_call");
    INTERNAL_FAILURE
}

#[no_mangle]
pub unsafe extern "C" fn proxy_grpc_stream(
    _u: *const u8,
    _us: usize,
    _s: *const u8,
    _ss: usize,
    _m: *const u8,
    _ms: usize,
    _i: *const u8,
    _is: usize,
    _token: *mut u32,
) -> u32 {
    count("proxy_grpc_stream");
    INTERNAL_FAILURE
}

#[no_mangle]
pub unsafe extern "C" fn proxy_grpc_send(_t: u32, _m: *const u8, _ms: usize, _e: bool) -> u32 {
    count("proxy_grpc_send");
    INTERNAL_FAILURE
}

#[no_mangle]
pub unsafe extern "C" fn proxy_grpc_cancel(_t: u32) -> u32 {
    count("proxy_grpc_cancel");
    INTERNAL_FAILURE
}

#[no_mangle]
pub unsafe extern "C" fn proxy_grpc_close(_t: u32) -> u32 {
    count("proxy_grpc_close");
    INTERNAL_FAILURE
}

#[no_mangle]
pub unsafe extern "C" fn proxy_get_status(_c: *mut u32, _d: *mut *mut u8, _s: *mut usize) -> u32 {
    count("proxy_get_status");
    INTERNAL_FAILURE
}

#[no_mangle]
pub unsafe extern "C" fn proxy_set_effective_context(_c: u32) -> u32 {
    count("proxy_set_effective_context");
    OK
}

#[no_mangle]
pub unsafe extern "C" fn proxy_call_foreign_function(
    _n: *const u8,
    _ns: usize,
    _a: *const u8,
    _as: usize,
    _r: *mut *mut u8,
    _rs: *mut usize,
) -> u32 {
    count("proxy_call_foreign_function");
    NOT_FOUND
}

#[no_mangle]
pub unsafe extern "C" fn proxy_done() -> u32 {
    count("proxy_done");
    OK
}

#[no_mangle]
pub unsafe extern "C" fn proxy_define_metric(_kind: u32, name: *const u8, name_size: usize, id: *mut u32) -> u32 {
    count("proxy_define_metric");
    let n = text(name, name_size);
    *id = with(|h| {
        h.metrics.entry(n.clone()).or_insert(0);
        match h.metric_names.iter().position(|m| *m == n) {
            Some(i) => i as u32,
            None => {
                h.metric_names.push(n);
                (h.metric_names.len() - 1) as u32
            }
        }
    });
    OK
}

#[no_mangle]
pub unsafe extern "C" fn proxy_get_metric(id: u32, value: *mut u64) -> u32 {
    count("proxy_get_metric");
    match with(|h| h.metric_names.get(id as usize).and_then(|n| h.metrics.get(n)).copied()) {
        Some(v) => {
            *value = v as u64;
            OK
        }
        None => NOT_FOUND,
    }
}

#[no_mangle]
pub unsafe extern "C" fn proxy_record_metric(id: u32, value: u64) -> u32 {
    count("proxy_record_metric");
    with(|h| match h.metric_names.get(id as usize).cloned() {
        Some(n) => {
            h.metrics.insert(n, value as i64);
            OK
        }
        None => NOT_FOUND,
    })
}

#[no_mangle]
pub unsafe extern "C" fn proxy_increment_metric(id: u32, offset: i64) -> u32 {
    count("proxy_increment_metric");
    with(|h| match h.metric_names.get(id as usize).cloned() {
        Some(n) => {
            *h.metrics.entry(n).or_insert(0) += offset;
            OK
        }
        None => NOT_FOUND,
    })
}

// ---- The module's exports, called as Envoy calls them ----

extern "C" {
    fn _initialize();
    fn proxy_on_context_create(context_id: u32, root_context_id: u32);
    fn proxy_on_vm_start(context_id: u32, size: usize) -> bool;
    fn proxy_on_configure(context_id: u32, size: usize) -> bool;
    fn proxy_on_request_headers(context_id: u32, n: usize, end_of_stream: bool) -> Action;
    fn proxy_on_request_body(context_id: u32, size: usize, end_of_stream: bool) -> Action;
    fn proxy_on_request_trailers(context_id: u32, n: usize) -> Action;
    fn proxy_on_response_headers(context_id: u32, n: usize, end_of_stream: bool) -> Action;
    fn proxy_on_response_body(context_id: u32, size: usize, end_of_stream: bool) -> Action;
    fn proxy_on_log(context_id: u32);
    fn proxy_on_tick(context_id: u32);
    fn proxy_on_http_call_response(context_id: u32, token: u32, headers: usize, body_size: usize, trailers: usize);
    fn proxy_on_done(context_id: u32) -> bool;
    fn proxy_on_delete(context_id: u32);
}

const ROOT: u32 = 1;

/// One VM of the filter: started and configured like Envoy does.
pub struct Envoy {
    next_id: u32,
}

impl Envoy {
    /// `_initialize`, the root context, `on_vm_start`, `on_configure` with this configuration.
    pub fn start(config: &str) -> Envoy {
        let ok = Envoy::try_start(config);
        assert!(ok, "on_configure refused the configuration; logs: {:?}", with(|h| h.logs.clone()));
        Envoy { next_id: ROOT + 1 }
    }

    /// Like `start`, returning what `on_configure` returned.
    pub fn try_start(config: &str) -> bool {
        with(|h| {
            h.buffers.insert(PLUGIN_CONFIGURATION, config.as_bytes().to_vec());
            h.buffers.insert(VM_CONFIGURATION, Vec::new());
        });
        // `_initialize` runs `proxy_wasm::main!`, whose first `set_log_level` installs the global
        // logger with a check-then-set: two test threads starting at once would both try, and
        // the second panics. One start at a time.
        static STARTING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one = STARTING.lock().unwrap_or_else(|e| e.into_inner());
        unsafe {
            _initialize();
            // The SDK installs a panic hook that logs through the host and hides the message from
            // the test runner: give the runner its own back.
            let _ = std::panic::take_hook();
            proxy_on_context_create(ROOT, 0);
            assert!(proxy_on_vm_start(ROOT, 0));
            proxy_on_configure(ROOT, config.len())
        }
    }

    /// The root context's tick.
    pub fn tick(&mut self) {
        unsafe { proxy_on_tick(ROOT) };
    }

    /// Answers the oldest outstanding HTTP call: `Some((status, body))`, or `None` for a call
    /// that failed (a timeout, a reset: no headers). Returns the call.
    pub fn answer_call(&mut self, answer: Option<(u16, &str)>) -> HttpCall {
        let call = with(|h| h.http_calls.remove(0));
        let (headers, body) = match answer {
            Some((status, body)) => {
                (vec![(":status".to_string(), status.to_string().into_bytes())], body.as_bytes().to_vec())
            }
            None => (Vec::new(), Vec::new()),
        };
        let n = headers.len();
        let size = body.len();
        with(|h| {
            h.maps.insert(HTTP_CALL_RESPONSE_HEADERS, headers);
            h.buffers.insert(HTTP_CALL_RESPONSE_BODY, body);
        });
        unsafe { proxy_on_http_call_response(ROOT, call.token, n, size, 0) };
        with(|h| {
            h.maps.remove(&HTTP_CALL_RESPONSE_HEADERS);
            h.buffers.remove(&HTTP_CALL_RESPONSE_BODY);
        });
        call
    }

    /// A new HTTP stream (`proxy_on_context_create` under the root).
    pub fn stream(&mut self) -> Stream {
        let id = self.next_id;
        self.next_id += 1;
        reset_stream_state();
        unsafe { proxy_on_context_create(id, ROOT) };
        Stream { id, upstream: None, client: None, client_body: Vec::new(), request_held: false, phases: Vec::new() }
    }
}

/// Clears the previous stream's maps, buffers and local reply (the host's per-stream state).
fn reset_stream_state() {
    with(|h| {
        h.maps.clear();
        h.buffers.remove(&REQUEST_BODY);
        h.buffers.remove(&RESPONSE_BODY);
        h.local_reply = None;
        h.closed.clear();
    });
}

/// What went upstream: the request headers and body when the filter let them through.
#[derive(Debug, Clone, PartialEq)]
pub struct Upstream {
    pub headers: Headers,
    pub body: Vec<u8>,
}

impl Upstream {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }
}

/// One HTTP stream through the filter, driven in Envoy's order. Request data the filter holds
/// (a `Pause`) stays buffered in the host and is handed over whole at the next call; on
/// `Continue` it goes upstream.
pub struct Stream {
    pub id: u32,
    /// The request as it left for the upstream (set when the filter continued at its end).
    pub upstream: Option<Upstream>,
    /// The response status and headers the client got (set when the filter let them through).
    pub client: Option<(u32, Headers)>,
    pub client_body: Vec<u8>,
    request_held: bool,
    /// Each callback and the action it returned, in order.
    pub phases: Vec<(&'static str, Action)>,
}

pub fn pairs(list: &[(&str, &str)]) -> Headers {
    list.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect()
}

impl Stream {
    fn replied(&self) -> bool {
        with(|h| h.local_reply.is_some())
    }

    pub fn local_reply(&self) -> Option<LocalReply> {
        with(|h| h.local_reply.clone())
    }

    /// After a callback that sent a local reply, Envoy sends it through the encoder path: the
    /// filter sees it as response headers and body.
    fn deliver_local_reply(&mut self) {
        let Some(r) = self.local_reply() else { return };
        let mut headers = vec![(":status".to_string(), r.status.to_string().into_bytes())];
        headers.extend(r.headers.iter().map(|(k, v)| (k.clone(), v.as_bytes().to_vec())));
        with(|h| h.maps.insert(RESPONSE_HEADERS, headers.clone()));
        let n = headers.len();
        let a = unsafe { proxy_on_response_headers(self.id, n, r.body.is_empty()) };
        self.phases.push(("response_headers(local)", a));
        self.client = Some((r.status, with(|h| h.maps.get(&RESPONSE_HEADERS).cloned().unwrap_or_default())));
        if !r.body.is_empty() {
            with(|h| h.buffers.insert(RESPONSE_BODY, r.body.clone()));
            let a = unsafe { proxy_on_response_body(self.id, r.body.len(), true) };
            self.phases.push(("response_body(local)", a));
            self.client_body = with(|h| h.buffers.remove(&RESPONSE_BODY).unwrap_or_default());
        }
    }

    fn send_upstream(&mut self) {
        let (headers, body) = with(|h| {
            (
                h.maps.get(&REQUEST_HEADERS).cloned().unwrap_or_default(),
                h.buffers.remove(&REQUEST_BODY).unwrap_or_default(),
            )
        });
        match &mut self.upstream {
            Some(u) => u.body.extend(body),
            None => self.upstream = Some(Upstream { headers, body }),
        }
    }

    pub fn request_headers(&mut self, headers: &[(&str, &str)], end_of_stream: bool) -> Action {
        with(|h| h.maps.insert(REQUEST_HEADERS, pairs(headers)));
        let a = unsafe { proxy_on_request_headers(self.id, headers.len(), end_of_stream) };
        self.phases.push(("request_headers", a));
        if self.replied() {
            self.deliver_local_reply();
        } else if a == Action::Continue && end_of_stream {
            self.send_upstream();
        } else {
            self.request_held = a == Action::Pause;
        }
        a
    }

    /// A piece of the request body (Envoy buffers the pieces while the filter pauses).
    pub fn request_body(&mut self, piece: &[u8], end_of_stream: bool) -> Action {
        if self.replied() {
            return Action::Pause;
        }
        let size = with(|h| {
            let b = h.buffers.entry(REQUEST_BODY).or_default();
            b.extend_from_slice(piece);
            b.len()
        });
        let a = unsafe { proxy_on_request_body(self.id, size, end_of_stream) };
        self.phases.push(("request_body", a));
        if self.replied() {
            self.deliver_local_reply();
        } else if a == Action::Continue {
            self.request_held = false;
            self.send_upstream();
        }
        a
    }

    pub fn request_trailers(&mut self, trailers: &[(&str, &str)]) -> Action {
        with(|h| h.maps.insert(REQUEST_TRAILERS, pairs(trailers)));
        let a = unsafe { proxy_on_request_trailers(self.id, trailers.len()) };
        self.phases.push(("request_trailers", a));
        if self.replied() {
            self.deliver_local_reply();
        } else if a == Action::Continue {
            self.send_upstream();
        }
        a
    }

    pub fn response_headers(&mut self, headers: &[(&str, &str)], end_of_stream: bool) -> Action {
        with(|h| h.maps.insert(RESPONSE_HEADERS, pairs(headers)));
        let a = unsafe { proxy_on_response_headers(self.id, headers.len(), end_of_stream) };
        self.phases.push(("response_headers", a));
        if self.replied() {
            self.deliver_local_reply();
        } else if a == Action::Continue {
            self.client = Some((self.status(), with(|h| h.maps.get(&RESPONSE_HEADERS).cloned().unwrap_or_default())));
        }
        a
    }

    fn status(&self) -> u32 {
        with(|h| {
            h.maps
                .get(&RESPONSE_HEADERS)
                .and_then(|m| m.iter().find(|(k, _)| k == ":status"))
                .and_then(|(_, v)| String::from_utf8_lossy(v).parse().ok())
                .unwrap_or(0)
        })
    }

    /// A piece of the response body. Paused pieces stay buffered (the next call gets all of
    /// it); on `Continue` the buffer goes to the client, with the held headers if any.
    pub fn response_body(&mut self, piece: &[u8], end_of_stream: bool) -> Action {
        if self.replied() {
            return Action::Pause;
        }
        let size = with(|h| {
            let b = h.buffers.entry(RESPONSE_BODY).or_default();
            b.extend_from_slice(piece);
            b.len()
        });
        let a = unsafe { proxy_on_response_body(self.id, size, end_of_stream) };
        self.phases.push(("response_body", a));
        if self.replied() {
            self.deliver_local_reply();
        } else if a == Action::Continue {
            if self.client.is_none() {
                self.client =
                    Some((self.status(), with(|h| h.maps.get(&RESPONSE_HEADERS).cloned().unwrap_or_default())));
            }
            let out = with(|h| h.buffers.remove(&RESPONSE_BODY).unwrap_or_default());
            self.client_body.extend(out);
        }
        a
    }

    /// The end of the stream: the log phase, then done and delete.
    pub fn finish(&mut self) {
        unsafe {
            proxy_on_log(self.id);
            assert!(proxy_on_done(self.id));
            proxy_on_delete(self.id);
        }
    }

    pub fn client_status(&self) -> u32 {
        self.client.as_ref().map(|(s, _)| *s).unwrap_or(0)
    }

    pub fn client_header(&self, name: &str) -> Option<String> {
        self.client.as_ref()?.1.iter().find(|(k, _)| k == name).map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    /// After the filter handled an HTTP call's answer: a local reply goes to the client, a
    /// resumed request (`proxy_continue_stream`) goes upstream.
    pub fn after_call(&mut self) {
        if self.replied() {
            self.deliver_local_reply();
        } else if with(|h| std::mem::take(&mut h.continued)).contains(&0) {
            self.request_held = false;
            self.send_upstream();
        }
    }

    /// The request held (headers paused, not yet sent upstream).
    pub fn request_held(&self) -> bool {
        self.request_held
    }
}

/// The billing record the filter stored as filter state.
pub fn billing_record() -> Option<String> {
    with(|h| h.properties.get("tollgate.billing").map(|v| String::from_utf8_lossy(v).into_owned()))
}

pub fn metric(name: &str) -> Option<i64> {
    with(|h| h.metrics.get(name).copied())
}

/// Host calls counted so far, then cleared.
pub fn take_calls() -> BTreeMap<&'static str, u64> {
    with(|h| std::mem::take(&mut h.calls))
}

/// A test configuration: three clusters (one per dialect, each with its own credential), a
/// model on each, one account and key, and a capped key.
pub fn config() -> String {
    let h = |k: &str| tollgate_core::keys::to_hex(&tollgate_core::keys::sha256(k.as_bytes()));
    format!(
        r#"{{"clusters":[{{"name":"oa","dialect":"openai","api_key":"sk-upstream-oa"}},
        {{"name":"an","dialect":"anthropic","api_key":"sk-upstream-an"}},
        {{"name":"ge","dialect":"gemini","api_key":"sk-upstream-ge"}}],
        "models":[{{"id":"gpt-x","type":"text","cluster":"oa","price":{{"prompt_per_1k":1,"completion_per_1k":2}}}},
                  {{"id":"claude-x","type":"text","cluster":"an","price":{{"prompt_per_1k":1,"completion_per_1k":2}}}},
                  {{"id":"gemini-x","type":"text","cluster":"ge","price":{{"prompt_per_1k":1,"completion_per_1k":2}}}}],
        "accounts":[{{"id":"acct","rpm":1000}}],
        "keys":[{{"id":"k1","sha256":"{}","account":"acct"}}]}}"#,
        h("sk-client-1")
    )
}

pub const KEY: &str = "sk-client-1";
