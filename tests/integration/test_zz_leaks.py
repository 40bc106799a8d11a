"""The client's key never reaches an upstream, a log line, a stat name or a billing record.
Runs last (file order): it also searches everything the session's stack wrote while all the
other tests ran, and every request any demo backend of the session received (each backend
appends every request, all headers and the whole body, to its capture log), plus a stack of its own at Envoy's `info` log level driven with every way of
presenting a key (Bearer, x-api-key, x-goog-api-key, ?key=), valid and not, streamed and
refused and abandoned."""
import json
import socket
import time
import urllib.error
import urllib.request

import pytest

from tollgate_harness import DEMO_KEYS, UPSTREAM_LOGS, Stack

WRONG_KEYS = ["sk-leak-probe-wrong-0001", "sk-leak-probe-wrong-0002"]
ALL_KEYS = list(DEMO_KEYS.values()) + WRONG_KEYS


def upstream_log(path) -> list[dict]:
    """A backend's capture log: one JSON object per upstream request (never a write error)."""
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    assert all(isinstance(e, dict) for e in entries), f"{path} has a write error"
    return entries


def everything(stack) -> dict:
    # Every file must exist: a missing one would hide what it should have held.
    out = {
        "envoy log": stack.envoy_log.read_text(),
        "access log": stack.access_log.read_text(),
        "billing log": stack.billing_log.read_text(),
        "stats": stack.stats(),
        "prometheus": stack.stats("prometheus"),
        "upstream requests (capture ring)": json.dumps(stack.backend_requests()),
    }
    assert stack.upstream_log in UPSTREAM_LOGS
    for path in UPSTREAM_LOGS:
        out[f"upstream requests ({path})"] = path.read_text()
    return out


def assert_no_keys(stack, keys):
    for where, text in everything(stack).items():
        for k in keys:
            assert k not in text, f"a client key ({k[:10]}...) is in the {where}"


def send(stack, method, path, headers, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(stack.url + path, data=data, method=method,
                                 headers={"content-type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def upstream_requests_sent(stack) -> int:
    """Requests Envoy sent to the backend's clusters (from its stats)."""
    total = 0
    for line in stack.stats().splitlines():
        name, _, value = line.partition(": ")
        if name.startswith("cluster.demo_") and name.endswith(".upstream_rq_total"):
            total += int(value)
    return total


def test_no_client_key_anywhere_after_the_session(stack):
    # The capture log holds every request the session's backend got: as many as Envoy sent,
    # whole bodies included (the ring behind /__demo/requests keeps only the last 200, cut).
    marker = "tail-marker-past-the-4k-prefix"
    big = {"model": "qai-flash", "messages": [{"role": "user", "content": "x" * 100_000 + marker}]}
    status, _ = send(stack, "POST", "/v1/chat/completions", {"authorization": f"Bearer {DEMO_KEYS['active']}"}, big)
    assert status == 200
    entries = upstream_log(stack.upstream_log)
    assert len(entries) == upstream_requests_sent(stack)
    assert marker in entries[-1]["body"] and entries[-1]["body_size"] > 100_000
    assert_no_keys(stack, ALL_KEYS)


def test_no_client_key_anywhere_with_info_logs_and_every_way_to_present_one():
    with Stack(concurrency=2, log_level="info") as s:
        chat = {"model": "qai-flash", "messages": [{"role": "user", "content": "hi"}]}
        msgs = {"model": "qai-flash", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}
        gem = {"contents": [{"parts": [{"text": "hi"}]}]}
        for key in [DEMO_KEYS["active"], DEMO_KEYS["limited"], DEMO_KEYS["inactive"], DEMO_KEYS["capped"], *WRONG_KEYS]:
            send(s, "GET", "/v1/models", {"authorization": f"Bearer {key}"})
            send(s, "POST", "/v1/chat/completions", {"authorization": f"Bearer {key}"}, chat)
            send(s, "POST", "/v1/chat/completions", {"authorization": f"Bearer {key}"}, {**chat, "stream": True})
            send(s, "POST", "/v1/messages", {"x-api-key": key, "anthropic-version": "2023-06-01"}, msgs)
            send(s, "POST", "/v1beta/models/qai-flash:generateContent", {"x-goog-api-key": key}, gem)
            send(s, "POST", f"/v1beta/models/qai-flash:streamGenerateContent?alt=sse&key={key}", {}, gem)
            send(s, "GET", f"/v1beta/models?key={key}", {})
            send(s, "POST", "/v1/images/generations", {"authorization": f"Bearer {key}"}, {"model": "qai-imagine-turbo", "prompt": "a"})
            send(s, "POST", "/v1/chat/completions", {"authorization": f"Bearer {key}", "x-demo-status": "500"}, chat)
        # a client that leaves mid-stream
        body = json.dumps({**chat, "stream": True}).encode()
        c = socket.create_connection(("127.0.0.1", s.gateway_port), timeout=10)
        c.sendall((f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {DEMO_KEYS['active']}\r\n"
                   f"Content-Type: application/json\r\nx-demo-chunks: 50\r\nx-demo-chunk-delay-ms: 20\r\n"
                   f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
        assert c.recv(1000), "the stream never started"
        c.close()
        n_requests = 9 * 6 + 1
        records = []
        deadline = time.time() + 10
        while time.time() < deadline:
            records = s.billing_records()
            if len(records) >= n_requests:
                break
            time.sleep(0.1)
        assert len(records) == n_requests, "one billing record per request"
        assert "tollgate: configured" in s.envoy_log_text(), "info logs were on"
        assert len(upstream_log(s.upstream_log)) == upstream_requests_sent(s)
        assert_no_keys(s, ALL_KEYS)
