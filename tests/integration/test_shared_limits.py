"""The limits shared by Envoy replicas on the limits service (issue 14): real Redis, one
`tollgate-limits` and two Envoys at `--concurrency 2` configured with `limits.store: "remote"`,
each with its own demo backend (and a third Envoy on `fallback: "closed"` for the outage). Every
count is asserted exactly."""

import hashlib
import http.client
import json
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import Http
from redis_harness import LimitsService, RedisServer
from tollgate_harness import Stack, render

RPM = 20
CAPPED_KEY = "sk-demo-capped"


def sha(k):
    return hashlib.sha256(k.encode()).hexdigest()


def _avoid_minute_edge(margin=12.0):
    left = 60 - time.time() % 60
    if left < margin:
        time.sleep(left + 0.2)


HOLD_TTL_MS = 5000
SANDBOX_QUOTA = 100
CAP_MICROS = 10_000


def _patch(service_cluster, accounts, fallback="local"):
    def patch(cfg):
        cfg["limits"] = {"store": "remote", "cluster": service_cluster, "timeout_ms": 200, "fallback": fallback,
                         "replicas": 2, "hold_ttl_ms": HOLD_TTL_MS}
        for acct, key, rpm, extra in accounts:
            cfg["accounts"].append({"id": acct, "rpm": rpm})
            cfg["keys"].append({"id": f"id-{key}", "account": acct, "sha256": sha(key), **extra})
        return cfg
    return patch


# Fresh accounts and keys per run (windows, holds and spent credits live in Redis).
ACCOUNTS = {name: (f"acct-{name}-{uuid.uuid4().hex[:8]}", f"sk-{name}-{uuid.uuid4().hex[:12]}", rpm, extra)
            for name, rpm, extra in [
                ("burst", RPM, {}), ("down", RPM, {}), ("back", 1000, {}), ("shut", RPM, {}),
                ("sbx", 1000, {"sandbox_daily_quota": SANDBOX_QUOTA}),
                ("cap", 1000, {"spend_cap": CAP_MICROS / 1e6}),
                ("kill", 1000, {"spend_cap": 1.0}),
            ]}


def envoy(service, fallback="local"):
    return Stack(concurrency=2, patch_filter=_patch("limits", list(ACCOUNTS.values()), fallback), extra_clusters=["limits"],
                 upstream_overrides={"limits": f"127.0.0.1:{service.port}"})


@pytest.fixture(scope="module")
def cluster():
    redis = RedisServer().start()
    service = LimitsService(redis).start()
    envoys = []
    closed = None
    try:
        for _ in range(2):
            envoys.append(envoy(service).start())
        closed = envoy(service, fallback="closed").start()
        yield redis, service, envoys, closed
    finally:
        for s in envoys + [closed]:
            if s is not None:
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
    _, _, envoys, _ = cluster
    key = ACCOUNTS["burst"][1]
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


