"""Billing integrity on the response side (issue 12 items 1, 3, 8 and the SSE framer), against
real Envoy (one worker) and the demo backend:

- a non-streamed response past `max_body_bytes` is refused before any of it reaches the client
  (a 502 in the caller's dialect), billed on a flagged estimate, and settled on the spend cap;
- a chunked transcription upload that pauses after `model` cannot outgrow its reservation (402
  mid-upload), and a plain-text transcription bills the counted upload as an estimate;
- upstream error text never shows the cluster's credentials (`api_key`, `headers` values), and an
  upstream 401/403 body is not relayed at all;
- nothing of an oversized upstream SSE event reaches the client.
"""
import hashlib
import http.client
import json
import re
import select
import socket
import time
import urllib.error
import urllib.request

import pytest

from conftest import UPSTREAM_ANTHROPIC_SECRET, UPSTREAM_GEMINI_SECRET, UPSTREAM_SECRET, _with_upstream_credential
from tollgate_harness import Stack

KEY = "sk-demo-active"
ORG_SECRET = "org-upstream-header-secret-for-tests"
SECRETS = [UPSTREAM_SECRET, UPSTREAM_ANTHROPIC_SECRET, UPSTREAM_GEMINI_SECRET, ORG_SECRET]
CAPPED = {name: f"sk-test-capped-{name}" for name in ("openai", "anthropic", "upload")}
MAX_BODY = 8 * 1024 * 1024  # the demo's max_body_bytes (the default)
LISTEN_PER_SECOND = 0.1  # qai-listen's price in envoy/demo.yaml
VM_CRASH = re.compile(r"panicked at|Function: proxy_on_\w+ failed|RuntimeError")


def _patch(cfg):
    cfg = _with_upstream_credential(cfg)
    for c in cfg["clusters"]:
        if c["name"] in ("demo_text", "demo_anthropic", "demo_gemini"):
            c["headers"] = {"x-upstream-org": ORG_SECRET}
    cfg["accounts"].append({"id": "acct-integrity", "status": "active", "rpm": 1000})
    for name, key in CAPPED.items():
        cfg["keys"].append({"id": f"key-capped-{name}", "account": "acct-integrity",
                            "sha256": hashlib.sha256(key.encode()).hexdigest(), "spend_cap": 1.0})
    return cfg


@pytest.fixture(scope="module")
def rs():
    s = Stack(concurrency=1, patch_filter=_patch, extra_clusters=["demo_anthropic", "demo_gemini"])
    s.start()
    yield s
    log = s.envoy_log_text()
    s.stop()
    assert not VM_CRASH.search(log), "a wasm VM failed"


def request(front, model, stream=False, key=KEY, prompt="hi"):
    if front == "openai":
        return ("/v1/chat/completions", {"model": model, "stream": stream, "messages": [{"role": "user", "content": prompt}]},
                {"authorization": f"Bearer {key}"})
    if front == "anthropic":
        return ("/v1/messages", {"model": model, "max_tokens": 100, "stream": stream,
                                 "messages": [{"role": "user", "content": prompt}]},
                {"x-api-key": key, "anthropic-version": "2023-06-01"})
    verb = "streamGenerateContent?alt=sse" if stream else "generateContent"
    return (f"/v1beta/models/{model}:{verb}", {"contents": [{"parts": [{"text": prompt}]}]}, {"x-goog-api-key": key})


def call(stack, front, model, stream=False, key=KEY, headers=None):
    path, body, h = request(front, model, stream, key)
    h = {"content-type": "application/json", **h, **(headers or {})}
    req = urllib.request.Request(stack.url + path, data=json.dumps(body).encode(), headers=h, method="POST")
    try:
        r = urllib.request.urlopen(req, timeout=30)
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()
    with r:
        hdrs = {k.lower(): v for k, v in r.headers.items()}
        try:
            return r.status, hdrs, r.read()
        except http.client.IncompleteRead as e:
            return r.status, hdrs, e.partial


