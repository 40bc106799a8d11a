"""The upstream contract, against real Envoy and one strict demo backend per cluster (issue 20,
items 2 and 3):

- every model lands on its own cluster (each backend knows its cluster's name and says it in
  `x-demo-backend`; the record's `cluster` agrees), so a routing mistake fails here;
- the backends run `--strict`: rich requests of every front reach every upstream dialect in a
  form the real API accepts (an OpenAI upstream never sees Anthropic/Gemini `top_k`, an
  Anthropic upstream never sees an empty assistant turn, a system-only conversation is refused
  before Anthropic/Gemini upstreams);
- every upstream status the gateway maps (400/422 -> 400, 413, 429 with the upstream's message,
  401/403/404/5xx -> 502) reaches the client in its own dialect, and the record says so, with 0
  credits;
- for all nine front x upstream pairs, streamed and not, the record bills exactly the usage the
  upstream reported (`x-demo-usage-fixed`: counts the test chose, not the mock's own count of the
  translated request), at the model's price, and the Anthropic front's `credits_consumed` equals
  the record's credits.
"""
import http.client
import json
import urllib.error
import urllib.request

import pytest

from conftest import _with_upstream_credential
from tollgate_harness import Stack

KEY = "sk-demo-active"
PROMPT = "Tell me about upstream contracts"


def _roomy(cfg):
    cfg = _with_upstream_credential(cfg)
    for a in cfg["accounts"]:
        if a["id"] == "acct-demo":
            a["rpm"] = 100000
    return cfg


@pytest.fixture(scope="module")
def cs():
    """Every cluster on its own strict backend (the video one too), a roomy rate for acct-demo."""
    s = Stack(concurrency=2, patch_filter=_roomy, extra_clusters=["demo_anthropic", "demo_gemini"])
    s.start()
    yield s
    s.stop()


def post(stack, path, body, headers=None, raw=None, timeout=30):
    data = raw if raw is not None else json.dumps(body).encode()
    h = {"content-type": "application/json", **(headers or {})}
    req = urllib.request.Request(stack.url + path, data=data, headers=h, method="POST")
    try:
        r = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()
    with r:
        hdrs = {k.lower(): v for k, v in r.headers.items()}
        try:
            return r.status, hdrs, r.read()
        except http.client.IncompleteRead as e:
            return r.status, hdrs, e.partial


AUTH = {
    "openai": {"authorization": f"Bearer {KEY}"},
    "anthropic": {"x-api-key": KEY, "anthropic-version": "2023-06-01"},
    "gemini": {"x-goog-api-key": KEY},
}
MODELS = {"openai": "qai-flash", "anthropic": "test-claude", "gemini": "test-gemini"}
CLUSTER_OF = {"openai": "demo_text", "anthropic": "demo_anthropic", "gemini": "demo_gemini"}


def text_request(front, model, stream, body=None):
    """(path, body) of a plain text request on `front`."""
    if front == "openai":
        return "/v1/chat/completions", {"model": model, "stream": stream,
                                        "messages": [{"role": "user", "content": PROMPT}], **(body or {})}
    if front == "anthropic":
        return "/v1/messages", {"model": model, "max_tokens": 200, "stream": stream,
                                "messages": [{"role": "user", "content": PROMPT}], **(body or {})}
    verb = "streamGenerateContent?alt=sse" if stream else "generateContent"
    return f"/v1beta/models/{model}:{verb}", body or {"contents": [{"role": "user", "parts": [{"text": PROMPT}]}]}


# --- the backends are strict and each serves one cluster ------------------------------------------

