"""The glue against real Envoy. Its hostcall failures (a refused header edit, body read or
rewrite) are driven natively in `filter/tests/glue_failures.rs`, since Envoy does not refuse them
on demand; here: the stat that counts them exists, and healthy traffic of every kind (the
requests whose header edits the glue now skips when there is nothing to remove) counts none and
still gets its answer."""

from conftest import Http, UPSTREAM_SECRET

KEY = "sk-demo-active"
CHAT = {"model": "qai-flash", "messages": [{"role": "user", "content": "hi"}]}


def failures(stack):
    lines = [l for l in stack.stats().splitlines() if l.startswith("wasmcustom.tollgate.hostcall_failures:")]
    assert len(lines) == 1, lines
    return int(lines[0].split(":")[1])


def test_healthy_traffic_counts_no_hostcall_failure(stack):
    http = Http(stack.url)
    before = failures(stack)
    stack.clear_backend_requests("demo_text")
    # A bare request (no header to remove but the key), one with headers to strip, a local reply,
    # an Anthropic front, a stream, and a `?key=` on a Gemini path.
    s, h, _ = http.json("POST", "/v1/chat/completions", CHAT, headers={"Authorization": f"Bearer {KEY}"})
    assert s == 200
    s, _, _ = http.json("POST", "/v1/chat/completions", CHAT,
                        headers={"Authorization": f"Bearer {KEY}", "Cookie": "a=1", "x-tollgate-cluster": "demo_video"})
    assert s == 200
    s, _, _ = http.json("POST", "/v1/chat/completions", CHAT, headers={"Authorization": "Bearer sk-wrong"})
    assert s == 401
    s, _, _ = http.json("POST", "/v1/messages", {**CHAT, "max_tokens": 16},
                        headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"})
    assert s == 200
    s, _, body = http.request("POST", "/v1/chat/completions", {**CHAT, "stream": True},
                              headers={"Authorization": f"Bearer {KEY}"})
    assert s == 200 and body.endswith(b"data: [DONE]\n\n")
    s, _, _ = http.json("POST", f"/v1beta/models/qai-flash:generateContent?key={KEY}",
                        {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
    assert s == 200
    reqs = stack.backend_requests("demo_text")
    assert len(reqs) == 5
    for r in reqs:
        h = {k.lower(): v for k, v in r["headers"]}
        assert h["authorization"] == f"Bearer {UPSTREAM_SECRET}", h
        assert h["x-tollgate-cluster"] == "demo_text"
        assert "cookie" not in h and "x-api-key" not in h and "x-goog-api-key" not in h
        assert KEY not in r["path"]
    assert failures(stack) == before == 0
