//! Media and audio requests: validation of image, video and speech bodies (as the platform the
//! gateway stands in for documents them) and what they bill, and the streaming scan of a
//! multipart transcription upload for its `model` field. Unknown fields are never rejected: they
//! go to the backend untouched (`hostMedia` among them).

use serde_json::{Map, Value};

pub use crate::config::parse_size;
use crate::endpoints::Endpoint;
use crate::errors::{Code, GatewayError};
use crate::routing::{AudioTask, Model, ModelType};

/// Image prompts: at most 4000 characters, as documented.
pub const MAX_PROMPT_CHARS: usize = 4000;
/// Images per request: 1 to 4, as documented.
pub const MAX_IMAGES: u64 = 4;
/// The documented default video length, and the longest unless the model says otherwise.
pub const DEFAULT_VIDEO_SECONDS: f64 = 6.0;
pub const DEFAULT_MAX_VIDEO_SECONDS: f64 = 10.0;
/// Frames per second a video request may ask for.
pub const FPS_RANGE: (u64, u64) = (1, 60);
/// OpenAI's limit on speech input.
pub const MAX_SPEECH_CHARS: usize = 4096;
const SPEECH_FORMATS: [&str; 6] = ["mp3", "opus", "aac", "flac", "wav", "pcm"];
const IMAGE_FORMATS: [&str; 2] = ["b64_json", "url"];
const QUALITIES: [&str; 4] = ["standard", "hd", "low", "high"];

fn bad(param: &str, msg: impl Into<String>) -> GatewayError {
    GatewayError::new(Code::BadRequest, msg).with_param(param)
}

fn opt_str<'a>(body: &'a Map<String, Value>, k: &str) -> Result<Option<&'a str>, GatewayError> {
    match body.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(bad(k, format!("'{k}' must be a string"))),
    }
}

fn req_text<'a>(body: &'a Map<String, Value>, k: &str, max_chars: usize) -> Result<&'a str, GatewayError> {
    let s = opt_str(body, k)?.ok_or_else(|| GatewayError::missing(k))?;
    if s.trim().is_empty() {
        return Err(bad(k, format!("'{k}' must not be empty")));
    }
    let n = s.chars().count();
    if n > max_chars {
        return Err(bad(k, format!("'{k}' is {n} characters long; the limit is {max_chars}")));
    }
    Ok(s)
}

fn one_of(body: &Map<String, Value>, k: &str, allowed: &[&str]) -> Result<(), GatewayError> {
    match opt_str(body, k)? {
        Some(v) if !allowed.contains(&v) => {
            Err(bad(k, format!("'{k}' must be one of {}; got '{v}'", allowed.join(", "))))
        }
        _ => Ok(()),
    }
}

fn size(body: &Map<String, Value>, model: &Model) -> Result<(), GatewayError> {
    let Some(s) = opt_str(body, "size")? else { return Ok(()) };
    if parse_size(s).is_none() {
        return Err(bad("size", format!("'size' must be WIDTHxHEIGHT, like 1024x1024; got '{s}'")));
    }
    if !model.sizes.is_empty() && !model.sizes.iter().any(|x| x == s) {
        return Err(bad("size", format!("'{}' supports the sizes {}; got '{s}'", model.id, model.sizes.join(", "))));
    }
    Ok(())
}

/// A number given as a JSON number (or a numeric string, as some clients send form values).
fn number(body: &Map<String, Value>, k: &str) -> Result<Option<f64>, GatewayError> {
    match body.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_f64().map(Some).ok_or_else(|| bad(k, format!("'{k}' must be a number"))),
        Some(Value::String(s)) => {
            crate::number::parse_f64(s.trim()).map(Some).ok_or_else(|| bad(k, format!("'{k}' must be a number")))
        }
        Some(_) => Err(bad(k, format!("'{k}' must be a number"))),
    }
}

fn integer_in(body: &Map<String, Value>, k: &str, lo: u64, hi: u64) -> Result<Option<u64>, GatewayError> {
    let Some(v) = body.get(k).filter(|v| !v.is_null()) else { return Ok(None) };
    match v.as_u64().or_else(|| v.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0).map(|f| f as u64)) {
        Some(n) if (lo..=hi).contains(&n) => Ok(Some(n)),
        Some(n) => Err(bad(k, format!("'{k}' must be between {lo} and {hi}; got {n}"))),
        None => Err(bad(k, format!("'{k}' must be an integer between {lo} and {hi}"))),
    }
}

/// Does `model` serve `endpoint`? (Its type was checked already; audio models have a task.)
pub fn task_matches(endpoint: &Endpoint, model: &Model) -> bool {
    !matches!(
        (endpoint, model.task),
        (Endpoint::Speech, Some(AudioTask::Transcription)) | (Endpoint::Transcriptions, Some(AudioTask::Speech))
    )
}

