//! Media endpoints: images, videos, speech, transcriptions, and the demo files.
//! All media bytes are generated in code once and then served from memory.

use std::sync::OnceLock;

use bytes::Bytes;
use hyper::StatusCode;
use serde_json::{json, Value};

use crate::body::{self, Resp};
use crate::openai::{bad_request, parse_object};
use crate::util::{as_count, base64_encode, get_any, unix_now};

/// Most images returned for one request.
const MAX_IMAGES: u64 = 128;
/// Default video duration in seconds.
const DEFAULT_VIDEO_SECONDS: u64 = 6;

// ---------------------------------------------------------------- PNG ----

fn crc32(parts: &[&[u8]]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for part in parts {
        for &b in *part {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            }
        }
    }
    !crc
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + u32::from(x)) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}

fn png_chunk(out: &mut Vec<u8>, ty: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(ty);
    out.extend_from_slice(data);
    out.extend_from_slice(&crc32(&[ty, data]).to_be_bytes());
}

/// A valid 8x8 RGB PNG (a colour gradient), zlib "stored" compression.
fn make_png() -> Vec<u8> {
    const W: u32 = 8;
    const H: u32 = 8;
    let mut raw = Vec::with_capacity((H * (1 + W * 3)) as usize);
    for y in 0..H {
        raw.push(0); // filter type: None
        for x in 0..W {
            raw.extend_from_slice(&[(x * 32) as u8, (y * 32) as u8, 0xA0]);
        }
    }
    // zlib: CMF/FLG, one final stored block, Adler-32.
    let mut z = vec![0x78, 0x01, 0x01];
    let len = raw.len() as u16;
    z.extend_from_slice(&len.to_le_bytes());
    z.extend_from_slice(&(!len).to_le_bytes());
    z.extend_from_slice(&raw);
    z.extend_from_slice(&adler32(&raw).to_be_bytes());

    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&W.to_be_bytes());
    ihdr.extend_from_slice(&H.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit, RGB, deflate, filter 0, no interlace

    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    png_chunk(&mut out, b"IHDR", &ihdr);
    png_chunk(&mut out, b"IDAT", &z);
    png_chunk(&mut out, b"IEND", &[]);
    out
}

pub fn png() -> &'static Bytes {
    static PNG: OnceLock<Bytes> = OnceLock::new();
    PNG.get_or_init(|| Bytes::from(make_png()))
}

fn png_b64() -> &'static str {
    static B64: OnceLock<String> = OnceLock::new();
    B64.get_or_init(|| base64_encode(png()))
}

// ---------------------------------------------------------------- WAV ----

/// 0.25 s of a 440 Hz sine, 16 kHz, 16-bit mono PCM in a RIFF/WAVE container.
fn make_wav() -> Vec<u8> {
    const RATE: u32 = 16_000;
    const SAMPLES: u32 = RATE / 4;
    let data_len = SAMPLES * 2;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes()); // fmt chunk size
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&RATE.to_le_bytes());
    out.extend_from_slice(&(RATE * 2).to_le_bytes()); // byte rate
    out.extend_from_slice(&2u16.to_le_bytes()); // block align
    out.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..SAMPLES {
        let t = i as f32 / RATE as f32;
        let v = (t * 440.0 * std::f32::consts::TAU).sin() * 0.3 * f32::from(i16::MAX);
        out.extend_from_slice(&(v as i16).to_le_bytes());
    }
    out
}

fn wav() -> &'static Bytes {
    static WAV: OnceLock<Bytes> = OnceLock::new();
    WAV.get_or_init(|| Bytes::from(make_wav()))
}

/// About 0.25 s of silence as MPEG-1 Layer III: ten 417-byte frames (128 kbit/s, 44.1 kHz,
/// mono, no CRC) whose side information and data are zero, which decoders play as silence.
fn make_mp3() -> Vec<u8> {
    const FRAME: usize = 417; // 144 * 128000 / 44100, no padding
    let mut out = Vec::with_capacity(FRAME * 10);
    for _ in 0..10 {
        out.extend_from_slice(&[0xFF, 0xFB, 0x90, 0xC4]);
        out.resize(out.len() + FRAME - 4, 0);
    }
    out
}

fn mp3() -> &'static Bytes {
    static MP3: OnceLock<Bytes> = OnceLock::new();
    MP3.get_or_init(|| Bytes::from(make_mp3()))
}

// ---------------------------------------------------------------- MP4 ----

/// A tiny placeholder MP4: `ftyp`, `free` and an empty `mdat` box.
fn make_mp4() -> Vec<u8> {
    let mut out = Vec::with_capacity(48);
    out.extend_from_slice(&32u32.to_be_bytes());
    out.extend_from_slice(b"ftypisom");
    out.extend_from_slice(&0x200u32.to_be_bytes());
    out.extend_from_slice(b"isomiso2avc1mp41");
    out.extend_from_slice(&8u32.to_be_bytes());
    out.extend_from_slice(b"free");
    out.extend_from_slice(&8u32.to_be_bytes());
    out.extend_from_slice(b"mdat");
    out
}

