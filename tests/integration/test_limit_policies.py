"""Per-key and per-account limit policies (issue 18) against real Envoy, in the local store (shared
data across Envoy's workers) and in the remote one (real Redis and `tollgate-limits`): a key's own
requests per minute beside its account's, an account's tokens per minute (reserved from the
estimate, settled with the usage), monthly and daily spend caps that reset at the UTC boundary
(with the clock the filter reads moved by a preloaded library), and development keys past the
sandbox quota. Every count is asserted exactly."""

import datetime
import hashlib
import re
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import Http
from redis_harness import LimitsService, RedisServer
from tollgate_harness import Stack

KEY_RPM = 5
TPM = 1000
BURST_TOKENS = 200  # each burst request's estimate: exactly TPM / 5
SANDBOX_QUOTA = 2

ACCOUNTS = [
    {"id": "acct-krpm", "rpm": 100},
    {"id": "acct-tpm", "rpm": 1000, "tpm": TPM},
    {"id": "acct-settle", "rpm": 1000, "tpm": 100_000},
    {"id": "acct-probe", "rpm": 1000, "tpm": 1_000_000},
    {"id": "acct-sbx", "rpm": 1000},
    {"id": "acct-day", "rpm": 1000, "spend_cap": {"credits": 0.005, "period": "day"}},
    {"id": "acct-cap", "rpm": 1000},
]
KEYS = [
    ("sk-krpm", "acct-krpm", {"rpm": KEY_RPM}),
    ("sk-krpm-other", "acct-krpm", {}),
    ("sk-tpm", "acct-tpm", {}),
    ("sk-settle", "acct-settle", {}),
    ("sk-probe", "acct-probe", {}),
    ("sk-sbx-prod", "acct-sbx", {"sandbox_daily_quota": SANDBOX_QUOTA}),
    ("sk-sbx-dev", "acct-sbx", {"sandbox_daily_quota": SANDBOX_QUOTA, "environment": "development"}),
    ("sk-month", "acct-cap", {"spend_cap": 0.005, "spend_cap_period": "month"}),
    ("sk-day", "acct-day", {}),
]


def sha(k):
    return hashlib.sha256(k.encode()).hexdigest()


def _patch(remote_port=None):
    def patch(cfg):
        if remote_port is not None:
            cfg["limits"] = {"store": "remote", "cluster": "limits", "timeout_ms": 500, "fallback": "closed",
                             "hold_ttl_ms": 5000}
        cfg["accounts"].extend(ACCOUNTS)
        for key, acct, extra in KEYS:
            cfg["keys"].append({"id": f"id-{key}", "account": acct, "sha256": sha(key), **extra})
        return cfg
    return patch


def make_stack(service=None, env=None):
    if service is None:
        return Stack(concurrency=2, patch_filter=_patch(), envoy_env=env)
    return Stack(concurrency=2, patch_filter=_patch(service.port), extra_clusters=["limits"],
                 upstream_overrides={"limits": f"127.0.0.1:{service.port}"}, envoy_env=env)


class Setup:
    def __init__(self, stack, redis=None):
        self.stack = stack
        self.redis = redis
        self.http = Http(stack.url)


@pytest.fixture(scope="module", params=["local", "remote"])
def setup(request):
    if request.param == "local":
        stack = make_stack().start()
        try:
            yield Setup(stack)
        finally:
            stack.stop()
        return
    redis = RedisServer().start()
    service = LimitsService(redis).start()
    stack = None
    try:
        stack = make_stack(service).start()
        yield Setup(stack, redis)
    finally:
        if stack is not None:
            stack.stop()
        service.close()
        redis.close()


def _avoid_minute_edge(margin=12.0):
    left = 60 - time.time() % 60
    if left < margin:
        time.sleep(left + 0.2)


def body(max_tokens, text="hi", model="qai-flash"):
    return {"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": max_tokens}


def chat(http, key, payload, **headers):
    return http.json("POST", "/v1/chat/completions", payload, {"Authorization": f"Bearer {key}", **headers})


def records(stack, n, **match):
    deadline = time.time() + 5
    while True:
        found = [r for r in stack.billing_records() if all(r.get(k) == v for k, v in match.items())]
        if len(found) >= n or time.time() > deadline:
            return found
        time.sleep(0.1)