def test_the_test_backends_are_strict_and_named(cs):
    """Guards the harness itself: a lenient backend would let contract bugs through."""
    for cluster in cs.clusters:
        req = urllib.request.Request(
            cs.backend_url(cluster) + "/v1/chat/completions", method="POST",
            data=json.dumps({"model": "m", "messages": [{"role": "user", "content": "x"}], "top_k": 3}).encode(),
            headers={"content-type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=5)
        assert e.value.code == 400
        assert e.value.headers["x-demo-backend"] == cluster
        assert json.loads(e.value.read())["error"]["message"] == "Unrecognized request argument supplied: top_k"


WAV = (b"RIFF" + (36 + 3200).to_bytes(4, "little") + b"WAVEfmt " + bytes.fromhex("1000000001000100803e0000007d000002001000")
       + b"data" + (3200).to_bytes(4, "little") + b"\x00" * 3200)
MULTIPART = (b"--zz\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nqai-listen\r\n"
             b"--zz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\n"
             + WAV + b"\r\n--zz--\r\n")

ROUTES = [
    # (model, path, body or raw multipart, cluster)
    *[(m, "/v1/chat/completions", {"model": m, "messages": [{"role": "user", "content": "hi"}]}, "demo_text")
      for m in ["qai-hello-world", "qai-flash", "qai-pro", "qai-max", "qai-think"]],
    ("test-claude", "/v1/chat/completions", {"model": "test-claude", "messages": [{"role": "user", "content": "hi"}]},
     "demo_anthropic"),
    ("test-gemini", "/v1/chat/completions", {"model": "test-gemini", "messages": [{"role": "user", "content": "hi"}]},
     "demo_gemini"),
    ("qai-imagine-turbo", "/v1/images/generations", {"model": "qai-imagine-turbo", "prompt": "a", "size": "256x256"},
     "demo_image"),
    ("qai-imagine-quality", "/v1/images/generations",
     {"model": "qai-imagine-quality", "prompt": "a", "size": "1024x1024"}, "demo_image"),
    ("qai-motion", "/v1/videos/generations", {"model": "qai-motion", "prompt": "a", "duration": 2, "size": "832x480"},
     "demo_video"),
    ("qai-voice", "/v1/audio/speech", {"model": "qai-voice", "input": "hi", "voice": "alloy"}, "demo_audio"),
    ("qai-listen", "/v1/audio/transcriptions", MULTIPART, "demo_audio"),
]


@pytest.mark.parametrize("model,path,body,cluster", ROUTES, ids=[r[0] for r in ROUTES])
def test_each_model_lands_on_its_cluster(cs, model, path, body, cluster):
    cs.clear_backend_requests()
    if isinstance(body, bytes):
        status, headers, raw = post(cs, path, None, {**AUTH["openai"], "content-type": "multipart/form-data; boundary=zz"},
                                    raw=body)
    else:
        status, headers, raw = post(cs, path, body, AUTH["openai"])
    assert status == 200, raw[:300]
    assert headers["x-demo-backend"] == cluster
    got = [(r["backend"], r["path"].split("?")[0]) for r in cs.backend_requests()]
    assert len(got) == 1, got
    assert got[0][0] == cluster
    assert len(cs.backend_requests(cluster)) == 1
    rec = cs.billing_record(headers["x-request-id"])
    assert rec["cluster"] == cluster and rec["model"] == model and rec["status"] == 200


# --- rich requests pass the real APIs' contract -----------------------------------------------------

TOOL = {"name": "get_weather", "description": "w",
        "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}}}
RICH = {
    "anthropic": {
        "max_tokens": 50, "system": "be brief", "temperature": 0.5, "top_p": 0.9, "top_k": 5,
        "stop_sequences": ["END"], "metadata": {"user_id": "u1"}, "tools": [TOOL], "tool_choice": {"type": "auto"},
        "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [{"type": "text", "text": "checking"},
                                              {"type": "tool_use", "id": "t1", "name": "get_weather",
                                               "input": {"location": "Paris"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "sunny"},
                                         {"type": "text", "text": "thanks"}]},
        ],
    },
    "gemini": {
        "contents": [
            {"role": "user", "parts": [{"text": "weather?"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"location": "Paris"}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"t": "sunny"}}}]},
        ],
        "systemInstruction": {"parts": [{"text": "be brief"}]},
        "tools": [{"functionDeclarations": [{"name": "get_weather", "parameters": {
            "type": "OBJECT", "properties": {"location": {"type": "STRING"}}}}]}],
        "generationConfig": {"temperature": 0.5, "topP": 0.9, "topK": 5, "maxOutputTokens": 50,
                             "stopSequences": ["END"], "candidateCount": 1, "seed": 3,
                             "presencePenalty": 0.1, "frequencyPenalty": 0.1},
    },
    "openai": {
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "developer", "content": "dev"},
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": ""},
            {"role": "user", "content": "weather, please"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
            {"role": "user", "content": [{"type": "text", "text": "thanks"}]},
        ],
        "temperature": 0.5, "top_p": 0.9, "max_tokens": 50, "stop": ["END"], "seed": 3, "user": "u",
        "presence_penalty": 0.1, "frequency_penalty": 0.1,
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": TOOL["input_schema"]}}],
        "tool_choice": "auto",
    },
}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("upstream", ["openai", "anthropic", "gemini"])
@pytest.mark.parametrize("front", ["openai", "anthropic", "gemini"])
def test_rich_requests_pass_the_real_apis_contract(cs, front, upstream, stream):
    path, body = text_request(front, MODELS[upstream], stream, RICH[front])
    status, headers, raw = post(cs, path, body, AUTH[front])
    assert status == 200, raw[:400]
    assert headers["x-demo-backend"] == CLUSTER_OF[upstream]


