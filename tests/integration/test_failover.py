"""Failover to the next tier, against real Envoy and the demo backend: an upstream that refuses
connections, answers 503 or 429 is replaced by the next model of the requested model's
`fallbacks` (translated for that model's cluster and dialect, under its credential), streamed and
not, on the OpenAI and the Anthropic fronts; the response and the record name the serving model,
the record lists every attempt and bills the serving model's price. A 400 is not retried; a chain
where every tier fails gives the client the last failure as an error in its dialect, unbilled."""
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))

from tollgate_harness import Stack, free_port  # noqa: E402

KEY = "sk-demo-active"
SECRET = "sk-upstream-text-secret"
DEAD_SECRET = "sk-upstream-dead-secret"
CLAUDE_SECRET = "sk-ant-upstream-secret"
PROMPT = "Tell me about failover"
# Demo prices (per 1k prompt, per 1k completion).
PRICES = {"qai-max": (1.5, 4.5), "qai-pro": (0.5, 1.5), "qai-flash": (0.1, 0.2), "claude-backup": (3.0, 15.0)}


def _patch(cfg):
    for c in cfg["clusters"]:
        if c["name"] == "demo_text":
            c["api_key"] = SECRET
    cfg["clusters"].append({"name": "dead_max", "dialect": "openai", "api_key": DEAD_SECRET,
                            "headers": {"x-dead-only": DEAD_SECRET}})
    cfg["clusters"].append({"name": "demo_anthropic", "dialect": "anthropic", "api_key": CLAUDE_SECRET})
    cfg["models"] += [
        # qai-max's tier on a cluster whose upstream refuses connections.
        {"id": "dead-max", "type": "text", "cluster": "dead_max", "upstream_model": "qai-max",
         "price": {"prompt_per_1k": 1.5, "completion_per_1k": 4.5}, "fallbacks": ["qai-pro", "qai-flash"]},
        # A fallback on another provider's dialect.
        {"id": "claude-backup", "type": "text", "cluster": "demo_anthropic", "upstream_model": "claude-demo",
         "price": {"prompt_per_1k": 3.0, "completion_per_1k": 15.0}},
        {"id": "max-or-claude", "type": "text", "cluster": "demo_text", "upstream_model": "max-up",
         "price": {"prompt_per_1k": 1.5, "completion_per_1k": 4.5}, "fallbacks": ["claude-backup"]},
    ]
    return cfg


@pytest.fixture(scope="module")
def stack():
    s = Stack(
        concurrency=2,
        patch_filter=_patch,
        extra_clusters=["dead_max", "demo_anthropic"],
        upstream_overrides={"dead_max": f"127.0.0.1:{free_port()}"},
    )
    s.start()
    yield s
    s.stop()


