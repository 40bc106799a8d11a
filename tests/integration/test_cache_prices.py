"""Cached, cache-write and reasoning tokens at their own prices, against real Envoy: for an
OpenAI, an Anthropic and a Gemini upstream reporting them (the demo backend's
`x-demo-usage-details`), streamed and not, the billing record's tokens and credits follow the
model's `cached_prompt_per_1k`, `cache_write_per_1k` and `reasoning_per_1k` exactly, Prometheus
counts them by kind, and an Anthropic client sees Anthropic's cache fields. Its own stack: the
priced models would change the shared stack's catalog."""
import json
import urllib.request

import anthropic
import openai
import pytest

from conftest import _with_upstream_credential
from tollgate_harness import Stack

KEY = "sk-demo-active"
# Per 1000 tokens: prompt, completion, cached prompt, cache write, reasoning (None: unset).
PRICES = {
    "priced-openai": (1.0, 2.0, 0.25, None, 4.0),
    "priced-claude": (3.0, 15.0, 0.3, 3.75, None),
    "priced-gemini": (0.3, 2.5, 0.075, None, 3.5),
}
CLUSTERS = {"priced-openai": "demo_text", "priced-claude": "demo_anthropic", "priced-gemini": "demo_gemini"}
PROMPT, COMPLETION, CACHED, REASONING, WRITTEN = 1000, 100, 400, 30, 250


def _priced(cfg):
    cfg = _with_upstream_credential(cfg)
    for model, (p, c, cached, write, reasoning) in PRICES.items():
        price = {"prompt_per_1k": p, "completion_per_1k": c, "cached_prompt_per_1k": cached}
        if write is not None:
            price["cache_write_per_1k"] = write
        if reasoning is not None:
            price["reasoning_per_1k"] = reasoning
        cfg["models"].append({"id": model, "type": "text", "cluster": CLUSTERS[model], "price": price})
    return cfg


@pytest.fixture(scope="module")
def priced():
    s = Stack(concurrency=1, patch_filter=_priced, extra_clusters=["demo_anthropic", "demo_gemini"])
    s.start()
    yield s
    s.stop()


