"""The `auto` router model in real Envoy (README, "The `auto` model"). The demo's `auto` picks among
qai-flash (8192-token window, text only), qai-pro (32768, tools) and qai-max (131072, tools and
images), cheapest first, with a cost ceiling of 20 credits a request. Each rule is checked by the
model that served: in the `x-tollgate-model` header, the response's `model`, the billing record's
`served_model` (its `model` stays `auto`), and the credits at that model's price."""
import json

import pytest
import yaml
from tollgate_harness import ROOT, filter_config

KEY = "sk-demo-active"
OPENAI = {"Authorization": f"Bearer {KEY}"}
ANTHROPIC = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
# Per 1000 tokens (prompt, completion), as in envoy/demo.yaml.
PRICES = {"qai-flash": (0.1, 0.2), "qai-pro": (0.5, 1.5), "qai-max": (1.5, 4.5)}
USAGE = (1000, 100)
IMAGE = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}}


def credits(model, prompt=USAGE[0], completion=USAGE[1]):
    p, c = PRICES[model]
    return round(prompt * p / 1000 + completion * c / 1000, 6)


def chat(http, messages, **fields):
    body = {"model": "auto", "messages": messages, **fields}
    headers = {**OPENAI, "x-demo-usage-fixed": f"{USAGE[0]} {USAGE[1]}"}
    status, h, v = http.json("POST", "/v1/chat/completions", body, headers)
    return status, {k.lower(): x for k, x in h.items()}, v


def user(content):
    return [{"role": "user", "content": content}]


def assert_served(stack, status, headers, body, model):
    """Served by `model`: header, response, record (`model` auto, `served_model`), credits."""
    assert (status, headers.get("x-tollgate-model"), body["model"]) == (200, model, model)
    rec = stack.billing_record(headers["x-request-id"])
    assert (rec["model"], rec["served_model"], rec["upstream_model"]) == ("auto", model, model)
    assert rec["credits"] == credits(model)


def assert_refused(stack, status, headers, body, code, param):
    assert (status, body["error"]["code"], body["error"]["param"]) == (400, code, param)
    assert "x-tollgate-model" not in headers
    rec = stack.billing_record(headers["x-request-id"])
    assert (rec["model"], rec["served_model"], rec["credits"], rec["error"]) == ("auto", None, 0, code)


def test_a_short_prompt_is_served_by_the_cheapest_candidate(stack, http):
    assert_served(stack, *chat(http, user("hi")), "qai-flash")


def test_a_long_prompt_skips_the_small_window(stack, http):
    # About 10000 tokens of prompt: over qai-flash's 8192, within qai-pro's 32768.
    assert_served(stack, *chat(http, user("word " * 8000)), "qai-pro")


def test_max_tokens_counts_in_the_window(stack, http):
    # The window holds prompt and completion: 8000 more tokens still fit qai-flash, 8192 do not.
    assert_served(stack, *chat(http, user("hi"), max_tokens=8000), "qai-flash")
    assert_served(stack, *chat(http, user("hi"), max_tokens=8192), "qai-pro")


def test_tools_skip_a_candidate_without_tools(stack, http):
    assert_served(stack, *chat(http, user("weather?"), tools=[TOOL]), "qai-pro")


def test_an_image_part_skips_the_text_only_candidates(stack, http):
    assert_served(stack, *chat(http, user([{"type": "text", "text": "what is this"}, IMAGE])), "qai-max")


def test_the_cost_ceiling(stack, http):
    # qai-max is the only candidate for an image: 4000 completion tokens reserve about 18 credits
    # there (under the 20-credit ceiling), 5000 about 22.5 (over it).
    msgs = user([{"type": "text", "text": "what is this"}, IMAGE])
    assert_served(stack, *chat(http, msgs, max_tokens=4000), "qai-max")
    status, headers, body = chat(http, msgs, max_tokens=5000)
    assert_refused(stack, status, headers, body, "bad_request", "model")
    assert body["error"]["message"] == (
        "Every model 'auto' could choose for this request would reserve more than its cost ceiling of 20 credits")


def test_no_candidate_is_a_400_in_the_openai_and_anthropic_shapes(stack, http):
    status, headers, body = chat(http, user("hi"), max_tokens=200000)
    assert_refused(stack, status, headers, body, "context_length_exceeded", "messages")
    assert body["error"]["type"] == "invalid_request_error"
    assert "largest context window (131072 tokens)" in body["error"]["message"]

    req = {"model": "auto", "max_tokens": 200000, "messages": user("hi")}
    status, headers, body = http.json("POST", "/v1/messages", req, ANTHROPIC)
    assert (status, body["type"], body["error"]["type"]) == (400, "error", "invalid_request_error")
    assert "largest context window (131072 tokens)" in body["error"]["message"]
    rec = stack.billing_record({k.lower(): v for k, v in headers.items()}["x-request-id"])
    assert (rec["front"], rec["model"], rec["served_model"], rec["error"]) == (
        "anthropic", "auto", None, "context_length_exceeded")


