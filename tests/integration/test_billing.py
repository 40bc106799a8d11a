"""Usage into billing records, spend and stats, against real Envoy and the demo backend: for
every front x upstream pair, streamed and not, the record's tokens equal what the upstream
reported (counts the test chooses, sent with `x-demo-usage-fixed`), at the model's price; streams cut by the upstream or abandoned by
the client still write a record, marked estimated, with tokens; Prometheus shows the counters."""
import http.client
import json
import socket
import time
import urllib.request

import anthropic
import pytest

KEY = "sk-demo-active"
MODELS = {"openai": "qai-flash", "anthropic": "test-claude", "gemini": "test-gemini"}
# Demo and conftest prices: per 1k prompt, per 1k completion tokens.
PRICES = {"qai-flash": (0.1, 0.2), "test-claude": (3.0, 15.0), "test-gemini": (0.3, 2.5), "qai-max": (1.5, 4.5)}
PROMPT = "Tell me something about billing records"


def call(stack, front, model, stream, extra_headers=None, include_usage=False):
    """One request on `front`; returns (status, lowercased headers, body bytes)."""
    headers = {"content-type": "application/json", **(extra_headers or {})}
    if front == "openai":
        path = "/v1/chat/completions"
        body = {"model": model, "messages": [{"role": "user", "content": PROMPT}], "stream": stream}
        if include_usage:
            body["stream_options"] = {"include_usage": True}
        headers["authorization"] = f"Bearer {KEY}"
    elif front == "anthropic":
        path = "/v1/messages"
        body = {"model": model, "max_tokens": 200, "messages": [{"role": "user", "content": PROMPT}], "stream": stream}
        headers["x-api-key"] = KEY
        headers["anthropic-version"] = "2023-06-01"
    else:
        verb = "streamGenerateContent?alt=sse" if stream else "generateContent"
        path = f"/v1beta/models/{model}:{verb}"
        body = {"contents": [{"role": "user", "parts": [{"text": PROMPT}]}]}
        headers["x-goog-api-key"] = KEY
    req = urllib.request.Request(stack.url + path, data=json.dumps(body).encode(), headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        hdrs = {k.lower(): v for k, v in r.headers.items()}
        try:
            data = r.read()
        except http.client.IncompleteRead as e:  # the upstream cut the stream
            data = e.partial
            hdrs["x-test-incomplete"] = "1"
        return r.status, hdrs, data


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("upstream", ["openai", "anthropic", "gemini"])
@pytest.mark.parametrize("front", ["openai", "anthropic", "gemini"])
def test_record_tokens_equal_the_upstream_usage(stack, front, upstream, stream):
    prompt, completion = 777, 55
    status, headers, body = call(stack, front, MODELS[upstream], stream, {"x-demo-usage-fixed": f"{prompt} {completion}"})
    assert status == 200
    rec = stack.billing_record(headers["x-request-id"])
    assert (rec["prompt_tokens"], rec["completion_tokens"]) == (prompt, completion), rec
    assert rec["estimated"] is False
    assert rec["complete"] is True
    assert rec["stream"] is stream
    assert rec["front"] == front and rec["upstream"] == upstream
    assert rec["model"] == MODELS[upstream]
    assert rec["key_id"] == "key-demo-active" and rec["account_id"] == "acct-demo"
    assert rec["status"] == 200 and rec["error"] is None
    assert rec["duration_ms"] >= rec["ttfb_ms"] >= 0
    assert rec["time"].endswith("Z")
    pp, cp = PRICES[MODELS[upstream]]
    assert rec["credits"] == round(prompt * pp / 1000 + completion * cp / 1000, 6) > 0
    if front == "openai" and stream:
        # The client did not ask for usage: no usage chunk, though the gateway metered one.
        assert b'"usage"' not in body
    if front == "anthropic":
        text = body.decode()
        assert '"credits_consumed"' in text
    raw = stack.billing_log.read_text()
    assert KEY not in raw and PROMPT not in raw


def test_no_usage_from_upstream_is_estimated(stack):
    status, headers, _ = call(stack, "openai", "qai-flash", True, {"x-demo-no-usage": "1"}, include_usage=True)
    assert status == 200
    rec = stack.billing_record(headers["x-request-id"])
    assert rec["estimated"] is True
    assert rec["prompt_tokens"] > 0 and rec["completion_tokens"] > 0
    assert rec["credits"] > 0


@pytest.mark.parametrize("front", ["openai", "anthropic", "gemini"])
def test_upstream_closing_a_stream_early_still_bills_an_estimate(stack, front):
    _, headers, body = call(stack, front, "qai-flash", True, {"x-demo-chunks": "40", "x-demo-cut-after": "5"})
    assert headers.get("x-test-incomplete") == "1", "Envoy passes the cut on: the client sees an incomplete body"
    assert body.count(b"data: ") >= 1
    rec = stack.billing_record(headers["x-request-id"])
    assert rec["estimated"] is True, rec
    assert rec["complete"] is False, rec
    assert rec["prompt_tokens"] > 0 and rec["completion_tokens"] > 0, rec
    assert rec["credits"] > 0


def test_client_disconnect_mid_stream_still_bills_an_estimate(stack):
    body = json.dumps({"model": "qai-pro", "stream": True, "messages": [{"role": "user", "content": PROMPT}]}).encode()
    host, port = "127.0.0.1", stack.gateway_port
    s = socket.create_connection((host, port), timeout=10)
    req = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {KEY}\r\n"
        f"Content-Type: application/json\r\nx-demo-chunks: 200\r\nx-demo-chunk-delay-ms: 20\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    s.sendall(req)
    got = b""
    while got.count(b"data: ") < 5:
        more = s.recv(65536)
        assert more, f"the gateway closed the stream early: {got[-300:]!r}"
        got += more
    head = got.split(b"\r\n\r\n", 1)[0].decode()
    rid = next(l.split(":", 1)[1].strip() for l in head.split("\r\n") if l.lower().startswith("x-request-id:"))
    s.close()  # the client goes away mid-stream
    rec = stack.billing_record(rid, timeout=10)
    assert rec["estimated"] is True, rec
    assert rec["complete"] is False
    assert rec["prompt_tokens"] > 0 and rec["completion_tokens"] > 0, rec
    assert rec["model"] == "qai-pro"


def test_rejected_requests_have_records_too(stack, http):
    status, headers, _ = http.request("POST", "/v1/chat/completions", {"model": "qai-flash", "messages": []},
                                      headers={"Authorization": "Bearer sk-nope"})
    assert status == 401
    rec = stack.billing_record(headers.get("x-request-id") or headers.get("X-Request-Id"))
    assert rec["status"] == 401 and rec["error"] == "unauthorized"
    assert rec["key_id"] is None and rec["credits"] == 0
    assert "sk-nope" not in stack.billing_log.read_text()


def test_anthropic_sdk_sees_credits_and_final_input_tokens(stack):
    client = anthropic.Anthropic(base_url=stack.url, api_key=KEY, max_retries=0)
    m = client.messages.create(model="qai-flash", max_tokens=100, messages=[{"role": "user", "content": PROMPT}])
    assert m.usage.model_extra.get("credits_consumed", 0) > 0
    deltas = []
    with client.messages.stream(model="qai-flash", max_tokens=100,
                                messages=[{"role": "user", "content": PROMPT}]) as s:
        for event in s:
            if event.type == "message_delta":
                deltas.append(event)
        final = s.get_final_message()
    # An OpenAI upstream reports input tokens only at the end: message_delta carries them.
    assert final.usage.input_tokens == m.usage.input_tokens > 0
    assert final.usage.output_tokens == m.usage.output_tokens
    # The SDK keeps extra fields of message_delta's usage on the event (not on the final message).
    assert len(deltas) == 1
    assert deltas[0].usage.model_extra.get("credits_consumed") == m.usage.model_extra.get("credits_consumed")


def test_prometheus_has_token_counters_by_model(stack):
    def tokens():
        text = stack.stats("prometheus")
        out = {}
        for line in text.splitlines():
            if line.startswith("tollgate_tokens{") and 'model="qai-max"' in line:
                out[line.split('kind="')[1].split('"')[0]] = int(line.rsplit(" ", 1)[1])
        return out

    before = tokens()
    prompt, completion = 321, 45
    _, headers, _ = call(stack, "openai", "qai-max", False, {"x-demo-usage-fixed": f"{prompt} {completion}"})
    stack.billing_record(headers["x-request-id"])
    after = tokens()
    assert after["prompt"] - before.get("prompt", 0) == prompt
    assert after["completion"] - before.get("completion", 0) == completion
    text = stack.stats("prometheus")
    assert 'tollgate_requests{model="qai-max",class="2xx"}' in text
    assert 'tollgate_errors{code="unauthorized"}' in text
    assert "sk-demo" not in text


def test_limit_refusals_of_a_known_model_are_labelled_with_it(stack, http):
    # A 402 (the spend cap: 200k completion tokens of qai-think cost far more than 1 credit)
    # names a known, valid model: its record and its request stat carry the model, not `none`.
    def refused_4xx():
        for line in stack.stats("prometheus").splitlines():
            if line.startswith('tollgate_requests{model="qai-think",class="4xx"}'):
                return int(line.rsplit(" ", 1)[1])
        return 0

    before = refused_4xx()
    status, headers, body = http.request("POST", "/v1/chat/completions",
                                         {"model": "qai-think", "max_tokens": 200000,
                                          "messages": [{"role": "user", "content": "too dear"}]},
                                         headers={"Authorization": "Bearer sk-demo-capped"})
    assert status == 402, body
    rec = stack.billing_record(headers["x-request-id"])
    assert (rec["status"], rec["error"], rec["model"], rec["cluster"], rec["credits"]) == (
        402, "insufficient_funds", "qai-think", None, 0)
    assert refused_4xx() == before + 1


@pytest.mark.parametrize("front", ["openai", "anthropic", "gemini"])
def test_cached_and_reasoning_tokens_reach_the_client_the_record_and_the_metrics(stack, front):
    def tokens():
        out = {}
        for line in stack.stats("prometheus").splitlines():
            if line.startswith("tollgate_tokens{") and 'model="qai-flash"' in line:
                out[line.split('kind="')[1].split('"')[0]] = int(line.rsplit(" ", 1)[1])
        return out

    before = tokens()
    # The OpenAI upstream reports 1000 prompt tokens (400 of them cached) and 100 completion
    # tokens (30 of them reasoning).
    status, headers, body = call(stack, front, "qai-flash", False,
                                 {"x-demo-usage-fixed": "1000 100", "x-demo-usage-details": "400 30"})
    assert status == 200
    rec = stack.billing_record(headers["x-request-id"])
    assert (rec["prompt_tokens"], rec["completion_tokens"], rec["cached_tokens"], rec["reasoning_tokens"]) == (
        1000, 100, 400, 30)
    # qai-flash prices neither apart: cached tokens at the prompt price, reasoning at completion's.
    assert rec["credits"] == round(1000 * 0.1 / 1000 + 100 * 0.2 / 1000, 6)
    after = tokens()
    assert after["cached"] - before.get("cached", 0) == 400
    assert after["reasoning"] - before.get("reasoning", 0) == 30
    usage = json.loads(body)["usage" if front != "gemini" else "usageMetadata"]
    if front == "openai":
        assert usage["prompt_tokens_details"]["cached_tokens"] == 400
        assert usage["completion_tokens_details"]["reasoning_tokens"] == 30
    elif front == "anthropic":
        assert (usage["input_tokens"], usage["cache_read_input_tokens"], usage["output_tokens"]) == (600, 400, 100)
    else:
        assert (usage["promptTokenCount"], usage["cachedContentTokenCount"]) == (1000, 400)
        assert (usage["candidatesTokenCount"], usage["thoughtsTokenCount"]) == (70, 30)
