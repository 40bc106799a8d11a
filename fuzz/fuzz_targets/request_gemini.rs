//! Gemini generateContent request validation -> pivot -> every upstream dialect.
#![no_main]

use fuzzkit::{assert_error_renders, to_every_upstream};
use libfuzzer_sys::fuzz_target;
use tollgate_core::dialect::{gemini, openai, Dialect};

fuzz_target!(|data: &[u8]| {
    // [flags][body]: bit 0 = stream (the path's :streamGenerateContent).
    let Some((&flags, raw)) = data.split_first() else { return };
    let body = match openai::parse_json_object(raw) {
        Ok(b) => b,
        Err(e) => return assert_error_renders(&e),
    };
    match gemini::request_to_pivot(&body, "gemini-front", flags & 1 == 1) {
        Ok(p) => to_every_upstream(Dialect::Gemini, &p, false),
        Err(e) => assert_error_renders(&e),
    }
});
