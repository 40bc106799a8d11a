"""The shared limits service (`tollgate-limits`, issue 14) against real processes: Debian's
redis-server with append-only persistence and two copies of the service on it, driven in
parallel over HTTP as the Envoy replicas will drive them. Every count is asserted exactly.

The filter does not call the service yet; these tests check the service and its scripts."""

import signal
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from redis_harness import LimitsService, RedisServer

MINUTE = 60_000
DAY = 86_400_000


def next_minute_mid() -> int:
    """A `now_ms` in the middle of the next calendar minute: no test straddles a boundary, and
    the window's key (kept until one period past the window's end) outlives the test."""
    now = int(time.time() * 1000)
    return now - now % MINUTE + MINUTE + 30_000


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def shared():
    """One Redis and two services on it (as two Envoy replicas would each reach their own)."""
    redis = RedisServer().start()
    services = [LimitsService(redis).start(), LimitsService(redis).start()]
    yield redis, services
    for s in services:
        s.close()
    redis.close()


@pytest.fixture
def own():
    """A Redis and two services for one test that stops or restarts them."""
    redis = RedisServer().start()
    services = [LimitsService(redis).start(), LimitsService(redis).start()]
    yield redis, services
    for s in services:
        s.close()
    redis.close()


def parallel(calls):
    with ThreadPoolExecutor(max_workers=30) as pool:
        return list(pool.map(lambda c: c(), calls))


def spend_state(redis, scope):
    """The scope's hash in Redis: spent, reserved and one `h:{reservation}` per live hold."""
    flat = redis.command("HGETALL", f"tg:s:{scope}")
    return {k: int(v) for k, v in zip(flat[::2], flat[1::2])}


def hold_body(reservation, scope, cap, micros, ttl_ms=600_000, now_ms=None):
    return {"now_ms": now_ms or next_minute_mid(), "caps": [{"key": scope, "cap_micros": cap}],
            "reservation": reservation, "hold_micros": micros, "hold_ttl_ms": ttl_ms}


def settle(service, reservation, scope, actual):
    return service.call("/v1/settle", {"reservation": reservation, "caps": [scope], "actual_micros": actual})


def test_rpm_admits_exactly_the_limit_across_two_services(shared):
    _, (a, b) = shared
    now = next_minute_mid()
    key = f"rpm:{uid('acct')}"
    body = {"now_ms": now, "windows": [{"key": key, "limit": 20, "period_ms": MINUTE}]}
    answers = parallel([lambda s=(a, b)[i % 2]: s.call("/v1/admit", body) for i in range(60)])
    assert [status for status, _ in answers] == [200] * 60
    admitted = [r for _, r in answers if r["admitted"]]
    refused = [r for _, r in answers if not r["admitted"]]
    assert len(admitted) == 20
    assert len(refused) == 40
    # Each admitted request saw its own count: remaining 19, 18, ... 0, once each.
    assert sorted(r["windows"][0]["remaining"] for r in admitted) == list(range(20))
    assert {(r["refused"], r["index"]) for r in refused} == {("window", 0)}
    assert {r["windows"][0]["reset_after_ms"] for _, r in answers} == {30_000}
    assert {(w["allowed"], w["remaining"]) for r in refused for w in r["windows"]} == {(False, 0)}
    status, peek = a.call("/v1/peek", {"now_ms": now, "key": key, "limit": 20, "period_ms": MINUTE})
    assert (status, peek) == (200, {"allowed": False, "limit": 20, "remaining": 0, "reset_after_ms": 30_000})
    # The next calendar minute starts from zero.
    status, later = b.call("/v1/admit", {**body, "now_ms": now + 30_000})
    assert (status, later["admitted"], later["windows"][0]["remaining"]) == (200, True, 19)


def test_sandbox_quota_admits_exactly_100_across_two_services(shared):
    _, (a, b) = shared
    now = next_minute_mid()
    key = f"sbx:{uid('key')}"
    body = {"now_ms": now, "windows": [{"key": key, "limit": 100, "period_ms": DAY}]}
    answers = parallel([lambda s=(a, b)[i % 2]: s.call("/v1/admit", body) for i in range(130)])
    assert sum(1 for status, r in answers if status == 200 and r["admitted"]) == 100
    assert sum(1 for status, r in answers if status == 200 and not r["admitted"]) == 30
    midnight = now - now % DAY + DAY
    assert {r["windows"][0]["reset_after_ms"] for _, r in answers} == {midnight - now}