def error_of(front, raw):
    """The dialect's error shape: (code / type / status, message)."""
    v = json.loads(raw)
    if front == "openai":
        return v["error"]["code"], v["error"]["message"]
    if front == "anthropic":
        assert v["type"] == "error", v
        return v["error"]["type"], v["error"]["message"]
    return v["error"]["status"], v["error"]["message"]


UPSTREAM_ERROR = {"openai": "upstream_error", "anthropic": "api_error", "gemini": "UNAVAILABLE"}
BAD_REQUEST = {"openai": "bad_request", "anthropic": "invalid_request_error", "gemini": "INVALID_ARGUMENT"}
MODELS = {"openai": "qai-flash", "anthropic": "test-claude", "gemini": "test-gemini"}
# How each upstream dialect carries the cluster's key (as the demo backend quotes it).
CREDENTIAL_HEADER = {"openai": "authorization: Bearer [redacted]", "anthropic": "x-api-key: [redacted]",
                     "gemini": "x-goog-api-key: [redacted]"}


# ---- item 1: a non-streamed response over max_body_bytes -------------------------------------

# What the request authorised: the Anthropic requests here say max_tokens 100; the OpenAI ones
# give none, so the model's default_max_tokens (1024) applies.
BUDGET = {"openai": 1024, "anthropic": 100, "gemini": 1024}


def _probe_body(front, max_tokens):
    # The same body on both fronts (OpenAI chat and Anthropic messages both take these fields).
    return {"model": "qai-flash", "max_tokens": max_tokens, "messages": [{"role": "user", "content": "hi"}]}


