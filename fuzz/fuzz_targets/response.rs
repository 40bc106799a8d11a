//! Non-streamed responses, for every front x upstream pair: a rewritten body is JSON.
#![no_main]

use fuzzkit::dialect;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tollgate_core::translate;

fuzz_target!(|data: &[u8]| {
    // [front][upstream][body]
    let [f, u, body @ ..] = data else { return };
    let (front, upstream) = (dialect(*f), dialect(*u));
    let Ok((out, _usage)) = translate::response(front, upstream, body, "client-model", "up-model") else { return };
    if let Some(b) = out {
        let v: Value = serde_json::from_slice(&b).expect("rewritten response is JSON");
        assert!(v.is_object(), "rewritten response is an object");
    }
});
