"""Token counting against real Envoy with the official SDKs: anthropic `messages.count_tokens`
and google-genai `models.count_tokens`, forwarded to an upstream of the same dialect (the demo
backend counts words) or estimated by the gateway and marked `x-tollgate-estimated: true` when
the model's cluster speaks another dialect. Counting is counted in rpm and never billed."""
import anthropic
from google import genai
from google.genai import types

from conftest import UPSTREAM_ANTHROPIC_SECRET, UPSTREAM_GEMINI_SECRET, Http

KEY = "sk-demo-active"
MESSAGES = [{"role": "user", "content": "hello there"}]
_clients = []


def ant(stack):
    return anthropic.Anthropic(base_url=stack.url, api_key=KEY, max_retries=0)


def gem(stack, version="v1beta"):
    c = genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=stack.url, api_version=version))
    _clients.append(c)
    return c


def test_anthropic_count_is_the_anthropic_upstreams(stack):
    stack.clear_backend_requests("demo_anthropic")
    raw = ant(stack).messages.with_raw_response.count_tokens(model="test-claude", system="be brief", messages=MESSAGES)
    assert raw.parse().input_tokens == 4  # the demo's words: be brief hello there
    assert raw.headers.get("x-tollgate-estimated") is None
    got = stack.backend_requests("demo_anthropic")
    assert [r["path"] for r in got] == ["/v1/messages/count_tokens"]
    headers = dict((k.lower(), v) for k, v in got[0]["headers"])
    assert headers["x-api-key"] == UPSTREAM_ANTHROPIC_SECRET
    rec = stack.billing_record(raw.headers["x-request-id"])
    assert (rec["endpoint"], rec["status"], rec["credits"], rec["prompt_tokens"], rec["estimated"]) == (
        "count_tokens", 200, 0, 0, False)
    assert (rec["upstream"], rec["upstream_model"]) == ("anthropic", "claude-demo")


def test_anthropic_count_on_another_dialect_is_estimated_and_said_so(stack):
    raw = ant(stack).messages.with_raw_response.count_tokens(model="qai-flash", messages=MESSAGES)
    # 11 bytes of text (3 tokens), 4 of framing for the message, 3 for the reply.
    assert raw.parse().input_tokens == 10
    assert raw.headers.get("x-tollgate-estimated") == "true"
    rec = stack.billing_record(raw.headers["x-request-id"])
    assert (rec["endpoint"], rec["status"], rec["credits"], rec["upstream"]) == ("count_tokens", 200, 0, None)


def test_gemini_count_is_the_gemini_upstreams_on_both_api_versions(stack):
    for version in ("v1beta", "v1"):
        stack.clear_backend_requests("demo_gemini")
        r = gem(stack, version).models.count_tokens(model="test-gemini", contents="hello there friend")
        assert r.total_tokens == 3
        got = stack.backend_requests("demo_gemini")
        assert [q["path"].split("?")[0] for q in got] == ["/v1beta/models/gemini-demo:countTokens"]
        headers = dict((k.lower(), v) for k, v in got[0]["headers"])
        assert headers["x-goog-api-key"] == UPSTREAM_GEMINI_SECRET


def test_gemini_count_on_another_dialect_is_estimated_and_said_so(stack):
    assert gem(stack).models.count_tokens(model="qai-flash", contents="hello there").total_tokens == 10
    s, h, b = Http(stack.url).json("POST", "/v1beta/models/qai-flash:countTokens",
                                   {"contents": [{"role": "user", "parts": [{"text": "hello there"}]}]},
                                   {"x-goog-api-key": KEY})
    assert (s, b, h.get("x-tollgate-estimated")) == (200, {"totalTokens": 10}, "true")


def test_unknown_or_non_text_models_are_refused_in_the_callers_shape(stack):
    http = Http(stack.url)
    s, _, b = http.json("POST", "/v1/messages/count_tokens", {"model": "nope", "messages": MESSAGES},
                        {"x-api-key": KEY, "anthropic-version": "2023-06-01"})
    # An unknown model is a 404 `not_found_error` for Anthropic clients, as from the real API.
    assert (s, b["type"], b["error"]["type"]) == (404, "error", "not_found_error")
    s, _, b = http.json("POST", "/v1beta/models/qai-embed:countTokens",
                        {"contents": [{"parts": [{"text": "x"}]}]}, {"x-goog-api-key": KEY})
    assert (s, b["error"]["status"]) == (400, "INVALID_ARGUMENT")
