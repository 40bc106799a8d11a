//! Streams for every front x upstream pair: upstream bytes -> framer -> StreamPipe -> client
//! bytes. The client bytes do not depend on how the upstream split its stream, and are SSE the
//! client can parse. What is billed (the usage, whether it is complete, the completion text
//! bytes an estimate would use) does not depend on the split either, and an OpenAI client that did
//! not ask for usage never gets a usage chunk.
#![no_main]

use fuzzkit::{assert_client_sse, dialect, frame, pieces};
use libfuzzer_sys::fuzz_target;
use tollgate_core::dialect::Dialect;
use tollgate_core::translate::StreamPipe;

/// What a stream bills: the usage, whether the upstream finished and reported it, and the text
/// bytes an estimate falls back on.
type Billed = (Option<tollgate_core::usage::Usage>, bool, u64);

fn run(front: Dialect, upstream: Dialect, flags: u8, split: &[&[u8]]) -> (Vec<u8>, Billed) {
    let rename = if flags & 2 == 2 { "up-model" } else { "client-model" };
    let mut pipe = StreamPipe::new(front, upstream, "client-model", rename, flags & 1 == 1);
    let mut out = Vec::new();
    let mut framer = tollgate_core::sse::Framer::default();
    for p in split {
        let mut events = Vec::new();
        if framer.push(p, &mut events).is_err() {
            pipe.error("oversized event", &mut out);
            return (out, (pipe.usage(), pipe.complete(), pipe.text_bytes()));
        }
        for ev in &events {
            pipe.on_event(ev, &mut out);
        }
    }
    let mut events = Vec::new();
    framer.finish(&mut events);
    for ev in &events {
        pipe.on_event(ev, &mut out);
    }
    if flags & 4 == 4 {
        pipe.error("upstream reset", &mut out);
    }
    pipe.finish(&mut out);
    let billed = (pipe.usage(), pipe.complete(), pipe.text_bytes());
    (out, billed)
}

fuzz_target!(|data: &[u8]| {
    // [front][upstream][flags][n][n size bytes][upstream stream]
    let [f, u, flags, n, rest @ ..] = data else { return };
    let n = usize::from(*n % 16).min(rest.len());
    let (sizes, stream) = rest.split_at(n);
    let (front, upstream) = (dialect(*f), dialect(*u));
    let (whole, billed) = run(front, upstream, *flags, &[stream]);
    let (split, billed_split) = run(front, upstream, *flags, &pieces(stream, sizes));
    assert!(whole == split, "splitting the upstream stream changed the client stream");
    assert_eq!(billed, billed_split, "splitting the upstream stream changed what is billed");
    if front == Dialect::OpenAi && *flags & 1 == 0 {
        let (client, _) = frame(&[&whole], usize::MAX);
        for ev in &client {
            if let Ok(serde_json::Value::Object(o)) = serde_json::from_str::<serde_json::Value>(&ev.data) {
                assert!(
                    !o.get("usage").is_some_and(serde_json::Value::is_object),
                    "usage chunk sent to a client that did not ask: {}",
                    ev.data
                );
            }
        }
    }
    if front == Dialect::OpenAi && upstream == Dialect::OpenAi {
        // The fast path forwards what it does not understand, but event by event: re-framing
        // the client stream gives back each upstream event's data.
        let (ups, _) = frame(&[stream], usize::MAX);
        let (client, _) = frame(&[&whole], usize::MAX);
        for ev in &client {
            let known = ev.data == "[DONE]"
                || serde_json::from_str::<serde_json::Value>(&ev.data).is_ok()
                || ups.iter().any(|u| u.data.trim() == ev.data);
            assert!(known, "client event {:?} is no upstream event", ev.data);
        }
    } else {
        assert_client_sse(front, &whole);
    }
});
