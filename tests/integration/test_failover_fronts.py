"""Failover to the next tier beyond the OpenAI and Anthropic chat fronts, against real Envoy and
the demo backend: the Gemini front (`generateContent`, `streamGenerateContent?alt=sse`) and the
Responses front (`/v1/responses`) served by a fallback; a route timeout (Envoy's own 504) fails
over; a client that leaves while the fallback's call is out; a fallback answer larger than
`max_body_bytes` (a JSON one refused with 502, a stream cut there)."""
import hashlib
import json
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))

from tollgate_harness import Stack  # noqa: E402

KEY = "sk-demo-active"
CAP_KEY = "sk-test-failover-cap"
PROMPT = "Tell me about failover"
# Demo prices (per 1k prompt, per 1k completion).
PRICES = {"qai-max": (1.5, 4.5), "qai-pro": (0.5, 1.5), "qai-flash": (0.1, 0.2)}
# The route's timeout in this module's Envoy (the demo's is 120 s).
ROUTE_TIMEOUT_S = 1
MAX_BODY = 64 * 1024
FAIL_MAX = {"x-demo-fail-model": "qai-max"}


def _patch(cfg):
    cfg["max_body_bytes"] = MAX_BODY
    # Room for one qai-max reservation of 300 completion tokens (1.35 credits and the prompt),
    # not two.
    cfg["accounts"].append({"id": "acct-fo-cap", "rpm": 1000})
    cfg["keys"].append({"id": "key-fo-cap", "account": "acct-fo-cap",
                        "sha256": hashlib.sha256(CAP_KEY.encode()).hexdigest(), "spend_cap": 2})
    return cfg


def _route_timeout(doc):
    for vh in doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"][
            "route_config"]["virtual_hosts"]:
        for r in vh["routes"]:
            r["route"]["timeout"] = f"{ROUTE_TIMEOUT_S}s"
    return doc


@pytest.fixture(scope="module")
def stack():
    s = Stack(concurrency=2, patch_filter=_patch, patch_envoy=_route_timeout)
    s.start()
    yield s
    s.stop()


