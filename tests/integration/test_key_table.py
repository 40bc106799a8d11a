"""The compact key list (`key_table`, issues 15 and 17) in real Envoy through ECDS: a table of a
few thousand keys serves every key wherever its line falls in the 64 KiB pieces the filter reads,
refuses unknown keys (401) and keys of an inactive account (403); the key tool adds and revokes
table keys live, each taking effect within a second; an invalid line is refused with its line
number and the previous configuration keeps serving."""
import base64
import hashlib
import json
import re
import subprocess
import time

import pytest

from conftest import Http
from tollgate_harness import ROOT, Stack

KEYTOOL = ROOT / "target" / "release" / "tollgate-keytool"
CHAT = "/v1/chat/completions"
HI = {"model": "qai-flash", "messages": [{"role": "user", "content": "hi"}]}
KEYS = 4000


def b64(key: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(key.encode()).digest()).decode().rstrip("=")


def line(i: int) -> str:
    # Every third key names its own id; the others take the default (key- and 12 hex digits).
    return f"{b64(f'sk-table-{i}')} acct-table" + (f" id=key-table-{i}" if i % 3 == 0 else "")


def _patch(cfg):
    next(a for a in cfg["accounts"] if a["id"] == "acct-demo")["rpm"] = 1_000_000
    cfg["accounts"] += [{"id": "acct-table", "rpm": 1_000_000}, {"id": "acct-table-off", "status": "inactive"}]
    lines = [line(i) for i in range(KEYS)] + [f"{b64('sk-table-off')} acct-table-off"]
    # The table before the accounts its lines name: object members come in any order.
    return {"key_table": "\n".join(lines), **cfg}


@pytest.fixture(scope="module")
def table():
    with Stack(concurrency=2, ecds=True, patch_filter=_patch) as s:
        yield s


def status_of(stack, key):
    status, _, _ = Http(stack.url).request("POST", CHAT, HI, {"Authorization": f"Bearer {key}"})
    return status


def until(stack, key, want, limit_s=3.0):
    """Seconds until `key`'s request gets `want` (polling every 20 ms); fails past `limit_s`."""
    t0 = time.monotonic()
    while True:
        got = status_of(stack, key)
        elapsed = time.monotonic() - t0
        if got == want:
            return elapsed
        assert elapsed < limit_s, f"still {got}, not {want}, {elapsed:.2f} s after the update"
        time.sleep(0.02)


def keytool(stack, *args, stdin=None):
    r = subprocess.run([str(KEYTOOL), *args, "--file", str(stack.ecds_path)], input=stdin,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip(), r.stderr.strip()


def config_stats(stack):
    text = stack.stats()
    return tuple(int(re.search(rf"^wasmcustom\.tollgate\.config\.{n}: (\d+)$", text, re.M).group(1))
                 for n in ("applied", "rejected"))


def test_every_key_of_a_table_is_served(table):
    text = table.live_config()["key_table"]
    assert len(text) > 3 * 64 * 1024 and len(text.splitlines()) == KEYS + 1
    for i in (0, 1, 2, 1337, 2048, KEYS - 1):
        assert status_of(table, f"sk-table-{i}") == 200, i
    assert status_of(table, f"sk-table-{KEYS}") == 401
    assert status_of(table, "sk-table-off") == 403
    assert status_of(table, "sk-demo-active") == 200  # the `keys` list still serves beside the table
    assert config_stats(table) == (1, 0)


def test_the_key_tool_adds_and_revokes_table_keys_live_within_a_second(table):
    applied, _ = config_stats(table)
    key, err = keytool(table, "add-key", "--account", "acct-table")
    assert "shown only this once" in err
    cfg = table.live_config()
    assert cfg["key_table"].splitlines()[-1] == f"{b64(key)} acct-table"
    assert hashlib.sha256(key.encode()).hexdigest() not in json.dumps(cfg["keys"])  # a line, not an entry
    assert until(table, key, 200) < 1.0
    keytool(table, "revoke-key", "--key", "-", stdin=key)
    assert until(table, key, 401) < 1.0
    # A key of the initial table, by its id: a named one and a default one.
    keytool(table, "revoke-key", "--id", "key-table-3")
    assert until(table, "sk-table-3", 401) < 1.0
    default = "key-" + hashlib.sha256(b"sk-table-4").hexdigest()[:12]
    keytool(table, "revoke-key", "--id", default)
    assert until(table, "sk-table-4", 401) < 1.0
    assert [status_of(table, k) for k in ("sk-table-3", "sk-table-4", "sk-table-5")] == [401, 401, 200]
    assert config_stats(table) == (applied + 4, 0)
    assert len(table.live_config()["key_table"].splitlines()) == KEYS - 1


def test_an_invalid_line_is_refused_with_its_number_and_nothing_changes(table):
    applied, rejected = config_stats(table)
    cfg = table.live_config()
    lines = cfg["key_table"].split("\n")
    # A new key at the end, and a malformed line (cap) in the middle: neither may take effect.
    lines.append(f"{b64('sk-table-refused')} acct-table")
    lines[2500] += " cap=-1"
    cfg["key_table"] = "\n".join(lines)
    table.update_config(cfg)
    deadline = time.monotonic() + 5
    while config_stats(table)[1] != rejected + 1:
        assert time.monotonic() < deadline, "the refusal was not counted"
        time.sleep(0.02)
    assert config_stats(table) == (applied, rejected + 1)
    assert (status_of(table, "sk-table-refused"), status_of(table, "sk-table-2600")) == (401, 200)
    log = [ln for ln in table.envoy_log_text().splitlines()
           if "tollgate: configuration update refused, the previous configuration keeps serving" in ln]
    assert len(log) == 1 and "key_table line 2501: cap: must be a non-negative number" in log[0], log
    lines[2500] = lines[2500].removesuffix(" cap=-1")
    cfg["key_table"] = "\n".join(lines)
    table.update_config(cfg)
    assert until(table, "sk-table-refused", 200) < 1.0
    assert config_stats(table) == (applied + 1, rejected + 1)


def test_table_keys_bill_under_their_ids_default_short_and_long():
    # Ids of up to 18 bytes are stored in the key record itself, longer ones on the heap: each
    # kind, and the default id, reaches the billing record as configured.
    ids = {"sk-ids-default": "key-" + hashlib.sha256(b"sk-ids-default").hexdigest()[:12],
           "sk-ids-short": "k-short", "sk-ids-18": "exactly-18-bytes-x",
           "sk-ids-long": "key-with-an-id-longer-than-eighteen-bytes"}

    def patch(cfg):
        cfg["accounts"].append({"id": "acct-ids", "rpm": 1000})
        lines = [f"{b64(k)} acct-ids" + ("" if k == "sk-ids-default" else f" id={v}") for k, v in ids.items()]
        return {"key_table": "\n".join(lines), **cfg}

    with Stack(patch_filter=patch) as s:
        for key, key_id in ids.items():
            status, headers, _ = Http(s.url).request("POST", CHAT, HI, {"Authorization": f"Bearer {key}"})
            assert status == 200, key
            assert s.billing_record(headers["x-request-id"])["key_id"] == key_id
