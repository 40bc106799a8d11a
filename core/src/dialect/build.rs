//! Compact builders for the upstream request builders (`request_from_pivot`), which run once a
//! request: one out-of-line object builder instead of a `json!` expansion (an inline key
//! allocation, map insert and drop for every key), and validators whose parameter path is
//! formatted only when they refuse (the path is a `format_args!`, not a `String` built for every
//! field that passes). The `Value` trees, and so the bytes sent, are the same as before; the
//! refusals are the `validate` functions' own.

use std::fmt::Arguments;

use serde_json::{Map, Value};

use crate::dialect::validate::{opt_array, opt_bool, opt_object, opt_str, req_object, req_str};
use crate::errors::GatewayError;

/// The object of `pairs` (keys in any order: the map sorts them, as `json!`'s did).
#[inline(never)]
pub(crate) fn jobj<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    let mut m = Map::new();
    for (k, v) in pairs {
        m.insert(k.to_string(), v);
    }
    Value::Object(m)
}

/// A JSON string.
#[inline(never)]
pub(crate) fn jstr(s: &str) -> Value {
    Value::String(s.to_string())
}

/// The refusal of `check` for the field at `at`, `check` having refused it already.
#[cold]
#[inline(never)]
fn refusal(v: Option<&Value>, at: Arguments, check: fn(Option<&Value>, &str) -> Option<GatewayError>) -> GatewayError {
    let param = std::fmt::format(at);
    match check(v, &param) {
        Some(e) => e,
        None => GatewayError::bad(&param, format!("'{param}' is not valid")),
    }
}

/// `validate::req_str` for the field at `at`.
pub(crate) fn req_str_at<'a>(v: Option<&'a Value>, at: Arguments) -> Result<&'a str, GatewayError> {
    match v {
        Some(Value::String(s)) => Ok(s),
        _ => Err(refusal(v, at, |v, p| req_str(v, p).err())),
    }
}

/// `validate::opt_str` for the field at `at`.
pub(crate) fn opt_str_at<'a>(v: Option<&'a Value>, at: Arguments) -> Result<Option<&'a str>, GatewayError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        _ => Err(refusal(v, at, |v, p| opt_str(v, p).err())),
    }
}

/// `validate::req_object` for the field at `at`.
pub(crate) fn req_object_at<'a>(v: Option<&'a Value>, at: Arguments) -> Result<&'a Map<String, Value>, GatewayError> {
    match v {
        Some(Value::Object(o)) => Ok(o),
        _ => Err(refusal(v, at, |v, p| req_object(v, p).err())),
    }
}

/// `validate::opt_object` for the field at `at`.
pub(crate) fn opt_object_at<'a>(
    v: Option<&'a Value>,
    at: Arguments,
) -> Result<Option<&'a Map<String, Value>>, GatewayError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        _ => Err(refusal(v, at, |v, p| opt_object(v, p).err())),
    }
}

/// `validate::opt_array` for the field at `at`.
pub(crate) fn opt_array_at<'a>(v: Option<&'a Value>, at: Arguments) -> Result<Option<&'a Vec<Value>>, GatewayError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => Ok(Some(a)),
        _ => Err(refusal(v, at, |v, p| opt_array(v, p).err())),
    }
}

/// `validate::opt_bool` for the field at `at`.
pub(crate) fn opt_bool_at(v: Option<&Value>, at: Arguments) -> Result<Option<bool>, GatewayError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        _ => Err(refusal(v, at, |v, p| opt_bool(v, p).err())),
    }
}

/// `check` (a `validate` function) for the field at `at`: checked without a name first, and
/// named (formatted) only when it refuses.
pub(crate) fn checked<'a, T>(
    v: Option<&'a Value>,
    at: Arguments,
    check: fn(Option<&'a Value>, &str) -> Result<T, GatewayError>,
) -> Result<T, GatewayError> {
    match check(v, "") {
        Ok(x) => Ok(x),
        Err(_) => check(v, &std::fmt::format(at)),
    }
}