def _reservation_micros(front, max_tokens):
    """The admission estimate of a probe (qai-flash: 0.1 / 0.2 credits per 1k tokens): request
    bytes / 4 prompt tokens and max_tokens completion tokens, in micro-credits."""
    n = len(json.dumps(_probe_body(front, max_tokens)).encode())
    return -(-n // 4) * 100 + max_tokens * 200


def _probe(stack, front, key, max_tokens):
    path = "/v1/chat/completions" if front == "openai" else "/v1/messages"
    auth = {"authorization": f"Bearer {key}"} if front == "openai" else {"x-api-key": key, "anthropic-version": "2023-06-01"}
    req = urllib.request.Request(stack.url + path, data=json.dumps(_probe_body(front, max_tokens)).encode(), method="POST",
                                 headers={"content-type": "application/json", **auth})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


@pytest.mark.parametrize("front", ["openai", "anthropic"])
def test_oversized_response_is_refused_before_any_byte_and_billed_on_an_estimate(rs, front):
    key = CAPPED[front]
    status, headers, raw = call(rs, front, "qai-flash", key=key, headers={"x-demo-pad-bytes": str(10_000_000)})
    assert status == 502, (status, raw[:300])
    assert headers["content-type"] == "application/json"
    assert headers["x-should-retry"] == "false", "a retry would be generated and billed again"
    kind, msg = error_of(front, raw)
    assert kind == UPSTREAM_ERROR[front]
    assert msg == f"The generation service's response is larger than {MAX_BODY} bytes; ask for a shorter completion (max_tokens)"
    assert len(raw) == int(headers["content-length"]) < 300, "the client got our error and no upstream byte"
    rec = rs.billing_record(headers["x-request-id"])
    assert (rec["status"], rec["error"], rec["estimated"], rec["complete"]) == (502, "upstream_error", True, False), rec
    # The prompt estimate ("hi": 1 token + 4 per message + 3 for the reply) and the completion
    # budget the request authorised (the 8 MiB read would be 2,097,152 tokens at 4 bytes each).
    assert (rec["prompt_tokens"], rec["completion_tokens"]) == (8, BUDGET[front]), rec
    billed = 8 * 100 + BUDGET[front] * 200  # micro-credits
    assert rec["credits"] == pytest.approx(billed / 1e6, abs=1e-9)
    # Settled on the key's 1-credit cap: exactly `billed` is spent and nothing stays reserved. A
    # probe whose reservation exceeds what is left is refused (it would fit had the reservation
    # been released unbilled); one that fits what is left is admitted (it would not, had the
    # reservation stayed). Both probes' estimates keep a 2000-micro-credit margin.
    left = 1_000_000 - billed
    over = next(m for m in range(1, 6000) if _reservation_micros(front, m) > left + 2000)
    under = max(m for m in range(1, 6000) if _reservation_micros(front, m) < left - 2000)
    assert _reservation_micros(front, over) < 1_000_000 - 2000
    assert _probe(rs, front, key, over) == 402
    assert _probe(rs, front, key, under) == 200
    # The worker serves on.
    status, _, _ = call(rs, front, "qai-flash")
    assert status == 200


@pytest.fixture(scope="module")
def small():
    """The same gateway with max_body_bytes 2000."""
    def patch(cfg):
        cfg["max_body_bytes"] = 2000
        return cfg
    s = Stack(concurrency=1, patch_filter=patch)
    s.start()
    yield s
    s.stop()


@pytest.mark.parametrize("front", ["openai", "anthropic", "gemini"])
def test_a_small_cap_refuses_a_reply_of_a_few_kb_on_every_front(small, front):
    """The cap is the configured one, on every front: a 3 kB reply past a 2000-byte cap gets the
    same refusal and an estimate billed from the 2000 bytes read (within the budget). (Envoy
    hands the end of the body over in a piece of its own here, so this is the mid-body path;
    the path where the last piece crosses the cap is covered natively.)"""
    status, headers, raw = call(small, front, "qai-flash", headers={"x-demo-pad-bytes": "3000"})
    assert status == 502, raw[:300]
    assert headers["content-type"] == "application/json" and headers["x-should-retry"] == "false"
    kind, msg = error_of(front, raw)
    assert kind == UPSTREAM_ERROR[front]
    assert msg == "The generation service's response is larger than 2000 bytes; ask for a shorter completion (max_tokens)"
    assert b"Hello from" not in raw and len(raw) < 300
    rec = small.billing_record(headers["x-request-id"])
    assert (rec["status"], rec["error"], rec["estimated"]) == (502, "upstream_error", True)
    # 2000 bytes read: 500 tokens, under the budget (100 on the Anthropic front, 1024 otherwise).
    assert rec["completion_tokens"] == {"anthropic": 100}.get(front, 500)


def test_response_just_under_the_cap_passes_whole(rs):
    """The buffered size is Envoy's running total, not a sum of running totals: a reply of
    max_body_bytes - 81 bytes reaches the client whole and is billed on its reported usage (the
    filter before this change passed it half and appended a 502 body)."""
    status, headers, raw = call(rs, "openai", "qai-flash", headers={"x-demo-pad-bytes": str(MAX_BODY - 400)})
    assert status == 200, raw[:300]
    assert len(raw) == MAX_BODY - 400 + len(raw.rstrip(b" ")) and len(raw) <= MAX_BODY
    body = json.loads(raw)
    prompt, completion = (int(x) for x in headers["x-demo-usage"].split())
    assert body["usage"]["completion_tokens"] == completion
    rec = rs.billing_record(headers["x-request-id"])
    assert (rec["status"], rec["estimated"], rec["prompt_tokens"], rec["completion_tokens"]) == (200, False, prompt, completion)


# ---- item 8: upstream credentials in relayed error text --------------------------------------

@pytest.mark.parametrize("upstream", ["openai", "anthropic", "gemini"])
@pytest.mark.parametrize("front", ["openai", "anthropic", "gemini"])
@pytest.mark.parametrize("code", [401, 403])
def test_upstream_auth_failure_never_relays_its_body(rs, front, upstream, code):
    status, headers, raw = call(rs, front, MODELS[upstream], headers={"x-demo-fault": f"echo-auth-{code}"})
    assert status == 502, raw
    kind, msg = error_of(front, raw)
    assert kind == UPSTREAM_ERROR[front]
    assert msg == (f"The generation service refused the gateway's credential (upstream status {code}); "
                   "the gateway's upstream configuration must be fixed")
    text = raw.decode()
    assert not [s for s in SECRETS if s in text]
    rec = rs.billing_record(headers["x-request-id"])
    assert (rec["status"], rec["error"], rec["credits"]) == (502, "upstream_error", 0)


@pytest.mark.parametrize("upstream", ["openai", "anthropic", "gemini"])
@pytest.mark.parametrize("front", ["openai", "anthropic", "gemini"])
@pytest.mark.parametrize("code", [400, 500])
def test_upstream_error_text_is_relayed_with_credentials_redacted(rs, front, upstream, code):
    status, headers, raw = call(rs, front, MODELS[upstream], headers={"x-demo-fault": f"echo-auth-{code}"})
    assert status == {400: 400, 500: 502}[code], raw
    kind, msg = error_of(front, raw)
    assert kind == {400: BAD_REQUEST, 500: UPSTREAM_ERROR}[code][front]
    assert "Incorrect API key provided. Request headers: " in msg, msg
    assert CREDENTIAL_HEADER[upstream] in msg, msg
    assert not [s for s in SECRETS if s in raw.decode()], raw


# Which (front, upstream) streams relay the upstream's error event text to the client: the
# OpenAI-to-OpenAI stream passes events as they are; an Anthropic or Gemini upstream's error event
# becomes the client's error event. (An OpenAI upstream's `{"error":...}` chunk is dropped by the
# translators.)
RELAYS_STREAM_ERROR = {("openai", "openai"), ("openai", "anthropic"), ("openai", "gemini"), ("anthropic", "anthropic"),
                       ("anthropic", "gemini"), ("gemini", "anthropic"), ("gemini", "gemini")}


@pytest.mark.parametrize("upstream", ["openai", "anthropic", "gemini"])
@pytest.mark.parametrize("front", ["openai", "anthropic", "gemini"])
def test_streamed_upstream_error_event_is_redacted(rs, front, upstream):
    status, _, raw = call(rs, front, MODELS[upstream], stream=True, headers={"x-demo-fault": "echo-auth-sse"})
    assert status == 200
    text = raw.decode()
    assert not [s for s in SECRETS if s in text], text
    assert (text.count(CREDENTIAL_HEADER[upstream]) == 1) == ((front, upstream) in RELAYS_STREAM_ERROR), text


# ---- item 4: an oversized upstream SSE event -------------------------------------------------

def test_nothing_of_an_oversized_stream_event_reaches_the_client(rs):
    status, headers, raw = call(rs, "openai", "qai-flash", stream=True, headers={"x-demo-fault": "huge-sse"})
    assert status == 200
    events = [e for e in raw.split(b"\n\n") if e.strip()]
    assert len(events) == 2, [e[:100] for e in events]
    assert json.loads(events[0][6:])["choices"][0]["delta"]["content"] == "first"
    err = json.loads(events[1][6:])["error"]
    assert (err["code"], err["message"]) == ("upstream_error", "The upstream sent an oversized stream event")
    assert b"xxxx" not in raw
    rec = rs.billing_record(headers["x-request-id"])
    assert rec["status"] == 200 and rec["estimated"] is True


# ---- item 3: transcription reservations follow the counted upload ----------------------------

def _chunk(b):
    return f"{len(b):x}\r\n".encode() + b + b"\r\n"


def _form_start(boundary, fields):
    out = b""
    for name, value in fields:
        out += f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n".encode()
    return out + f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\n".encode()


def _read_response(s, got, timeout=10):
    """Reads one HTTP/1.1 response with a Content-Length: (status, headers, body)."""
    deadline = time.time() + timeout
    while b"\r\n\r\n" not in got:
        assert time.time() < deadline, got[:300]
        more = s.recv(65536)
        assert more, f"connection closed before a response: {got[:300]!r}"
        got += more
    head, _, body = got.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
    if "content-length" in headers:
        n = int(headers["content-length"])
        while len(body) < n:
            assert time.time() < deadline
            more = s.recv(65536)
            assert more, "connection closed mid-body"
            body += more
        body = body[:n]
    else:  # chunked
        while not body.endswith(b"0\r\n\r\n"):
            assert time.time() < deadline
            more = s.recv(65536)
            assert more, "connection closed mid-body"
            body += more
        out, rest = b"", body
        while True:
            size, _, rest = rest.partition(b"\r\n")
            n = int(size, 16)
            if n == 0:
                break
            out, rest = out + rest[:n], rest[n + 2:]
        body = out
    return int(lines[0].split()[1]), headers, body


def _open_chunked_upload(stack, key, first):
    s = socket.create_connection(("127.0.0.1", stack.gateway_port), timeout=10)
    s.sendall((f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
               f"Content-Type: multipart/form-data; boundary=cc\r\nTransfer-Encoding: chunked\r\n\r\n").encode() + _chunk(first))
    return s


def test_chunked_upload_that_outgrows_its_reservation_gets_402_mid_upload(rs):
    """A 1-credit cap at 0.1 credit a second holds 10 s of audio (160,000 bytes at 16 kB a second):
    the upload, admitted on its first bytes, is refused with 402 as soon as the counted bytes
    cost more, long before the 4 MB it would send; the grown reservation is released."""
    key = CAPPED["upload"]
    s = _open_chunked_upload(rs, key, _form_start("cc", [("model", "qai-listen")]))
    piece = b"\x00" * 32_000
    sent, got = 0, b""
    try:
        while sent < 4_000_000 and b"\r\n\r\n" not in got:
            if select.select([s], [], [], 0)[0]:
                more = s.recv(65536)
                if not more:
                    break
                got += more
                continue
            try:
                s.sendall(_chunk(piece))
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(piece)
            time.sleep(0.01)
        status, headers, body = _read_response(s, got)
    finally:
        s.close()
    assert status == 402, body
    err = json.loads(body)["error"]
    assert err["code"] == "insufficient_funds" and "costs more than is left" in err["message"], err
    assert sent < 1_000_000, f"refused only after {sent} bytes"
    rec = rs.billing_record(headers["x-request-id"])
    assert (rec["status"], rec["error"], rec["credits"], rec["units"]) == (402, "insufficient_funds", 0, None), rec
    # Nothing was left reserved: the same key can still spend its whole credit. An upload
    # declared up front whose estimate is 10 s (1.0 credit) fits only then; the backend reports
    # 4 s (16-bit 16 kHz WAV), which is what is billed.
    wav = b"\x00" * 150_000
    start = _form_start("cc", [("model", "qai-listen")])
    end = b"\r\n--cc--\r\n"
    body = start + wav + end
    assert 144_000 < len(body) <= 160_000
    st, hd, raw = _post_raw(rs, "/v1/audio/transcriptions", body, key, "multipart/form-data; boundary=cc")
    assert st == 200, raw
    rec = rs.billing_record(hd["x-request-id"])
    assert (rec["units"], rec["estimated"], rec["credits"]) == (len(body) // 32_000, False, pytest.approx(len(body) // 32_000 * 0.1)), rec


def _post_raw(stack, path, body, key, content_type):
    req = urllib.request.Request(stack.url + path, data=body, method="POST",
                                 headers={"authorization": f"Bearer {key}", "content-type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def test_text_transcription_bills_the_counted_upload_as_an_estimate(rs):
    """`response_format=text`: the reply has no duration, so the bill is the estimate from the
    bytes counted (not from the first piece the request was admitted on), marked estimated."""
    first = _form_start("cc", [("response_format", "text"), ("model", "qai-listen")])
    s = _open_chunked_upload(rs, KEY, first)
    total = len(first)
    try:
        for _ in range(20):
            s.sendall(_chunk(b"\x00" * 50_000))
            total += 50_000
        end = b"\r\n--cc--\r\n"
        s.sendall(_chunk(end) + b"0\r\n\r\n")
        total += len(end)
        status, headers, body = _read_response(s, b"")
    finally:
        s.close()
    assert status == 200, body
    assert body == f"demo transcription of {total} bytes".encode()
    rec = rs.billing_record(headers["x-request-id"])
    secs = -(-total // 16_000)
    assert (rec["units"], rec["estimated"]) == (secs, True), rec
    assert rec["credits"] == pytest.approx(secs * LISTEN_PER_SECOND, abs=1e-6)
