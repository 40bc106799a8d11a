"""Faults, against real Envoy (one worker, so "the next request" runs on the same VM): an upstream
that fails with 5xx, resets before or during a stream, stalls, sends invalid JSON or a malformed
stream, or sends no usage, and a client that leaves mid-stream. Each time the client gets the
documented error in its dialect (or its stream ends), a billing record is written (estimated
where usage is missing), and the next request succeeds; the VM never restarts or panics."""
import http.client
import json
import re
import socket
import urllib.error
import urllib.request

import pytest

from tollgate_harness import Stack

KEY = "sk-demo-active"
PROMPT = "Say something about faults"
VM_CRASH = re.compile(r"panicked at|Function: proxy_on_\w+ failed|RuntimeError")


def short_timeouts(doc):
    """Route timeout 3 s (not 120 s) so that stalls hit it quickly."""
    hcm = doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    for vh in hcm["route_config"]["virtual_hosts"]:
        for r in vh["routes"]:
            if "route" in r:
                r["route"]["timeout"] = "3s"
    return doc


@pytest.fixture(scope="module")
def fs():
    s = Stack(concurrency=1, patch_envoy=short_timeouts)
    s.start()
    s.vms_at_start = vm_stats(s)
    yield s
    log = s.envoy_log_text()
    s.stop()
    assert not VM_CRASH.search(log), "a wasm VM failed during the fault tests"


VM_STATS = ("wasm.envoy.wasm.runtime.v8.created", "wasm.envoy.wasm.runtime.v8.active", "wasm.wasm_vm_count",
            "wasm.tollgate.vm_reload", "wasm.tollgate.vm_reload_failure", "wasm.tollgate.vm_reload_success")


def vm_stats(stack):
    values = dict(line.split(": ", 1) for line in stack.stats().splitlines() if ": " in line)
    return {name: int(values[name]) for name in VM_STATS}  # KeyError: a stat vanished


def request(front, stream):
    if front == "openai":
        return ("/v1/chat/completions", {"model": "qai-flash", "stream": stream,
                                          "messages": [{"role": "user", "content": PROMPT}]},
                {"authorization": f"Bearer {KEY}"})
    if front == "anthropic":
        return ("/v1/messages", {"model": "qai-flash", "max_tokens": 100, "stream": stream,
                                 "messages": [{"role": "user", "content": PROMPT}]},
                {"x-api-key": KEY, "anthropic-version": "2023-06-01"})
    verb = "streamGenerateContent?alt=sse" if stream else "generateContent"
    return (f"/v1beta/models/qai-flash:{verb}", {"contents": [{"parts": [{"text": PROMPT}]}]}, {"x-goog-api-key": KEY})


def call(stack, front, stream=False, faults=None, timeout=30):
    path, body, headers = request(front, stream)
    h = {"content-type": "application/json", **headers, **(faults or {})}
    req = urllib.request.Request(stack.url + path, data=json.dumps(body).encode(), headers=h, method="POST")
    try:
        r = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read(), True
    with r:
        hdrs = {k.lower(): v for k, v in r.headers.items()}
        try:
            return r.status, hdrs, r.read(), True
        except http.client.IncompleteRead as e:
            return r.status, hdrs, e.partial, False


def error_of(front, status, raw):
    """Checks the body is the dialect's error shape; returns (type or status, message)."""
    v = json.loads(raw)
    if front == "openai":
        return v["error"]["code"], v["error"]["message"]
    if front == "anthropic":
        assert v["type"] == "error"
        return v["error"]["type"], v["error"]["message"]
    assert v["error"]["code"] == status
    return v["error"]["status"], v["error"]["message"]


UPSTREAM_ERROR = {"openai": "upstream_error", "anthropic": "api_error", "gemini": "UNAVAILABLE"}


def next_request_works(stack, front):
    status, _, raw, complete = call(stack, front)
    assert status == 200 and complete, raw[:300]


