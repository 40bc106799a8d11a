"""Billing integrity on the request side (issue 12 items 2, 4, 6), against real Envoy:
- a spend reservation is an upper bound the upstream is held to: without a client budget the
  reserved one goes upstream, so parallel requests never spend past the cap, and `n` multiplies
  the reservation;
- a reservation is released after an upstream failure and after a client disconnect;
- no parser differential: repeated keys, and keys that differ only in case from a field the
  gateway reads, are refused (400 naming the key) on every front and path before anything is
  forwarded;
- one nesting limit for every path and front.

Spend is per Envoy process: this module runs its own Envoy with fresh capped keys."""
import hashlib
import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import Http
from tollgate_harness import Stack

CAP_KEY = "sk-test-cap-parallel"
N_KEY = "sk-test-cap-n"
RELEASE_KEY = "sk-test-cap-release"
ZERO_KEY = "sk-test-cap-zero"
FREE_KEY = "sk-test-rate-free"
CAP = 1.0
# qai-flash: 0.1 credit per 1000 prompt tokens, 0.2 per 1000 completion tokens, that is 100 and
# 200 micro-credits a token; its default budget (defaults.default_max_tokens) is 1024.
PROMPT_MICROS, COMPLETION_MICROS, DEFAULT_MAX_TOKENS = 100, 200, 1024
MAX_DEPTH = 64


def _patch(cfg):
    sha = lambda k: hashlib.sha256(k.encode()).hexdigest()  # noqa: E731
    for i, key in enumerate([CAP_KEY, N_KEY, RELEASE_KEY]):
        cfg["accounts"].append({"id": f"acct-bi-{i}", "rpm": 1000})
        cfg["keys"].append({"id": f"key-bi-{i}", "account": f"acct-bi-{i}", "sha256": sha(key), "spend_cap": CAP})
    # One account, 3 requests a minute: a key whose cap is spent (0) and a key without a cap.
    cfg["accounts"].append({"id": "acct-bi-rate", "rpm": 3})
    cfg["keys"].append({"id": "key-bi-zero", "account": "acct-bi-rate", "sha256": sha(ZERO_KEY), "spend_cap": 0})
    cfg["keys"].append({"id": "key-bi-free", "account": "acct-bi-rate", "sha256": sha(FREE_KEY)})
    return cfg


@pytest.fixture(scope="module")
def capstack():
    s = Stack(concurrency=4, patch_filter=_patch)
    s.start()
    yield s
    s.stop()


def body_bytes(content="Tell me a long story", **extra):
    return json.dumps({"model": "qai-flash", "messages": [{"role": "user", "content": content}], **extra}).encode()


def reservation(raw, max_tokens=DEFAULT_MAX_TOKENS, n=1):
    """The README's admission estimate in micro-credits: ceil(bytes / 4) prompt tokens at the
    prompt price plus max_tokens x n completion tokens at the completion price."""
    return -(-len(raw) // 4) * PROMPT_MICROS + max_tokens * n * COMPLETION_MICROS


def post(stack, key, raw, headers=None):
    h = {"Authorization": f"Bearer {key}", "Content-Type": "application/json", **(headers or {})}
    return Http(stack.url).request("POST", "/v1/chat/completions", headers=h, raw=raw)


def micros(record):
    return round(record["credits"] * 1e6)


def records_of(stack, key_id, count, timeout=10.0):
    deadline = time.time() + timeout
    while True:
        recs = [r for r in stack.billing_records() if r.get("key_id") == key_id]
        if len(recs) >= count or time.time() > deadline:
            return recs
        time.sleep(0.1)


def forwarded_bodies(stack, marker):
    out = []
    for r in stack.backend_requests():
        if r.get("path", "").endswith("/chat/completions") and marker in r.get("body", ""):
            out.append(json.loads(r["body"]))
    return out


def _parallel(stack, key, raw, count, headers):
    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(lambda _: post(stack, key, raw, headers), range(count)))


