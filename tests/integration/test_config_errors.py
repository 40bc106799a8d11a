"""What an operator sees when the filter's configuration is wrong, in real Envoy: the filter
refuses it, Envoy does not start, and the log names the field by its path (not a line and
column of the embedded JSON)."""
import pytest

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tollgate_harness import Stack  # noqa: E402


def start_with(patch):
    s = Stack(concurrency=1, start_backend=False, backend_port=1, patch_filter=patch)
    try:
        s.start()
    except RuntimeError as e:
        return str(e)
    s.stop()
    pytest.fail("Envoy started with an invalid filter configuration")


def misspell_price(cfg):
    m = next(m for m in cfg["models"] if m["id"] == "qai-flash")
    m["prise"] = m.pop("price")
    return cfg


def misspell_price_field(cfg):
    m = next(m for m in cfg["models"] if m["id"] == "qai-pro")
    m["price"]["prompt_per_1kk"] = m["price"].pop("prompt_per_1k")
    return cfg


@pytest.mark.parametrize("patch,path", [
    (misspell_price, "models[1]: unknown field `prise`"),
    (misspell_price_field, "models[2].price: unknown field `prompt_per_1kk`"),
])
def test_unknown_config_field_is_named_by_its_path(patch, path):
    log = start_with(patch)
    assert f"configuration: {path}" in log, log[-2000:]


def _ghost(cfg):
    cfg["clusters"].append({"name": "ghost", "dialect": "openai"})
    cfg["models"].append({"id": "ghost-model", "type": "text", "cluster": "ghost"})
    return cfg


GHOST = "The gateway is misconfigured: its cluster 'ghost' is not defined in Envoy (clusters[].name must name an Envoy cluster)"


def test_a_cluster_missing_from_envoy_is_a_clear_502_in_the_callers_dialect():
    from conftest import Http

    with Stack(concurrency=1, patch_filter=_ghost) as s:
        http = Http(s.url)
        msg = [{"role": "user", "content": "x"}]
        cases = [
            ("/v1/chat/completions", {"model": "ghost-model", "messages": msg}, {"Authorization": "Bearer sk-demo-active"},
             lambda b: (b["error"]["code"], b["error"]["message"])),
            ("/v1/messages", {"model": "ghost-model", "max_tokens": 5, "messages": msg}, {"x-api-key": "sk-demo-active"},
             lambda b: (b["error"]["type"], b["error"]["message"])),
            ("/v1beta/models/ghost-model:generateContent", {"contents": [{"parts": [{"text": "x"}]}]},
             {"x-goog-api-key": "sk-demo-active"}, lambda b: (b["error"]["status"], b["error"]["message"])),
        ]
        for (path, body, headers, read), kind in zip(cases, ["upstream_error", "api_error", "UNAVAILABLE"]):
            status, h, b = http.json("POST", path, body, headers)
            h = {k.lower(): v for k, v in h.items()}
            assert (status, read(b), h["x-should-retry"]) == (502, (kind, GHOST), "false"), b
            rec = s.billing_record(h["x-request-id"])
            assert (rec["status"], rec["error"], rec["cluster"], rec["credits"]) == (502, "upstream_error", "ghost", 0)
        # Its neighbours still work.
        status, _, b = http.json("POST", "/v1/chat/completions", {"model": "qai-flash", "messages": msg},
                                 {"Authorization": "Bearer sk-demo-active"})
        assert status == 200