def chat(stack, model, stream, details):
    body = {"model": model, "messages": [{"role": "user", "content": "hello"}], "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    headers = {"content-type": "application/json", "authorization": f"Bearer {KEY}",
               "x-demo-usage-fixed": f"{PROMPT} {COMPLETION}", "x-demo-usage-details": details}
    req = urllib.request.Request(stack.url + "/v1/chat/completions", data=json.dumps(body).encode(),
                                 headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, r.headers["x-request-id"], r.read()


def tokens(stack, model):
    out = {}
    for line in stack.stats("prometheus").splitlines():
        if line.startswith("tollgate_tokens{") and f'model="{model}"' in line:
            out[line.split('kind="')[1].split('"')[0]] = int(line.rsplit(" ", 1)[1])
    return out


def expected_credits(model, cached, written, reasoning):
    p, c, cached_p, write_p, reasoning_p = PRICES[model]
    write_p = p if write_p is None else write_p
    reasoning_p = c if reasoning_p is None else reasoning_p
    return round(((PROMPT - cached - written) * p + cached * cached_p + written * write_p
                  + (COMPLETION - reasoning) * c + reasoning * reasoning_p) / 1000, 6)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("model", list(PRICES))
def test_the_record_bills_each_detail_at_its_price(priced, model, stream):
    # What each dialect can say: OpenAI and Gemini report cached and reasoning tokens, Anthropic
    # cached reads and writes (no reasoning count).
    anthropic_up = model == "priced-claude"
    written = WRITTEN if anthropic_up else 0
    reasoning = 0 if anthropic_up else REASONING
    before = tokens(priced, model)
    status, rid, _ = chat(priced, model, stream, f"{CACHED} {REASONING} {WRITTEN}")
    assert status == 200
    rec = priced.billing_record(rid)
    assert (rec["prompt_tokens"], rec["completion_tokens"], rec["cached_tokens"], rec["reasoning_tokens"],
            rec["cache_creation_tokens"], rec["estimated"]) == (PROMPT, COMPLETION, CACHED, reasoning, written, False)
    assert rec["credits"] == expected_credits(model, CACHED, written, reasoning)
    after = tokens(priced, model)
    diff = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    assert diff == {"prompt": PROMPT, "completion": COMPLETION, "cached": CACHED, "reasoning": reasoning,
                    "cache_creation": written}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_an_anthropic_client_sees_the_cache_fields_and_the_credits(priced, stream):
    client = anthropic.Anthropic(base_url=priced.url, api_key=KEY, max_retries=0, default_headers={
        "x-demo-usage-fixed": f"{PROMPT} {COMPLETION}", "x-demo-usage-details": f"{CACHED} 0 {WRITTEN}"})
    args = {"model": "priced-claude", "max_tokens": 200, "messages": [{"role": "user", "content": "hello"}]}
    if stream:
        with client.messages.stream(**args) as s:
            start = None
            for ev in s:
                if ev.type == "message_start":
                    start = ev.message.usage
            msg = s.get_final_message()
        # `message_start` already says the upstream's split.
        assert (start.input_tokens, start.cache_creation_input_tokens, start.cache_read_input_tokens) == (
            PROMPT - CACHED - WRITTEN, WRITTEN, CACHED)
    else:
        msg = client.messages.create(**args)
    u = msg.usage
    assert (u.input_tokens, u.cache_creation_input_tokens, u.cache_read_input_tokens, u.output_tokens) == (
        PROMPT - CACHED - WRITTEN, WRITTEN, CACHED, COMPLETION)
    rec = priced.billing_record(front="anthropic", cache_creation_tokens=WRITTEN, stream=stream)
    assert rec["credits"] == expected_credits("priced-claude", CACHED, WRITTEN, 0)


def test_without_a_cache_write_price_writes_cost_the_prompt_price(priced):
    # test-claude (conftest) prices prompt tokens at 3 and completion tokens at 15 per 1000, and
    # sets no cached or cache-write price: the split changes nothing of the bill.
    status, rid, body = chat(priced, "test-claude", False, f"{CACHED} 0 {WRITTEN}")
    assert status == 200
    rec = priced.billing_record(rid)
    assert (rec["prompt_tokens"], rec["cached_tokens"], rec["cache_creation_tokens"]) == (PROMPT, CACHED, WRITTEN)
    assert rec["credits"] == round((PROMPT * 3.0 + COMPLETION * 15.0) / 1000, 6)
    # An OpenAI client sees the write in the usage's prompt details.
    assert json.loads(body)["usage"]["prompt_tokens_details"] == {"cached_tokens": CACHED,
                                                                   "cache_creation_tokens": WRITTEN}


@pytest.mark.parametrize("model", list(PRICES))
def test_the_responses_front_reports_the_details_and_bills_them(priced, model):
    anthropic_up = model == "priced-claude"
    written = WRITTEN if anthropic_up else 0
    reasoning = 0 if anthropic_up else REASONING
    client = openai.OpenAI(base_url=priced.url + "/v1", api_key=KEY, max_retries=0)
    raw = client.responses.with_raw_response.create(model=model, input="hello", extra_headers={
        "x-demo-usage-fixed": f"{PROMPT} {COMPLETION}", "x-demo-usage-details": f"{CACHED} {REASONING} {WRITTEN}"})
    r = raw.parse()
    assert (r.usage.input_tokens, r.usage.output_tokens, r.usage.input_tokens_details.cached_tokens,
            r.usage.output_tokens_details.reasoning_tokens) == (PROMPT, COMPLETION, CACHED, reasoning)
    rec = priced.billing_record(raw.headers["x-request-id"])
    assert (rec["front"], rec["cached_tokens"], rec["reasoning_tokens"], rec["cache_creation_tokens"]) == (
        "openai-responses", CACHED, reasoning, written)
    assert rec["credits"] == expected_credits(model, CACHED, written, reasoning)