def test_parallel_requests_without_max_tokens_never_spend_past_the_cap(capstack):
    """Six requests at once, each asking the upstream for 5000 tokens (1 credit each if nothing
    caps them): exactly floor(cap / reservation) are admitted, the upstream gets the reserved
    budget as `max_tokens`, and the billed credits add up to at most the cap."""
    raw = body_bytes("parallel-cap-marker")
    each = reservation(raw)
    admitted = int(CAP * 1e6) // each
    assert admitted == 4, each
    # All six are in flight together (the upstream waits 1.5 s before answering).
    results = _parallel(capstack, CAP_KEY, raw, 6, {"x-demo-chunks": "5000", "x-demo-delay-ms": "1500"})
    statuses = sorted(s for s, _, _ in results)
    assert statuses == [200] * admitted + [402] * (6 - admitted), statuses
    ups = forwarded_bodies(capstack, "parallel-cap-marker")
    assert [u.get("max_tokens") for u in ups] == [DEFAULT_MAX_TOKENS] * admitted
    recs = records_of(capstack, "key-bi-0", 6)
    billed = [r for r in recs if r["status"] == 200]
    assert len(billed) == admitted and len(recs) == 6
    for r in billed:
        assert r["completion_tokens"] == DEFAULT_MAX_TOKENS, r
        assert micros(r) == r["prompt_tokens"] * PROMPT_MICROS + r["completion_tokens"] * COMPLETION_MICROS
    assert sum(micros(r) for r in recs) <= CAP * 1e6, [micros(r) for r in recs]
    assert sum(micros(r) for r in recs) == sum(micros(r) for r in billed)


def test_n_multiplies_the_reservation(capstack):
    """n = 2 without max_tokens reserves two default budgets: two of four parallel requests fit
    a 1-credit cap (four would with n = 1)."""
    raw = body_bytes("n-cap-marker", n=2)
    each = reservation(raw, n=2)
    assert int(CAP * 1e6) // each == 2
    results = _parallel(capstack, N_KEY, raw, 4, {"x-demo-delay-ms": "1500"})
    assert sorted(s for s, _, _ in results) == [200, 200, 402, 402]
    ups = forwarded_bodies(capstack, "n-cap-marker")
    assert [(u.get("n"), u.get("max_tokens")) for u in ups] == [(2, DEFAULT_MAX_TOKENS)] * 2
    s, _, b = post(capstack, N_KEY, body_bytes("n-cap-marker", n=9))
    assert (s, json.loads(b)["error"]["param"]) == (400, "n")


def _spent(stack, key_id, count):
    recs = records_of(stack, key_id, count)
    assert len(recs) == count, recs
    return sum(micros(r) for r in recs)


def _budget_request(left, marker):
    """A request whose reservation is exactly `left` micro-credits (a multiple of 100)."""
    content = marker
    while True:
        raw = body_bytes(content, max_tokens=1)
        rest = left - reservation(raw, max_tokens=0)
        if rest > 0 and rest % COMPLETION_MICROS == 0:
            mt = rest // COMPLETION_MICROS
            raw = body_bytes(content, max_tokens=mt)
            if reservation(raw, mt) == left:
                return content, mt
        content += "x"


def _assert_whole_cap_left(stack, key_id, count, marker):
    """What is left of the cap is exactly cap - billed: a request reserving one micro-credit
    step more is refused, one reserving exactly that is admitted."""
    left = int(CAP * 1e6) - _spent(stack, key_id, count)
    content, mt = _budget_request(left, marker)
    s, _, b = post(stack, RELEASE_KEY, body_bytes(content, max_tokens=mt + 1))
    assert (s, json.loads(b)["error"]["code"]) == (402, "insufficient_funds")
    s, _, _ = post(stack, RELEASE_KEY, body_bytes(content, max_tokens=mt))
    assert s == 200
    return count + 2


def test_capped_reservation_is_released_after_upstream_500_and_after_disconnect(capstack):
    # An upstream 500 (our 502): nothing billed, the reservation released.
    s, _, _ = post(capstack, RELEASE_KEY, body_bytes("release-500", max_tokens=4000), {"x-demo-status": "500"})
    assert s == 502
    count = _assert_whole_cap_left(capstack, "key-bi-2", 1, "after-500")
    # A stream the client leaves after the first bytes: settled (an estimate), not left reserved.
    raw = body_bytes("release-disconnect", max_tokens=4000, stream=True)
    sock = socket.create_connection(("127.0.0.1", capstack.gateway_port), timeout=10)
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + RELEASE_KEY.encode()
        + b"\r\nContent-Type: application/json\r\nx-demo-chunks: 3000\r\nx-demo-chunk-delay-ms: 20\r\n"
        + b"Content-Length: " + str(len(raw)).encode() + b"\r\n\r\n" + raw
    )
    got = b""
    while b"data:" not in got:
        chunk = sock.recv(4096)
        assert chunk, "the stream ended before its first event"
        got += chunk
    sock.close()
    recs = records_of(capstack, "key-bi-2", count + 1)
    assert len(recs) == count + 1
    assert recs[-1]["estimated"] is True and recs[-1]["stream"] is True
    _assert_whole_cap_left(capstack, "key-bi-2", count + 1, "after-disconnect")


