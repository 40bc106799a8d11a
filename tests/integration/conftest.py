import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))

from tollgate_harness import Stack, free_port  # noqa: E402

UPSTREAM_SECRET = "sk-upstream-secret-for-tests"


UPSTREAM_ANTHROPIC_SECRET = "sk-ant-upstream-secret-for-tests"
UPSTREAM_GEMINI_SECRET = "goog-upstream-secret-for-tests"


def _with_upstream_credential(cfg):
    for c in cfg["clusters"]:
        if c["name"] == "demo_text":
            c["api_key"] = UPSTREAM_SECRET
    # Two more clusters on the demo backend that speak Anthropic and Gemini, and a model on each.
    cfg["clusters"].append({"name": "demo_anthropic", "dialect": "anthropic", "api_key": UPSTREAM_ANTHROPIC_SECRET})
    cfg["clusters"].append({"name": "demo_gemini", "dialect": "gemini", "api_key": UPSTREAM_GEMINI_SECRET})
    # Priced, so that every front x upstream pair bills credits (test_upstream_contract.PRICES).
    cfg["models"].append({"id": "test-claude", "type": "text", "cluster": "demo_anthropic", "upstream_model": "claude-demo",
                          "price": {"prompt_per_1k": 3.0, "completion_per_1k": 15.0}})
    cfg["models"].append({"id": "test-gemini", "type": "text", "cluster": "demo_gemini", "upstream_model": "gemini-demo",
                          "price": {"prompt_per_1k": 0.3, "completion_per_1k": 2.5}})
    return cfg


@pytest.fixture(scope="session")
def stack():
    """Real Envoy (2 workers) with the built filter, in front of one strict demo backend per
    cluster (see tollgate_harness.Stack). The text cluster gets its own upstream credential; the
    video cluster points at a closed port so unreachable-upstream handling can be tested."""
    s = Stack(
        concurrency=2,
        patch_filter=_with_upstream_credential,
        upstream_overrides={"demo_video": f"127.0.0.1:{free_port()}"},
        extra_clusters=["demo_anthropic", "demo_gemini"],
    )
    s.start()
    yield s
    s.stop()


class Http:
    """A tiny raw HTTP client for what SDKs won't send (missing fields, bad JSON, bad keys)."""

    def __init__(self, base):
        self.base = base

    def request(self, method, path, body=None, headers=None, raw=None):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers or {})
        if data is not None and "Content-Type" not in (headers or {}):
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, dict(r.headers.items()), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers.items()), e.read()

    def json(self, method, path, body=None, headers=None, raw=None):
        status, headers, data = self.request(method, path, body, headers, raw)
        return status, headers, json.loads(data) if data else None


@pytest.fixture(scope="session")
def http(stack):
    return Http(stack.url)
