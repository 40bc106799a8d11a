"""Live configuration at scale (issue 15): with N keys in the filter's configuration (ECDS file),
the time from the file's rename until a newly added key is accepted and the key added by the
update before is refused, and Envoy's memory (RSS) across successive updates.

    .venv/bin/python tests/bench/live_config_bench.py [--keys 100000,1000000] [--updates 20]
        [--format table|list]

`--format table` (the default) writes the keys as the compact `key_table` (one line per key,
about 60 bytes with these account names); `list` as `keys` objects (about 125 bytes a key), the
representation before it. Needs `make build`. Prints a table and writes bench-results/live_config.json. Each update adds
one key and revokes the previous update's key, as `tollgate-keytool` would, but is written by
this script (the key tool's own time on the same file is measured separately, once per size)."""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))

from tollgate_harness import ROOT, Stack, ecds_document  # noqa: E402

KEYTOOL = ROOT / "target" / "release" / "tollgate-keytool"
ACCOUNTS = 100


def bench_keys(n: int) -> list[dict]:
    return [{"id": f"key-bench-{i}", "account": f"acct-bench-{i % ACCOUNTS}",
             "sha256": hashlib.sha256(f"sk-bench-{i}".encode()).hexdigest()} for i in range(n)]


def bench_lines(n: int) -> list[str]:
    """The same keys as `bench_keys`, as `key_table` lines (their ids the default one)."""
    return [f"{b64(f'sk-bench-{i}')} acct-bench-{i % ACCOUNTS}" for i in range(n)]


