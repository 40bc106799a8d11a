//! Exchange tests: The response path: streams, upstream errors.
use super::*;

#[test]
fn stream_chunks_of_whole_unchanged_events_pass_and_any_split_gives_the_same_bytes() {
    let c = cfg();
    let body = r#"{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#;
    let stream = concat!(
        "data: {\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n",
        // (the usage chunk is parsed and written again: its keys are in that order already)
        "data: {\"choices\":[],\"model\":\"m\",\"usage\":{\"completion_tokens\":1,\"prompt_tokens\":2}}\n\n",
        "data: [DONE]\n\n",
    )
    .as_bytes();
    let feed = |cuts: &[usize]| -> (Vec<u8>, Vec<bool>) {
        let (mut ex, r) = run(&c, &MemoryStore::new(), 0, "sk-a", body);
        assert!(r.is_none());
        ex.on_response_headers(200, Some("text/event-stream"));
        let (mut client, mut passed) = (Vec::new(), Vec::new());
        let mut start = 0;
        for (i, &end) in cuts.iter().chain([stream.len()].iter()).enumerate() {
            let piece = &stream[start..end];
            let last = i == cuts.len();
            match ex.on_response_chunk(piece, last, 1 << 20) {
                ChunkAction::Pass => {
                    client.extend_from_slice(piece);
                    passed.push(true);
                }
                ChunkAction::Replace(b) => {
                    client.extend_from_slice(&b);
                    passed.push(false);
                }
                ChunkAction::Buffer => panic!("a stream is never buffered"),
            }
            start = end;
        }
        assert_eq!(ex.usage.map(|u| u.prompt_tokens), Some(2));
        (client, passed)
    };
    let events: Vec<usize> = stream.windows(2).enumerate().filter(|(_, w)| w == b"\n\n").map(|(i, _)| i + 2).collect();
    let (whole, passed) = feed(&events[..events.len() - 1]);
    assert_eq!(whole, stream);
    assert!(passed.iter().all(|p| *p), "{passed:?}");
    for cut in 1..stream.len() {
        assert_eq!(feed(&[cut]).0, whole, "split at {cut}");
    }
}

#[test]
fn a_streams_replaced_chunks_are_written_into_the_memory_given_back() {
    let c = cfg();
    // `m2` is `up-m2` upstream: every event is rewritten with the client's name.
    let body = r#"{"model":"m2","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let (mut ex, r) = run(&c, &MemoryStore::new(), 0, "sk-a", body);
    assert!(r.is_none());
    ex.on_response_headers(200, Some("text/event-stream"));
    let ev = b"data: {\"choices\":[{\"delta\":{\"content\":\"a\"},\"index\":0}],\"model\":\"up-m2\"}\n\n";
    let want = b"data: {\"choices\":[{\"delta\":{\"content\":\"a\"},\"index\":0}],\"model\":\"m2\"}\n\n";
    fn replaced(ex: &mut Exchange, ev: &[u8]) -> Vec<u8> {
        match ex.on_response_chunk(ev, false, 1 << 20) {
            ChunkAction::Replace(b) => b,
            other => panic!("{other:?}"),
        }
    }
    let mut first = replaced(&mut ex, ev);
    assert_eq!(first, want);
    // A capacity no chunk of this size is given otherwise: the buffer is recognized by it.
    first.reserve(10_000);
    let (at, cap) = (first.as_ptr(), first.capacity());
    ex.recycle_output(first);
    for _ in 0..3 {
        let b = replaced(&mut ex, ev);
        assert_eq!(b, want);
        assert_eq!((b.as_ptr(), b.capacity()), (at, cap), "written into the buffer given back");
        ex.recycle_output(b);
    }
    // Kept by the caller: the next chunk is written into a new buffer, the same bytes.
    let kept = replaced(&mut ex, ev);
    let next = replaced(&mut ex, ev);
    assert_eq!((kept.as_ptr(), kept.capacity()), (at, cap));
    assert_ne!(next.as_ptr(), at);
    assert!(next.capacity() < 1_000, "{}", next.capacity());
    assert_eq!((kept.as_slice(), next.as_slice()), (&want[..], &want[..]));
}

#[test]
fn upstream_errors_tell_the_sdk_whether_to_retry() {
    let (c, s) = (cfg(), MemoryStore::new());
    for (upstream, status, retry) in
        [(500u16, "502", "true"), (503, "502", "true"), (429, "429", "true"), (400, "400", "false")]
    {
        let (mut ex, r) = run(&c, &s, 1_700_000_000_000 + u64::from(upstream) * 60_000, "sk-a", CHAT);
        assert!(r.is_none());
        let edits = ex.on_response_headers(upstream, Some("application/json"));
        assert!(edits.contains(&HeaderEdit::Set(":status".into(), status.into())), "{upstream}: {edits:?}");
        assert!(edits.contains(&HeaderEdit::Set("x-should-retry".into(), retry.into())), "{upstream}: {edits:?}");
    }
}

#[test]
fn a_bodyless_upstream_error_is_answered_in_the_callers_dialect() {
    let (c, s) = (cfg(), MemoryStore::new());
    let (mut ex, r) = run(&c, &s, 1000, "sk-a", CHAT);
    assert!(r.is_none());
    // Not an error: nothing to answer.
    let _ = ex.on_response_headers(200, Some("application/json"));
    assert!(ex.bodyless_error_reply(&c, None).is_none());
    let (mut ex, _) = run(&c, &s, 1000, "sk-a", CHAT);
    let _ = ex.on_response_headers(503, None);
    let r = ex.bodyless_error_reply(&c, Some("cluster_not_found")).unwrap();
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!((r.status, v["error"]["code"].as_str()), (502, Some("upstream_error")));
    assert_eq!(
        v["error"]["message"],
        "The gateway is misconfigured: its cluster 'c' is not defined in Envoy (clusters[].name must name an Envoy cluster)"
    );
    assert_eq!(header(&r, "x-should-retry"), Some("false"));
    assert_eq!(header(&r, "x-ratelimit-limit-requests"), Some("3"));
    // Any other bodyless failure: the usual upstream error, retryable.
    let r = ex.bodyless_error_reply(&c, Some("via_upstream")).unwrap();
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["error"]["message"], "The generation service failed (upstream status 503): no details");
    assert_eq!(header(&r, "x-should-retry"), Some("true"));
}

#[test]
fn an_event_stream_is_known_by_its_content_type_in_any_case() {
    let c = cfg();
    let body = r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let cases = [
        ("text/event-stream", true),
        ("  Text/Event-Stream; charset=utf-8", true),
        ("TEXT/EVENT-STREAMING", true),
        ("text/event-strea", false),
        ("t\u{e9}xt/event-stream", false),
        ("x text/event-stream", false),
        ("application/json", false),
        ("", false),
    ];
    for (ct, sse) in cases {
        let (mut ex, r) = run(&c, &MemoryStore::new(), 0, "sk-a", body);
        assert!(r.is_none());
        ex.on_response_headers(200, Some(ct));
        assert_eq!(matches!(ex.mode, super::super::response::ResponseMode::Stream { .. }), sse, "{ct:?}");
    }
}