def test_a_refused_request_changes_nothing(shared):
    redis, (a, b) = shared
    now = next_minute_mid()
    rpm, sbx, scope = f"rpm:{uid('acct')}", f"sbx:{uid('key')}", f"spend:key:{uid('k')}"
    windows = [{"key": rpm, "limit": 5, "period_ms": MINUTE}, {"key": sbx, "limit": 1, "period_ms": DAY}]
    status, first = a.call("/v1/admit", {"now_ms": now, "windows": windows})
    assert (status, first["admitted"]) == (200, True)
    # Refused by the sandbox quota (the second window): the rpm window is not counted.
    status, second = b.call("/v1/admit", {"now_ms": now, "windows": windows})
    assert (status, second["admitted"], second["refused"], second["index"]) == (200, False, "window", 1)
    assert [w["allowed"] for w in second["windows"]] == [True, False]
    # Refused by a cap: neither the window nor any hold is taken.
    status, third = a.call("/v1/admit", {**hold_body(uid("r"), scope, 100, 101, now_ms=now), "windows": windows[:1]})
    assert (status, third["admitted"], third["refused"], third["index"], third["remaining_micros"]) == \
        (200, False, "cap", 0, 100)
    assert redis.command("GET", f"tg:w:{rpm}:{now - now % MINUTE}") == "1"
    assert spend_state(redis, scope) == {}
    # Giving a slot back: once, in that window only.
    undo = {"now_ms": now, "key": rpm, "period_ms": MINUTE}
    assert b.call("/v1/undo", undo) == (200, {"undone": True})
    assert a.call("/v1/undo", undo) == (200, {"undone": False})
    assert a.call("/v1/undo", {**undo, "now_ms": now + MINUTE}) == (200, {"undone": False})
    assert redis.command("GET", f"tg:w:{rpm}:{now - now % MINUTE}") == "0"


def test_parallel_holds_never_exceed_the_cap(shared):
    redis, (a, b) = shared
    scope = f"spend:acct:{uid('acct')}"
    ids = [uid("r") for _ in range(50)]
    answers = parallel([lambda i=i: (a, b)[i % 2].call("/v1/admit", hold_body(ids[i], scope, 1_000_000, 70_000))
                        for i in range(50)])
    assert [status for status, _ in answers] == [200] * 50
    admitted = [ids[i] for i, (_, r) in enumerate(answers) if r["admitted"]]
    # 14 x 70 000 = 980 000 fits the cap of 1 000 000; a 15th would not.
    assert len(admitted) == 14
    assert sorted(r["remaining_micros"] for _, r in answers if r["admitted"]) == \
        sorted(1_000_000 - 70_000 * n for n in range(1, 15))
    assert {r["remaining_micros"] for _, r in answers if not r["admitted"]} == {20_000}
    state = spend_state(redis, scope)
    assert state == {"reserved": 980_000, **{f"h:{r}": 70_000 for r in admitted}}


def test_settle_refunds_and_charges_the_excess(shared):
    redis, (a, b) = shared
    scope = f"spend:key:{uid('k')}"
    status, r1 = a.call("/v1/admit", hold_body("r1-" + scope, scope, 1_000, 600))
    assert (status, r1["admitted"], r1["remaining_micros"], r1["reserved_micros"]) == (200, True, 400, 600)
    # Cost below the hold: the difference comes back.
    assert settle(b, "r1-" + scope, scope, 250) == (200, {"settled": True})
    assert spend_state(redis, scope) == {"spent": 250, "reserved": 0}
    status, r2 = b.call("/v1/admit", hold_body("r2-" + scope, scope, 1_000, 700))
    assert (status, r2["admitted"], r2["remaining_micros"]) == (200, True, 50)
    # Cost above the hold: the excess is charged, past the cap.
    assert settle(a, "r2-" + scope, scope, 900) == (200, {"settled": True})
    assert spend_state(redis, scope) == {"spent": 1_150, "reserved": 0}
    # A reached cap refuses even a request estimated at nothing.
    status, r3 = a.call("/v1/admit", hold_body("r3-" + scope, scope, 1_000, 0))
    assert (status, r3["admitted"], r3["refused"], r3["remaining_micros"]) == (200, False, "cap", 0)


def test_a_retried_settle_charges_once(shared):
    redis, (a, b) = shared
    scope = f"spend:key:{uid('k')}"
    assert a.call("/v1/admit", hold_body("r-" + scope, scope, 10_000, 500))[1]["admitted"] is True
    # The same settlement sent many times at once, to both services: one charge.
    answers = parallel([lambda i=i: settle((a, b)[i % 2], "r-" + scope, scope, 300) for i in range(20)])
    assert sorted(r["settled"] for _, r in answers) == [False] * 19 + [True]
    assert settle(b, "r-" + scope, scope, 300) == (200, {"settled": False})
    assert spend_state(redis, scope) == {"spent": 300, "reserved": 0}
    # A settled reservation cannot be held again.
    status, again = a.call("/v1/admit", hold_body("r-" + scope, scope, 10_000, 500))
    assert status == 409
    assert spend_state(redis, scope) == {"spent": 300, "reserved": 0}