def anthropic(http, key):
    return http.json("POST", "/v1/messages",
                     {"model": "qai-flash", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
                     {"x-api-key": key, "anthropic-version": "2023-06-01"})


def test_redis_down_caps_fail_closed_rpm_falls_back_then_recovers(cluster):
    redis, _, envoys, closed = cluster
    a, b = envoys
    http_a, http_c = Http(a.url), Http(closed.url)
    key = ACCOUNTS["down"][1]
    shut_key = ACCOUNTS["shut"][1]
    before_fail = stat(a, "tollgate.limits.remote_failures")
    before_fb = stat(a, "tollgate.limits.remote_fallbacks")
    assert (stat(closed, "tollgate.limits.remote_failures"), stat(closed, "tollgate.limits.remote_fallbacks")) == (0, 0)
    redis.stop()
    try:
        _avoid_minute_edge()
        # A capped key: 503 in the caller's dialect (OpenAI, then Anthropic).
        status, _, body = chat(http_a, CAPPED_KEY)
        assert status == 503
        assert body["error"]["code"] == "service_unavailable"
        status, _, body = anthropic(http_a, CAPPED_KEY)
        assert status == 503
        assert body["type"] == "error" and body["error"]["type"] == "overloaded_error"
        # An uncapped account of 20 rpm on 2 replicas: this Envoy's own counters at 10.
        results = [chat(http_a, key) for _ in range(12)]
        assert [r[0] for r in results] == [200] * 10 + [429] * 2
        assert [r[1]["x-ratelimit-limit-requests"] for r in results] == ["10"] * 12
        # `fallback: "closed"`: the same uncapped 20 rpm account gets 503 in the caller's dialect.
        status, _, body = chat(http_c, shut_key)
        assert (status, body["error"]["code"]) == (503, "service_unavailable")
        status, _, body = anthropic(http_c, shut_key)
        assert (status, body["type"], body["error"]["type"]) == (503, "error", "overloaded_error")
    finally:
        redis.start()
    assert (stat(closed, "tollgate.limits.remote_failures"), stat(closed, "tollgate.limits.remote_fallbacks")) == (2, 0)
    shut = records(closed, 2, key_id=f"id-{shut_key}")
    assert [(r["limits"], r["status"], r["error"]) for r in shut] == [("unavailable", 503, "service_unavailable")] * 2
    assert stat(a, "tollgate.limits.remote_failures") - before_fail == 14
    assert stat(a, "tollgate.limits.remote_fallbacks") - before_fb == 12
    down = records(a, 12, key_id=f"id-{key}")
    assert [r["limits"] for r in down] == ["local_fallback"] * 12
    capped = records(a, 2, key_id="key-demo-capped")
    assert [(r["limits"], r["status"], r["error"]) for r in capped] == [("unavailable", 503, "service_unavailable")] * 2
    # Redis back: decided by the service again, without a restart.
    back_key = ACCOUNTS["back"][1]
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
    # The closed Envoy recovers too: the shared window, with its 20 rpm.
    status, headers, _ = chat(http_c, shut_key)
    assert (status, headers["x-ratelimit-limit-requests"], headers["x-ratelimit-remaining-requests"]) == (200, "20", "19")
    assert [r["limits"] for r in records(closed, 3, key_id=f"id-{shut_key}")] == ["unavailable"] * 2 + ["remote"]
    assert stat(closed, "tollgate.limits.remote_failures") == 2


def spend_state(redis, key):
    """The key's spend hash in Redis: spent, reserved and one `h:{reservation}` per live hold."""
    flat = redis.command("HGETALL", f"tg:s:spend:key:id-{key}") or []
    return {flat[i]: int(flat[i + 1]) for i in range(0, len(flat), 2)}


def settled(redis, key, timeout=5.0):
    """The spend state once no hold is left (settlements go out on the root context's tick)."""
    deadline = time.time() + timeout
    while True:
        state = spend_state(redis, key)
        if state.get("reserved", 0) == 0 or time.time() > deadline:
            return state
        time.sleep(0.05)


def micros(record):
    return round(record["credits"] * 1e6)


def test_sandbox_quota_is_exact_across_both_replicas(cluster):
    _, _, envoys, _ = cluster
    key = ACCOUNTS["sbx"][1]
    https = [Http(s.url) for s in envoys]
    # 120 requests, 8 at a time, alternating replicas: exactly the quota admitted, wherever.
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: chat(https[i % 2], key, model="qai-hello-world"), range(SANDBOX_QUOTA + 20)))
    assert sorted(r[0] for r in results) == [200] * SANDBOX_QUOTA + [429] * 20
    assert {r[2]["error"]["code"] for r in results if r[0] == 429} == {"sandbox_quota_exceeded"}