def test_a_keys_own_rpm_holds_exactly_under_a_parallel_burst(setup):
    _avoid_minute_edge()
    with ThreadPoolExecutor(KEY_RPM + 1) as pool:
        results = list(pool.map(lambda _: chat(setup.http, "sk-krpm", body(5)), range(KEY_RPM + 1)))
    ok = [r for r in results if r[0] == 200]
    limited = [r for r in results if r[0] == 429]
    assert len(ok) == KEY_RPM
    assert len(limited) == 1
    # The key's window binds (5 against the account's 100): each remaining value once.
    assert sorted(int(h["x-ratelimit-remaining-requests"]) for _, h, _ in ok) == list(range(KEY_RPM))
    assert {h["x-ratelimit-limit-requests"] for _, h, _ in results} == {str(KEY_RPM)}
    (_, h, b), = limited
    assert b["error"]["code"] == "rate_limit_exceeded"
    assert "per minute reached for this API key" in b["error"]["message"]
    assert h["x-ratelimit-remaining-requests"] == "0"
    assert 1 <= int(h["retry-after"]) <= 60
    # The account's window counted the five admitted only: its other key sees 100 - 6 left.
    s, h, _ = chat(setup.http, "sk-krpm-other", body(5))
    assert s == 200
    assert (h["x-ratelimit-limit-requests"], h["x-ratelimit-remaining-requests"]) == ("100", "94")


def reset_ms(text):
    """An `x-ratelimit-reset-*` value (`250ms`, `12s`, `1m0s`) in milliseconds."""
    m = re.fullmatch(r"(\d+)ms|(?:(\d+)m)?(\d+)s", text)
    assert m, text
    if m.group(1):
        return int(m.group(1))
    return (int(m.group(2) or 0) * 60 + int(m.group(3))) * 1000


def probe_estimate(setup, payload):
    """The token estimate of `payload`, read from a roomy account's headers (once: the window then
    holds this request's usage)."""
    s, h, _ = chat(setup.http, "sk-probe", payload)
    assert s == 200
    return 1_000_000 - int(h["x-ratelimit-remaining-tokens"])


def test_tokens_per_minute_hold_exactly_under_a_parallel_burst(setup):
    _avoid_minute_edge(20)
    # The prompt's part of the estimate (the same text at any max_tokens), then a max_tokens that
    # makes the whole estimate BURST_TOKENS.
    prompt = probe_estimate(setup, body(1)) - 1
    payload = body(BURST_TOKENS - prompt)
    n = TPM // BURST_TOKENS
    # The backend holds each answer 1.5 s, so every request is admitted (or refused) before any
    # settles and gives its unused tokens back.
    with ThreadPoolExecutor(n + 1) as pool:
        results = list(pool.map(lambda _: chat(setup.http, "sk-tpm", payload, **{"x-demo-delay-ms": "1500"}),
                                range(n + 1)))
    ok = [r for r in results if r[0] == 200]
    limited = [r for r in results if r[0] == 429]
    assert len(ok) == n
    assert len(limited) == 1
    assert sorted(int(h["x-ratelimit-remaining-tokens"]) for _, h, _ in ok) == [
        TPM - BURST_TOKENS * i for i in range(n, 0, -1)]
    assert {h["x-ratelimit-limit-tokens"] for _, h, _ in results} == {str(TPM)}
    for _, h, _ in ok:
        assert 0 < reset_ms(h["x-ratelimit-reset-tokens"]) <= 60_000
    (_, h, b), = limited
    assert b["error"]["code"] == "rate_limit_exceeded"
    assert "tokens per minute" in b["error"]["message"]
    assert h["x-ratelimit-remaining-tokens"] == "0"
    assert 1 <= int(h["retry-after"]) <= 60
    # The same refusal in the other dialects, while the window is still full (the burst's
    # settlements released their unused tokens by now, so ask for more than that left).
    big = TPM
    s, h, b = setup.http.json("POST", "/v1/messages",
                              {"model": "qai-flash", "max_tokens": big, "messages": [{"role": "user", "content": "hi"}]},
                              {"x-api-key": "sk-tpm", "anthropic-version": "2023-06-01"})
    assert (s, b["type"], b["error"]["type"]) == (429, "error", "rate_limit_error")
    assert "retry-after" in h
    s, h, b = setup.http.json("POST", "/v1beta/models/qai-flash:generateContent",
                              {"contents": [{"parts": [{"text": "hi"}]}], "generationConfig": {"maxOutputTokens": big}},
                              {"x-goog-api-key": "sk-tpm"})
    assert (s, b["error"]["code"], b["error"]["status"]) == (429, 429, "RESOURCE_EXHAUSTED")
    assert "retry-after" in h


