"""The OpenAI Responses API (`POST /v1/responses`) with the official SDKs: the openai Python
package's `responses.create`, `.stream` and `.parse` through an OpenAI, an Anthropic, a Gemini
and an `openai-responses` upstream; a Responses-only cluster reached from the chat and Anthropic
fronts; the stateless refusals; the billing record of each; the Node package's
`responses.create`. Real Envoy, demo backends."""
import json
import subprocess
from pathlib import Path

import anthropic
import openai
import pytest
from pydantic import BaseModel

from conftest import UPSTREAM_SECRET
from tollgate_harness import Stack

ROOT = Path(__file__).resolve().parents[2]
KEY = "sk-demo-active"
UPSTREAM_RESPONSES_SECRET = "sk-responses-upstream-secret-for-tests"

# Client model -> (name the upstream gets, upstream dialect, cluster, prices per 1k).
MODELS = {
    "qai-flash": ("qai-flash", "openai", "demo_text", (0.1, 0.2)),
    "test-claude": ("claude-demo", "anthropic", "demo_anthropic", (3.0, 15.0)),
    "test-gemini": ("gemini-demo", "gemini", "demo_gemini", (0.3, 2.5)),
    "test-responses": ("resp-demo", "openai-responses", "demo_responses", (1.0, 4.0)),
}
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
}


def _patch(cfg):
    for c in cfg["clusters"]:
        if c["name"] == "demo_text":
            c["api_key"] = UPSTREAM_SECRET
    cfg["clusters"] += [
        {"name": "demo_anthropic", "dialect": "anthropic", "api_key": "sk-ant-x"},
        {"name": "demo_gemini", "dialect": "gemini", "api_key": "goog-x"},
        {"name": "demo_responses", "dialect": "openai-responses", "api_key": UPSTREAM_RESPONSES_SECRET},
    ]
    for model, (upstream_model, _, cluster, (pp, cp)) in MODELS.items():
        if model != "qai-flash":
            cfg["models"].append({"id": model, "type": "text", "cluster": cluster, "upstream_model": upstream_model,
                                  "price": {"prompt_per_1k": pp, "completion_per_1k": cp}})
    return cfg


@pytest.fixture(scope="module")
def rs():
    s = Stack(concurrency=2, patch_filter=_patch, extra_clusters=["demo_anthropic", "demo_gemini", "demo_responses"])
    s.start()
    yield s
    s.stop()


def oai(stack, key=KEY):
    return openai.OpenAI(base_url=stack.url + "/v1", api_key=key, max_retries=0)


def credits(model, prompt, completion):
    pp, cp = MODELS[model][3]
    return round(prompt * pp / 1000 + completion * cp / 1000, 6)


def check_record(stack, request_id, model, prompt, completion, stream):
    rec = stack.billing_record(request_id)
    assert rec["front"] == "openai-responses" and rec["model"] == model, rec
    assert rec["upstream"] == MODELS[model][1] and rec["cluster"] == MODELS[model][2], rec
    assert (rec["prompt_tokens"], rec["completion_tokens"]) == (prompt, completion), rec
    assert rec["estimated"] is False and rec["status"] == 200 and rec["stream"] is stream, rec
    assert rec["credits"] == credits(model, prompt, completion), rec


@pytest.mark.parametrize("model", list(MODELS))
def test_create_text(rs, model):
    raw = oai(rs).responses.with_raw_response.create(
        model=model, instructions="be brief", input="hello there",
        extra_headers={"x-demo-usage-fixed": "120 7"})
    r = raw.parse()
    assert r.object == "response" and r.status == "completed" and r.model == model
    assert r.id.startswith("resp_") and r.created_at > 1_700_000_000
    assert r.output_text == f"Hello from {MODELS[model][0]}! You said: hello there"
    assert [o.type for o in r.output] == ["message"]
    assert (r.usage.input_tokens, r.usage.output_tokens, r.usage.total_tokens) == (120, 7, 127)
    assert r.usage.input_tokens_details.cached_tokens == 0
    assert r.usage.output_tokens_details.reasoning_tokens == 0
    check_record(rs, raw.headers["x-request-id"], model, 120, 7, False)