@pytest.mark.parametrize("front", ["openai", "anthropic", "gemini"])
@pytest.mark.parametrize("fault", [
    {"x-demo-status": "500"},
    {"x-demo-status": "503"},
    {"x-demo-fault": "reset"},
    {"x-demo-delay-ms": "6000"},          # stalls past the 3 s route timeout
    {"x-demo-fault": "garbage-json"},
    {"x-demo-fault": "echo-auth-401"},    # the upstream refused our credential and quotes it
    {"x-demo-fault": "echo-auth-403"},
], ids=["500", "503", "reset-before-headers", "stall", "invalid-json", "401-quoting-auth", "403-quoting-auth"])
def test_upstream_failure_is_a_502_in_the_callers_dialect(fs, front, fault):
    status, headers, raw, _ = call(fs, front, faults=fault)
    assert status == 502, (status, raw[:300])
    assert headers["content-type"].startswith("application/json")
    kind, msg = error_of(front, 502, raw)
    assert kind == UPSTREAM_ERROR[front], raw
    assert msg
    if fault.get("x-demo-fault", "").startswith("echo-auth-"):
        assert "Request headers" not in msg, "an upstream 401/403 body is never relayed"
    rec = fs.billing_record(headers["x-request-id"])
    assert rec["status"] == 502 and rec["error"] == "upstream_error"
    assert rec["credits"] == 0 and rec["prompt_tokens"] == 0, "a failed upstream call is not billed"
    next_request_works(fs, front)


@pytest.mark.parametrize("front", ["anthropic", "gemini"])
def test_json_that_is_no_response_is_a_502_with_the_reason(fs, front):
    """Valid JSON without `choices` from the OpenAI upstream cannot be translated: the client
    gets the gateway's 502 saying why, not an empty message made of it."""
    status, headers, raw, _ = call(fs, front, faults={"x-demo-fault": "not-a-response"})
    assert status == 502, (status, raw[:300])
    kind, msg = error_of(front, 502, raw)
    assert (kind, msg) == (UPSTREAM_ERROR[front],
                           "The generation service sent an invalid response (the OpenAI response has no 'choices')")
    rec = fs.billing_record(headers["x-request-id"])
    assert (rec["status"], rec["error"]) == (502, "upstream_error")
    next_request_works(fs, front)


@pytest.mark.parametrize("front", ["openai", "anthropic", "gemini"])
def test_oversized_upstream_response_is_a_502_billed_on_an_estimate(fs, front):
    # 10 MB of JSON, past the 8 MiB max_body_bytes: none of it reaches the client.
    status, headers, raw, _ = call(fs, front, faults={"x-demo-pad-bytes": "10000000"})
    assert status == 502 and len(raw) < 300, (status, raw[:300])
    kind, msg = error_of(front, 502, raw)
    assert kind == UPSTREAM_ERROR[front] and "larger than 8388608 bytes" in msg, raw
    rec = fs.billing_record(headers["x-request-id"])
    assert (rec["status"], rec["error"], rec["estimated"]) == (502, "upstream_error", True)
    # The upstream generated it: billed, on the completion budget the request authorised
    # (Anthropic: max_tokens 100; the others: the default 1024), not on the 8 MiB read.
    assert rec["completion_tokens"] == {"anthropic": 100}.get(front, 1024) and rec["credits"] > 0, rec
    next_request_works(fs, front)


@pytest.mark.parametrize("front", ["openai", "anthropic", "gemini"])
@pytest.mark.parametrize("fault", [
    {"x-demo-chunks": "30", "x-demo-cut-after": "4"},        # reset during the stream
    {"x-demo-chunks": "5", "x-demo-chunk-delay-ms": "2000"},  # stalls mid-stream past the timeout
], ids=["reset-mid-stream", "stall-mid-stream"])
def test_stream_cut_by_the_upstream_is_billed_estimated(fs, front, fault):
    status, headers, raw, complete = call(fs, front, stream=True, faults=fault)
    assert status == 200
    assert not complete, "the client sees the stream end early"
    assert raw.count(b"data:") >= 1
    rec = fs.billing_record(headers["x-request-id"])
    assert rec["estimated"] is True and rec["complete"] is False
    assert rec["prompt_tokens"] > 0 and rec["completion_tokens"] > 0 and rec["credits"] > 0
    next_request_works(fs, front)


@pytest.mark.parametrize("front", ["anthropic", "gemini"])
def test_malformed_upstream_stream_ends_in_the_dialects_error_event(fs, front):
    status, headers, raw, _ = call(fs, front, stream=True, faults={"x-demo-fault": "garbage-sse"})
    assert status == 200
    text = raw.decode()
    if front == "anthropic":
        assert "event: error" in text and '"api_error"' in text, text
    else:
        errors = [json.loads(l[6:]) for l in text.splitlines() if l.startswith("data: ") and '"error"' in l]
        assert errors and errors[0]["error"]["status"] == "INTERNAL", text
    rec = fs.billing_record(headers["x-request-id"])
    assert rec["status"] == 200 and rec["estimated"] is True
    next_request_works(fs, front)