def test_tokens_settle_with_the_usage(setup):
    _avoid_minute_edge()
    payload = body(50)
    s, h, b = chat(setup.http, "sk-settle", payload)
    assert s == 200
    first = int(h["x-ratelimit-remaining-tokens"])
    used = b["usage"]["prompt_tokens"] + b["usage"]["completion_tokens"]
    estimate = 100_000 - first
    assert 0 < used < estimate
    assert len(records(setup.stack, 1, key_id="id-sk-settle")) == 1
    time.sleep(0.5)  # the log phase settled it; the limits service got it on the next tick
    s, h, b = chat(setup.http, "sk-settle", payload)
    assert s == 200
    # The second request sees the first's real usage, not its estimate, plus its own estimate.
    assert int(h["x-ratelimit-remaining-tokens"]) == 100_000 - used - estimate


def test_a_development_key_passes_the_sandbox_quota(setup):
    free = body(5, model="qai-hello-world")
    statuses = [chat(setup.http, "sk-sbx-prod", free)[0] for _ in range(SANDBOX_QUOTA)]
    s, h, b = chat(setup.http, "sk-sbx-prod", free)
    assert statuses == [200] * SANDBOX_QUOTA
    assert (s, b["error"]["code"]) == (429, "sandbox_quota_exceeded")
    assert [chat(setup.http, "sk-sbx-dev", free)[0] for _ in range(SANDBOX_QUOTA + 3)] == [200] * (SANDBOX_QUOTA + 3)


# The clock the filter reads (Envoy's system clock, glibc's clock_gettime(CLOCK_REALTIME)) moved by
# fakeclock/fakeclock.c, preloaded into one Envoy per store: the real time plus an offset the test
# writes to a file (Debian's libfaketime deadlocks Envoy at start; the C file says why). The
# monotonic clock, which Envoy's timers use, is left alone.

FAKECLOCK_SRC = Path(__file__).parent / "fakeclock" / "fakeclock.c"


def set_clock(path, iso):
    """Moves the preloaded Envoy's wall clock to `iso` (UTC) from now on; it keeps ticking."""
    target = datetime.datetime.fromisoformat(iso).replace(tzinfo=datetime.timezone.utc).timestamp()
    path.write_text(str(int((target - time.time()) * 1e9)))


@pytest.fixture(scope="module")
def faked(setup):
    tmp = Path(tempfile.mkdtemp(prefix="tollgate-fakeclock-"))
    lib = tmp / "fakeclock.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-o", str(lib), str(FAKECLOCK_SRC)], check=True)
    offset = tmp / "offset"
    set_clock(offset, "2026-11-30T23:50:00")
    env = {"LD_PRELOAD": str(lib), "TOLLGATE_CLOCK_OFFSET_FILE": str(offset)}
    service = None
    if setup.redis is not None:
        service = LimitsService(setup.redis).start()
    stack = None
    try:
        stack = make_stack(service, env).start()
        yield stack, offset
    finally:
        if stack is not None:
            stack.stop()
        if service is not None:
            service.close()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.parametrize("key", ["sk-month", "sk-day"])
def test_a_periodic_cap_resets_at_the_utc_boundary(faked, key):
    """`sk-month`: a key's monthly cap; `sk-day`: its account's daily cap (0.005 credits: one
    request's estimate fits, then its cost and the next estimate do not)."""
    stack, offset = faked
    http = Http(stack.url)
    payload = body(10)
    set_clock(offset, "2026-11-30T23:59:50")
    s, _, _ = chat(http, key, payload)
    assert s == 200
    s, _, b = chat(http, key, payload)
    assert (s, b["error"]["code"]) == (402, "insufficient_funds")
    set_clock(offset, "2026-12-01T00:00:05")
    s, _, _ = chat(http, key, payload)
    assert s == 200
    s, _, b = chat(http, key, payload)
    assert (s, b["error"]["code"]) == (402, "insufficient_funds")
    # The filter read the moved clock: its records are dated by it.
    times = [r["time"][:18] for r in records(stack, 4, key_id=f"id-{key}")]
    assert times == ["2026-11-30T23:59:5"] * 2 + ["2026-12-01T00:00:0"] * 2
