"""Live configuration through ECDS, on real Envoy, with traffic flowing throughout: the filter's
configuration comes from a watched file (as in `make run`), `tollgate-keytool` edits it, and a
client sends requests in a loop from the first test to the last (none may fail).

Each test measures from the moment the key tool returns (the file is renamed into place by then)
until the gateway's answer changes."""
import http.client
import json
import re
import subprocess
import threading
import time

import pytest

from conftest import Http
from tollgate_harness import ROOT, Stack, write_atomically

KEYTOOL = ROOT / "target" / "release" / "tollgate-keytool"
CHAT = "/v1/chat/completions"
HI = {"model": "qai-flash", "messages": [{"role": "user", "content": "hi"}]}
SANDBOX_KEY = "sk-live-sandbox-key"


def _patch(cfg):
    # The background loop's account: a rate it cannot reach in this module.
    next(a for a in cfg["accounts"] if a["id"] == "acct-demo")["rpm"] = 1_000_000
    # A key with a sandbox quota of 2 calls a day (counters test).
    import hashlib

    cfg["keys"].append({"id": "key-live-sandbox", "account": "acct-demo", "sandbox_daily_quota": 2,
                        "sha256": hashlib.sha256(SANDBOX_KEY.encode()).hexdigest()})
    return cfg