def post(stack, path, body, headers, timeout=30):
    h = {"content-type": "application/json", "x-demo-usage-fixed": "1000 200", **headers}
    req = urllib.request.Request(stack.url + path, data=json.dumps(body).encode(), headers=h, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def chat(stack, model, stream, headers=None, key=KEY, max_tokens=None):
    body = {"model": model, "messages": [{"role": "user", "content": PROMPT}], "stream": stream}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    return post(stack, "/v1/chat/completions", body, {"authorization": f"Bearer {key}", **(headers or {})})


def credits(model, prompt=1000, completion=200):
    p, c = PRICES[model]
    return round(prompt * p / 1000 + completion * c / 1000, 6)


def events(body):
    """The JSON data of each SSE event."""
    return [json.loads(line[len("data: "):]) for line in body.decode().splitlines()
            if line.startswith("data: ") and line != "data: [DONE]"]


def attempts(rec):
    return [(a["model"], a["cluster"], a["status"]) for a in rec["attempts"]]


def assert_served_by_pro(stack, headers, stream, first_status=503):
    assert headers["x-tollgate-model"] == "qai-pro"
    assert headers["content-type"].startswith("text/event-stream" if stream else "application/json")
    rec = stack.billing_record(headers["x-request-id"])
    assert attempts(rec) == [("qai-max", "demo_text", first_status), ("qai-pro", "demo_text", 200)]
    assert (rec["model"], rec["served_model"], rec["upstream_model"]) == ("qai-max", "qai-pro", "qai-pro")
    assert (rec["prompt_tokens"], rec["completion_tokens"], rec["estimated"]) == (1000, 200, False)
    assert rec["credits"] == credits("qai-pro")
    assert (rec["status"], rec["error"], rec["complete"], rec["stream"]) == (200, None, True, stream)
    return rec


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_the_gemini_front_is_served_by_the_next_tier(stack, stream):
    verb = "streamGenerateContent?alt=sse" if stream else "generateContent"
    body = {"contents": [{"role": "user", "parts": [{"text": PROMPT}]}]}
    status, headers, raw = post(stack, f"/v1beta/models/qai-max:{verb}", body, {"x-goog-api-key": KEY, **FAIL_MAX})
    assert status == 200, raw
    assert_served_by_pro(stack, headers, stream)
    if stream:
        evs = events(raw)
        assert {e["modelVersion"] for e in evs} == {"qai-pro"}
        text = "".join(p.get("text", "") for e in evs for c in e.get("candidates", [])
                       for p in c.get("content", {}).get("parts", []))
        usage = evs[-1]["usageMetadata"]
    else:
        doc = json.loads(raw)
        assert doc["modelVersion"] == "qai-pro"
        text = "".join(p["text"] for p in doc["candidates"][0]["content"]["parts"])
        usage = doc["usageMetadata"]
    assert PROMPT in text
    assert (usage["promptTokenCount"], usage["candidatesTokenCount"]) == (1000, 200)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_the_responses_front_is_served_by_the_next_tier(stack, stream):
    body = {"model": "qai-max", "input": PROMPT, "stream": stream}
    status, headers, raw = post(stack, "/v1/responses", body, {"authorization": f"Bearer {KEY}", **FAIL_MAX})
    assert status == 200, raw
    assert_served_by_pro(stack, headers, stream)
    if stream:
        evs = events(raw)
        kinds = [e["type"] for e in evs]
        assert kinds[0] == "response.created" and kinds[-1] == "response.completed", kinds
        assert {e["response"]["model"] for e in evs if "response" in e} == {"qai-pro"}
        text = "".join(e["delta"] for e in evs if e["type"] == "response.output_text.delta")
        usage = evs[-1]["response"]["usage"]
    else:
        doc = json.loads(raw)
        assert (doc["object"], doc["status"], doc["model"]) == ("response", "completed", "qai-pro")
        text = "".join(c["text"] for o in doc["output"] if o["type"] == "message" for c in o["content"])
        usage = doc["usage"]
    assert PROMPT in text
    assert (usage["input_tokens"], usage["output_tokens"]) == (1000, 200)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_a_route_timeout_fails_over(stack, stream):
    # Every upstream answer comes 0.5 s after the route's timeout: the first tier's is Envoy's own
    # 504; the fallback's call has its own timeout (120 s) and is answered.
    stack.clear_backend_requests("demo_text")
    started = time.monotonic()
    status, headers, raw = chat(stack, "qai-max", stream, {"x-demo-delay-ms": str(ROUTE_TIMEOUT_S * 1000 + 500)})
    took = time.monotonic() - started
    assert status == 200, raw
    rec = assert_served_by_pro(stack, headers, stream, first_status=504)
    # The first attempt ended at the route's timeout (about 1 s), not at the answer (1.5 s).
    assert 900 <= rec["attempts"][0]["latency_ms"] < ROUTE_TIMEOUT_S * 1000 + 400
    # The route's timeout, then the fallback's own delayed answer (1.5 s): at least 2.5 s, less
    # the few milliseconds by which Envoy's and the backend's timers may fire early.
    assert took >= 2 * ROUTE_TIMEOUT_S + 0.5 - 0.05
    got = stack.backend_requests("demo_text")
    assert [json.loads(r["body"])["model"] for r in got] == ["qai-max", "qai-pro"]


def _send_raw(stack, key, body, extra):
    raw = json.dumps(body).encode()
    sock = socket.create_connection(("127.0.0.1", stack.gateway_port), timeout=10)
    sock.sendall(
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nx-request-id: {extra['rid']}\r\n"
        f"x-demo-usage-fixed: 1000 200\r\n{extra['headers']}Content-Length: {len(raw)}\r\n\r\n".encode() + raw)
    return sock


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_a_client_gone_while_the_fallback_is_called(stack, stream):
    """The client leaves after the first tier failed, while the fallback's call is out: nothing
    crashes, the record says incomplete and bills nothing (nothing reached the client), and the
    capped key's reservation is released: the next request, which fits the cap only alone, is
    admitted."""
    rid = f"fo-gone-{'stream' if stream else 'whole'}-{time.time_ns()}"
    body = {"model": "qai-max", "messages": [{"role": "user", "content": PROMPT}], "stream": stream,
            "max_tokens": 300}
    # Every answer comes 1.5 s late: qai-max's is Envoy's 504 at 1 s, then qai-pro's call is out
    # until 2.5 s (within the call's own timeout).
    sock = _send_raw(stack, CAP_KEY, body, {"rid": rid, "headers": "x-demo-delay-ms: 1500\r\n"})
    # While the request is out, a second one does not fit the cap.
    time.sleep(0.3)
    status, _, raw = chat(stack, "qai-flash", False, key=CAP_KEY, max_tokens=300)
    assert status == 200, raw
    status, _, raw = chat(stack, "qai-max", False, key=CAP_KEY, max_tokens=300)
    assert (status, json.loads(raw)["error"]["code"]) == (402, "insufficient_funds")
    time.sleep(1.2)  # the fallback's call is out
    sock.close()
    rec = stack.billing_record(client_request_id=rid, timeout=10)
    # The fallback's call never answered: its attempt ends with the exchange, status 0.
    assert attempts(rec) == [("qai-max", "demo_text", 504), ("qai-pro", "demo_text", 0)]
    assert 300 <= rec["attempts"][1]["latency_ms"] < 1500  # left before the answer (1.5 s)
    assert (rec["status"], rec["complete"], rec["estimated"]) == (0, False, False)
    assert (rec["served_model"], rec["prompt_tokens"], rec["completion_tokens"], rec["credits"]) == (None, 0, 0, 0)
    # The hold is gone: one qai-max request fits again.
    status, _, raw = chat(stack, "qai-max", False, key=CAP_KEY, max_tokens=300, headers={"x-demo-usage-fixed": "1 1"})
    assert status == 200, raw
    # The worker serves on.
    status, headers, _ = chat(stack, "qai-max", stream, FAIL_MAX)
    assert status == 200 and headers["x-tollgate-model"] == "qai-pro"


def test_a_json_fallback_answer_larger_than_max_body_bytes_is_a_502(stack):
    status, headers, raw = chat(stack, "qai-max", False, {**FAIL_MAX, "x-demo-pad-bytes": str(MAX_BODY)},
                                max_tokens=100)
    assert status == 502, raw
    assert json.loads(raw)["error"]["code"] == "upstream_error"
    # Billed as any oversized answer, at the serving model's price: the prompt estimate and the
    # bytes read (past the budget, so the budget: 100 tokens).
    rec = stack.billing_record(headers["x-request-id"])
    assert attempts(rec) == [("qai-max", "demo_text", 503), ("qai-pro", "demo_text", 200)]
    assert (rec["status"], rec["error"], rec["estimated"], rec["served_model"]) == (502, "upstream_error", True, "qai-pro")
    assert (rec["prompt_tokens"], rec["completion_tokens"]) == (13, 100)
    assert rec["credits"] == round(13 * 0.5 / 1000 + 100 * 1.5 / 1000, 6)


def test_a_streamed_fallback_answer_larger_than_max_body_bytes_is_cut_there(stack):
    """The first `max_body_bytes` of the fallback's stream are read: the client gets the whole
    events before the cut (never the partial one at it, never a finish), billed as a stream cut
    short: the prompt estimate and the text that reached the client, at qai-pro's price."""
    status, headers, raw = chat(stack, "qai-max", True, {**FAIL_MAX, "x-demo-chunks": "5000"}, max_tokens=100000)
    assert status == 200
    assert headers["x-tollgate-model"] == "qai-pro"
    assert len(raw) <= MAX_BODY
    # Every event whole (each parses), the last one a content piece: no finish, no [DONE].
    assert raw.endswith(b"\n\n") and b"data: [DONE]" not in raw
    evs = events(raw)
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in evs if e.get("choices"))
    pieces = text.split()
    assert pieces == [f"tok{i}" for i in range(len(pieces))] and len(pieces) > 100
    assert all(e["choices"][0]["finish_reason"] is None for e in evs if e.get("choices"))
    rec = stack.billing_record(headers["x-request-id"])
    assert attempts(rec) == [("qai-max", "demo_text", 503), ("qai-pro", "demo_text", 200)]
    assert (rec["status"], rec["complete"], rec["estimated"], rec["served_model"]) == (200, False, True, "qai-pro")
    assert rec["completion_tokens"] == (len(text.encode()) + 3) // 4  # 4 bytes a token, rounded up
    assert rec["credits"] == round(rec["prompt_tokens"] * 0.5 / 1000 + rec["completion_tokens"] * 1.5 / 1000, 6)
