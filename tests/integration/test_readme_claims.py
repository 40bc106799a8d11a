"""README claims pinned against real Envoy: the `x-ratelimit-*` headers on every response that
reached the rate check (forwarded ones and the filter's own replies alike), `GET /v1/models`
counting against the rate, `x-should-retry` on every error, and the field named in `param`."""
import hashlib
import re
import time

import pytest

from conftest import Http
from tollgate_harness import Stack

HEADERS_KEY = "sk-test-claims-headers"
MODELS_KEY = "sk-test-claims-models"
RETRY_KEY = "sk-test-claims-retry"
HEADERS_RPM = 9
MODELS_RPM = 4
RATE_HEADERS = ("x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests")
CHAT = {"model": "qai-flash", "messages": [{"role": "user", "content": "hi"}]}


def _patch(cfg):
    sha = lambda k: hashlib.sha256(k.encode()).hexdigest()  # noqa: E731
    for acct, rpm, key in (("acct-claims-headers", HEADERS_RPM, HEADERS_KEY), ("acct-claims-models", MODELS_RPM, MODELS_KEY),
                           ("acct-claims-retry", 1000, RETRY_KEY)):
        cfg["accounts"].append({"id": acct, "rpm": rpm})
        cfg["keys"].append({"id": acct.replace("acct", "key"), "account": acct, "sha256": sha(key)})
    return cfg


@pytest.fixture(scope="module")
def cstack():
    s = Stack(concurrency=2, patch_filter=_patch)
    s.start()
    yield s
    s.stop()


def wait_out_minute_edge(margin=15.0):
    """A sequence of counted requests must fall inside one fixed window (the unix minute)."""
    left = 60 - time.time() % 60
    if left < margin:
        time.sleep(left + 0.2)


def lower(h):
    return {k.lower(): v for k, v in h.items()}


def rate(h):
    h = lower(h)
    return tuple(h.get(k) for k in RATE_HEADERS)


def assert_rate(h, limit, remaining):
    lim, rem, reset = rate(h)
    assert (lim, rem) == (str(limit), str(remaining)), lower(h)
    assert re.fullmatch(r"[0-9]+(ms|s)", reset), reset
    return reset


def test_rate_headers_on_every_response_that_reached_the_rate_check(cstack):
    http = Http(cstack.url)
    auth = {"Authorization": f"Bearer {HEADERS_KEY}"}
    wait_out_minute_edge()
    # Local replies: the model list (200), a model id (200) and an unknown one (404).
    s, h, _ = http.json("GET", "/v1/models", headers=auth)
    assert s == 200
    assert_rate(h, HEADERS_RPM, 8)
    s, h, _ = http.json("GET", "/v1/models/qai-flash", headers=auth)
    assert s == 200
    assert_rate(h, HEADERS_RPM, 7)
    s, h, b = http.json("GET", "/v1/models/no-such-model", headers=auth)
    assert (s, b["error"]["code"]) == (404, "not_found")
    assert_rate(h, HEADERS_RPM, 6)
    # Forwarded: OpenAI, Anthropic and Gemini fronts, and the Gemini catalog.
    s, h, _ = http.json("POST", "/v1/chat/completions", CHAT, auth)
    assert s == 200
    assert_rate(h, HEADERS_RPM, 5)
    s, h, _ = http.json("POST", "/v1/messages", {**CHAT, "max_tokens": 20},
                        {"x-api-key": HEADERS_KEY, "anthropic-version": "2023-06-01"})
    assert s == 200
    assert_rate(h, HEADERS_RPM, 4)
    s, h, _ = http.json("POST", "/v1beta/models/qai-flash:generateContent",
                        {"contents": [{"parts": [{"text": "hi"}]}]}, {"x-goog-api-key": HEADERS_KEY})
    assert s == 200
    assert_rate(h, HEADERS_RPM, 3)
    s, h, _ = http.json("GET", "/v1beta/models", headers={"x-goog-api-key": HEADERS_KEY})
    assert s == 200
    assert_rate(h, HEADERS_RPM, 2)
    # An upstream failure that the filter turns into its own 502.
    s, h, b = http.json("POST", "/v1/chat/completions", CHAT, {**auth, "x-demo-status": "500"})
    assert (s, b["error"]["code"]) == (502, "upstream_error")
    assert_rate(h, HEADERS_RPM, 1)
    # Authenticated but refused before being counted (validation, unknown path, wrong method, a
    # declared body over the cap): the headers report the window as read, which they leave as
    # it was (README: "requests refused by validation are not counted at all").
    s, h, b = http.json("POST", "/v1/chat/completions", {"model": "qai-flash"}, auth)
    assert (s, b["error"]["code"]) == (400, "missing_field")
    assert_rate(h, HEADERS_RPM, 1)
    s, h, b = http.json("POST", "/v1/no-such-endpoint", CHAT, auth)
    assert (s, b["error"]["code"]) == (404, "not_found")
    assert_rate(h, HEADERS_RPM, 1)
    s, h, b = http.json("GET", "/v1/chat/completions", headers=auth)
    assert (s, b["error"]["code"]) == (405, "method_not_allowed")
    assert_rate(h, HEADERS_RPM, 1)
    s, h, b = http.json("POST", "/v1/images/generations", {"model": "qai-imagine-turbo", "prompt": "p" * 200_000}, auth)
    assert (s, b["error"]["code"]) == (413, "request_entity_too_large")
    assert_rate(h, 20, 20)  # image endpoints report the account's image_rpm window (default 20)
    s, h, _ = http.json("POST", "/v1/chat/completions", CHAT, auth)
    assert s == 200
    assert_rate(h, HEADERS_RPM, 0)
    # The 429 itself.
    s, h, b = http.json("POST", "/v1/chat/completions", CHAT, auth)
    assert (s, b["error"]["code"]) == (429, "rate_limit_exceeded")
    assert_rate(h, HEADERS_RPM, 0)
    # Not authenticated: no headers.
    s, h, _ = http.json("GET", "/v1/models", headers={"Authorization": "Bearer sk-test-claims-wrong"})
    assert s == 401 and rate(h) == (None, None, None)


