"""The bench's noop and floor configurations (issue 17) load their filters into real Envoy and
pass requests: a chat request, a streamed one, and a rejection (`make test` runs this; it is cheap:
one backend, two Envoys, a handful of requests)."""
import json
import time
import urllib.error
import urllib.request

import pytest

import bench
from tollgate_harness import BACKEND_BIN, free_port


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bench-floor")
    proc = bench.Proc([str(BACKEND_BIN), "--listen", "127.0.0.1:0", "--port-file", str(tmp / "backend.port"),
                       "--no-capture", "--threads", "1"], tmp / "backend.log")
    try:
        deadline = time.time() + 10
        while not (tmp / "backend.port").exists():
            assert time.time() < deadline and proc.p.poll() is None, "demo backend did not start"
            time.sleep(0.02)
        yield tmp, int((tmp / "backend.port").read_text())
    finally:
        proc.stop()


def post(port: int, path: str, body: dict, headers: dict) -> tuple[int, bytes]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                 headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.mark.parametrize("which", ["noop", "floor"])
def test_floor_configuration_loads_its_filter_and_passes_requests(backend, which):
    tmp, bport = backend
    gw, admin = free_port(), free_port()
    doc = bench.config_doc(which, gw, admin, bport)
    filters = bench._hcm(doc)["http_filters"]
    assert [f["name"] for f in filters] == ["envoy.filters.http.wasm", "envoy.filters.http.router"]
    wasm = filters[0]["typed_config"]["config"]["vm_config"]["code"]["local"]["filename"]
    assert wasm == str({"noop": bench.NOOP_WASM, "floor": bench.FLOOR_WASM}[which])
    envoy, _ = bench.start_envoy(doc, tmp, f"test-{which}")
    try:
        by_name = {sc["id"]: sc for sc in bench.scenarios()}
        chat = by_name["1-openai"]
        status, body = post(gw, chat["path"], chat["body"], chat["headers"])
        assert status == 200, body[:300]
        assert json.loads(body)["object"] == "chat.completion"
        stream = by_name["3-openai-stream"]
        status, body = post(gw, stream["path"], stream["body"], {**stream["headers"], "x-demo-chunks": "5"})
        assert status == 200, body[:300]
        # The role chunk, 5 content chunks, the finish chunk and [DONE], whole and in order.
        assert body.count(b"data: ") == 8
        assert body.endswith(b"data: [DONE]\n\n")
        bad = by_name["5a-bad-key"]
        status, _ = post(gw, bad["path"], bad["body"], bad["headers"])
        assert status == 401
        # The filter really ran in Envoy: its VM is counted in Envoy's wasm stats.
        with urllib.request.urlopen(f"http://127.0.0.1:{admin}/stats?filter=wasm.envoy.wasm.runtime.v8.active", timeout=5) as r:
            stats = r.read().decode()
        assert "wasm.envoy.wasm.runtime.v8.active: " in stats
        assert int(stats.split("wasm.envoy.wasm.runtime.v8.active: ")[1].split()[0]) >= 1
    finally:
        envoy.stop()