@pytest.mark.parametrize("upstream", ["openai", "anthropic", "gemini"])
def test_a_system_only_conversation_is_refused_before_an_upstream_that_needs_a_turn(cs, upstream):
    """OpenAI accepts a conversation of system messages only; Anthropic and Gemini refuse an empty
    `messages`/`contents`: the gateway says so itself, without calling the upstream."""
    cs.clear_backend_requests()
    body = {"model": MODELS[upstream], "messages": [{"role": "system", "content": "be brief"}]}
    status, headers, raw = post(cs, "/v1/chat/completions", body, AUTH["openai"])
    if upstream == "openai":
        assert status == 200, raw[:300]
        assert len(cs.backend_requests(CLUSTER_OF[upstream])) == 1
        return
    assert status == 400, raw[:300]
    err = json.loads(raw)["error"]
    assert (err["code"], err["param"]) == ("bad_request", "messages"), err
    assert err["message"] == "this model needs at least one user or assistant message"
    assert cs.backend_requests() == []
    rec = cs.billing_record(headers["x-request-id"])
    assert rec["status"] == 400 and rec["error"] == "bad_request" and rec["credits"] == 0, rec


# --- upstream status mapping ----------------------------------------------------------------------

# upstream status -> (client status, gateway code)
STATUS_TABLE = {
    400: (400, "bad_request"),
    422: (400, "bad_request"),
    413: (413, "request_entity_too_large"),
    429: (429, "rate_limit_exceeded"),
    401: (502, "upstream_error"),
    403: (502, "upstream_error"),
    404: (502, "upstream_error"),
    500: (502, "upstream_error"),
    502: (502, "upstream_error"),
    503: (502, "upstream_error"),
    504: (502, "upstream_error"),
    529: (502, "upstream_error"),
}
# gateway code -> the error kind each front's shape carries
KIND = {
    "bad_request": {"openai": "invalid_request_error", "anthropic": "invalid_request_error", "gemini": "INVALID_ARGUMENT"},
    "request_entity_too_large": {"openai": "invalid_request_error", "anthropic": "request_too_large",
                                 "gemini": "INVALID_ARGUMENT"},
    "rate_limit_exceeded": {"openai": "rate_limit_error", "anthropic": "rate_limit_error", "gemini": "RESOURCE_EXHAUSTED"},
    "upstream_error": {"openai": "api_error", "anthropic": "api_error", "gemini": "UNAVAILABLE"},
}


def expected_message(upstream_status, code):
    """The upstream's own message (the demo backend's forced error), as the gateway relays it."""
    upstream_msg = f"demo backend forced error {upstream_status}"
    if code == "rate_limit_exceeded":
        return f"The generation service is rate limited: {upstream_msg}"
    if code == "upstream_error":
        return f"The generation service failed (upstream status {upstream_status}): {upstream_msg}"
    return upstream_msg