def test_a_402_refunds_the_rate_slot(capstack):
    """Five refusals by a reached cap (even on the free sandbox model, which reserves 0) leave
    the account's 3 requests a minute untouched: another key of the account gets all three."""
    left = 60 - time.time() % 60
    if left < 8:
        time.sleep(left + 0.2)
    sandbox = json.dumps({"model": "qai-hello-world", "messages": [{"role": "user", "content": "hi"}]}).encode()
    for _ in range(5):
        s, h, b = post(capstack, ZERO_KEY, sandbox)
        assert (s, json.loads(b)["error"]["code"]) == (402, "insufficient_funds")
        assert {k.lower(): v for k, v in h.items()}["x-ratelimit-remaining-requests"] == "2"
    statuses = [post(capstack, FREE_KEY, sandbox)[0] for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


# --- parser differentials ---------------------------------------------------------------------

OPENAI = {"Authorization": "Bearer sk-demo-active", "Content-Type": "application/json"}
ANTHROPIC = {"x-api-key": "sk-demo-active", "anthropic-version": "2023-06-01", "Content-Type": "application/json"}
GEMINI = {"x-goog-api-key": "sk-demo-active", "Content-Type": "application/json"}
GEMINI_PATH = "/v1beta/models/qai-flash:generateContent"

DIFFERENTIALS = [
    # (front, path, raw body, param)
    ("openai", "/v1/chat/completions",
     b'{"model":"qai-hello-world","Model":"qai-max","messages":[{"role":"user","content":"hi"}]}', "Model"),
    ("openai", "/v1/chat/completions",
     b'{"model":"qai-hello-world","model":"qai-max","messages":[{"role":"user","content":"hi"}]}', "model"),
    ("openai", "/v1/chat/completions",
     b'{"model":"qai-flash","MAX_TOKENS":100000,"messages":[{"role":"user","content":"hi"}]}', "MAX_TOKENS"),
    ("openai", "/v1/chat/completions",
     b'{"model":"qai-flash","messages":[{"role":"user","content":"a","content":"b"}]}', "content"),
    ("openai", "/v1/chat/completions",
     b'{"model":"qai-flash","stream":true,"stream_options":{"include_usage":false,"Include_Usage":true},'
     b'"messages":[{"role":"user","content":"hi"}]}', "Include_Usage"),
    ("openai", "/v1/images/generations", b'{"model":"qai-imagine-turbo","prompt":"a cat","n":1,"N":4}', "N"),
    ("openai", "/v1/images/generations", b'{"model":"qai-imagine-turbo","prompt":"a cat","n":1,"n":4}', "n"),
    ("openai", "/v1/audio/speech", b'{"model":"qai-voice","input":"hi","Input":"a much longer text"}', "Input"),
    ("anthropic", "/v1/messages",
     b'{"model":"qai-flash","max_tokens":5,"Max_Tokens":90000,"messages":[{"role":"user","content":"hi"}]}',
     "Max_Tokens"),
    ("anthropic", "/v1/messages",
     b'{"model":"qai-flash","max_tokens":5,"max_tokens":90000,"messages":[{"role":"user","content":"hi"}]}',
     "max_tokens"),
    ("gemini", GEMINI_PATH,
     b'{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"generationConfig":{"MaxOutputTokens":90000}}',
     "MaxOutputTokens"),
    ("gemini", GEMINI_PATH,
     b'{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"contents":[{"role":"user","parts":[{"text":"x"}]}]}',
     "contents"),
    # Go folds the Kelvin sign onto "k" and a long s onto "s".
    ("openai", "/v1/chat/completions",
     '{"model":"qai-flash","max_to\u212aens":100000,"messages":[{"role":"user","content":"hi"}]}'.encode(),
     "max_to\u212aens"),
    ("openai", "/v1/chat/completions",
     '{"model":"qai-flash","\u017ftream":true,"messages":[{"role":"user","content":"hi"}]}'.encode(), "\u017ftream"),
]


def _error_param(front, body):
    e = json.loads(body)
    if front == "openai":
        assert (e["error"]["code"], e["error"]["type"]) == ("bad_request", "invalid_request_error"), e
        return e["error"]["param"]
    if front == "anthropic":
        assert e["error"]["type"] == "invalid_request_error", e
        return e["error"]["message"].split("'")[1]
    assert (e["error"]["code"], e["error"]["status"]) == (400, "INVALID_ARGUMENT"), e
    return e["error"]["message"].split("'")[1]


@pytest.mark.parametrize("front,path,raw,param", DIFFERENTIALS,
                         ids=[f"{f}-{p}" for f, _, _, p in DIFFERENTIALS])
def test_repeated_and_case_variant_keys_are_refused_before_forwarding(stack, front, path, raw, param):
    headers = {"openai": OPENAI, "anthropic": ANTHROPIC, "gemini": GEMINI}[front]
    before = len(stack.backend_requests())
    s, _, b = Http(stack.url).request("POST", path, headers=headers, raw=raw)
    assert s == 400, b
    assert _error_param(front, b) == param
    assert len(stack.backend_requests()) == before, "nothing reaches the upstream"


def test_fast_path_refuses_invalid_text_in_fields_it_does_not_read(stack):
    """The OpenAI fast path forwards the client's bytes: invalid UTF-8 or a lone surrogate in a
    value it skips (a `type`, an unknown field) is refused as the full parser refuses it."""
    before = len(stack.backend_requests())
    for raw in [b'{"model":"qai-flash","messages":[{"role":"user","content":"hi","type":"ob\x96ct"}]}',
                b'{"model":"qai-flash","x":"\xff","messages":[{"role":"user","content":"hi"}]}',
                b'{"model":"qai-flash","x":"\\ud800","messages":[{"role":"user","content":"hi"}]}']:
        s, _, b = Http(stack.url).request("POST", "/v1/chat/completions", headers=OPENAI, raw=raw)
        assert s == 400, (raw, b)
        assert json.loads(b)["error"]["code"] == "bad_request"
    assert len(stack.backend_requests()) == before


# --- nesting ----------------------------------------------------------------------------------

NEST_FRONTS = {
    "openai": ("/v1/chat/completions", OPENAI,
               # Inside a tool's parameter schema: a field a strict upstream takes as it is.
               lambda v: b'{"model":"qai-flash","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function",'
               b'"function":{"name":"f","parameters":{"type":"object","x":' + v + b"}}}]}", 5),
    "anthropic": ("/v1/messages", ANTHROPIC,
                  lambda v: b'{"model":"qai-flash","max_tokens":5,"messages":[{"role":"user","content":"hi"}],"extra":'
                  + v + b"}", 1),
    "gemini": (GEMINI_PATH, GEMINI,
               lambda v: b'{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"extra":' + v + b"}", 1),
}


@pytest.mark.parametrize("front", list(NEST_FRONTS))
def test_one_nesting_limit_on_every_front(stack, front):
    """At most 64 levels of arrays and objects (the body's own object is level 1): exactly 64
    passes, 65 and a hundred thousand are the same 400 on every front, fast path included."""
    path, headers, build, outer = NEST_FRONTS[front]
    http = Http(stack.url)

    def nested(levels):
        return b"[" * levels + b"]" * levels

    s, _, b = http.request("POST", path, headers=headers, raw=build(nested(MAX_DEPTH - outer)))
    assert s == 200, b[:300]
    for levels in (MAX_DEPTH - outer + 1, 100_000):
        before = len(stack.backend_requests())
        s, _, b = http.request("POST", path, headers=headers, raw=build(nested(levels)))
        assert s == 400, b[:300]
        e = json.loads(b)
        msg = e["error"]["message"]
        assert msg == "The request body nests arrays and objects deeper than 64 levels", e
        assert len(stack.backend_requests()) == before