class Loop:
    """Requests in a loop on one kept-alive connection, every status recorded."""

    def __init__(self, port):
        self.port = port
        self.results: list[int | str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        body = json.dumps(HI)
        while not self.stop.is_set():
            try:
                conn.request("POST", CHAT, body, {"Authorization": "Bearer sk-demo-active",
                                                   "Content-Type": "application/json"})
                r = conn.getresponse()
                r.read()
                self.results.append(r.status)
            except Exception as e:  # noqa: BLE001 - any failure is recorded and fails the module
                self.results.append(f"{type(e).__name__}: {e}")
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            time.sleep(0.01)
        conn.close()


@pytest.fixture(scope="module")
def live():
    s = Stack(concurrency=2, ecds=True, patch_filter=_patch)
    s.start()
    loop = Loop(s.gateway_port)
    loop.thread.start()
    s.loop = loop
    yield s
    loop.stop.set()
    loop.thread.join(5)
    s.stop()


def keytool(live, *args, stdin=None):
    r = subprocess.run([str(KEYTOOL), *args, "--file", str(live.ecds_path)], input=stdin,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip(), r.stderr.strip()


def status_of(live, key, body=None, headers=None):
    status, _, _ = Http(live.url).request("POST", CHAT, body or HI, {"Authorization": f"Bearer {key}", **(headers or {})})
    return status


def until(live, key, want, limit_s=3.0):
    """Seconds until `key`'s request gets `want` (polling every 20 ms); fails past `limit_s`."""
    t0 = time.monotonic()
    while True:
        got = status_of(live, key)
        elapsed = time.monotonic() - t0
        if got == want:
            return elapsed
        assert elapsed < limit_s, f"still {got}, not {want}, {elapsed:.2f} s after the update"
        time.sleep(0.02)


def config_stats(live):
    text = live.stats()
    return tuple(int(re.search(rf"^wasmcustom\.tollgate\.config\.{n}: (\d+)$", text, re.M).group(1))
                 for n in ("applied", "rejected"))


def test_the_stack_serves_its_configuration_through_ecds(live):
    doc = json.loads(live.ecds_path.read_text())
    assert [r["name"] for r in doc["resources"]] == ["tollgate"]
    envoy_cfg = live.config_path.read_text()
    assert "config_discovery" in envoy_cfg and "watched_directory" in envoy_cfg
    assert config_stats(live) == (1, 0)
    prometheus = live.stats("prometheus").splitlines()
    assert [line for line in prometheus if line.startswith("tollgate_config_")] == [
        "tollgate_config_applied{} 1", "tollgate_config_rejected{} 0"]
    assert status_of(live, "sk-demo-active") == 200


def test_a_key_added_is_accepted_within_a_second(live):
    applied, _ = config_stats(live)
    key, err = keytool(live, "add-key", "--account", "acct-demo")
    assert re.fullmatch(r"sk-[A-Za-z0-9]{40}", key), key
    assert "shown only this once" in err and key not in err
    assert until(live, key, 200) < 1.0
    assert config_stats(live) == (applied + 1, 0)
    assert key not in live.ecds_path.read_text()  # only its hash is configured


def test_a_revoked_key_gets_401_within_a_second(live):
    key, _ = keytool(live, "add-key", "--account", "acct-demo")
    until(live, key, 200)
    keytool(live, "revoke-key", "--key", "-", stdin=key)
    assert until(live, key, 401) < 1.0
    assert [status_of(live, key) for _ in range(5)] == [401] * 5


def test_an_account_set_inactive_gets_403_within_a_second(live):
    _, err = keytool(live, "set-account", "--id", "acct-live", "--rpm", "50")
    assert err.startswith("added account")
    key, _ = keytool(live, "add-key", "--account", "acct-live")
    until(live, key, 200)
    keytool(live, "set-account", "--id", "acct-live", "--status", "inactive")
    assert until(live, key, 403) < 1.0
    keytool(live, "set-account", "--id", "acct-live", "--status", "active")
    assert until(live, key, 200) < 1.0


def test_an_in_flight_stream_is_not_cut_by_an_update(live):
    conn = http.client.HTTPConnection("127.0.0.1", live.gateway_port, timeout=30)
    conn.request("POST", CHAT, json.dumps({**HI, "stream": True}),
                 {"Authorization": "Bearer sk-demo-active", "Content-Type": "application/json",
                  "x-demo-chunks": "20", "x-demo-chunk-delay-ms": "100"})
    r = conn.getresponse()
    assert r.status == 200
    first = r.readline()
    applied, _ = config_stats(live)
    key, _ = keytool(live, "add-key", "--account", "acct-demo")
    until(live, key, 200)
    assert config_stats(live)[0] == applied + 1  # the update applied while the stream was open
    rest = (first + r.read()).decode()
    conn.close()
    pieces = [json.loads(line[6:]) for line in rest.splitlines() if line.startswith("data: {")]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in pieces if c["choices"])
    assert text == "".join(f"tok{i} " for i in range(20))
    assert rest.rstrip().endswith("data: [DONE]")
    rid = r.headers["x-request-id"]
    rec = live.billing_record(rid)
    assert (rec["status"], rec["complete"], rec["estimated"]) == (200, True, False)


def test_rate_quota_and_spend_counters_carry_over_an_update(live):
    # Rate: sk-demo-limited (5 a minute) at 4 of 5 stays at 4. Windows are UTC minutes: start
    # early in one so that the update and the checks end in it.
    if time.time() % 60 > 40:
        time.sleep(60.2 - time.time() % 60)
    http = Http(live.url)
    remaining = []
    for _ in range(4):
        status, h, _ = http.request("POST", CHAT, HI, {"Authorization": "Bearer sk-demo-limited"})
        remaining.append((status, h["x-ratelimit-remaining-requests"]))
    assert remaining == [(200, "4"), (200, "3"), (200, "2"), (200, "1")]
    # Sandbox quota: 1 of the key's 2 daily calls.
    sandbox = {**HI, "model": "qai-hello-world"}
    assert status_of(live, SANDBOX_KEY, sandbox) == 200
    # Spend: sk-demo-capped (1 credit) spends 0.8 (4000 completion tokens at 0.2 a thousand).
    assert status_of(live, "sk-demo-capped", {**HI, "max_tokens": 4000}, {"x-demo-usage-fixed": "0 4000"}) == 200
    applied, _ = config_stats(live)
    key, _ = keytool(live, "add-key", "--account", "acct-demo")
    until(live, key, 200)
    assert config_stats(live)[0] == applied + 1
    status, h, _ = http.request("POST", CHAT, HI, {"Authorization": "Bearer sk-demo-limited"})
    assert (status, h["x-ratelimit-remaining-requests"]) == (200, "0")
    assert status_of(live, "sk-demo-limited") == 429
    assert status_of(live, SANDBOX_KEY, sandbox) == 200
    status, _, body = Http(live.url).json("POST", CHAT, sandbox, {"Authorization": f"Bearer {SANDBOX_KEY}"})
    assert (status, body["error"]["code"]) == (429, "sandbox_quota_exceeded")
    # 0.8 spent: a 0.3 reservation no longer fits the cap, a 0.1 one does.
    status, _, body = Http(live.url).json("POST", CHAT, {**HI, "max_tokens": 1500}, {"Authorization": "Bearer sk-demo-capped"})
    assert (status, body["error"]["code"]) == (402, "insufficient_funds")
    assert status_of(live, "sk-demo-capped", {**HI, "max_tokens": 500}) == 200


def _unknown_field(cfg):
    cfg["defaults"]["rmp"] = 10
    return "bytes): configuration: defaults: unknown field `rmp`"


def _dangling_cluster(cfg):
    cfg["models"].append({"id": "qai-new", "type": "text", "cluster": "demo_txet"})
    return f"bytes): models[{len(cfg['models']) - 1}].cluster: no cluster named 'demo_txet' in 'clusters'"


def _malformed_hash(cfg):
    cfg["keys"].append({"id": "key-bad", "account": "acct-demo", "sha256": "not-a-hash"})
    return f"bytes): keys[{len(cfg['keys']) - 1}].sha256: must be 64 hexadecimal characters"


def test_an_invalid_update_changes_nothing_is_reported_and_a_valid_one_after_it_applies(live):
    import hashlib

    applied, rejected = config_stats(live)
    good_file = live.ecds_path.read_text()
    good = json.dumps(live.live_config())
    for n, breaks in enumerate([_unknown_field, _dangling_cluster, _malformed_hash], 1):
        cfg = json.loads(good)
        # The same document also adds a key and makes sk-demo-active's account inactive: neither
        # may take effect.
        key = f"sk-live-refused-{n}"
        cfg["keys"].append({"id": f"key-refused-{n}", "account": "acct-demo",
                            "sha256": hashlib.sha256(key.encode()).hexdigest()})
        next(a for a in cfg["accounts"] if a["id"] == "acct-demo")["status"] = "inactive"
        expected = breaks(cfg)
        live.update_config(cfg)
        deadline = time.monotonic() + 5
        while config_stats(live)[1] != rejected + n:
            assert time.monotonic() < deadline, "the refusal was not counted"
            time.sleep(0.02)
        time.sleep(0.5)
        assert (status_of(live, key), status_of(live, "sk-demo-active")) == (401, 200)
        assert config_stats(live) == (applied, rejected + n)
        log = [line for line in live.envoy_log_text().splitlines()
               if "tollgate: configuration update refused, the previous configuration keeps serving" in line]
        assert len(log) == n and expected in log[-1], log
    assert "extension_config_discovery.http_filter.tollgate.update_rejected: 3" in live.stats()
    # The key tool starts from the file as it is: put the serving document back first (the same
    # bytes: not counted as applied again).
    write_atomically(live.ecds_path, good_file)
    key, _ = keytool(live, "add-key", "--account", "acct-demo")
    assert until(live, key, 200) < 1.0
    assert config_stats(live) == (applied + 1, rejected + 3)


def test_the_key_tool_refuses_an_edit_the_filter_would_refuse(live):
    before = live.ecds_path.read_text()
    r = subprocess.run([str(KEYTOOL), "add-key", "--account", "acct-nobody", "--file", str(live.ecds_path)],
                       capture_output=True, text=True)
    assert (r.returncode, r.stdout) == (1, "")
    assert "no account 'acct-nobody'" in r.stderr
    r = subprocess.run([str(KEYTOOL), "set-account", "--id", "acct-demo", "--rpm", "-1", "--file", str(live.ecds_path)],
                       capture_output=True, text=True)
    assert (r.returncode, r.stderr.strip()) == (1, "tollgate-keytool set-account: --rpm: not a valid number: -1")
    assert live.ecds_path.read_text() == before


README = (ROOT / "README.md").read_text()


def _readme_block(lang, first):
    blocks = [m.group(1) for m in re.finditer(rf"^```{lang}\n(.*?)^```", README, re.S | re.M)]
    (block,) = [b for b in blocks if b.startswith(first)]
    return block


def test_the_readme_key_tool_block_runs_as_it_is(live):
    block = _readme_block("sh", "ECDS=")
    script = re.sub(r"^ECDS=\S+", f"ECDS={live.ecds_path}", block, flags=re.M).replace("http://127.0.0.1:8080", live.url)
    r = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    models = json.loads(r.stdout.splitlines()[0])  # the new key's request was accepted
    assert models["object"] == "list"
    cfg = live.live_config()
    accounts = {a["id"]: a for a in cfg["accounts"]}
    assert accounts["acct-limited"] == {"id": "acct-limited", "status": "active", "rpm": 10, "image_rpm": 2, "spend_cap": 5}
    assert accounts["acct-new"] == {"id": "acct-new", "status": "inactive", "rpm": 60}
    assert r.stderr.splitlines()[-1].endswith(f"valid: {len(cfg['keys'])} keys, {len(cfg['accounts'])} accounts, {len(cfg['models'])} models, 4 clusters")


def test_the_readme_ecds_filter_is_what_the_harness_runs(live):
    import yaml

    readme = yaml.safe_load(_readme_block("yaml", "http_filters:"))["http_filters"]
    hcm = yaml.safe_load(live.config_path.read_text())["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    ours = hcm["http_filters"][0]
    ours["config_discovery"]["config_source"]["path_config_source"] = {
        "path": "/etc/tollgate/ecds/tollgate.ecds.json", "watched_directory": {"path": "/etc/tollgate/ecds"}}
    assert readme[0] == ours
    assert readme[1]["name"] == hcm["http_filters"][1]["name"]


def test_check_clusters_follows_the_ecds_file(live, tmp_path):
    import yaml
    import check_clusters

    doc = yaml.safe_load(live.config_path.read_text())
    assert check_clusters.missing_clusters(doc) == []
    cfg = live.live_config()
    cfg["clusters"].append({"name": "ghost", "dialect": "openai"})
    typed = json.loads(live.ecds_path.read_text())["resources"][0]["typed_config"]
    from tollgate_harness import ecds_document

    (tmp_path / "ghost.json").write_text(json.dumps(ecds_document(typed, cfg)))
    doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"][0][
        "config_discovery"]["config_source"]["path_config_source"]["path"] = str(tmp_path / "ghost.json")
    (missing,) = check_clusters.missing_clusters(doc)
    assert missing.startswith(f"listener gateway: clusters[{len(cfg['clusters']) - 1}].name 'ghost' is not a cluster")


def test_an_invalid_file_at_start_refuses_every_request_until_a_valid_update():
    def bad(cfg):
        cfg["keys"][0]["sha256"] = "xyz"
        return cfg

    with Stack(concurrency=1, ecds=True, patch_filter=bad, per_cluster_backends=False) as s:
        status, headers, body = Http(s.url).request("POST", CHAT, HI, {"Authorization": "Bearer sk-demo-active"})
        assert (status, body) == (500, b"")
        assert "tollgate: invalid configuration: keys[0].sha256: must be 64 hexadecimal characters" in s.envoy_log_text()
        assert "extension_config_discovery.http_filter.tollgate.update_rejected: 1" in s.stats()
        cfg = s.live_config()
        cfg["keys"][0]["sha256"] = "201a63e2069a85ec17a6de3cce09f822ea9803305ada9e7617c9c80e9349a6b9"
        s.update_config(cfg)
        # Within a few seconds: Envoy replaces the VM that failed first (measured 2 to 3.2 s).
        assert until(s, "sk-demo-active", 200, 10) < 10


def test_make_run_serves_through_ecds_and_prints_the_file_the_key_tool_edits():
    from tollgate_harness import free_port
    from test_make_run import start_make, stop_make

    gw, admin, backend = free_port(), free_port(), free_port()
    proc = start_make([], {"GATEWAY_PORT": str(gw), "ADMIN_PORT": str(admin), "BACKEND_PORT": str(backend)})
    lines = []
    try:
        while not lines or lines[-1] != "Ctrl-C stops everything.":
            line = proc.stdout.readline()
            assert line, "".join(lines)
            lines.append(line.rstrip("\n"))
        (path,) = [line.split()[-1] for line in lines if line.startswith("  live config ")]
        url = f"http://127.0.0.1:{gw}"

        class Gw:  # what `until` needs of a stack
            pass

        g = Gw()
        g.url = url
        r = subprocess.run([str(KEYTOOL), "add-key", "--account", "acct-demo", "--file", path],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert until(g, r.stdout.strip(), 200) < 1.0
    finally:
        stop_make(proc)


def test_zz_no_request_of_the_loop_failed(live):
    live.loop.stop.set()
    live.loop.thread.join(5)
    results = live.loop.results
    assert len(results) > 100
    assert [r for r in results if r != 200] == []
