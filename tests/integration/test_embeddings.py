"""`POST /v1/embeddings` against real Envoy and the demo backend, with the openai SDK: float and
base64 vectors of the asked dimensions, billed per input token from the upstream's usage (the
estimate, flagged, without it), routed with the cluster's credential; other models refused in
OpenAI's shape."""
import struct

import openai
import pytest

from conftest import UPSTREAM_SECRET, Http

KEY = "sk-demo-active"
MODEL = "qai-embed"
PRICE = 0.02  # qai-embed's prompt_per_1k in envoy/demo.yaml
INPUT = ["one two three", "four"]  # the demo counts words: 4 tokens


def client(stack, base="/v1", headers=None):
    return openai.OpenAI(base_url=stack.url + base, api_key=KEY, max_retries=0, timeout=30,
                         default_headers=headers or {})


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def test_float_and_base64_vectors_of_the_asked_dimensions(stack):
    c = client(stack)
    as_float = c.embeddings.create(model=MODEL, input=INPUT, dimensions=5, encoding_format="float")
    assert [len(d.embedding) for d in as_float.data] == [5, 5]
    assert [d.index for d in as_float.data] == [0, 1]
    assert (as_float.usage.prompt_tokens, as_float.usage.total_tokens) == (4, 4)
    # The SDK asks for base64 by default and decodes it: the same float32 values.
    as_b64 = c.embeddings.create(model=MODEL, input=INPUT, dimensions=5)
    assert [d.embedding for d in as_b64.data] == [[f32(x) for x in d.embedding] for d in as_float.data]
    one = c.embeddings.create(model=MODEL, input="a single text", dimensions=3, encoding_format="float")
    assert (len(one.data), len(one.data[0].embedding), one.usage.prompt_tokens) == (1, 3, 3)
    ids = client(stack, "/api/v1").embeddings.create(model=MODEL, input=[1, 2, 3, 4, 5, 6], encoding_format="float")
    assert (len(ids.data), len(ids.data[0].embedding), ids.usage.prompt_tokens) == (1, 8, 6)


def test_each_request_is_billed_its_upstream_usage(stack):
    stack.clear_backend_requests("demo_text")
    raw = client(stack).embeddings.with_raw_response.create(model=MODEL, input=INPUT, encoding_format="float")
    assert raw.status_code == 200
    rec = stack.billing_record(raw.headers["x-request-id"])
    assert (rec["prompt_tokens"], rec["completion_tokens"], rec["estimated"]) == (4, 0, False)
    assert rec["credits"] == round(4 * PRICE / 1000, 6)
    assert (rec["endpoint"], rec["model"], rec["upstream_model"], rec["cluster"]) == ("embeddings", MODEL, MODEL, "demo_text")
    assert (rec["status"], rec["error"], rec["complete"], rec["front"], rec["upstream"]) == (200, None, True, "openai", "openai")
    got = stack.backend_requests("demo_text")
    assert [r["path"] for r in got] == ["/v1/embeddings"]
    headers = dict((k.lower(), v) for k, v in got[0]["headers"])
    assert headers["authorization"] == f"Bearer {UPSTREAM_SECRET}"


def test_without_upstream_usage_the_input_estimate_is_billed_and_flagged(stack):
    c = client(stack, headers={"x-demo-no-usage": "1"})
    raw = c.embeddings.with_raw_response.create(model=MODEL, input=INPUT, encoding_format="float")
    assert raw.status_code == 200
    rec = stack.billing_record(raw.headers["x-request-id"])
    # 13 bytes -> 4 tokens, 4 bytes -> 1 token, at 4 bytes a token.
    assert (rec["prompt_tokens"], rec["completion_tokens"], rec["estimated"]) == (5, 0, True)
    assert rec["credits"] == round(5 * PRICE / 1000, 6)


@pytest.mark.parametrize("model", ["qai-flash", "no-such-model", "qai-imagine-turbo"])
def test_other_models_are_refused_in_openai_shape(stack, model):
    stack.clear_backend_requests("demo_text")
    with pytest.raises(openai.BadRequestError) as e:
        client(stack).embeddings.create(model=model, input="hello", encoding_format="float")
    assert (e.value.status_code, e.value.code, e.value.param) == (400, "invalid_model", "model")
    assert stack.backend_requests("demo_text") == []
    rec = stack.billing_record(e.value.response.headers["x-request-id"])
    assert (rec["status"], rec["error"], rec["credits"], rec["upstream"]) == (400, "invalid_model", 0, None)


def test_an_embedding_model_is_refused_on_chat(stack):
    with pytest.raises(openai.BadRequestError) as e:
        client(stack).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert (e.value.code, e.value.param) == ("invalid_model", "model")


def test_bad_embedding_options_name_the_parameter(stack):
    http = Http(stack.url)
    for body, param in [({"model": MODEL}, "input"), ({"model": MODEL, "input": []}, "input"),
                        ({"model": MODEL, "input": "x", "dimensions": 0}, "dimensions"),
                        ({"model": MODEL, "input": "x", "encoding_format": "int8"}, "encoding_format")]:
        s, _, b = http.json("POST", "/v1/embeddings", body, {"Authorization": f"Bearer {KEY}"})
        assert (s, b["error"]["param"]) == (400, param), body


def test_google_genai_embed_content_single_and_batch(stack):
    from google import genai
    from google.genai import types
    g = genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=stack.url, api_version="v1beta"))
    expect = client(stack).embeddings.create(model=MODEL, input=["one two three", "four"], dimensions=4,
                                             encoding_format="float")
    one = g.models.embed_content(model=MODEL, contents="one two three",
                                 config=types.EmbedContentConfig(output_dimensionality=4))
    # float32 vectors: equal at float32 precision (JSON readers may differ in the last f64 bit).
    want = [[f32(x) for x in d.embedding] for d in expect.data]
    assert [[f32(x) for x in e.values] for e in one.embeddings] == want[:1]
    both = g.models.embed_content(model=MODEL, contents=["one two three", "four"],
                                  config=types.EmbedContentConfig(output_dimensionality=4))
    assert [[f32(x) for x in e.values] for e in both.embeddings] == want
    stack.clear_backend_requests("demo_text")
    s, h, b = Http(stack.url).json("POST", f"/v1beta/models/{MODEL}:embedContent",
                                   {"content": {"parts": [{"text": "one two three"}]}, "outputDimensionality": 4},
                                   {"x-goog-api-key": KEY})
    assert (s, list(b), [f32(x) for x in b["embedding"]["values"]]) == (200, ["embedding"], want[0])
    rec = stack.billing_record(h["x-request-id"])
    assert (rec["endpoint"], rec["front"], rec["prompt_tokens"], rec["estimated"]) == ("embeddings", "gemini", 3, False)
    assert rec["credits"] == round(3 * PRICE / 1000, 6)
    s, _, b = Http(stack.url).json("POST", "/v1beta/models/qai-flash:embedContent",
                                   {"content": {"parts": [{"text": "x"}]}}, {"x-goog-api-key": KEY})
    assert (s, b["error"]["status"]) == (400, "INVALID_ARGUMENT")
