//! Field validation for every dialect's requests: one function per kind of field, so the same
//! field gets the same answer on every front (the OpenAI front, the Anthropic front, the Gemini
//! front and the pivot read by the upstream side). Integer fields take integers only, as the
//! real APIs do: `5.0` is refused like `"5"` (an upstream would refuse it too, or read it
//! differently from the gateway).

use serde_json::{Map, Value};

use crate::errors::{Code, GatewayError};

/// The most choices (`n`, Gemini's `candidateCount`) one request may ask for: each one is a
/// whole completion, reserved and billed.
pub const MAX_CHOICES: u64 = 8;

#[cold]
fn type_error(param: &str, what: &str) -> GatewayError {
    GatewayError::bad(param, format!("'{param}' must be {what}"))
}

/// A request body: a JSON object.
pub fn parse_json_object(body: &[u8]) -> Result<Map<String, Value>, GatewayError> {
    if body.is_empty() {
        return Err(GatewayError::new(Code::BadRequest, "The request body is empty; a JSON object is required"));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(GatewayError::new(Code::BadRequest, "The request body must be a JSON object")),
        Err(e) => Err(GatewayError::new(Code::BadRequest, format!("The request body is not valid JSON: {e}"))),
    }
}

/// The `model` field: required, a non-empty string.
pub fn required_model(body: &Map<String, Value>) -> Result<String, GatewayError> {
    match body.get("model") {
        None | Some(Value::Null) => Err(GatewayError::missing("model")),
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::String(_)) => Err(GatewayError::missing("model")),
        Some(_) => Err(type_error("model", "a string")),
    }
}

/// An optional number (kept as the original JSON number).
pub fn opt_number<'a>(v: Option<&'a Value>, param: &str) -> Result<Option<&'a Value>, GatewayError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(n @ Value::Number(_)) => Ok(Some(n)),
        Some(_) => Err(type_error(param, "a number")),
    }
}

/// An optional number within `min..=max`.
pub fn number_in(v: Option<&Value>, param: &str, min: f64, max: f64) -> Result<(), GatewayError> {
    match opt_number(v, param)?.and_then(Value::as_f64) {
        Some(x) if !(min..=max).contains(&x) => Err(type_error(param, &format!("between {min} and {max}"))),
        _ => Ok(()),
    }
}

/// An optional non-negative integer (`5.0` is not one).
pub fn opt_uint(v: Option<&Value>, param: &str) -> Result<Option<u64>, GatewayError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(|| type_error(param, "a non-negative integer")),
        Some(_) => Err(type_error(param, "an integer")),
    }
}

/// An optional positive integer (token caps, choices; `5.0` is not one).
pub fn opt_positive(v: Option<&Value>, param: &str) -> Result<Option<u64>, GatewayError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(x) if x >= 1 => Ok(Some(x)),
            _ => Err(type_error(param, "a positive integer")),
        },
        Some(_) => Err(type_error(param, "an integer")),
    }
}

/// The number of choices (`n`, `candidateCount`): a positive integer up to `MAX_CHOICES`.
pub fn opt_choices(v: Option<&Value>, param: &str) -> Result<Option<u64>, GatewayError> {
    match opt_positive(v, param)? {
        Some(n) if n > MAX_CHOICES => Err(GatewayError::bad(
            param,
            format!("'{}' must be between 1 and {MAX_CHOICES}; got {n}", param.rsplit('.').next().unwrap_or(param)),
        )),
        n => Ok(n),
    }
}

pub fn opt_str<'a>(v: Option<&'a Value>, param: &str) -> Result<Option<&'a str>, GatewayError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(type_error(param, "a string")),
    }
}

pub fn req_str<'a>(v: Option<&'a Value>, param: &str) -> Result<&'a str, GatewayError> {
    opt_str(v, param)?.ok_or_else(|| GatewayError::missing(param))
}

pub fn opt_bool(v: Option<&Value>, param: &str) -> Result<Option<bool>, GatewayError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(type_error(param, "a boolean")),
    }
}

pub fn opt_array<'a>(v: Option<&'a Value>, param: &str) -> Result<Option<&'a Vec<Value>>, GatewayError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => Ok(Some(a)),
        Some(_) => Err(type_error(param, "an array")),
    }
}

pub fn req_array<'a>(v: Option<&'a Value>, param: &str) -> Result<&'a Vec<Value>, GatewayError> {
    opt_array(v, param)?.ok_or_else(|| GatewayError::missing(param))
}

pub fn opt_object<'a>(v: Option<&'a Value>, param: &str) -> Result<Option<&'a Map<String, Value>>, GatewayError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(_) => Err(type_error(param, "an object")),
    }
}

pub fn req_object<'a>(v: Option<&'a Value>, param: &str) -> Result<&'a Map<String, Value>, GatewayError> {
    opt_object(v, param)?.ok_or_else(|| GatewayError::missing(param))
}

/// An optional array of strings (`stop`-like fields). A lone string is accepted when `lone` is set.
pub fn opt_strings(v: Option<&Value>, param: &str, lone: bool) -> Result<Option<Vec<String>>, GatewayError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if lone => Ok(Some(vec![s.clone()])),
        Some(Value::Array(a)) => {
            let mut out = Vec::with_capacity(a.len());
            for (i, s) in a.iter().enumerate() {
                match s.as_str() {
                    Some(s) => out.push(s.to_string()),
                    None => return Err(type_error(&format!("{param}[{i}]"), "a string")),
                }
            }
            Ok(Some(out))
        }
        Some(_) => Err(type_error(param, "an array of strings")),
    }
}

/// `stream_options.include_usage`.
pub fn opt_include_usage(v: Option<&Value>) -> Result<bool, GatewayError> {
    match opt_object(v, "stream_options")? {
        None => Ok(false),
        Some(o) => match o.get("include_usage") {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(GatewayError::bad("stream_options.include_usage", "'include_usage' must be a boolean")),
        },
    }
}

#[cfg(test)]
#[path = "tests/validate_tests.rs"]
mod tests;