def b64(key: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(key.encode()).digest()).decode().rstrip("=")


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process, in KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        fields[k] = v.strip()
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def status_of(url: str, key: str) -> int:
    body = json.dumps({"model": "qai-flash", "messages": [{"role": "user", "content": "hi"}]}).encode()
    req = urllib.request.Request(f"{url}/v1/chat/completions", data=body, method="POST",
                                 headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        e.read()
        return e.code


def wait_for(url: str, key: str, want: int, t0: float, limit: float = 120) -> float:
    while True:
        if status_of(url, key) == want:
            return time.monotonic() - t0
        if time.monotonic() - t0 > limit:
            raise RuntimeError(f"{key} not {want} after {limit} s")
        time.sleep(0.01)


def rename_into_place(path: Path, text: str) -> float:
    """Writes a temporary file next to `path`, flushes it, renames it; the time of the rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    t0 = time.monotonic()
    os.rename(tmp, path)
    return t0


class Background:
    """A client in a loop throughout (`sk-demo-active`, a chat completion every 20 ms): statuses
    and the slowest answer, to see what updates cost the traffic."""

    def __init__(self, url: str):
        self.url, self.stop, self.statuses, self.slowest = url, threading.Event(), [], 0.0
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while not self.stop.is_set():
            t = time.monotonic()
            try:
                self.statuses.append(status_of(self.url, "sk-demo-active"))
            except Exception as e:  # noqa: BLE001 - recorded, reported
                self.statuses.append(f"{type(e).__name__}")
            self.slowest = max(self.slowest, time.monotonic() - t)
            time.sleep(0.02)

    def result(self) -> dict:
        self.stop.set()
        self.thread.join(120)
        return {"requests": len(self.statuses), "not_200": len([s for s in self.statuses if s != 200]),
                "slowest_s": round(self.slowest, 3)}


def run(n: int, updates: int, fmt: str) -> dict:
    table = fmt == "table"
    keys = [] if table else bench_keys(n)
    base_table = "\n".join(bench_lines(n)) if table else ""

    def patch(cfg):
        cfg["accounts"] += [{"id": f"acct-bench-{i}", "rpm": 1_000_000} for i in range(ACCOUNTS)]
        next(a for a in cfg["accounts"] if a["id"] == "acct-demo")["rpm"] = 1_000_000
        if table:
            cfg["key_table"] = base_table
        else:
            cfg["keys"] += keys
        return cfg

    t_start = time.monotonic()
    stack = Stack(concurrency=2, ecds=True, patch_filter=patch, per_cluster_backends=False, strict=False,
                  ready_timeout=600)
    stack.start()
    started = time.monotonic() - t_start
    out = {"keys": n, "format": fmt, "file_bytes": stack.ecds_path.stat().st_size, "start_s": round(started, 2),
           "updates": []}
    try:
        pid = stack.envoy_proc.pid
        assert status_of(stack.url, "sk-bench-0") == 200
        out["rss_start_mib"] = round(rss_kib(pid)[0] / 1024, 1)
        resource = json.loads(stack.ecds_path.read_text())["resources"][0]["typed_config"]
        background = Background(stack.url)
        cfg = json.loads(resource["config"]["configuration"]["value"])
        previous = None
        for u in range(updates):
            key = f"sk-bench-new-{u}"
            if table:
                # The previous update's line is left out: revoked.
                cfg["key_table"] = base_table + f"\n{b64(key)} acct-demo"
            else:
                cfg["keys"].append({"id": f"key-bench-new-{u}", "account": "acct-demo",
                                    "sha256": hashlib.sha256(key.encode()).hexdigest()})
                if previous is not None:
                    cfg["keys"] = [k for k in cfg["keys"] if k["id"] != f"key-bench-new-{u - 1}"]
            text = json.dumps(ecds_document(resource, cfg))
            t0 = rename_into_place(stack.ecds_path, text)
            added = wait_for(stack.url, key, 200, t0)
            revoked = wait_for(stack.url, previous, 401, t0) if previous else None
            time.sleep(0.5)  # let the previous configuration's VMs contexts go
            rss, hwm = rss_kib(pid)
            out["updates"].append({"added_s": round(added, 3), "revoked_s": round(revoked, 3) if revoked else None,
                                   "rss_mib": round(rss / 1024, 1), "hwm_mib": round(hwm / 1024, 1)})
            print(f"  {n} keys, update {u + 1}: added {added:.3f} s, revoked "
                  f"{'-' if revoked is None else f'{revoked:.3f} s'}, RSS {rss / 1024:.0f} MiB (peak {hwm / 1024:.0f})",
                  flush=True)
            previous = key
        out["traffic"] = background.result()
        print(f"  traffic throughout: {out['traffic']}", flush=True)
        # The key tool's own time on this file (read, validate with the filter's parser, write).
        t = time.monotonic()
        r = subprocess.run([str(KEYTOOL), "add-key", "--account", "acct-demo", "--file", str(stack.ecds_path)],
                           capture_output=True, text=True)
        out["keytool_add_key_s"] = round(time.monotonic() - t, 2)
        if r.returncode != 0:
            raise RuntimeError(r.stderr)
        new_key = r.stdout.strip()
        out["keytool_key_accepted_s"] = round(wait_for(stack.url, new_key, 200, time.monotonic()), 3)
        t = time.monotonic()
        r = subprocess.run([str(KEYTOOL), "revoke-key", "--key", "-", "--file", str(stack.ecds_path)],
                           input=new_key, capture_output=True, text=True)
        out["keytool_revoke_key_s"] = round(time.monotonic() - t, 2)
        if r.returncode != 0:
            raise RuntimeError(r.stderr)
        out["keytool_key_refused_s"] = round(wait_for(stack.url, new_key, 401, time.monotonic()), 3)
        print(f"  key tool: add-key {out['keytool_add_key_s']} s (accepted {out['keytool_key_accepted_s']} s "
              f"after), revoke-key {out['keytool_revoke_key_s']} s (refused {out['keytool_key_refused_s']} s "
              "after)", flush=True)
    finally:
        stack.stop()
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", default="100000,1000000")
    ap.add_argument("--updates", type=int, default=20)
    ap.add_argument("--format", choices=("table", "list"), default="table")
    args = ap.parse_args()
    results = []
    for n in (int(x) for x in args.keys.split(",")):
        print(f"{n} keys ({args.format}):", flush=True)
        results.append(run(n, args.updates, args.format))
    print()
    print(f"{'format':>6} {'keys':>8} {'file MB':>8} {'start s':>8} {'added s (median/max)':>21} {'revoked s (median/max)':>23} "
          f"{'RSS MiB start/after 1/after last':>33}")
    for r in results:
        added = sorted(u["added_s"] for u in r["updates"])
        revoked = sorted(u["revoked_s"] for u in r["updates"] if u["revoked_s"] is not None)
        med = lambda xs: xs[len(xs) // 2] if xs else float("nan")  # noqa: E731
        rss = [u["rss_mib"] for u in r["updates"]]
        print(f"{r['format']:>6} {r['keys']:>8} {r['file_bytes'] / 1e6:>8.1f} {r['start_s']:>8.2f} "
              f"{med(added):>10.3f}/{max(added):<10.3f} {med(revoked):>11.3f}/{max(revoked) if revoked else 0:<11.3f} "
              f"{r['rss_start_mib']:>11.0f}/{rss[0]:.0f}/{rss[-1]:.0f}   key tool add/revoke "
              f"{r['keytool_add_key_s']}/{r['keytool_revoke_key_s']} s")
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    (out / "live_config.json").write_text(json.dumps(results, indent=2))
    print(f"written {out / 'live_config.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
