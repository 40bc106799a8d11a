"""The OpenAI front through real Envoy, with the official openai Python SDK as the client."""
import json
import subprocess
import time
from pathlib import Path

import openai
import pytest

from conftest import UPSTREAM_SECRET

ACTIVE = "sk-demo-active"
ROOT = Path(__file__).resolve().parents[2]
CATALOG = {
    "qai-hello-world": "text", "qai-flash": "text", "qai-pro": "text", "qai-max": "text",
    "qai-think": "text", "qai-imagine-turbo": "image", "qai-imagine-quality": "image", "qai-motion": "video",
    "qai-voice": "audio", "qai-listen": "audio", "qai-embed": "embedding", "auto": "text",
}


def client(stack, key=ACTIVE):
    return openai.OpenAI(base_url=stack.url + "/v1", api_key=key, max_retries=0, timeout=30)


def test_list_models(stack):
    models = client(stack).models.list()
    got = {m.id: m for m in models.data}
    assert set(got) == set(CATALOG) | {"test-claude", "test-gemini"}
    for mid, m in got.items():
        assert m.object == "model"
        assert m.owned_by == "quickcasa"
        assert m.model_extra.get("type") == CATALOG.get(mid, "text")


def test_retrieve_model(stack):
    assert client(stack).models.retrieve("qai-pro").id == "qai-pro"
    with pytest.raises(openai.NotFoundError):
        client(stack).models.retrieve("nope")


def test_chat_completion(stack):
    r = client(stack).chat.completions.create(
        model="qai-flash", messages=[{"role": "user", "content": "What is QuickCasa?"}], temperature=0.7
    )
    assert r.model == "qai-flash"
    assert r.choices[0].message.content == "Hello from qai-flash! You said: What is QuickCasa?"
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_chat_stream_without_usage(stack):
    stream = client(stack).chat.completions.create(
        model="qai-pro", messages=[{"role": "user", "content": "Tell me a story."}], stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from qai-pro! You said: Tell me a story."
    assert all(c.choices for c in chunks), "a usage-only chunk reached a client that did not ask for it"
    assert all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.model == "qai-pro" for c in chunks)


