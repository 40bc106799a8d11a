//! The hostcalls the glue makes, over the raw proxy-wasm ABI. The SDK's `proxy_wasm::hostcalls`
//! wrappers return a `Result` but panic on any status they do not expect (a refused header write,
//! a property the host will not store), and a panic kills the worker's VM; its map parser also
//! unwraps UTF-8. Here every status the host returns becomes an `Err(status)`, and every buffer
//! the host hands over is parsed without panicking, so the glue decides what a failure means.

use std::ptr::{null, null_mut};

use proxy_wasm::types::{BufferType, LogLevel, MapType, MetricType, StreamType};

/// A proxy-wasm status other than `Ok` (`NotFound` is mapped to `None` where it means absence).
pub type Status = u32;

const OK: Status = 0;
const NOT_FOUND: Status = 1;
/// Returned for a buffer the host handed over that does not parse (a host bug, never expected).
pub const PARSE_FAILURE: Status = 4;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_log(level: LogLevel, message_data: *const u8, message_size: usize) -> u32;
    fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: BufferType,
        start: usize,
        max_size: usize,
        return_buffer_data: *mut *mut u8,
        return_buffer_size: *mut usize,
    ) -> u32;
    fn proxy_set_buffer_bytes(
        buffer_type: BufferType,
        start: usize,
        size: usize,
        buffer_data: *const u8,
        buffer_size: usize,
    ) -> u32;
    fn proxy_get_header_map_pairs(map_type: MapType, return_map_data: *mut *mut u8, return_map_size: *mut usize)
        -> u32;
    fn proxy_replace_header_map_value(
        map_type: MapType,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map_type: MapType, key_data: *const u8, key_size: usize) -> u32;
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_set_property(path_data: *const u8, path_size: usize, value_data: *const u8, value_size: usize) -> u32;
    fn proxy_send_local_response(
        status_code: u32,
        status_code_details_data: *const u8,
        status_code_details_size: usize,
        body_data: *const u8,
        body_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
    fn proxy_define_metric(metric_type: MetricType, name_data: *const u8, name_size: usize, return_id: *mut u32)
        -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
    fn proxy_close_stream(stream_type: StreamType) -> u32;
    fn proxy_continue_stream(stream_type: StreamType) -> u32;
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
}

fn status(s: u32) -> Result<(), Status> {
    if s == OK {
        Ok(())
    } else {
        Err(s)
    }
}

/// Takes ownership of a buffer the host allocated through this module's
/// `proxy_on_memory_allocate` (the global allocator, capacity == length).
///
/// # Safety
/// `data` is null or points to `size` bytes allocated as described, owned by nobody else.
unsafe fn take(data: *mut u8, size: usize) -> Vec<u8> {
    if data.is_null() {
        Vec::new()
    } else {
        Vec::from_raw_parts(data, size, size)
    }
}

/// A call that returns a host-allocated buffer: `Ok(None)` when the host says `NotFound`.
fn fetch(call: impl FnOnce(*mut *mut u8, *mut usize) -> u32) -> Result<Option<Vec<u8>>, Status> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    let s = call(&mut data, &mut size);
    // SAFETY: on success the host handed over `data` (see `take`); on failure it wrote nothing
    // we own (a buffer it may still have written is taken and freed all the same).
    let bytes = unsafe { take(data, size) };
    match s {
        OK => Ok(Some(bytes)),
        NOT_FOUND => Ok(None),
        s => Err(s),
    }
}

pub fn log(level: LogLevel, msg: &str) -> Result<(), Status> {
    // SAFETY: a live slice.
    status(unsafe { proxy_log(level, msg.as_ptr(), msg.len()) })
}

/// The host's clock in milliseconds since the epoch (0 if it will not say).
pub fn now_ms() -> u64 {
    let mut ns: u64 = 0;
    // SAFETY: a valid out pointer.
    match unsafe { proxy_get_current_time_nanoseconds(&mut ns) } {
        OK => ns / 1_000_000,
        _ => 0,
    }
}