def test_concurrent_capped_requests_never_spend_past_the_cap(cluster):
    redis, _, envoys, _ = cluster
    key = ACCOUNTS["cap"][1]
    https = [Http(s.url) for s in envoys]
    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(lambda i: chat(https[i % 2], key), range(60)))
    ok = [r for r in results if r[0] == 200]
    refused = [r for r in results if r[0] != 200]
    assert ok and refused
    assert {(r[0], r[2]["error"]["code"]) for r in refused} == {(402, "insufficient_funds")}
    billed = [r for s in envoys for r in records(s, 0, key_id=f"id-{key}") if r["status"] == 200]
    deadline = time.time() + 5
    while len(billed) < len(ok) and time.time() < deadline:
        time.sleep(0.1)
        billed = [r for s in envoys for r in records(s, 0, key_id=f"id-{key}") if r["status"] == 200]
    assert len(billed) == len(ok)
    state = settled(redis, key)
    # Every admitted request settled once, at its billed cost; the estimate is an upper bound
    # (max_tokens given), so the cap is never passed.
    assert state == {"spent": sum(micros(r) for r in billed), "reserved": 0}
    assert state["spent"] <= CAP_MICROS


def test_restarts_keep_the_sandbox_count_and_spent_credits(cluster):
    redis, service, envoys, _ = cluster
    sbx_key, cap_key = ACCOUNTS["sbx"][1], ACCOUNTS["cap"][1]
    spent = settled(redis, cap_key)
    assert spent["reserved"] == 0 and spent["spent"] > 0
    for s in envoys:
        s.stop()
    service.stop()
    redis.restart()
    service.start()
    # New Envoy processes (and demo backends), nothing carried over but Redis's files.
    for i in range(len(envoys)):
        envoys[i] = envoy(service).start()
    assert spend_state(redis, cap_key) == spent
    # Both new Envoys see the used quota and the spent credits (a refusal counts nothing).
    for s in envoys:
        status, _, body = chat(Http(s.url), sbx_key, model="qai-hello-world")
        assert (status, body["error"]["code"]) == (429, "sandbox_quota_exceeded")
        status, _, body = chat(Http(s.url), cap_key, max_tokens=10_000)
        assert (status, body["error"]["code"]) == (402, "insufficient_funds")
    assert spend_state(redis, cap_key) == spent


def test_kill_9_mid_stream_lets_the_hold_expire_and_charges_once(cluster):
    redis, _, envoys, _ = cluster
    victim, survivor = envoys
    key = ACCOUNTS["kill"][1]
    conn = http.client.HTTPConnection("127.0.0.1", victim.gateway_port, timeout=10)
    body = {"model": "qai-flash", "stream": True, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "hi"}], "max_tokens": 50}
    conn.request("POST", "/v1/chat/completions", json.dumps(body),
                  {"Authorization": f"Bearer {key}", "Content-Type": "application/json",
                   "x-demo-chunks": "40", "x-demo-chunk-delay-ms": "250"})
    resp = conn.getresponse()
    assert resp.status == 200, resp.read()
    rid = resp.getheader("x-request-id")
    assert resp.read1(64)
    state = spend_state(redis, key)
    hold = state["reserved"]
    assert hold > 0
    assert state == {"reserved": hold, f"h:{rid}": hold}
    victim.envoy_proc.kill()
    victim.envoy_proc.wait()
    conn.close()
    time.sleep(HOLD_TTL_MS / 1000 + 0.5)
    # Nothing settled the killed request: its hold is still there, nothing spent.
    assert spend_state(redis, key) == {"reserved": hold, f"h:{rid}": hold}
    # The next admission on the key purges the expired hold; only this request is charged, once.
    status, _, _ = chat(Http(survivor.url), key)
    assert status == 200
    (record,) = records(survivor, 1, key_id=f"id-{key}")
    assert micros(record) > 0
    assert settled(redis, key) == {"spent": micros(record), "reserved": 0}
    # Settled once: a later look finds the same spend.
    time.sleep(0.3)
    assert spend_state(redis, key) == {"spent": micros(record), "reserved": 0}


def test_a_dangling_limits_cluster_is_reported_before_envoy_starts():
    import check_clusters

    def remote(cluster):
        return lambda cfg: {**cfg, "limits": {"store": "remote", "cluster": cluster}}

    doc = render(8080, 9901, {}, patch_filter=remote("limits-nowhere"))
    (line,) = check_clusters.missing_clusters(doc)
    assert "limits.cluster 'limits-nowhere' is not a cluster of this Envoy configuration" in line
    assert check_clusters.missing_clusters(render(8080, 9901, {}, patch_filter=remote("demo_text"))) == []
