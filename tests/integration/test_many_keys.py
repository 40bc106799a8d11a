"""Many keys in real Envoy (issue 17): the filter reads its configuration from Envoy a piece at a
time (64 KiB), so a key list longer than one piece must come out whole: every key is found
wherever it falls in the text, an unknown key is refused (401), a key of an inactive account is
refused (403), and a key whose account and quota are named after the keys resolves."""
import hashlib
import json
import urllib.error
import urllib.request

import pytest

from tollgate_harness import Stack

KEYS = 3000  # about 370 KB of configuration: six pieces


def sha(s: str) -> str:
    return hashlib.sha256(s.encode()).hexdigest()


def _patch(cfg):
    keys = [{"id": f"key-many-{i}", "account": "acct-many", "sha256": sha(f"sk-many-{i}")} for i in range(KEYS)]
    keys.append({"id": "key-many-off", "account": "acct-many-off", "sha256": sha("sk-many-off")})
    # The keys before the accounts they name: JSON object members come in any order.
    out = {"keys": cfg.pop("keys") + keys}
    out.update(cfg)
    out["accounts"] = cfg["accounts"] + [{"id": "acct-many", "rpm": 100000}, {"id": "acct-many-off", "status": "inactive"}]
    return out


@pytest.fixture(scope="module")
def many():
    with Stack(concurrency=1, patch_filter=_patch) as s:
        yield s


def chat(stack, key: str) -> tuple[int, dict]:
    body = json.dumps({"model": "qai-flash", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}).encode()
    req = urllib.request.Request(stack.url + "/v1/chat/completions", data=body, method="POST",
                                 headers={"content-type": "application/json", "authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_every_key_of_a_long_list_is_found(many):
    text = json.dumps(_patch({"keys": [], "accounts": []}))
    assert len(text) > 5 * 64 * 1024
    for i in (0, 1, 527, 1499, 2048, KEYS - 1):
        status, body = chat(many, f"sk-many-{i}")
        assert status == 200, (i, body)
        assert body["object"] == "chat.completion"
    assert chat(many, "sk-demo-active")[0] == 200


def test_unknown_and_inactive_keys_are_refused(many):
    status, body = chat(many, f"sk-many-{KEYS}")
    assert status == 401
    assert body["error"]["message"] == "Invalid API key"
    status, body = chat(many, "sk-many-off")
    assert status == 403
    assert body["error"]["message"] == "The account of this API key is inactive"