def test_malformed_stream_to_an_openai_client_is_relayed_and_billed(fs):
    # OpenAI to OpenAI passes events through untranslated: the client's SDK sees the bad event.
    status, headers, raw, _ = call(fs, "openai", stream=True, faults={"x-demo-fault": "garbage-sse"})
    assert status == 200 and b"data: [DONE]" in raw
    rec = fs.billing_record(headers["x-request-id"])
    assert rec["estimated"] is True and rec["prompt_tokens"] > 0
    next_request_works(fs, "openai")


UTF8_HEAD = b'data: {"id":"c","object":"chat.completion.chunk","model":"qai-flash","choices":['


def test_stream_text_that_is_not_ascii_passes_and_a_byte_that_is_not_utf8_is_repaired(fs):
    # The framer checks an event's text as ASCII first, then as UTF-8: non-ASCII text (a
    # character split across two upstream chunks, an emoji) reaches an OpenAI client byte for
    # byte, a byte that is not UTF-8 as U+FFFD; the usage chunk is read and dropped.
    status, headers, raw, complete = call(fs, "openai", stream=True, faults={"x-demo-fault": "utf8-sse"})
    assert (status, complete) == (200, True)
    assert raw == (UTF8_HEAD + '{"index":0,"delta":{"content":"caf\u00e9 \U0001F600 d\u00e9j\u00e0 vu"}}]}\n\n'.encode()
                   + UTF8_HEAD + '{"index":0,"delta":{"content":"bad \ufffd byte"}}]}\n\n'.encode()
                   + UTF8_HEAD + b'{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
                   + b"data: [DONE]\n\n"), raw
    rec = fs.billing_record(headers["x-request-id"])
    assert (rec["prompt_tokens"], rec["completion_tokens"], rec["estimated"]) == (3, 4, False)


def test_stream_text_that_is_not_ascii_is_translated_whole(fs):
    status, headers, raw, complete = call(fs, "anthropic", stream=True, faults={"x-demo-fault": "utf8-sse"})
    assert (status, complete) == (200, True)
    deltas = [json.loads(l[6:])["delta"]["text"] for l in raw.decode().splitlines()
              if l.startswith("data: ") and '"text_delta"' in l]
    assert deltas == ["caf\u00e9 \U0001F600 d\u00e9j\u00e0 vu", "bad \ufffd byte"], raw
    rec = fs.billing_record(headers["x-request-id"])
    assert (rec["prompt_tokens"], rec["completion_tokens"], rec["estimated"]) == (3, 4, False)


@pytest.mark.parametrize("front", ["openai", "anthropic", "gemini"])
def test_no_usage_is_estimated(fs, front):
    status, headers, _, _ = call(fs, front, stream=True, faults={"x-demo-no-usage": "1"})
    assert status == 200
    rec = fs.billing_record(headers["x-request-id"])
    assert rec["estimated"] is True and rec["completion_tokens"] > 0


def test_client_gone_mid_stream_then_the_worker_serves_on(fs):
    body = json.dumps({"model": "qai-pro", "stream": True, "messages": [{"role": "user", "content": PROMPT}]}).encode()
    s = socket.create_connection(("127.0.0.1", fs.gateway_port), timeout=10)
    s.sendall((f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
               f"Content-Type: application/json\r\nx-demo-chunks: 100\r\nx-demo-chunk-delay-ms: 20\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
    got = b""
    while got.count(b"data: ") < 3:
        more = s.recv(65536)
        assert more, f"the gateway closed the stream early: {got[-300:]!r}"
        got += more
    rid = re.search(rb"x-request-id: ([^\r]+)", got, re.I).group(1).decode()
    s.close()
    rec = fs.billing_record(rid, timeout=10)
    assert rec["estimated"] is True and rec["completion_tokens"] > 0
    next_request_works(fs, "openai")


def test_vm_never_restarted(fs):
    # With one worker Envoy 1.40 creates 4 VMs at start (the configuration's, a throwaway copy
    # for validation, the main thread's and the worker's; 3 stay active). A panic or a reload
    # would create more: after all the faults above the counts are exactly the start's.
    expected = {"wasm.envoy.wasm.runtime.v8.created": 4, "wasm.envoy.wasm.runtime.v8.active": 3,
                "wasm.wasm_vm_count": 3, "wasm.tollgate.vm_reload": 0, "wasm.tollgate.vm_reload_failure": 0,
                "wasm.tollgate.vm_reload_success": 0}
    assert fs.vms_at_start == expected
    assert vm_stats(fs) == expected
    # A panic under Envoy's default FAIL_CLOSED policy leaves these counts alone (the VM is not
    # replaced, it just fails every later request): the log and a served request tell.
    assert not VM_CRASH.search(fs.envoy_log_text()), "a wasm VM failed"
    next_request_works(fs, "openai")
