"""The model catalog as each official SDK reads it, against real Envoy: the anthropic SDK's
`models.list()` / `models.retrieve()` (Anthropic's shape, chosen by its `anthropic-version`
header), google-genai's `models.list()` / `models.get()` (`supportedGenerationMethods` by model
type), and Gemini's `:streamGenerateContent` without `alt=sse` (refused: the gateway streams
Server-Sent Events only)."""
import datetime

import anthropic
import pytest
from google import genai
from google.genai import types

KEY = "sk-demo-active"
FLASH_ONLY = "sk-demo-flash-only"
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)

_clients = []


def ant(stack, key=KEY):
    return anthropic.Anthropic(base_url=stack.url, api_key=key, max_retries=0)


def gem(stack, version):
    # google-genai closes its HTTP client when the Client object is collected: keep them alive.
    c = genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=stack.url, api_version=version))
    _clients.append(c)
    return c


def openai_list(http, key=KEY):
    s, _, b = http.json("GET", "/v1/models", headers={"Authorization": f"Bearer {key}"})
    assert s == 200
    return b["data"]


def test_anthropic_sdk_lists_the_text_models_in_anthropic_shape(stack, http):
    text = [m["id"] for m in openai_list(http) if m["type"] == "text"]
    assert len(text) == 8  # the demo's five, auto, test-claude and test-gemini
    page = ant(stack).models.list()
    assert [m.id for m in page.data] == text
    assert (page.has_more, page.first_id, page.last_id) == (False, text[0], text[-1])
    for m in page.data:
        assert (m.type, m.display_name, m.created_at) == ("model", m.id, EPOCH)
    # Pages of 2: the SDK follows `has_more` / `last_id` (`after_id`) to the end.
    small = ant(stack).models.list(limit=2)
    assert [m.id for m in small.data] == text[:2] and small.has_more is True
    assert [m.id for m in ant(stack).models.list(limit=2)] == text
    # A key limited to one model sees that one.
    assert [m.id for m in ant(stack, FLASH_ONLY).models.list()] == ["qai-flash"]


def test_anthropic_sdk_retrieves_a_model_and_gets_anthropic_errors(stack):
    m = ant(stack).models.retrieve("qai-flash")
    assert (m.id, m.type, m.display_name, m.created_at) == ("qai-flash", "model", "qai-flash", EPOCH)
    # Unknown, or not a model `/v1/messages` serves: Anthropic's 404.
    for model in ["no-such-model", "qai-embed"]:
        with pytest.raises(anthropic.NotFoundError) as e:
            ant(stack).models.retrieve(model)
        assert e.value.body["type"] == "error" and e.value.body["error"]["type"] == "not_found_error", model
    with pytest.raises(anthropic.PermissionDeniedError) as e:
        ant(stack, FLASH_ONLY).models.retrieve("qai-pro")
    assert e.value.body["error"]["type"] == "permission_error"
    with pytest.raises(anthropic.AuthenticationError) as e:
        ant(stack, "sk-not-a-key").models.list()
    assert e.value.body["error"]["type"] == "authentication_error"
    with pytest.raises(anthropic.BadRequestError) as e:
        ant(stack).models.list(limit=0)
    assert e.value.body["error"]["type"] == "invalid_request_error"


def test_without_anthropic_version_the_list_stays_openais(http):
    s, _, b = http.json("GET", "/v1/models", headers={"x-api-key": KEY})
    assert s == 200 and b["object"] == "list"
    assert len(b["data"]) == 14  # 12 generation models, qai-embed and auto


@pytest.mark.parametrize("version", ["v1", "v1beta"])
def test_google_genai_sees_what_each_model_type_serves(stack, http, version):
    want = {
        "text": ["generateContent", "streamGenerateContent", "countTokens"],
        "embedding": ["embedContent", "batchEmbedContents"],
    }
    catalog = openai_list(http)
    got = {m.name: m.supported_actions for m in gem(stack, version).models.list()}
    assert got == {f"models/{m['id']}": want.get(m["type"], []) for m in catalog}
    assert gem(stack, version).models.get(model="qai-embed").supported_actions == want["embedding"]
    assert gem(stack, version).models.get(model="qai-pro").supported_actions == want["text"]


@pytest.mark.parametrize("query", ["", "?alt=json", "?alt=SSE&x=1"])
def test_a_gemini_stream_without_alt_sse_is_refused_before_the_upstream(stack, http, query):
    stack.clear_backend_requests()
    path = f"/v1beta/models/qai-flash:streamGenerateContent{query}"
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    s, _, b = http.json("POST", path, body, headers={"x-goog-api-key": KEY})
    assert (s, b["error"]["code"], b["error"]["status"]) == (400, 400, "INVALID_ARGUMENT"), b
    assert "'alt=sse'" in b["error"]["message"]
    assert stack.backend_requests() == []
    # With it, the same request streams.
    s, h, raw = http.request("POST", "/v1beta/models/qai-flash:streamGenerateContent?alt=sse", body,
                             headers={"x-goog-api-key": KEY})
    assert s == 200 and h["content-type"].startswith("text/event-stream") and raw.startswith(b"data: ")