def test_model_list_counts_against_the_rate(cstack):
    http = Http(cstack.url)
    auth = {"Authorization": f"Bearer {MODELS_KEY}"}
    wait_out_minute_edge()
    for left in range(MODELS_RPM - 1, -1, -1):
        s, h, _ = http.json("GET", "/v1/models", headers=auth)
        assert s == 200
        assert_rate(h, MODELS_RPM, left)
    # The list used up the window: the next list and the next chat are both refused.
    s, h, b = http.json("GET", "/v1/models", headers=auth)
    assert (s, b["error"]["code"]) == (429, "rate_limit_exceeded")
    s, h, b = http.json("POST", "/v1/chat/completions", CHAT, auth)
    assert (s, b["error"]["code"]) == (429, "rate_limit_exceeded")
    assert int(lower(h)["retry-after"]) >= 1


@pytest.mark.parametrize("case, status, should_retry", [
    ("bad json", 400, "false"),
    ("unknown key", 401, "false"),
    ("unknown path", 404, "false"),
    ("wrong method", 405, "false"),
    ("upstream 500", 502, "true"),
    ("upstream not json", 502, "true"),
    ("rate", 429, "true"),
])
def test_x_should_retry_on_every_error(cstack, case, status, should_retry):
    http = Http(cstack.url)
    key = {"Authorization": f"Bearer {RETRY_KEY}"}
    for front in ("openai", "anthropic", "gemini"):
        if front == "openai":
            path, body, auth = "/v1/chat/completions", CHAT, key
        elif front == "anthropic":
            path, body, auth = "/v1/messages", {**CHAT, "max_tokens": 20}, {"x-api-key": RETRY_KEY, "anthropic-version": "2023-06-01"}
        else:
            path, body, auth = "/v1beta/models/qai-flash:generateContent", {"contents": [{"parts": [{"text": "hi"}]}]}, {"x-goog-api-key": RETRY_KEY}
        method, raw = "POST", None
        if case == "bad json":
            raw = b'{"model": '
        elif case == "unknown key":
            auth = {k: v.replace(RETRY_KEY, "sk-test-claims-nope") for k, v in auth.items()}
        elif case == "unknown path":
            path = path.replace("/v1", "/v1/nothing-here", 1) if front != "gemini" else "/v1beta/nothing-here"
        elif case == "wrong method":
            method, body = "GET", None
        elif case == "upstream 500":
            auth = {**auth, "x-demo-status": "500"}
        elif case == "upstream not json":
            auth = {**auth, "x-demo-fault": "garbage-json"}
        elif case == "rate":
            auth = {k: v.replace(RETRY_KEY, "sk-demo-limited") for k, v in auth.items()}
            wait_out_minute_edge(margin=5)
            while (got := http.request(method, path, body, auth)[0]) != 429:
                assert got == 200, got
        s, h, _ = http.request(method, path, body, auth, raw)
        assert s == status, (front, case, s)
        assert lower(h).get("x-should-retry") == should_retry, (front, case, lower(h))


@pytest.mark.parametrize("body, code, param", [
    ({"messages": [{"role": "user", "content": "hi"}]}, "missing_field", "model"),
    ({"model": "qai-flash"}, "missing_field", "messages"),
    ({**CHAT, "temperature": "hot"}, "bad_request", "temperature"),
    ({**CHAT, "max_tokens": -1}, "bad_request", "max_tokens"),
    ({**CHAT, "stream_options": {"include_usage": "yes"}}, "bad_request", "stream_options.include_usage"),
    ({**CHAT, "model": "qai-no-such-model"}, "invalid_model", "model"),
])
def test_param_names_the_offending_field(cstack, body, code, param):
    s, _, b = Http(cstack.url).json("POST", "/v1/chat/completions", body, {"Authorization": f"Bearer {RETRY_KEY}"})
    assert s == 400
    assert (b["error"]["code"], b["error"]["param"], b["error"]["type"]) == (code, param, "invalid_request_error")


def test_param_names_the_offending_media_field(cstack):
    auth = {"Authorization": f"Bearer {RETRY_KEY}"}
    s, _, b = Http(cstack.url).json("POST", "/v1/images/generations",
                                    {"model": "qai-imagine-turbo", "prompt": "a", "n": 9}, auth)
    assert (s, b["error"]["code"], b["error"]["param"]) == (400, "bad_request", "n")
    s, _, b = Http(cstack.url).json("POST", "/v1/images/generations", {"model": "qai-imagine-turbo"}, auth)
    assert (s, b["error"]["code"], b["error"]["param"]) == (400, "missing_field", "prompt")


def test_gemini_catalog_lists_generate_methods_only_for_text_models(cstack):
    http = Http(cstack.url)
    s, _, b = http.json("GET", "/v1beta/models", headers={"x-goog-api-key": RETRY_KEY})
    assert s == 200
    methods = {m["name"]: m["supportedGenerationMethods"] for m in b["models"]}
    assert methods["models/qai-flash"] == ["generateContent", "streamGenerateContent", "countTokens"]
    assert methods["models/qai-embed"] == ["embedContent", "batchEmbedContents"]
    for media in ("qai-imagine-turbo", "qai-motion", "qai-voice", "qai-listen"):
        assert methods[f"models/{media}"] == []