def test_a_stream_is_served_and_billed_as_the_chosen_model(stack, http):
    body = {"model": "auto", "stream": True, "stream_options": {"include_usage": True}, "tools": [TOOL],
            "messages": user("weather?")}
    status, headers, data = http.request(
        "POST", "/v1/chat/completions", body, {**OPENAI, "x-demo-usage-fixed": f"{USAGE[0]} {USAGE[1]}"})
    headers = {k.lower(): v for k, v in headers.items()}
    assert (status, headers["content-type"].split(";")[0], headers["x-tollgate-model"]) == (
        200, "text/event-stream", "qai-pro")
    chunks = [json.loads(line[6:]) for line in data.decode().splitlines()
              if line.startswith("data: ") and line != "data: [DONE]"]
    assert {c["model"] for c in chunks} == {"qai-pro"}
    assert chunks[-1]["usage"]["prompt_tokens"] == USAGE[0]
    rec = stack.billing_record(headers["x-request-id"])
    assert (rec["model"], rec["served_model"], rec["stream"], rec["credits"]) == (
        "auto", "qai-pro", True, credits("qai-pro"))


@pytest.mark.parametrize("front", ["anthropic", "gemini", "responses"])
def test_every_front_reaches_auto(stack, http, front):
    long = "word " * 8000  # qai-pro, as on the OpenAI front
    if front == "anthropic":
        status, headers, body = http.json(
            "POST", "/v1/messages", {"model": "auto", "max_tokens": 100, "messages": user(long)},
            {**ANTHROPIC, "x-demo-usage-fixed": f"{USAGE[0]} {USAGE[1]}"})
        shown = body["model"]
    elif front == "gemini":
        status, headers, body = http.json(
            "POST", "/v1beta/models/auto:generateContent", {"contents": [{"role": "user", "parts": [{"text": long}]}]},
            {"x-goog-api-key": KEY, "x-demo-usage-fixed": f"{USAGE[0]} {USAGE[1]}"})
        shown = body["modelVersion"]
    else:
        status, headers, body = http.json(
            "POST", "/v1/responses", {"model": "auto", "input": long},
            {**OPENAI, "x-demo-usage-fixed": f"{USAGE[0]} {USAGE[1]}"})
        shown = body["model"]
    headers = {k.lower(): v for k, v in headers.items()}
    assert (status, headers["x-tollgate-model"], shown) == (200, "qai-pro", "qai-pro")
    rec = stack.billing_record(headers["x-request-id"])
    assert (rec["model"], rec["served_model"], rec["credits"]) == ("auto", "qai-pro", credits("qai-pro"))


def test_auto_is_listed_and_a_model_named_directly_has_no_served_header(stack, http):
    status, _, body = http.json("GET", "/v1/models", headers=OPENAI)
    assert status == 200 and [m["id"] for m in body["data"]].count("auto") == 1
    status, _, body = http.json("GET", "/v1/models/auto", headers=OPENAI)
    assert (status, body["id"], body["owned_by"]) == (200, "auto", "quickcasa")
    # A key limited to qai-flash may not use auto (it is not in its list).
    status, _, body = http.json("POST", "/v1/chat/completions", {"model": "auto", "messages": user("hi")},
                                {"Authorization": "Bearer sk-demo-flash-only"})
    assert (status, body["error"]["code"]) == (403, "forbidden")
    status, headers, body = http.json("POST", "/v1/chat/completions", {"model": "qai-flash", "messages": user("hi")},
                                      OPENAI)
    headers = {k.lower(): v for k, v in headers.items()}
    assert (status, body["model"], "x-tollgate-model" in headers) == (200, "qai-flash", False)
    rec = stack.billing_record(headers["x-request-id"])
    assert (rec["model"], rec["served_model"]) == ("qai-flash", "qai-flash")


def test_the_readme_block_is_the_demo_configuration():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("```json\n[{\"id\": \"qai-flash\"", 1)[1].split("```", 1)[0]
    entries = json.loads("[{\"id\": \"qai-flash\"" + block)
    demo = {m["id"]: m for m in filter_config(yaml.safe_load((ROOT / "envoy" / "demo.yaml").read_text()))["models"]}
    assert entries == [demo[m["id"]] for m in entries]
    assert [m["id"] for m in entries] == ["qai-flash", "qai-pro", "qai-max", "auto"]
