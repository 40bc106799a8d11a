"""Failover to the next tier with the limits on the limits service (`limits.store: "remote"`, real
Redis): the reservation made at admission is not grown on the service, so a fallback dearer than
the first tier is skipped for a capped key and a cheaper one serves; the request is admitted once
(the account's requests per minute count it once, however many tiers it tried)."""
import hashlib
import json
import time
import urllib.error
import urllib.request
import uuid

import pytest

from redis_harness import LimitsService, RedisServer
from tollgate_harness import Stack

RPM = 3
ACCOUNT = f"acct-fo-{uuid.uuid4().hex[:8]}"
KEY = f"sk-fo-{uuid.uuid4().hex[:12]}"
PROMPT = "Tell me about failover"


def _patch(cfg):
    cfg["limits"] = {"store": "remote", "cluster": "limits", "timeout_ms": 200, "fallback": "closed",
                     "replicas": 1, "hold_ttl_ms": 5000}
    cfg["accounts"].append({"id": ACCOUNT, "rpm": RPM})
    cfg["keys"].append({"id": "id-fo", "account": ACCOUNT, "sha256": hashlib.sha256(KEY.encode()).hexdigest(),
                        "spend_cap": 100})
    cfg["models"] += [
        # Fails over first to a dearer tier (skipped: the remote reservation is not grown), then
        # to qai-flash (the same price: it fits the reservation).
        {"id": "fo-first", "type": "text", "cluster": "demo_text", "upstream_model": "fo-first",
         "price": {"prompt_per_1k": 0.1, "completion_per_1k": 0.2}, "fallbacks": ["fo-dear", "qai-flash"]},
        {"id": "fo-dear", "type": "text", "cluster": "demo_text", "upstream_model": "fo-dear",
         "price": {"prompt_per_1k": 1.0, "completion_per_1k": 2.0}},
    ]
    return cfg


@pytest.fixture(scope="module")
def stack():
    redis = RedisServer().start()
    service = LimitsService(redis).start()
    s = None
    try:
        s = Stack(concurrency=2, patch_filter=_patch, extra_clusters=["limits"],
                  upstream_overrides={"limits": f"127.0.0.1:{service.port}"})
        s.start()
        yield s
    finally:
        if s is not None:
            s.stop()
        service.close()
        redis.close()


def chat(stack, model, headers=None):
    body = {"model": model, "max_tokens": 50, "messages": [{"role": "user", "content": PROMPT}]}
    h = {"content-type": "application/json", "authorization": f"Bearer {KEY}", "x-demo-usage-fixed": "1000 40",
         **(headers or {})}
    req = urllib.request.Request(stack.url + "/v1/chat/completions", data=json.dumps(body).encode(), headers=h)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def test_a_dearer_fallback_is_skipped_a_cheaper_one_serves_admitted_once(stack):
    left = 60 - time.time() % 60
    if left < 12:
        time.sleep(left + 0.2)
    stack.clear_backend_requests("demo_text")
    status, headers, body = chat(stack, "fo-first", {"x-demo-fail-model": "fo-first"})
    assert status == 200, body
    assert headers["x-tollgate-model"] == "qai-flash"
    assert json.loads(body)["model"] == "qai-flash"
    rec = stack.billing_record(headers["x-request-id"])
    # fo-dear was never called: skipped, not an attempt.
    assert [(a["model"], a["status"]) for a in rec["attempts"]] == [("fo-first", 503), ("qai-flash", 200)]
    assert [json.loads(r["body"])["model"] for r in stack.backend_requests("demo_text")] == ["fo-first", "qai-flash"]
    assert (rec["served_model"], rec["credits"]) == ("qai-flash", round(1000 * 0.1 / 1000 + 40 * 0.2 / 1000, 6))
    # One admission: RPM - 1 more requests of the minute pass, the next is refused.
    got = [chat(stack, "qai-flash")[0] for _ in range(RPM)]
    assert got == [200] * (RPM - 1) + [429]