/// Up to `max` bytes of a buffer from `start` (empty when the host has none).
pub fn get_buffer(kind: BufferType, start: usize, max: usize) -> Result<Vec<u8>, Status> {
    // SAFETY: valid out pointers for the call.
    fetch(|d, s| unsafe { proxy_get_buffer_bytes(kind, start, max, d, s) }).map(Option::unwrap_or_default)
}

/// Replaces `size` bytes of a buffer from `start` with `data`.
pub fn set_buffer(kind: BufferType, start: usize, size: usize, data: &[u8]) -> Result<(), Status> {
    // SAFETY: a live slice.
    status(unsafe { proxy_set_buffer_bytes(kind, start, size, data.as_ptr(), data.len()) })
}

/// All pairs of a header map, names and values as bytes.
pub fn header_pairs(map: MapType) -> Result<Vec<(String, Vec<u8>)>, Status> {
    // SAFETY: valid out pointers for the call.
    let bytes = fetch(|d, s| unsafe { proxy_get_header_map_pairs(map, d, s) })?.unwrap_or_default();
    parse_pairs(&bytes).ok_or(PARSE_FAILURE)
}

/// The first value of each of `names` in a header map, read without copying the map into
/// pairs (no allocation a header); all `None` when the host refuses or the map is malformed.
pub fn header_values<const N: usize>(map: MapType, names: [&str; N]) -> [Option<Vec<u8>>; N] {
    // SAFETY: valid out pointers for the call.
    let bytes = fetch(|d, s| unsafe { proxy_get_header_map_pairs(map, d, s) }).ok().flatten().unwrap_or_default();
    values_in(&bytes, names)
}

/// `header_values` of a serialized header map.
fn values_in<const N: usize>(bytes: &[u8], names: [&str; N]) -> [Option<Vec<u8>>; N] {
    let mut out: [Option<Vec<u8>>; N] = std::array::from_fn(|_| None);
    if walk_pairs(bytes, |_, _| {}).is_none() {
        return out;
    }
    let _ = walk_pairs(bytes, |k, v| {
        if let Some(slot) = names.iter().position(|n| n.as_bytes() == k).and_then(|i| out.get_mut(i)) {
            if slot.is_none() {
                *slot = Some(v.to_vec());
            }
        }
    });
    out
}

/// Sets a header, replacing every value it had.
pub fn set_header(map: MapType, name: &str, value: &str) -> Result<(), Status> {
    // SAFETY: live slices.
    status(unsafe { proxy_replace_header_map_value(map, name.as_ptr(), name.len(), value.as_ptr(), value.len()) })
}

/// Removes a header (absent already is success).
pub fn remove_header(map: MapType, name: &str) -> Result<(), Status> {
    // SAFETY: a live slice.
    status(unsafe { proxy_remove_header_map_value(map, name.as_ptr(), name.len()) })
}

/// A property path as the ABI takes it: the parts joined by NUL.
fn property_path(path: &[&str]) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.iter().map(|p| p.len() + 1).sum());
    for (i, part) in path.iter().enumerate() {
        if i > 0 {
            out.push(0);
        }
        out.extend_from_slice(part.as_bytes());
    }
    out
}

pub fn get_property(path: &[&str]) -> Result<Option<Vec<u8>>, Status> {
    let p = property_path(path);
    // SAFETY: a live slice and valid out pointers.
    fetch(|d, s| unsafe { proxy_get_property(p.as_ptr(), p.len(), d, s) })
}

pub fn set_property(path: &[&str], value: &[u8]) -> Result<(), Status> {
    let p = property_path(path);
    // SAFETY: live slices.
    status(unsafe { proxy_set_property(p.as_ptr(), p.len(), value.as_ptr(), value.len()) })
}

