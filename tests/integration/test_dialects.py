"""The Anthropic and Gemini fronts with their official SDKs, and the openai SDK through upstreams
that speak Anthropic and Gemini: real Envoy, demo backend."""
import anthropic
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from conftest import UPSTREAM_ANTHROPIC_SECRET, UPSTREAM_GEMINI_SECRET

KEY = "sk-demo-active"
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
}


def ant(stack, key=KEY):
    return anthropic.Anthropic(base_url=stack.url, api_key=key, max_retries=0)


_clients = []


def gem(stack, key=KEY, version="v1beta"):
    # google-genai closes its HTTP client when the Client object is collected: keep them alive.
    c = genai.Client(api_key=key, http_options=types.HttpOptions(base_url=stack.url, api_version=version))
    _clients.append(c)
    return c


# --- Anthropic front -------------------------------------------------------------------------

def test_anthropic_create(stack):
    m = ant(stack).messages.create(model="qai-flash", max_tokens=100,
                                   messages=[{"role": "user", "content": "hello there"}])
    assert m.content[0].text == "Hello from qai-flash! You said: hello there"
    assert m.stop_reason == "end_turn"
    assert m.model == "qai-flash"
    assert m.usage.input_tokens > 0 and m.usage.output_tokens == 7


def test_anthropic_stream_text(stack):
    with ant(stack).messages.stream(model="qai-pro", max_tokens=100, system="be brief",
                                    messages=[{"role": "user", "content": "tell me"}]) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == "Hello from qai-pro! You said: tell me"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == len(text.split())


def test_anthropic_message_start_carries_input_tokens(stack):
    # From an Anthropic upstream: the upstream's own count, passed on at `message_start`.
    args = dict(max_tokens=100, messages=[{"role": "user", "content": "tell me"}])
    with ant(stack).messages.stream(model="test-claude", **args) as s:
        events = list(s)
        final = s.get_final_message()
    assert events[0].type == "message_start"
    assert events[0].message.usage.input_tokens == final.usage.input_tokens
    assert final.usage.input_tokens == 6
    # From an OpenAI upstream (usage only at the end): the gateway's estimate, 2 tokens of text
    # ("tell me", 7 bytes) + 4 for the message + 3 for the reply.
    with ant(stack).messages.stream(model="qai-flash", **args) as s:
        events = list(s)
    assert events[0].type == "message_start"
    assert events[0].message.usage.input_tokens == 9


def test_anthropic_stop_sequence_ends_the_turn(stack):
    # The demo Anthropic upstream replies "Hello from claude-demo! You said: tell me" and stops
    # before the first stop sequence it contains, as Anthropic does (its words re-joined: no
    # trailing space).
    args = dict(model="test-claude", max_tokens=100, stop_sequences=["said", "You"],
                messages=[{"role": "user", "content": "tell me"}])
    m = ant(stack).messages.create(**args)
    assert m.stop_reason == "stop_sequence" and m.stop_sequence == "You"
    assert m.content[0].text == "Hello from claude-demo!"
    with ant(stack).messages.stream(**args) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == "Hello from claude-demo!"
    assert final.stop_reason == "stop_sequence" and final.stop_sequence == "You"
    # No stop sequence in the reply: an ordinary end of turn.
    m = ant(stack).messages.create(**{**args, "stop_sequences": ["zzz"]})
    assert m.stop_reason == "end_turn" and m.stop_sequence is None


@pytest.mark.parametrize("model", ["qai-flash", "test-claude", "test-gemini"])
def test_anthropic_messages_parse_with_an_output_format(stack, model):
    import pydantic

    class City(pydantic.BaseModel):
        name: str
        population: int

    m = ant(stack).messages.parse(model=model, max_tokens=100, output_format=City,
                                  messages=[{"role": "user", "content": "a city"}])
    # The demo upstreams answer a JSON schema with "demo" for strings and 1 for integers.
    assert m.parsed_output == City(name="demo", population=1)


def test_anthropic_tool_use_streamed_and_not(stack):
    args = dict(model="qai-flash", max_tokens=100, tools=[WEATHER_TOOL],
                messages=[{"role": "user", "content": "what is the weather in Paris"}])
    m = ant(stack).messages.create(**args)
    assert m.stop_reason == "tool_use"
    (tool,) = [b for b in m.content if b.type == "tool_use"]
    assert tool.name == "get_weather" and tool.input == {"location": "Paris"}
    with ant(stack).messages.stream(**args) as s:
        final = s.get_final_message()
    (tool,) = [b for b in final.content if b.type == "tool_use"]
    assert final.stop_reason == "tool_use"
    assert tool.name == "get_weather" and tool.input == {"location": "Paris"}
    assert tool.id