fn mp4() -> &'static Bytes {
    static MP4: OnceLock<Bytes> = OnceLock::new();
    MP4.get_or_init(|| Bytes::from(make_mp4()))
}

/// Build the media caches at startup so no request pays for it.
pub fn warm_up() {
    let _ = (png_b64(), wav(), mp3(), mp4());
}

// ---------------------------------------------------------- endpoints ----

pub fn file_png() -> Resp {
    body::full(StatusCode::OK, "image/png", png().clone())
}

pub fn file_mp4() -> Resp {
    body::full(StatusCode::OK, "video/mp4", mp4().clone())
}

/// `POST /v1/images/generations`
pub fn images(host: &str, body: &[u8]) -> Resp {
    let req = match parse_object(body) {
        Ok(v) => v,
        Err(m) => return bad_request(&m),
    };
    let n = as_count(req.get("n")).unwrap_or(1).clamp(1, MAX_IMAGES);
    let as_url = req.get("response_format").and_then(Value::as_str) == Some("url");
    let item = if as_url {
        json!({"url": format!("http://{host}/v1/files/demo.png")})
    } else {
        json!({"b64_json": png_b64()})
    };
    let data: Vec<Value> = (0..n).map(|_| item.clone()).collect();
    body::json(StatusCode::OK, &json!({"created": unix_now(), "data": data}))
}

/// `POST /v1/videos/generations`
pub fn videos(host: &str, body: &[u8]) -> Resp {
    let req = match parse_object(body) {
        Ok(v) => v,
        Err(m) => return bad_request(&m),
    };
    let duration = match get_any(&req, &["duration", "duration_seconds", "seconds"]) {
        Some(Value::Number(n)) => Value::Number(n.clone()),
        Some(Value::String(s)) => match s.trim().parse::<u64>() {
            Ok(v) => json!(v),
            Err(_) => match s.trim().parse::<f64>() {
                Ok(f) if f.is_finite() => json!(f),
                _ => json!(DEFAULT_VIDEO_SECONDS),
            },
        },
        _ => json!(DEFAULT_VIDEO_SECONDS),
    };
    body::json(
        StatusCode::OK,
        &json!({
            "created": unix_now(),
            "data": [{
                "url": format!("http://{host}/v1/files/demo.mp4"),
                "content_type": "video/mp4",
                "duration_seconds": duration,
            }],
        }),
    )
}

/// `POST /v1/audio/speech`
pub fn speech(body: &[u8]) -> Resp {
    let req = match parse_object(body) {
        Ok(v) => v,
        Err(m) => return bad_request(&m),
    };
    // The bytes are what the label says: MP3 and raw PCM are real; the demo has no opus, aac or
    // flac encoder, so those (and wav, and no format) get WAV, labelled audio/wav.
    match req.get("response_format").and_then(Value::as_str) {
        Some("mp3") => body::full(StatusCode::OK, "audio/mpeg", mp3().clone()),
        Some("pcm") => body::full(StatusCode::OK, "audio/pcm", wav().slice(44..)),
        _ => body::full(StatusCode::OK, "audio/wav", wav().clone()),
    }
}

/// `POST /v1/audio/transcriptions` (the multipart body is only counted).
pub fn transcriptions(body: &[u8]) -> Resp {
    // `response_format=text` (a multipart field): a plain-text reply with no duration, as OpenAI's.
    let text_format = body
        .windows(26)
        .position(|w| w == b"name=\"response_format\"\r\n\r\n")
        .is_some_and(|i| body.get(i + 26..i + 30) == Some(b"text"));
    if text_format {
        return body::full(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            format!("demo transcription of {} bytes", body.len()),
        );
    }
    body::json(
        StatusCode::OK,
        &json!({
            "text": format!("demo transcription of {} bytes", body.len()),
            // As OpenAI reports it: seconds of audio (here: of 16 kHz mono 16-bit PCM).
            "usage": {"type": "duration", "seconds": (body.len() as u64 / 32_000).max(1)},
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_and_adler_vectors() {
        assert_eq!(crc32(&[b"123456789"]), 0xCBF4_3926);
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
    }

    #[test]
    fn mp3_frames() {
        let m = make_mp3();
        assert_eq!(m.len(), 4170);
        assert!(m.chunks(417).all(|f| f[..4] == [0xFF, 0xFB, 0x90, 0xC4] && f[4..].iter().all(|b| *b == 0)));
    }

    #[test]
    fn wav_header() {
        let w = make_wav();
        assert_eq!(&w[..4], b"RIFF");
        assert_eq!(&w[8..12], b"WAVE");
        assert_eq!(w.len(), 44 + 8000);
    }
}