/// Validates a JSON media body for `model` and returns its billable units: images, seconds of
/// video, characters of speech input.
pub fn validate(endpoint: &Endpoint, body: &Map<String, Value>, model: &Model) -> Result<f64, GatewayError> {
    match (endpoint, model.model_type) {
        (Endpoint::Images, ModelType::Image) => {
            req_text(body, "prompt", MAX_PROMPT_CHARS)?;
            let n = integer_in(body, "n", 1, MAX_IMAGES)?.unwrap_or(1);
            size(body, model)?;
            one_of(body, "response_format", &IMAGE_FORMATS)?;
            one_of(body, "quality", &QUALITIES)?;
            Ok(n as f64)
        }
        (Endpoint::Videos, ModelType::Video) => {
            req_text(body, "prompt", MAX_PROMPT_CHARS)?;
            size(body, model)?;
            let seconds = number(body, "duration")?.unwrap_or(DEFAULT_VIDEO_SECONDS);
            if !(seconds > 0.0 && seconds <= model.max_seconds) {
                return Err(bad(
                    "duration",
                    format!(
                        "'duration' must be more than 0 and at most {} seconds for '{}'; got {seconds}",
                        model.max_seconds, model.id
                    ),
                ));
            }
            integer_in(body, "fps", FPS_RANGE.0, FPS_RANGE.1)?;
            Ok(seconds)
        }
        (Endpoint::Speech, ModelType::Audio) => {
            // The documented speech endpoint calls the text `text`; OpenAI's calls it `input`.
            let key = if body.contains_key("input") || !body.contains_key("text") { "input" } else { "text" };
            let input = req_text(body, key, MAX_SPEECH_CHARS)?;
            opt_str(body, "voice")?;
            one_of(body, "response_format", &SPEECH_FORMATS)?;
            if let Some(s) = number(body, "speed")? {
                if !(0.25..=4.0).contains(&s) {
                    return Err(bad("speed", format!("'speed' must be between 0.25 and 4.0; got {s}")));
                }
            }
            Ok(input.chars().count() as f64)
        }
        _ => Ok(1.0),
    }
}

/// Seconds of audio a transcription response reports: OpenAI's `usage.seconds` (type
/// `duration`) or verbose_json's `duration`.
pub fn transcription_seconds(body: &[u8]) -> Option<f64> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v.pointer("/usage/seconds")
        .and_then(Value::as_f64)
        .or_else(|| v.get("duration").and_then(Value::as_f64))
        .filter(|s| s.is_finite() && *s >= 0.0)
}

/// Seconds of audio assumed for an upload when the response reports none: 16 kB a second
/// (128 kbit/s, as MP3 at a usual rate; WAV at 16 kHz mono is 32 kB/s, so this over-counts it).
pub fn estimated_upload_seconds(bytes: u64) -> f64 {
    (bytes as f64 / 16_000.0).ceil().max(1.0)
}

/// The boundary of a `multipart/form-data` content type.
pub fn multipart_boundary(content_type: &str) -> Option<String> {
    let (kind, params) = content_type.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        if !k.trim().eq_ignore_ascii_case("boundary") {
            return None;
        }
        let v = v.trim().trim_matches('"');
        (!v.is_empty() && v.len() <= 200).then(|| v.to_string())
    })
}

/// What the start of a multipart body says about a field.
#[derive(Debug, PartialEq, Eq)]
pub enum FieldScan {
    /// The field's value, and the byte range of the value in the body.
    Found { value: String, start: usize, end: usize },
    /// Not seen yet: more bytes are needed.
    NeedMore,
    /// A file part came first, or the body ended, without the field.
    Absent,
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    hay.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|p| p + from)
}

/// Looks for the form field `name` in the start of a multipart body, part by part. A part with a
/// `filename` (the upload itself) before the field means the field is not in front of the file:
/// the scan stops there rather than read the file (clients put form fields first; the SDKs do).
pub fn scan_field(body: &[u8], boundary: &str, name: &str, complete: bool) -> FieldScan {
    let delim = format!("--{boundary}");
    let mut pos = match find(body, delim.as_bytes(), 0) {
        Some(p) => p,
        None => return if complete { FieldScan::Absent } else { FieldScan::NeedMore },
    };
    loop {
        let after = pos + delim.len();
        if body.get(after..after + 2) == Some(b"--") {
            return FieldScan::Absent; // the closing delimiter
        }
        let Some(head_end) = find(body, b"\r\n\r\n", after) else {
            return if complete { FieldScan::Absent } else { FieldScan::NeedMore };
        };
        let head = String::from_utf8_lossy(body.get(after..head_end).unwrap_or(&[])).to_ascii_lowercase();
        let disposition = head.lines().find(|l| l.trim_start().starts_with("content-disposition:")).unwrap_or("");
        let is_file = disposition.contains("filename=");
        let field = disposition.split(';').find_map(|p| {
            let (k, v) = p.split_once('=')?;
            (k.trim() == "name").then(|| v.trim().trim_matches('"').to_string())
        });
        let value_start = head_end + 4;
        if field.as_deref() == Some(name) && !is_file {
            let closing = format!("\r\n--{boundary}");
            return match find(body, closing.as_bytes(), value_start) {
                Some(end) => FieldScan::Found {
                    value: String::from_utf8_lossy(body.get(value_start..end).unwrap_or(&[])).trim().to_string(),
                    start: value_start,
                    end,
                },
                None if complete => FieldScan::Absent,
                None => FieldScan::NeedMore,
            };
        }
        if is_file {
            return FieldScan::Absent;
        }
        match find(body, format!("\r\n{delim}").as_bytes(), value_start) {
            Some(next) => pos = next + 2,
            None => return if complete { FieldScan::Absent } else { FieldScan::NeedMore },
        }
    }
}

#[cfg(test)]
#[path = "tests/media_tests.rs"]
mod tests;
