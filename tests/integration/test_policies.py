"""Per-key policies in real Envoy: a key's allowed models (the demo key sk-demo-flash-only may use
only qai-flash): 403 `forbidden` in each dialect, and model lists that show only its models."""
import openai
import pytest

FLASH_ONLY = "sk-demo-flash-only"
AUTH = {"Authorization": f"Bearer {FLASH_ONLY}"}


def test_flash_only_key_lists_one_model(http):
    status, _, body = http.json("GET", "/v1/models", headers=AUTH)
    assert (status, [m["id"] for m in body["data"]]) == (200, ["qai-flash"])
    status, _, body = http.json("GET", "/v1beta/models", headers={"x-goog-api-key": FLASH_ONLY})
    assert (status, [m["name"] for m in body["models"]]) == (200, ["models/qai-flash"])
    status, _, body = http.json("GET", "/v1/models/qai-max", headers=AUTH)
    assert status == 403
    assert body["error"]["code"] == "forbidden"
    assert http.json("GET", "/v1/models/qai-flash", headers=AUTH)[0] == 200
    # A key without a list still sees the whole catalog.
    status, _, body = http.json("GET", "/v1/models", headers={"Authorization": "Bearer sk-demo-active"})
    assert status == 200 and len(body["data"]) == 14  # the demo catalog: 12 generation models, qai-embed and auto


def test_flash_only_key_gets_403_naming_the_model_in_each_dialect(stack, http):
    # Other modules share this Envoy and may have used the key already: only this test's records count.
    earlier = {r["request_id"] for r in stack.billing_records()}
    client = openai.OpenAI(base_url=stack.url + "/v1", api_key=FLASH_ONLY, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError) as e:
        client.chat.completions.create(model="qai-max", messages=[{"role": "user", "content": "hi"}])
    assert e.value.status_code == 403
    assert e.value.body["code"] == "forbidden"
    assert e.value.body["param"] == "model"
    assert e.value.body["message"] == "This API key may not use the model 'qai-max'"
    ok = client.chat.completions.create(model="qai-flash", messages=[{"role": "user", "content": "hi"}])
    assert ok.model == "qai-flash"
    chunks = list(client.chat.completions.create(model="qai-flash", stream=True,
                                                 messages=[{"role": "user", "content": "hi"}]))
    assert chunks[0].model == "qai-flash"

    body = {"model": "test-claude", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    status, _, v = http.json("POST", "/v1/messages", body, {"x-api-key": FLASH_ONLY, "anthropic-version": "2023-06-01"})
    assert (status, v["type"], v["error"]["type"]) == (403, "error", "permission_error")
    assert v["error"]["message"] == "This API key may not use the model 'test-claude'"

    g = {"contents": [{"parts": [{"text": "hi"}]}]}
    status, _, v = http.json("POST", "/v1beta/models/qai-pro:generateContent", g, {"x-goog-api-key": FLASH_ONLY})
    assert (status, v["error"]["code"], v["error"]["status"]) == (403, 403, "PERMISSION_DENIED")
    assert v["error"]["message"] == "This API key may not use the model 'qai-pro'"

    # Each refusal is recorded under the key, billed nothing; the served requests are billed.
    stack.billing_record(key_id="key-demo-flash-only", status=403, front="gemini")
    recs = [r for r in stack.billing_records()
            if r["key_id"] == "key-demo-flash-only" and r["request_id"] not in earlier
            and r["endpoint"] in ("chat_completions", "messages", "generate_content")]
    assert sorted((r["status"], r["front"], r["error"], r["credits"] > 0) for r in recs) == [
        (200, "openai", None, True),
        (200, "openai", None, True),
        (403, "anthropic", "forbidden", False),
        (403, "gemini", "forbidden", False),
        (403, "openai", "forbidden", False),
    ]