@pytest.mark.parametrize("model", list(MODELS))
def test_stream_text(rs, model):
    deltas, types = [], []
    raw = oai(rs).responses.with_raw_response.create(
        model=model, input=[{"role": "user", "content": [{"type": "input_text", "text": "tell me more"}]}],
        stream=True, extra_headers={"x-demo-usage-fixed": "55 9"})
    request_id = raw.headers["x-request-id"]
    for ev in raw.parse():
        types.append(ev.type)
        if ev.type == "response.output_text.delta":
            deltas.append(ev.delta)
        if ev.type == "response.completed":
            final = ev.response
    text = f"Hello from {MODELS[model][0]}! You said: tell me more"
    assert "".join(deltas) == text and len(deltas) == len(text.split())
    assert types[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert types[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.completed"]
    assert final.output_text == text and final.status == "completed"
    assert (final.usage.input_tokens, final.usage.output_tokens, final.usage.total_tokens) == (55, 9, 64)
    check_record(rs, request_id, model, 55, 9, True)


@pytest.mark.parametrize("model", list(MODELS))
def test_stream_helper_and_sequence_numbers(rs, model):
    seqs = []
    with oai(rs).responses.stream(model=model, input="go on") as s:
        for ev in s:
            seqs.append(ev.sequence_number)
        final = s.get_final_response()
    assert seqs == list(range(len(seqs)))
    assert final.output_text == f"Hello from {MODELS[model][0]}! You said: go on"
    assert final.usage.total_tokens == final.usage.input_tokens + final.usage.output_tokens


@pytest.mark.parametrize("model", list(MODELS))
def test_function_tool_create_stream_and_second_turn(rs, model):
    c = oai(rs)
    ask = [{"role": "user", "content": "what is the weather in Paris"}]
    r = c.responses.create(model=model, input=ask, tools=[WEATHER])
    (call,) = r.output
    assert call.type == "function_call" and call.name == "get_weather" and call.status == "completed"
    assert json.loads(call.arguments) == {"location": "Paris"} and call.call_id
    with c.responses.stream(model=model, input=ask, tools=[WEATHER], tool_choice="required") as s:
        arg_deltas = [ev.delta for ev in s if ev.type == "response.function_call_arguments.delta"]
        final = s.get_final_response()
    (scall,) = final.output
    assert scall.type == "function_call" and scall.name == "get_weather"
    assert "".join(arg_deltas) == scall.arguments and json.loads(scall.arguments) == {"location": "Paris"}
    # The call and its output sent back: the model answers in text.
    follow = ask + [{"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
                    {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21C"}]
    r2 = c.responses.create(model=model, input=follow, tools=[WEATHER], tool_choice="none")
    assert [o.type for o in r2.output] == ["message"]
    # Anthropic and Gemini carry tool results in a user turn, which the demo backend echoes (no text).
    echo = "" if MODELS[model][1] in ("anthropic", "gemini") else " what is the weather in Paris"
    assert r2.output_text == f"Hello from {MODELS[model][0]}! You said:{echo}"
    # The upstream got the call and its result, in its own dialect (Gemini's have no call ids).
    last = json.dumps(json.loads(rs.backend_requests(MODELS[model][2])[-1]["body"]))
    assert "sunny, 21C" in last
    assert (call.call_id in last) is (MODELS[model][1] != "gemini")


class Weather(BaseModel):
    city: str
    degrees: int


@pytest.mark.parametrize("model", list(MODELS))
def test_structured_output_json_schema(rs, model):
    c = oai(rs)
    r = c.responses.parse(model=model, input="weather in Paris as JSON", text_format=Weather)
    assert r.output_parsed == Weather(city="demo", degrees=1)
    with c.responses.stream(model=model, input="weather in Paris as JSON", text_format=Weather) as s:
        final = s.get_final_response()
    assert final.output_parsed == Weather(city="demo", degrees=1)
    # The schema reached the upstream in its own dialect's field.
    got = [e for e in rs.backend_requests(MODELS[model][2]) if "Paris as JSON" in e["body"]]
    body = json.loads(got[-1]["body"])
    schema = {
        "openai": lambda b: b["response_format"]["json_schema"]["schema"],
        "anthropic": lambda b: b["output_config"]["format"]["schema"],
        "gemini": lambda b: b["generationConfig"]["responseJsonSchema"],
        "openai-responses": lambda b: b["text"]["format"]["schema"],
    }[MODELS[model][1]](body)
    assert set(schema["properties"]) == {"city", "degrees"}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("model", list(MODELS))
def test_create_with_a_json_schema_format_puts_the_json_in_output_text(rs, model, stream):
    # `responses.create` itself (not the `.parse` helper), as the Vercel AI SDK and LangChain call it.
    fmt = {"type": "json_schema", "name": "weather", "strict": True,
           "schema": {"type": "object", "properties": {"city": {"type": "string"}, "degrees": {"type": "integer"}},
                      "required": ["city", "degrees"], "additionalProperties": False}}
    r = oai(rs).responses.create(model=model, input="weather in Paris as JSON", text={"format": fmt}, stream=stream)
    if stream:
        (r,) = [ev.response for ev in r if ev.type == "response.completed"]
    assert json.loads(r.output_text) == {"city": "demo", "degrees": 1}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("model", list(MODELS))
def test_the_response_repeats_the_request_settings(rs, model, stream):
    # The real API's `response` object says what the request asked for (as the client sent it),
    # in the whole response and in every streamed snapshot.
    fmt = {"type": "json_schema", "name": "weather", "strict": True, "description": "the weather",
           "schema": {"type": "object", "properties": {"city": {"type": "string"}, "degrees": {"type": "integer"}},
                      "required": ["city", "degrees"], "additionalProperties": False}}
    r = oai(rs).responses.create(
        model=model, instructions="answer in JSON", input="weather in Paris", text={"format": fmt},
        max_output_tokens=300, temperature=0.25, top_p=0.5, tools=[WEATHER], tool_choice="none",
        parallel_tool_calls=False, metadata={"ticket": "T-7"}, stream=stream)
    if stream:
        snapshots = [ev.response for ev in r
                     if ev.type in ("response.created", "response.in_progress", "response.completed")]
        assert [s.status for s in snapshots] == ["in_progress", "in_progress", "completed"]
    else:
        snapshots = [r]
    for s in snapshots:
        assert s.text.format.model_dump(by_alias=True, exclude_none=True) == fmt
        assert (s.instructions, s.max_output_tokens, s.temperature, s.top_p) == ("answer in JSON", 300, 0.25, 0.5)
        assert (s.tool_choice, s.parallel_tool_calls, s.metadata) == ("none", False, {"ticket": "T-7"})
        assert [t.model_dump(exclude_none=True) for t in s.tools] == [WEATHER]
    assert json.loads(snapshots[-1].output_text) == {"city": "demo", "degrees": 1}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_the_response_says_the_defaults_when_the_request_sets_nothing(rs, stream):
    r = oai(rs).responses.create(model="qai-flash", input="hi", stream=stream)
    if stream:
        (r,) = [ev.response for ev in r if ev.type == "response.completed"]
    assert r.text.format.type == "text" and r.tools == [] and r.tool_choice == "auto"
    assert (r.instructions, r.max_output_tokens, r.temperature, r.top_p) == (None, None, None, None)
    assert (r.parallel_tool_calls, r.metadata) == (True, {})


def test_responses_cluster_from_the_chat_front(rs):
    c = oai(rs)
    rs.clear_backend_requests("demo_responses")
    raw = c.chat.completions.with_raw_response.create(
        model="test-responses", messages=[{"role": "system", "content": "sys"}, {"role": "user", "content": "hi you"}],
        max_tokens=50, extra_headers={"x-demo-usage-fixed": "31 7"})
    r = raw.parse()
    assert r.choices[0].message.content == "Hello from resp-demo! You said: hi you"
    assert r.choices[0].finish_reason == "stop" and r.model == "test-responses"
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (31, 7)
    (req,) = rs.backend_requests("demo_responses")
    assert req["path"] == "/v1/responses"
    assert dict(req["headers"])["authorization"] == f"Bearer {UPSTREAM_RESPONSES_SECRET}"
    body = json.loads(req["body"])
    assert body["model"] == "resp-demo" and body["store"] is False and body["max_output_tokens"] == 50
    assert body["input"][0] == {"type": "message", "role": "system", "content": [{"type": "input_text", "text": "sys"}]}
    rec = rs.billing_record(raw.headers["x-request-id"])
    assert (rec["front"], rec["upstream"], rec["prompt_tokens"], rec["completion_tokens"]) == \
        ("openai", "openai-responses", 31, 7)
    assert rec["credits"] == credits("test-responses", 31, 7)
    # Streamed, with usage asked for, and a tool call.
    stream = c.chat.completions.create(
        model="test-responses", messages=[{"role": "user", "content": "weather in Paris?"}],
        tools=[{"type": "function", "function": {k: WEATHER[k] for k in ("name", "description", "parameters")}}],
        stream=True, stream_options={"include_usage": True})
    args, finish, usage = "", None, None
    for ch in stream:
        if ch.usage:
            usage = ch.usage
        for choice in ch.choices:
            for tc in choice.delta.tool_calls or []:
                args += tc.function.arguments or ""
            finish = choice.finish_reason or finish
    assert json.loads(args) == {"location": "Paris"} and finish == "tool_calls"
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens and usage.completion_tokens == 4


def test_responses_cluster_from_the_anthropic_front(rs):
    a = anthropic.Anthropic(base_url=rs.url, api_key=KEY, max_retries=0)
    m = a.messages.create(model="test-responses", max_tokens=100, messages=[{"role": "user", "content": "hello"}],
                          extra_headers={"x-demo-usage-fixed": "40 5"})
    assert m.content[0].text == "Hello from resp-demo! You said: hello"
    assert m.stop_reason == "end_turn" and (m.usage.input_tokens, m.usage.output_tokens) == (40, 5)
    with a.messages.stream(model="test-responses", max_tokens=100,
                           messages=[{"role": "user", "content": "stream it"}]) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == "Hello from resp-demo! You said: stream it"
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == len(text.split())


@pytest.mark.parametrize("param,value", [("previous_response_id", "resp_123"), ("store", True),
                                         ("conversation", "conv_123")])
def test_stateful_parameters_are_refused(rs, param, value):
    with pytest.raises(openai.BadRequestError) as e:
        oai(rs).responses.create(model="qai-flash", input="x", **{param: value})
    assert e.value.status_code == 400
    assert e.value.body["param"] == param and e.value.body["code"] == "bad_request"
    assert param in e.value.body["message"] and "keeps no" in e.value.body["message"]
    rec = rs.billing_record(e.value.response.headers["x-request-id"])
    assert (rec["status"], rec["error"], rec["credits"], rec["front"]) == (400, "bad_request", 0, "openai-responses")


def test_errors_are_openai_shaped(rs):
    with pytest.raises(openai.AuthenticationError):
        oai(rs, "sk-wrong").responses.create(model="qai-flash", input="x")
    with pytest.raises(openai.BadRequestError) as e:
        oai(rs).responses.create(model="nope", input="x")
    assert e.value.body["code"] == "invalid_model" and e.value.body["param"] == "model"


def test_node_openai_responses_create(rs):
    r = subprocess.run(
        ["node", "--test", str(ROOT / "tests" / "node" / "responses.test.mjs")],
        env={"PATH": "/usr/bin:/usr/local/bin:/bin", "TOLLGATE_URL": rs.url + "/v1"},
        capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_no_usage_from_a_responses_upstream_is_estimated(rs, stream):
    """A Responses-API upstream that reports no usage is billed on the gateway's estimate, marked."""
    c = oai(rs)
    raw = c.responses.with_raw_response.create(model="test-responses", input="hello", stream=stream,
                                               extra_headers={"x-demo-no-usage": "1"})
    text = "Hello from resp-demo! You said: hello"
    if stream:
        deltas = [ev.delta for ev in raw.parse() if ev.type == "response.output_text.delta"]
        assert "".join(deltas) == text
    else:
        r = raw.parse()
        assert r.output_text == text and r.usage is None
    rec = rs.billing_record(raw.headers["x-request-id"])
    assert rec["estimated"] is True and rec["upstream"] == "openai-responses", rec
    # Prompt: "hello" (5 bytes -> 2 tokens) + 4 for its message + 3 for the reply.
    # Completion: the reply's 37 bytes of text -> 10 tokens.
    assert (rec["prompt_tokens"], rec["completion_tokens"]) == (9, 10), rec
    assert rec["credits"] == credits("test-responses", 9, 10), rec