def test_anthropic_errors_are_its_own_classes(stack):
    with pytest.raises(anthropic.AuthenticationError) as e:
        ant(stack, "sk-wrong").messages.create(model="qai-flash", max_tokens=10,
                                               messages=[{"role": "user", "content": "x"}])
    assert e.value.body["error"]["type"] == "authentication_error"
    # An unknown model is a 404 `not_found_error`, as from Anthropic's API.
    with pytest.raises(anthropic.NotFoundError) as e:
        ant(stack).messages.create(model="nope", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert e.value.status_code == 404
    assert e.value.body["type"] == "error" and e.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.NotFoundError) as e:
        with ant(stack).messages.stream(model="nope", max_tokens=10, messages=[{"role": "user", "content": "x"}]) as s:
            list(s)
    assert e.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.NotFoundError):
        ant(stack).messages.with_raw_response.create  # noqa: B018 - attribute exists
        ant(stack).post("/v1/nothing", cast_to=object, body={})
    with pytest.raises(anthropic.RateLimitError) as e:
        for _ in range(12):
            ant(stack, "sk-demo-limited").messages.create(model="qai-flash", max_tokens=10,
                                                          messages=[{"role": "user", "content": "x"}])
    assert e.value.body["error"]["type"] == "rate_limit_error"


# --- Gemini front ----------------------------------------------------------------------------

@pytest.mark.parametrize("version", ["v1beta", "v1"])
def test_gemini_generate_content(stack, version):
    r = gem(stack, version=version).models.generate_content(model="qai-flash", contents="hi gem")
    assert r.text == "Hello from qai-flash! You said: hi gem"
    assert r.candidates[0].finish_reason == types.FinishReason.STOP
    assert r.usage_metadata.candidates_token_count == 7


def test_gemini_stream(stack):
    chunks = list(gem(stack).models.generate_content_stream(model="qai-pro", contents="stream please"))
    assert "".join(c.text or "" for c in chunks) == "Hello from qai-pro! You said: stream please"
    assert chunks[-1].usage_metadata.candidates_token_count == len("Hello from qai-pro! You said: stream please".split())


def test_gemini_function_call(stack):
    decl = types.FunctionDeclaration(
        name="get_weather", description="Weather for a city",
        parameters=types.Schema(type="OBJECT", properties={"location": types.Schema(type="STRING")}),
    )
    cfg = types.GenerateContentConfig(tools=[types.Tool(function_declarations=[decl])])
    r = gem(stack).models.generate_content(model="qai-flash", contents="weather in Paris?", config=cfg)
    (call,) = r.function_calls
    assert call.name == "get_weather" and call.args == {"location": "Paris"}
    chunks = list(gem(stack).models.generate_content_stream(model="qai-flash", contents="weather in Paris?", config=cfg))
    calls = [fc for c in chunks for fc in (c.function_calls or [])]
    assert [(c.name, c.args) for c in calls] == [("get_weather", {"location": "Paris"})]


def test_gemini_errors(stack):
    with pytest.raises(genai_errors.ClientError) as e:
        gem(stack, "sk-wrong").models.generate_content(model="qai-flash", contents="x")
    assert e.value.code == 401 and e.value.status == "UNAUTHENTICATED"
    # An unknown model is a 404 `NOT_FOUND`, as from Gemini's API.
    with pytest.raises(genai_errors.ClientError) as e:
        gem(stack).models.generate_content(model="nope", contents="x")
    assert e.value.code == 404 and e.value.status == "NOT_FOUND"
    with pytest.raises(genai_errors.ClientError) as e:
        list(gem(stack).models.generate_content_stream(model="nope", contents="x"))
    assert e.value.code == 404 and e.value.status == "NOT_FOUND"
    with pytest.raises(genai_errors.ClientError) as e:
        for _ in range(12):
            gem(stack, "sk-demo-limited").models.generate_content(model="qai-flash", contents="x")
    assert e.value.code == 429 and e.value.status == "RESOURCE_EXHAUSTED"


