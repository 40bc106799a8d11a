//! OpenAI Chat Completions request validation -> pivot -> every upstream dialect.
#![no_main]

use fuzzkit::{assert_error_renders, to_every_upstream};
use libfuzzer_sys::fuzz_target;
use tollgate_core::dialect::openai;
use tollgate_core::dialect::pivot::PivotRequest;
use tollgate_core::dialect::Dialect;

fuzz_target!(|data: &[u8]| {
    match openai::parse_chat(data) {
        Ok(req) => {
            assert!(!req.model.is_empty());
            let wants_usage = req.wants_usage;
            let p = PivotRequest::from(req);
            to_every_upstream(Dialect::OpenAi, &p, wants_usage);
        }
        Err(e) => assert_error_renders(&e),
    }
});
