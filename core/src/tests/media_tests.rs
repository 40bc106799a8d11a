//! Tests of `media.rs` (in their own file, so test code is found by its path).
use super::*;
use crate::routing::Price;
use serde_json::json;

fn model(t: ModelType) -> Model {
    Model {
        id: "m".into(),
        model_type: t,
        cluster: 0,
        upstream_model: "m".into(),
        price: Price::default(),
        sandbox: false,
        default_max_tokens: 10,
        owned_by: "x".into(),
        sizes: vec!["1024x1024".into(), "512x512".into()],
        max_seconds: 10.0,
        task: None,
        context_window: None,
        supports: Default::default(),
        router: None,
        fallbacks: Vec::new(),
    }
}

fn check(ep: Endpoint, t: ModelType, body: Value) -> Result<f64, (Code, Option<String>)> {
    validate(&ep, body.as_object().unwrap(), &model(t)).map_err(|e| (e.code, e.param))
}

#[test]
fn images() {
    assert_eq!(
        check(Endpoint::Images, ModelType::Image, json!({"prompt": "a cat", "n": 3, "hostMedia": true, "extra": 1})),
        Ok(3.0)
    );
    assert_eq!(check(Endpoint::Images, ModelType::Image, json!({"prompt": "a cat"})), Ok(1.0));
    let p = |c: Code, f: &str| Err((c, Some(f.to_string())));
    assert_eq!(check(Endpoint::Images, ModelType::Image, json!({})), p(Code::MissingField, "prompt"));
    assert_eq!(check(Endpoint::Images, ModelType::Image, json!({"prompt": 5})), p(Code::BadRequest, "prompt"));
    assert_eq!(
        check(Endpoint::Images, ModelType::Image, json!({"prompt": "x".repeat(4001)})),
        p(Code::BadRequest, "prompt")
    );
    assert!(check(Endpoint::Images, ModelType::Image, json!({"prompt": "é".repeat(4000)})).is_ok());
    assert_eq!(check(Endpoint::Images, ModelType::Image, json!({"prompt": "a", "n": 5})), p(Code::BadRequest, "n"));
    assert_eq!(check(Endpoint::Images, ModelType::Image, json!({"prompt": "a", "n": 0})), p(Code::BadRequest, "n"));
    assert_eq!(check(Endpoint::Images, ModelType::Image, json!({"prompt": "a", "n": "2"})), p(Code::BadRequest, "n"));
    assert_eq!(
        check(Endpoint::Images, ModelType::Image, json!({"prompt": "a", "size": "999x999"})),
        p(Code::BadRequest, "size")
    );
    assert_eq!(
        check(Endpoint::Images, ModelType::Image, json!({"prompt": "a", "size": "big"})),
        p(Code::BadRequest, "size")
    );
    assert_eq!(
        check(Endpoint::Images, ModelType::Image, json!({"prompt": "a", "response_format": "gif"})),
        p(Code::BadRequest, "response_format")
    );
}

#[test]
fn videos_and_speech() {
    let p = |c: Code, f: &str| Err((c, Some(f.to_string())));
    assert_eq!(check(Endpoint::Videos, ModelType::Video, json!({"prompt": "a", "duration": 4})), Ok(4.0));
    assert_eq!(check(Endpoint::Videos, ModelType::Video, json!({"prompt": "a"})), Ok(6.0));
    assert_eq!(
        check(Endpoint::Videos, ModelType::Video, json!({"prompt": "a", "duration": 11})),
        p(Code::BadRequest, "duration")
    );
    assert_eq!(
        check(Endpoint::Videos, ModelType::Video, json!({"prompt": "a", "duration": "x"})),
        p(Code::BadRequest, "duration")
    );
    assert_eq!(check(Endpoint::Videos, ModelType::Video, json!({"prompt": "a", "fps": 0})), p(Code::BadRequest, "fps"));
    assert_eq!(
        check(Endpoint::Videos, ModelType::Video, json!({"prompt": "a", "fps": 16.5})),
        p(Code::BadRequest, "fps")
    );
    assert_eq!(check(Endpoint::Speech, ModelType::Audio, json!({"input": "héllo", "voice": "alloy"})), Ok(5.0));
    assert_eq!(check(Endpoint::Speech, ModelType::Audio, json!({"text": "hi"})), Ok(2.0));
    assert_eq!(check(Endpoint::Speech, ModelType::Audio, json!({"voice": "alloy"})), p(Code::MissingField, "input"));
    assert_eq!(
        check(Endpoint::Speech, ModelType::Audio, json!({"input": "a", "speed": 9})),
        p(Code::BadRequest, "speed")
    );
    assert_eq!(
        check(Endpoint::Speech, ModelType::Audio, json!({"input": "a", "response_format": "mp4"})),
        p(Code::BadRequest, "response_format")
    );
}

const B: &str = "XyZ";

fn form(parts: &[(&str, Option<&str>, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, file, value) in parts {
        out.extend_from_slice(format!("--{B}\r\nContent-Disposition: form-data; name=\"{name}\"").as_bytes());
        if let Some(f) = file {
            out.extend_from_slice(format!("; filename=\"{f}\"\r\nContent-Type: audio/wav").as_bytes());
        }
        out.extend_from_slice(format!("\r\n\r\n{value}\r\n").as_bytes());
    }
    out.extend_from_slice(format!("--{B}--\r\n").as_bytes());
    out
}

#[test]
fn multipart_model_field_at_any_split() {
    let body =
        form(&[("response_format", None, "json"), ("model", None, "qai-listen"), ("file", Some("a.wav"), "RIFFdata")]);
    let whole = scan_field(&body, B, "model", true);
    let FieldScan::Found { value, start, end } = &whole else { panic!("{whole:?}") };
    assert_eq!(value, "qai-listen");
    assert_eq!(&body[*start..*end], b"qai-listen");
    for cut in 0..body.len() {
        match scan_field(&body[..cut], B, "model", false) {
            FieldScan::NeedMore => assert!(cut < *end + 2 + B.len() + 2, "cut {cut}"),
            FieldScan::Found { value, .. } => assert_eq!(value, "qai-listen"),
            FieldScan::Absent => panic!("absent at cut {cut}"),
        }
    }
    // The file before the model: not read through.
    let body = form(&[("file", Some("a.wav"), "RIFFdata"), ("model", None, "m")]);
    assert_eq!(scan_field(&body, B, "model", false), FieldScan::Absent);
    assert_eq!(scan_field(&form(&[("x", None, "1")]), B, "model", true), FieldScan::Absent);
    assert_eq!(scan_field(b"garbage", B, "model", true), FieldScan::Absent);
}

#[test]
fn boundaries_and_seconds() {
    assert_eq!(multipart_boundary("multipart/form-data; boundary=abc").as_deref(), Some("abc"));
    assert_eq!(multipart_boundary("Multipart/Form-Data; charset=x; boundary=\"a b\"").as_deref(), Some("a b"));
    assert_eq!(multipart_boundary("application/json"), None);
    assert_eq!(transcription_seconds(br#"{"text":"x","usage":{"type":"duration","seconds":3}}"#), Some(3.0));
    assert_eq!(transcription_seconds(br#"{"text":"x","duration":2.5}"#), Some(2.5));
    assert_eq!(transcription_seconds(br#"{"text":"x"}"#), None);
    assert_eq!(estimated_upload_seconds(16_001), 2.0);
}