def call(stack, front, model, stream, headers=None):
    """One chat request; returns (status, lowercased headers, body bytes)."""
    h = {"content-type": "application/json", "x-demo-usage-fixed": "1000 200", **(headers or {})}
    if front == "openai":
        path = "/v1/chat/completions"
        body = {"model": model, "messages": [{"role": "user", "content": PROMPT}], "stream": stream}
        h["authorization"] = f"Bearer {KEY}"
    else:
        path = "/v1/messages"
        body = {"model": model, "max_tokens": 300, "messages": [{"role": "user", "content": PROMPT}],
                "stream": stream}
        h["x-api-key"] = KEY
        h["anthropic-version"] = "2023-06-01"
    req = urllib.request.Request(stack.url + path, data=json.dumps(body).encode(), headers=h, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def credits(model, prompt=1000, completion=200):
    p, c = PRICES[model]
    return round(prompt * p / 1000 + completion * c / 1000, 6)


def events(body):
    """The JSON data of each SSE event."""
    out = []
    for line in body.decode().splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            out.append(json.loads(line[len("data: "):]))
    return out


def served_model_in_body(front, stream, body):
    if not stream:
        doc = json.loads(body)
        return doc["model"]
    evs = events(body)
    if front == "openai":
        models = {e["model"] for e in evs}
    else:
        models = {e["message"]["model"] for e in evs if e.get("type") == "message_start"}
    assert len(models) == 1, evs
    return models.pop()


def text_of(front, stream, body):
    if not stream:
        doc = json.loads(body)
        return doc["choices"][0]["message"]["content"] if front == "openai" else doc["content"][0]["text"]
    evs = events(body)
    if front == "openai":
        return "".join(e["choices"][0]["delta"].get("content") or "" for e in evs if e.get("choices"))
    return "".join(e["delta"].get("text", "") for e in evs if e.get("type") == "content_block_delta")


def attempts(rec):
    return [(a["model"], a["cluster"], a["status"]) for a in rec["attempts"]]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("front", ["openai", "anthropic"])
def test_a_refused_connection_is_served_by_the_next_tier(stack, front, stream):
    stack.clear_backend_requests("demo_text")
    status, headers, body = call(stack, front, "dead-max", stream)
    assert status == 200, body
    assert headers["x-tollgate-model"] == "qai-pro"
    assert headers["content-type"].startswith("text/event-stream" if stream else "application/json")
    assert served_model_in_body(front, stream, body) == "qai-pro"
    assert PROMPT in text_of(front, stream, body)
    rec = stack.billing_record(headers["x-request-id"])
    # Envoy's own 503 for the refused connection, then qai-pro's 200.
    assert attempts(rec) == [("dead-max", "dead_max", 503), ("qai-pro", "demo_text", 200)]
    assert all(isinstance(a["latency_ms"], int) and a["latency_ms"] >= 0 for a in rec["attempts"])
    assert (rec["model"], rec["served_model"], rec["upstream_model"], rec["cluster"]) == (
        "dead-max", "qai-pro", "qai-pro", "demo_text")
    assert (rec["prompt_tokens"], rec["completion_tokens"], rec["estimated"]) == (1000, 200, False)
    assert rec["credits"] == credits("qai-pro")
    assert (rec["status"], rec["error"], rec["complete"], rec["stream"]) == (200, None, True, stream)
    # The fallback went to qai-pro's cluster with that cluster's credential only.
    got = stack.backend_requests("demo_text")
    assert len(got) == 1
    sent = dict((k.lower(), v) for k, v in got[0]["headers"])
    assert sent["authorization"] == f"Bearer {SECRET}"
    assert "x-dead-only" not in sent
    assert DEAD_SECRET not in json.dumps(got[0])
    assert json.loads(got[0]["body"])["model"] == "qai-pro"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("front", ["openai", "anthropic"])
def test_a_503_is_served_by_the_next_tier(stack, front, stream):
    status, headers, body = call(stack, front, "qai-max", stream, {"x-demo-fail-model": "qai-max"})
    assert status == 200, body
    assert headers["x-tollgate-model"] == "qai-pro"
    assert served_model_in_body(front, stream, body) == "qai-pro"
    rec = stack.billing_record(headers["x-request-id"])
    assert attempts(rec) == [("qai-max", "demo_text", 503), ("qai-pro", "demo_text", 200)]
    assert (rec["model"], rec["served_model"]) == ("qai-max", "qai-pro")
    assert rec["credits"] == credits("qai-pro")


def test_a_429_fails_over_and_a_second_failure_goes_to_the_third_tier(stack):
    # qai-max answers 429; qai-pro then 503 (both fail over): qai-flash serves.
    stack.clear_backend_requests("demo_text")
    fail = {"x-demo-fail-model": "qai-max=429"}
    status, headers, body = call(stack, "openai", "qai-max", False, fail)
    assert status == 200 and headers["x-tollgate-model"] == "qai-pro"
    rec = stack.billing_record(headers["x-request-id"])
    assert attempts(rec) == [("qai-max", "demo_text", 429), ("qai-pro", "demo_text", 200)]
    status, headers, body = call(stack, "openai", "dead-max", False, {"x-demo-fail-model": "qai-pro"})
    assert status == 200, body
    assert headers["x-tollgate-model"] == "qai-flash"
    assert json.loads(body)["model"] == "qai-flash"
    rec = stack.billing_record(headers["x-request-id"])
    assert attempts(rec) == [("dead-max", "dead_max", 503), ("qai-pro", "demo_text", 503),
                             ("qai-flash", "demo_text", 200)]
    assert (rec["served_model"], rec["credits"]) == ("qai-flash", credits("qai-flash"))


@pytest.mark.parametrize("front", ["openai", "anthropic"])
def test_a_400_is_not_retried(stack, front):
    stack.clear_backend_requests("demo_text")
    status, headers, body = call(stack, front, "qai-max", False, {"x-demo-status": "400"})
    assert status == 400
    assert "x-tollgate-model" not in headers
    rec = stack.billing_record(headers["x-request-id"])
    assert attempts(rec) == [("qai-max", "demo_text", 400)]
    assert (rec["served_model"], rec["credits"], rec["error"]) == (None, 0, "bad_request")
    assert len(stack.backend_requests("demo_text")) == 1


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("front", ["openai", "anthropic"])
def test_every_tier_failing_gives_the_last_failure_unbilled(stack, front, stream):
    stack.clear_backend_requests("demo_text")
    status, headers, body = call(stack, front, "qai-max", stream, {"x-demo-status": "503"})
    assert status == 502
    assert "x-tollgate-model" not in headers
    assert headers["content-type"] == "application/json"
    doc = json.loads(body)
    if front == "openai":
        assert doc["error"]["code"] == "upstream_error"
        assert doc["error"]["message"].startswith("The generation service failed (upstream status 503)")
    else:
        assert doc["type"] == "error" and doc["error"]["type"] == "api_error"
    rec = stack.billing_record(headers["x-request-id"])
    assert attempts(rec) == [("qai-max", "demo_text", 503), ("qai-pro", "demo_text", 503),
                             ("qai-flash", "demo_text", 503)]
    assert (rec["status"], rec["error"], rec["served_model"], rec["credits"]) == (502, "upstream_error", None, 0)
    assert (rec["prompt_tokens"], rec["completion_tokens"]) == (0, 0)
    assert len(stack.backend_requests("demo_text")) == 3


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_a_fallback_on_another_dialect(stack, stream):
    stack.clear_backend_requests("demo_anthropic")
    status, headers, body = call(stack, "openai", "max-or-claude", stream, {"x-demo-fail-model": "max-up"})
    assert status == 200, body
    assert headers["x-tollgate-model"] == "claude-backup"
    assert served_model_in_body("openai", stream, body) == "claude-backup"
    assert PROMPT in text_of("openai", stream, body)
    rec = stack.billing_record(headers["x-request-id"])
    assert attempts(rec) == [("max-or-claude", "demo_text", 503), ("claude-backup", "demo_anthropic", 200)]
    assert (rec["upstream"], rec["upstream_model"], rec["served_model"]) == ("anthropic", "claude-demo", "claude-backup")
    assert rec["credits"] == credits("claude-backup")
    got = stack.backend_requests("demo_anthropic")
    assert len(got) == 1 and got[0]["path"] == "/v1/messages"
    sent = dict((k.lower(), v) for k, v in got[0]["headers"])
    assert sent["x-api-key"] == CLAUDE_SECRET and "authorization" not in sent
    assert json.loads(got[0]["body"])["model"] == "claude-demo"


def test_failovers_are_counted_per_model(stack):
    def count(model):
        for line in stack.stats("prometheus").splitlines():
            if line.startswith(f'tollgate_failovers{{model="{model}"}}'):
                return int(line.split()[-1])
        return 0
    before = count("qai-max")
    call(stack, "openai", "qai-max", False, {"x-demo-fail-model": "qai-max"})
    assert count("qai-max") == before + 1


def test_a_model_without_fallbacks_has_no_attempts_and_is_unchanged(stack):
    status, headers, _ = call(stack, "openai", "qai-flash", False, {"x-demo-status": "503"})
    assert status == 502
    rec = stack.billing_record(headers["x-request-id"])
    assert "attempts" not in rec and rec["served_model"] is None
    status, headers, _ = call(stack, "openai", "qai-flash", False)
    assert status == 200 and "x-tollgate-model" not in headers
    rec = stack.billing_record(headers["x-request-id"])
    assert (rec["served_model"], rec["credits"]) == ("qai-flash", credits("qai-flash"))


def test_envoy_refuses_fallbacks_that_form_a_cycle():
    def cycle(cfg):
        for m in cfg["models"]:
            if m["id"] == "qai-pro":
                m["fallbacks"] = ["qai-max"]
        return cfg
    s = Stack(concurrency=1, start_backend=False, backend_port=1, patch_filter=cycle)
    try:
        with pytest.raises(RuntimeError) as e:
            s.start()
    finally:
        s.stop()  # also when Envoy did start (the test then fails)
    assert ("configuration: models[3].fallbacks: 'qai-max' falls back to 'qai-pro', which leads back to "
            "'qai-max' (fallbacks must not form a cycle)") in str(e.value)
