//! Responses API request validation -> pivot -> every upstream dialect.
#![no_main]

use fuzzkit::{assert_error_renders, to_every_upstream};
use libfuzzer_sys::fuzz_target;
use tollgate_core::dialect::{openai, responses, Dialect};

fuzz_target!(|data: &[u8]| {
    let body = match openai::parse_json_object(data) {
        Ok(b) => b,
        Err(e) => return assert_error_renders(&e),
    };
    match responses::request_to_pivot(&body) {
        Ok(p) => {
            assert!(!p.model.is_empty());
            to_every_upstream(Dialect::OpenAiResponses, &p, false);
        }
        Err(e) => assert_error_renders(&e),
    }
});