def test_an_expired_hold_frees_its_amount(shared):
    redis, (a, b) = shared
    scope = f"spend:key:{uid('k')}"
    status, r1 = a.call("/v1/admit", hold_body("r1", scope, 1_000, 800, ttl_ms=1_000))
    assert (status, r1["admitted"]) == (200, True)
    status, r2 = b.call("/v1/admit", hold_body("r2", scope, 1_000, 500))
    assert (status, r2["admitted"], r2["remaining_micros"]) == (200, False, 200)
    time.sleep(1.3)
    # The unsettled hold no longer counts: nothing was spent, its amount is free again.
    status, r2 = b.call("/v1/admit", hold_body("r2", scope, 1_000, 500))
    assert (status, r2["admitted"], r2["remaining_micros"]) == (200, True, 500)
    assert spend_state(redis, scope) == {"reserved": 500, "h:r2": 500}
    # Its late settlement still charges the cost (the request happened), and only that.
    assert settle(a, "r1", scope, 100) == (200, {"settled": True})
    assert spend_state(redis, scope) == {"spent": 100, "reserved": 500, "h:r2": 500}


def test_restarts_keep_spent_credits_and_the_sandbox_count(own):
    redis, services = own
    a, b = services
    now = next_minute_mid()
    scope, sbx = f"spend:acct:{uid('acct')}", f"sbx:{uid('key')}"
    for i in range(3):
        body = {**hold_body(f"r{i}", scope, 5_000, 1_000, now_ms=now),
                "windows": [{"key": sbx, "limit": 100, "period_ms": DAY}]}
        assert (a, b)[i % 2].call("/v1/admit", body)[1]["admitted"] is True
        assert settle((b, a)[i % 2], f"r{i}", scope, 700) == (200, {"settled": True})
    status, held = a.call("/v1/admit", hold_body("r-open", scope, 5_000, 1_000, now_ms=now))
    assert (status, held["admitted"]) == (200, True)
    # Redis killed (a crash, not a clean shutdown) and started again on its directory; both
    # services restarted too. With `appendfsync everysec` a crash loses at most the last second
    # of writes (as the README says): wait past it, so the test asserts persistence, not luck.
    time.sleep(1.5)
    redis.restart(kill=True)
    for s in services:
        s.stop()
        s.start()
    assert spend_state(redis, scope) == {"spent": 2_100, "reserved": 1_000, "h:r-open": 1_000}
    peek = {"now_ms": now, "key": sbx, "limit": 100, "period_ms": DAY}
    assert b.call("/v1/peek", peek)[1]["remaining"] == 97
    # A settlement retried after the restart is still recognised.
    assert settle(a, "r2", scope, 700) == (200, {"settled": False})
    status, over = b.call("/v1/admit", hold_body("r-big", scope, 5_000, 2_000, now_ms=now))
    assert (status, over["admitted"], over["remaining_micros"]) == (200, False, 1_900)


def test_redis_down_answers_503_fast_and_recovers_by_itself(own):
    redis, (a, b) = own
    scope = f"spend:key:{uid('k')}"
    body = hold_body("r1", scope, 10_000, 100)
    assert a.call("/v1/admit", body)[0] == 200
    assert a.call("/healthz") == (200, {"redis": "ok"})
    # Redis hangs (stopped, its port still open): every call is bounded by the 300 ms timeout.
    redis.proc.send_signal(signal.SIGSTOP)
    try:
        for path, req in [("/v1/admit", hold_body("r2", scope, 10_000, 100)), ("/v1/settle", None), ("/healthz", None)]:
            if path == "/v1/settle":
                req = {"reservation": "r1", "caps": [scope], "actual_micros": 50}
            started = time.monotonic()
            status, answer = a.call(path, req)
            elapsed = time.monotonic() - started
            assert (status, answer) == (503, {"error": "the limits store is unavailable"}), path
            assert elapsed < 0.8, (path, elapsed)
    finally:
        redis.proc.send_signal(signal.SIGCONT)
    # b has an idle connection to Redis, which the restart below closes.
    assert b.call("/healthz") == (200, {"redis": "ok"})
    # Redis gone (refused connections): 503 at once.
    redis.stop()
    started = time.monotonic()
    assert a.call("/v1/admit", hold_body("r3", scope, 10_000, 100))[0] == 503
    assert time.monotonic() - started < 0.8
    assert a.call("/healthz")[0] == 503
    # Back on the same port and directory: both services recover without a restart, on their
    # first call.
    redis.start()
    assert b.call("/healthz") == (200, {"redis": "ok"})
    status, r4 = b.call("/v1/admit", hold_body("r4", scope, 10_000, 100))
    assert (status, r4["admitted"]) == (200, True)
    # The settlement that timed out may have run once Redis resumed: retried, it is charged once.
    status, answer = a.call("/v1/settle", {"reservation": "r1", "caps": [scope], "actual_micros": 50})
    assert status == 200
    assert spend_state(redis, scope)["spent"] == 50
    assert "h:r1" not in spend_state(redis, scope)