def test_chat_stream_with_usage_when_asked(stack):
    stream = client(stack).chat.completions.create(
        model="qai-pro",
        messages=[{"role": "user", "content": "one two three"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert last.usage.completion_tokens == len("Hello from qai-pro! You said: one two three".split())


def test_long_stream_arrives_whole(stack):
    stream = client(stack).chat.completions.create(
        model="qai-flash", messages=[{"role": "user", "content": "x"}], stream=True,
        extra_headers={"x-demo-chunks": "500"},
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "".join(f"tok{i} " for i in range(500))


def test_wrong_key_is_authentication_error(stack):
    with pytest.raises(openai.AuthenticationError) as e:
        client(stack, "sk-not-a-key").models.list()
    assert e.value.status_code == 401
    assert e.value.code == "unauthorized"
    assert e.value.type == "invalid_request_error"


def test_inactive_account_is_permission_denied(stack):
    with pytest.raises(openai.PermissionDeniedError) as e:
        client(stack, "sk-demo-inactive").chat.completions.create(
            model="qai-flash", messages=[{"role": "user", "content": "hi"}]
        )
    assert e.value.status_code == 403
    assert e.value.code == "forbidden"


def test_unknown_and_wrong_type_models_are_invalid_model(stack):
    for model in ("gpt-nope", "qai-imagine-turbo"):
        with pytest.raises(openai.BadRequestError) as e:
            client(stack).chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
        assert e.value.code == "invalid_model", model
        assert e.value.param == "model"


def test_missing_fields_and_bad_json(http):
    auth = {"Authorization": f"Bearer {ACTIVE}"}
    s, _, b = http.json("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}]}, auth)
    assert (s, b["error"]["code"], b["error"]["param"]) == (400, "missing_field", "model")
    s, _, b = http.json("POST", "/v1/chat/completions", {"model": "qai-flash"}, auth)
    assert (s, b["error"]["code"], b["error"]["param"]) == (400, "missing_field", "messages")
    s, _, b = http.json("POST", "/v1/chat/completions", raw=b"{not json", headers=auth)
    assert (s, b["error"]["code"]) == (400, "bad_request")
    s, _, b = http.json("POST", "/v1/chat/completions", {"model": "qai-flash", "messages": "hi"}, auth)
    assert (s, b["error"]["code"], b["error"]["param"]) == (400, "bad_request", "messages")
    s, _, b = http.json("POST", "/v1/chat/completions", {"model": 7, "messages": []}, auth)
    assert (s, b["error"]["code"]) == (400, "bad_request")


def test_missing_and_malformed_keys(http):
    s, h, b = http.json("GET", "/v1/models")
    assert (s, b["error"]["code"]) == (401, "unauthorized")
    assert h.get("content-type") == "application/json"
    s, _, b = http.json("GET", "/v1/models", headers={"Authorization": "Basic abc"})
    assert (s, b["error"]["code"]) == (401, "unauthorized")
    s, _, b = http.json("GET", "/v1/models", headers={"x-api-key": ACTIVE})
    assert s == 200 and b["object"] == "list"
    s, _, b = http.json("GET", "/api/v1/models", headers={"x-api-key": ACTIVE})
    assert s == 200


def test_unknown_endpoint_and_method(http):
    auth = {"Authorization": f"Bearer {ACTIVE}"}
    s, _, b = http.json("GET", "/v1/nothing-here", headers=auth)
    assert (s, b["error"]["code"]) == (404, "not_found")
    s, _, b = http.json("GET", "/v1/chat/completions", headers=auth)
    assert (s, b["error"]["code"]) == (405, "method_not_allowed")


def test_client_key_never_reaches_upstream_and_cluster_credential_does(stack):
    stack.clear_backend_requests()
    client(stack).chat.completions.create(model="qai-flash", messages=[{"role": "user", "content": "hi"}])
    list(client(stack).chat.completions.create(
        model="qai-flash", messages=[{"role": "user", "content": "hi"}], stream=True,
        extra_headers={"x-api-key": ACTIVE},
    ))
    reqs = [r for r in stack.backend_requests() if r["path"].endswith("/chat/completions")]
    assert len(reqs) == 2
    for r in reqs:
        headers = {k.lower(): v for k, v in r["headers"]}
        flat = json.dumps(r)
        assert ACTIVE not in flat, "the client's key reached the upstream"
        assert headers.get("authorization") == f"Bearer {UPSTREAM_SECRET}"
        assert "x-api-key" not in headers
        assert r["path"] == "/v1/chat/completions"


def test_client_cannot_choose_the_cluster(stack):
    stack.clear_backend_requests()
    client(stack).chat.completions.create(
        model="qai-flash", messages=[{"role": "user", "content": "hi"}],
        extra_headers={"x-tollgate-cluster": "demo_video"},
    )
    (r,) = [r for r in stack.backend_requests() if r["path"].endswith("/chat/completions")]
    headers = {k.lower(): v for k, v in r["headers"]}
    assert headers["x-tollgate-cluster"] == "demo_text"


def test_upstream_5xx_is_502_upstream_error(stack):
    with pytest.raises(openai.InternalServerError) as e:
        client(stack).chat.completions.create(
            model="qai-flash", messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-demo-status": "500"},
        )
    assert e.value.status_code == 502
    assert e.value.code == "upstream_error"
    assert "demo backend forced error 500" in e.value.message


def test_unreachable_upstream_is_502(http):
    s, h, b = http.json(
        "POST", "/v1/videos/generations", {"model": "qai-motion", "prompt": "a kitchen"},
        {"Authorization": f"Bearer {ACTIVE}"},
    )
    assert s == 502
    assert b["error"]["code"] == "upstream_error"
    assert b["error"]["type"] == "api_error"
    # Like every upstream error (README, "Errors"): the SDKs' retry advice.
    assert {k.lower(): v for k, v in h.items()}["x-should-retry"] == "true"


def test_images_route_to_image_cluster(stack):
    r = client(stack).images.generate(model="qai-imagine-turbo", prompt="a cozy studio", size="1024x1024",
                                      response_format="b64_json")
    import base64
    assert base64.b64decode(r.data[0].b64_json).startswith(b"\x89PNG\r\n\x1a\n")


def test_node_openai_sdk(stack):
    """Seed 000 promises the openai npm package works too: the same smoke checks in Node."""
    r = subprocess.run(
        ["node", "--test", str(ROOT / "tests" / "node" / "smoke.test.mjs")],
        env={"PATH": "/usr/bin:/usr/local/bin:/bin", "TOLLGATE_URL": stack.url + "/v1"},
        capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("model", ["test-claude", "test-gemini"])
def test_created_is_the_time_on_translated_responses(stack, model):
    # Anthropic and Gemini responses have no creation time: the gateway's clock, in seconds.
    before = int(time.time())
    r = client(stack).chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    chunks = list(client(stack).chat.completions.create(model=model, stream=True,
                                                        messages=[{"role": "user", "content": "hi"}]))
    after = int(time.time())
    assert before <= r.created <= after
    assert len(chunks) > 1
    assert all(before <= c.created <= after for c in chunks), [c.created for c in chunks]
