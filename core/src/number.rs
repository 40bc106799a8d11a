//! A decimal number read from text as `str::parse::<f64>` reads it, through serde_json's number
//! reader (already in the module for JSON) instead of core's float parser: core's parser and its
//! table of powers of five are about 15 KB of the `.wasm` (issue 7's size budget), for two cold
//! reads (a compact key table's `cap=`, a form field's number).
//!
//! The same texts are accepted: an optional sign (`+` too), digits with an optional `.` (digits
//! may be on one side only: `.5`, `5.`), leading zeros, an optional exponent (`e`/`E`, signed).
//! `inf`, `infinity` and `nan`, which `str::parse` reads as values that are not finite, are
//! refused here: both callers refuse a number that is not finite. The value is the same whenever
//! the digits fit in 15 significant digits and the exponent keeps the number within 1e±22 of
//! them (exact operands, one correct rounding); longer inputs may differ in the last bit.

/// `text` as `str::parse::<f64>` reads it, for finite values.
pub fn parse_f64(text: &str) -> Option<f64> {
    let b = text.as_bytes();
    let (negative, rest) = match b.split_first() {
        Some((b'-', r)) => (true, r),
        Some((b'+', r)) => (false, r),
        _ => (false, b),
    };
    let int_len = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    let (int, rest) = rest.split_at(int_len);
    let (frac, rest) = match rest.split_first() {
        Some((b'.', r)) => {
            let n = r.iter().take_while(|c| c.is_ascii_digit()).count();
            r.split_at(n)
        }
        _ => (&[][..], rest),
    };
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let exp = match rest.split_first() {
        None => &[][..],
        Some((b'e' | b'E', r)) => {
            let digits = match r.split_first() {
                Some((b'+' | b'-', d)) => d,
                _ => r,
            };
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            r
        }
        Some(_) => return None,
    };
    // The JSON form of the same number: no `+`, no leading zeros, digits on both sides of a `.`.
    let mut json = Vec::with_capacity(text.len() + 3);
    if negative {
        json.push(b'-');
    }
    let int = match int.iter().position(|&c| c != b'0') {
        Some(i) => int.get(i..).unwrap_or_default(),
        None => b"0",
    };
    json.extend_from_slice(int);
    if !frac.is_empty() {
        json.push(b'.');
        json.extend_from_slice(frac);
    }
    if !exp.is_empty() {
        json.push(b'e');
        json.extend_from_slice(exp);
    }
    serde_json::from_slice::<f64>(&json).ok().filter(|f| f.is_finite())
}

#[cfg(test)]
#[path = "tests/number_tests.rs"]
mod tests;
