"""The limits shared by Envoy replicas on the limits service (issue 14): real Redis, one
`tollgate-limits` and two Envoys at `--concurrency 2` configured with `limits.store: "remote"`,
each with its own demo backend. Every count is asserted exactly."""

import hashlib
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import Http
from redis_harness import LimitsService, RedisServer
from tollgate_harness import Stack

RPM = 20
CAPPED_KEY = "sk-demo-capped"


def sha(k):
    return hashlib.sha256(k.encode()).hexdigest()


def _avoid_minute_edge(margin=12.0):
    left = 60 - time.time() % 60
    if left < margin:
        time.sleep(left + 0.2)


def _patch(service_cluster, accounts):
    def patch(cfg):
        cfg["limits"] = {"store": "remote", "cluster": service_cluster, "timeout_ms": 200, "fallback": "local",
                         "replicas": 2, "hold_ttl_ms": 5000}
        for acct, key, rpm in accounts:
            cfg["accounts"].append({"id": acct, "rpm": rpm})
            cfg["keys"].append({"id": f"id-{key}", "account": acct, "sha256": sha(key)})
        return cfg
    return patch


# Fresh accounts per test (the windows and holds live in Redis across the module).
ACCOUNTS = {name: (f"acct-{name}-{uuid.uuid4().hex[:8]}", f"sk-{name}-{uuid.uuid4().hex[:12]}", rpm)
            for name, rpm in [("burst", RPM), ("down", RPM), ("back", 1000)]}


@pytest.fixture(scope="module")
def cluster():
    redis = RedisServer().start()
    service = LimitsService(redis).start()
    patch = _patch("limits", list(ACCOUNTS.values()))
    envoys = []
    try:
        for _ in range(2):
            s = Stack(concurrency=2, patch_filter=patch, extra_clusters=["limits"],
                      upstream_overrides={"limits": f"127.0.0.1:{service.port}"})
            envoys.append(s.start())
        yield redis, service, envoys
    finally:
        for s in envoys:
            s.stop()
        service.close()
        redis.close()


def chat(http, key, **extra):
    body = {"model": "qai-flash", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, **extra}
    return http.json("POST", "/v1/chat/completions", body, {"Authorization": f"Bearer {key}"})


def stat(stack, name):
    """A stat of the filter (Envoy prefixes `wasmcustom.`); absent is a failure."""
    m = re.search(rf"^wasmcustom\.{re.escape(name)}: (\d+)$", stack.stats(), re.M)
    assert m, f"{name} is not defined"
    return int(m.group(1))


def records(stack, n, **match):
    """The billing records that match, once there are `n` (access logs are flushed every 100 ms)."""
    deadline = time.time() + 5
    while True:
        found = [r for r in stack.billing_records() if all(r.get(k) == v for k, v in match.items())]
        if len(found) >= n or time.time() > deadline:
            return found
        time.sleep(0.1)


def test_rpm_is_exact_across_both_replicas(cluster):
    _, _, envoys = cluster
    _, key, _ = ACCOUNTS["burst"]
    https = [Http(s.url) for s in envoys]
    _avoid_minute_edge()
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: chat(https[i % 2], key), range(60)))
    ok = [r for r in results if r[0] == 200]
    limited = [r for r in results if r[0] == 429]
    assert len(ok) == RPM
    assert len(limited) == 60 - RPM
    # Both replicas admitted some, from one shared counter: each remaining value once.
    assert sorted(int(h["x-ratelimit-remaining-requests"]) for _, h, _ in ok) == list(range(RPM))
    assert {h["x-ratelimit-limit-requests"] for _, h, _ in results} == {str(RPM)}
    assert all(b["error"]["code"] == "rate_limit_exceeded" and "retry-after" in h for _, h, b in limited)


def test_redis_down_caps_fail_closed_rpm_falls_back_then_recovers(cluster):
    redis, _, envoys = cluster
    a, b = envoys
    http_a = Http(a.url)
    _, key, _ = ACCOUNTS["down"]
    before_fail = stat(a, "tollgate.limits.remote_failures")
    before_fb = stat(a, "tollgate.limits.remote_fallbacks")
    redis.stop()
    try:
        _avoid_minute_edge()
        # A capped key: 503 in the caller's dialect (OpenAI, then Anthropic).
        status, _, body = chat(http_a, CAPPED_KEY)
        assert status == 503
        assert body["error"]["code"] == "service_unavailable"
        status, _, body = http_a.json(
            "POST", "/v1/messages",
            {"model": "qai-flash", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
            {"x-api-key": CAPPED_KEY, "anthropic-version": "2023-06-01"})
        assert status == 503
        assert body["type"] == "error" and body["error"]["type"] == "overloaded_error"
        # An uncapped account of 20 rpm on 2 replicas: this Envoy's own counters at 10.
        results = [chat(http_a, key) for _ in range(12)]
        assert [r[0] for r in results] == [200] * 10 + [429] * 2
        assert [r[1]["x-ratelimit-limit-requests"] for r in results] == ["10"] * 12
    finally:
        redis.start()
    assert stat(a, "tollgate.limits.remote_failures") - before_fail == 14
    assert stat(a, "tollgate.limits.remote_fallbacks") - before_fb == 12
    down = records(a, 12, key_id=f"id-{key}")
    assert [r["limits"] for r in down] == ["local_fallback"] * 12
    capped = records(a, 2, key_id="key-demo-capped")
    assert [(r["limits"], r["status"], r["error"]) for r in capped] == [("unavailable", 503, "service_unavailable")] * 2
    # Redis back: decided by the service again, without a restart.
    _, back_key, _ = ACCOUNTS["back"]
    deadline = time.time() + 10
    while True:
        status, headers, _ = chat(Http(b.url), back_key)
        if status == 200 or time.time() > deadline:
            break
        time.sleep(0.2)
    assert status == 200
    assert headers["x-ratelimit-limit-requests"] == "1000"
    status, _, _ = chat(http_a, CAPPED_KEY)
    assert status == 200
    assert a.billing_record(key_id="key-demo-capped", status=200)["limits"] == "remote"
