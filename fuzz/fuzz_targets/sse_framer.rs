//! The SSE framer: any bytes, split anywhere, give the same events as the whole stream; the size
//! cap holds; nothing panics.
#![no_main]

use fuzzkit::{frame, pieces};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // [n][n size bytes][stream]
    let Some((&n, rest)) = data.split_first() else { return };
    let n = usize::from(n % 16).min(rest.len());
    let (sizes, stream) = rest.split_at(n);
    let (whole, whole_too_large) = frame(&[stream], usize::MAX);
    assert!(!whole_too_large);
    let split = pieces(stream, sizes);
    let (got, _) = frame(&split, usize::MAX);
    assert_eq!(got, whole, "splitting changed the events");
    // A small cap: either it refuses, or it gives exactly the uncapped events.
    let cap = usize::from(sizes.first().copied().unwrap_or(7)) + 1;
    let (capped, too_large) = frame(&split, cap);
    if !too_large {
        assert_eq!(capped, whole, "a cap that was never hit changed the events");
    }
});