/// Answers the request locally (the host sends it once the current callback returns).
pub fn send_local_response(code: u16, headers: &[(String, String)], body: &[u8]) -> Result<(), Status> {
    let h = serialize_pairs(headers);
    // SAFETY: live slices; no details string (null, 0); -1: not a gRPC reply.
    status(unsafe {
        proxy_send_local_response(u32::from(code), null(), 0, body.as_ptr(), body.len(), h.as_ptr(), h.len(), -1)
    })
}

/// Resets the HTTP response (the client sees the stream end abruptly).
pub fn reset_response() -> Result<(), Status> {
    // SAFETY: a plain value.
    status(unsafe { proxy_close_stream(StreamType::HttpResponse) })
}

pub fn define_counter(name: &str) -> Result<u32, Status> {
    let mut id: u32 = 0;
    // SAFETY: a live slice and a valid out pointer.
    status(unsafe { proxy_define_metric(MetricType::Counter, name.as_ptr(), name.len(), &mut id) })?;
    Ok(id)
}

pub fn increment(id: u32, n: i64) -> Result<(), Status> {
    // SAFETY: plain values.
    status(unsafe { proxy_increment_metric(id, n) })
}

/// The ABI's header map: a count, then a (name length, value length) pair of u32 (little endian)
/// per header, then each name and value followed by a NUL.
pub fn serialize_pairs(pairs: &[(String, String)]) -> Vec<u8> {
    let len = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
    let mut out = Vec::with_capacity(4 + pairs.iter().map(|(k, v)| 10 + k.len() + v.len()).sum::<usize>());
    out.extend_from_slice(&len(pairs.len()));
    for (k, v) in pairs {
        out.extend_from_slice(&len(k.len()));
        out.extend_from_slice(&len(v.len()));
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}

/// Lets a paused request go on (after an `on_http_call_response` decided it).
pub fn continue_request() -> Result<(), Status> {
    status(unsafe { proxy_continue_stream(StreamType::HttpRequest) })
}

/// Calls `on_tick` of the root context every `ms` milliseconds (0 stops it).
pub fn set_tick_period(ms: u32) -> Result<(), Status> {
    status(unsafe { proxy_set_tick_period_milliseconds(ms) })
}

/// `POST`s `body` (JSON) to `path` on Envoy cluster `cluster`; the answer comes to
/// `on_http_call_response` of the calling context with the returned token. This goes through the
/// SDK, whose dispatcher must register the token to route the answer; it returns the host's
/// refusals (`BadArgument` for an unknown cluster, `InternalFailure`) as errors.
pub fn dispatch_post(cluster: &str, path: &str, body: &[u8], timeout_ms: u64) -> Result<u32, Status> {
    let headers =
        vec![(":method", "POST"), (":path", path), (":authority", cluster), ("content-type", "application/json")];
    let timeout = std::time::Duration::from_millis(timeout_ms);
    proxy_wasm::hostcalls::dispatch_http_call(cluster, headers, Some(body), Vec::new(), timeout)
        .map_err(|s| s as Status)
}

/// Sends a request to Envoy cluster `cluster`: these headers (`:method`, `:path` and `:authority`
/// among them) and body, as `dispatch_post` does.
pub fn dispatch_call(cluster: &str, headers: &[(String, String)], body: &[u8], timeout_ms: u64) -> Result<u32, Status> {
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let timeout = std::time::Duration::from_millis(timeout_ms);
    proxy_wasm::hostcalls::dispatch_http_call(cluster, headers, Some(body), Vec::new(), timeout)
        .map_err(|s| s as Status)
}

/// The answer to an HTTP call, in `on_http_call_response`: its `:status` (0 when absent: the call
/// failed or timed out) and its body.
pub fn http_call_answer(body_size: usize) -> (u16, Vec<u8>) {
    let status = header_pairs(MapType::HttpCallResponseHeaders)
        .ok()
        .and_then(|pairs| pairs.into_iter().find(|(k, _)| k == ":status"))
        .and_then(|(_, v)| std::str::from_utf8(&v).ok().and_then(|v| v.parse::<u16>().ok()))
        .unwrap_or(0);
    let body = get_buffer(BufferType::HttpCallResponseBody, 0, body_size).unwrap_or_default();
    (status, body)
}

/// Parses the ABI's header map (see `serialize_pairs`); `None` if it is malformed. Names are
/// decoded lossily (Envoy's are always ASCII), values kept as bytes.
pub fn parse_pairs(bytes: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    walk_pairs(bytes, |k, v| out.push((String::from_utf8_lossy(k).into_owned(), v.to_vec())))?;
    Some(out)
}

/// Calls `f` with each (name, value) of the ABI's header map in order; `None` as soon as the map
/// is malformed (after the pairs before the fault were visited).
fn walk_pairs<'a>(bytes: &'a [u8], mut f: impl FnMut(&'a [u8], &'a [u8])) -> Option<()> {
    if bytes.is_empty() {
        return Some(());
    }
    let u32_at = |at: usize| -> Option<usize> {
        let b: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        usize::try_from(u32::from_le_bytes(b)).ok()
    };
    let n = u32_at(0)?;
    let mut data = n.checked_mul(8)?.checked_add(4)?;
    if data > bytes.len() {
        return None;
    }
    for i in 0..n {
        let k_len = u32_at(4 + i * 8)?;
        let v_len = u32_at(8 + i * 8)?;
        let k = bytes.get(data..data.checked_add(k_len)?)?;
        data = data.checked_add(k_len)?.checked_add(1)?;
        let v = bytes.get(data..data.checked_add(v_len)?)?;
        data = data.checked_add(v_len)?.checked_add(1)?;
        if data > bytes.len() {
            return None;
        }
        f(k, v);
    }
    Some(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn pairs_round_trip_and_malformed_maps_are_refused() {
        let pairs = vec![(":path".to_string(), "/v1".to_string()), ("x-a".to_string(), String::new())];
        let bytes = serialize_pairs(&pairs);
        let back = parse_pairs(&bytes).unwrap();
        assert_eq!(back, vec![(":path".to_string(), b"/v1".to_vec()), ("x-a".to_string(), Vec::new())]);
        for cut in 1..bytes.len() {
            assert_eq!(parse_pairs(&bytes[..cut]), None, "cut at {cut}");
        }
        assert_eq!(parse_pairs(&[255, 255, 255, 255]), None);
        assert_eq!(parse_pairs(&[]), Some(Vec::new()));
    }

    #[test]
    fn a_value_read_in_place_is_the_first_one_a_parse_finds() {
        let pairs = vec![
            (":status".to_string(), "200".to_string()),
            ("content-type".to_string(), "application/json".to_string()),
            (":status".to_string(), "500".to_string()),
        ];
        let bytes = serialize_pairs(&pairs);
        let mut seen = Vec::new();
        assert_eq!(walk_pairs(&bytes, |k, v| seen.push((k.to_vec(), v.to_vec()))), Some(()));
        let parsed = parse_pairs(&bytes).unwrap();
        assert_eq!(seen, parsed.iter().map(|(k, v)| (k.as_bytes().to_vec(), v.clone())).collect::<Vec<_>>());
        for cut in 1..bytes.len() {
            assert_eq!(walk_pairs(&bytes[..cut], |_, _| {}), None, "cut at {cut}");
            assert_eq!(values_in(&bytes[..cut], [":status"]), [None], "cut at {cut}");
        }
        let [status, content_type, absent] = values_in(&bytes, [":status", "content-type", "x-absent"]);
        assert_eq!((status, content_type, absent), (Some(b"200".to_vec()), Some(b"application/json".to_vec()), None));
    }

    #[test]
    fn property_paths_join_with_nul() {
        assert_eq!(property_path(&["response", "code"]), b"response\0code".to_vec());
        assert_eq!(property_path(&["tollgate.billing"]), b"tollgate.billing".to_vec());
        assert_eq!(property_path(&[]), Vec::<u8>::new());
    }
}