def check_error_shape(front, raw, status, code):
    """The body is exactly the front's error shape; returns its message."""
    v = json.loads(raw)
    if front == "openai":
        assert set(v) == {"error"} and set(v["error"]) == {"message", "type", "param", "code"}, v
        assert v["error"]["code"] == code and v["error"]["type"] == KIND[code]["openai"], v
        return v["error"]["message"]
    if front == "anthropic":
        assert set(v) == {"type", "error"} and v["type"] == "error", v
        assert set(v["error"]) == {"type", "message"} and v["error"]["type"] == KIND[code]["anthropic"], v
        return v["error"]["message"]
    assert set(v) == {"error"} and set(v["error"]) == {"code", "message", "status"}, v
    assert v["error"]["code"] == status and v["error"]["status"] == KIND[code]["gemini"], v
    return v["error"]["message"]


CASES = [(front, upstream, s, False) for front in MODELS for upstream in MODELS for s in STATUS_TABLE]
CASES += [(front, "openai", s, True) for front in MODELS for s in STATUS_TABLE]


@pytest.mark.parametrize("front,upstream,upstream_status,stream", CASES,
                         ids=[f"{f}-{u}-{s}{'-stream' if st else ''}" for f, u, s, st in CASES])
def test_upstream_status_maps_to_the_documented_error(cs, front, upstream, upstream_status, stream):
    want_status, code = STATUS_TABLE[upstream_status]
    path, body = text_request(front, MODELS[upstream], stream)
    status, headers, raw = post(cs, path, body, {**AUTH[front], "x-demo-status": str(upstream_status)})
    assert status == want_status, raw[:300]
    assert headers["content-type"].startswith("application/json")
    assert headers["x-demo-backend"] == CLUSTER_OF[upstream]
    assert headers["x-should-retry"] == ("false" if want_status in (400, 413) else "true")
    msg = check_error_shape(front, raw, want_status, code)
    if upstream_status not in (401, 403):  # how 401/403 bodies are relayed is not pinned here
        assert msg == expected_message(upstream_status, code)
    rec = cs.billing_record(headers["x-request-id"])
    assert rec["status"] == want_status and rec["error"] == code, rec
    assert rec["credits"] == 0 and rec["prompt_tokens"] == 0 and rec["completion_tokens"] == 0, rec
    assert rec["cluster"] == CLUSTER_OF[upstream] and rec["front"] == front and rec["stream"] is stream, rec


# --- billed credits equal the price formula over the upstream's usage -----------------------------

# Test prices (conftest.py): per 1k prompt, per 1k completion tokens.
PRICES = {"qai-flash": (0.1, 0.2), "test-claude": (3.0, 15.0), "test-gemini": (0.3, 2.5)}


def anthropic_credits_consumed(raw, stream):
    """`usage.credits_consumed` of an Anthropic-front response (the message_delta's in a stream)."""
    if not stream:
        return json.loads(raw)["usage"]["credits_consumed"]
    found = []
    for line in raw.decode().splitlines():
        if line.startswith("data: "):
            ev = json.loads(line[6:])
            if ev.get("type") == "message_delta":
                found.append(ev["usage"]["credits_consumed"])
    assert len(found) == 1, raw
    return found[0]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("upstream", ["openai", "anthropic", "gemini"])
@pytest.mark.parametrize("front", ["openai", "anthropic", "gemini"])
def test_record_credits_are_the_price_of_the_upstream_usage(stack, front, upstream, stream):
    # Counts chosen here, different per pair, that the demo backend reports as they are.
    i, j = list(MODELS).index(front), list(MODELS).index(upstream)
    prompt, completion = 1000 + 100 * i + 10 * j + (1 if stream else 0), 300 + 7 * i + 3 * j
    model = MODELS[upstream]
    path, body = text_request(front, model, stream)
    status, headers, raw = post(stack, path, body, {**AUTH[front], "x-demo-usage-fixed": f"{prompt} {completion}"})
    assert status == 200, raw[:300]
    rec = stack.billing_record(headers["x-request-id"])
    assert (rec["prompt_tokens"], rec["completion_tokens"]) == (prompt, completion), rec
    assert rec["estimated"] is False and rec["model"] == model and rec["upstream"] == upstream
    pp, cp = PRICES[model]
    assert rec["credits"] == round(prompt * pp / 1000 + completion * cp / 1000, 6), rec
    assert rec["credits"] > 0
    if front == "anthropic":
        assert anthropic_credits_consumed(raw, stream) == rec["credits"]