def test_gemini_key_in_query_and_never_upstream(stack, http):
    stack.clear_backend_requests()
    s, _, b = http.json("POST", f"/v1beta/models/test-gemini:generateContent?key={KEY}",
                        {"contents": [{"role": "user", "parts": [{"text": "q"}]}]})
    assert s == 200, b
    (r,) = [r for r in stack.backend_requests() if ":generateContent" in r["path"]]
    assert KEY not in str(r)
    assert r["path"] == "/v1beta/models/gemini-demo:generateContent"
    assert dict((k.lower(), v) for k, v in r["headers"])["x-goog-api-key"] == UPSTREAM_GEMINI_SECRET


# --- openai SDK through Anthropic and Gemini upstreams -----------------------------------------

@pytest.mark.parametrize("model,upstream", [("test-claude", "claude-demo"), ("test-gemini", "gemini-demo")])
def test_openai_sdk_through_other_upstreams(stack, model, upstream):
    c = openai.OpenAI(base_url=stack.url + "/v1", api_key=KEY, max_retries=0)
    r = c.chat.completions.create(model=model, messages=[{"role": "user", "content": "via x"}])
    assert r.choices[0].message.content == f"Hello from {upstream}! You said: via x"
    assert r.model == model and r.usage.completion_tokens == 7
    chunks = list(c.chat.completions.create(model=model, messages=[{"role": "user", "content": "via x"}], stream=True))
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == f"Hello from {upstream}! You said: via x"
    assert all(ch.choices for ch in chunks), "usage chunk leaked to a client that did not ask"
    r = c.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "weather in Paris"}],
        tools=[{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_TOOL["input_schema"]}}],
    )
    call = r.choices[0].message.tool_calls[0]
    assert r.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather" and call.function.arguments.replace(" ", "") == '{"location":"Paris"}'


def test_anthropic_upstream_gets_its_own_credential(stack):
    stack.clear_backend_requests()
    openai.OpenAI(base_url=stack.url + "/v1", api_key=KEY, max_retries=0).chat.completions.create(
        model="test-claude", messages=[{"role": "user", "content": "x"}])
    (r,) = [r for r in stack.backend_requests() if r["path"].endswith("/messages")]
    h = {k.lower(): v for k, v in r["headers"]}
    assert h["x-api-key"] == UPSTREAM_ANTHROPIC_SECRET and "anthropic-version" in h
    assert "authorization" not in h and KEY not in str(r)


def test_gemini_404_is_client_error(stack):
    with pytest.raises(genai_errors.ClientError) as e:
        gem(stack).models.get(model="no-such-model")
    assert e.value.code == 404


def test_gemini_models_list_and_get_on_the_default_api_version(stack, http):
    # google-genai's default version is v1: GET /v1/models[/{id}] with x-goog-api-key.
    v1 = gem(stack, version="v1")
    names = [m.name for m in v1.models.list()]
    s, _, b = http.json("GET", "/v1/models", headers={"Authorization": f"Bearer {KEY}"})
    assert s == 200
    assert names == [f"models/{m['id']}" for m in b["data"]]
    assert "models/qai-flash" in names
    m = v1.models.get(model="qai-flash")
    assert m.name == "models/qai-flash" and "generateContent" in m.supported_actions
    with pytest.raises(genai_errors.ClientError) as e:
        v1.models.get(model="no-such-model")
    assert e.value.code == 404 and e.value.status == "NOT_FOUND"


def test_gemini_models_get(stack):
    m = gem(stack).models.get(model="qai-flash")
    assert m.name == "models/qai-flash"
    assert "generateContent" in m.supported_actions


def test_unknown_paths_in_a_dialects_namespace_get_its_errors(stack, http):
    with pytest.raises(anthropic.NotFoundError) as e:
        ant(stack).post("/v1/messages/batches", cast_to=object, body={"requests": []})
    assert e.value.body["type"] == "error" and e.value.body["error"]["type"] == "not_found_error"
    for path in ["/v1alpha/models/qai-flash", "/v1beta/models/qai-flash:unknownAction"]:
        s, _, b = http.json("POST", path, {}, headers={"x-goog-api-key": KEY})
        assert (s, b["error"]["code"], b["error"]["status"]) == (404, 404, "NOT_FOUND"), (path, b)
    # Elsewhere: OpenAI's shape, as before.
    s, _, b = http.json("GET", "/v1/nothing", headers={"Authorization": f"Bearer {KEY}"})
    assert (s, b["error"]["code"]) == (404, "not_found")
