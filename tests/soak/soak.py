"""`make soak`: a few minutes of mixed valid, hostile and faulty traffic against real Envoy with
`--concurrency 4`, on loopback. Passes when: no wasm VM was restarted or failed, Envoy's resident
memory after warm-up grew by less than SOAK_RSS_BOUND_MB, every request got the status its case
expects (valid requests succeed; only the deliberately cut stream may end in a read error), and
every request has exactly one billing record, matched by the `x-request-id` Envoy returned.
Prints a summary. SOAK_SECONDS (default 180), SOAK_CLIENTS (default 8)."""
import collections
import http.client
import json
import os
import random
import re
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
from tollgate_harness import DEMO_KEYS, Stack  # noqa: E402

SECONDS = float(os.environ.get("SOAK_SECONDS", "180"))
CLIENTS = int(os.environ.get("SOAK_CLIENTS", "8"))
RSS_BOUND_MB = float(os.environ.get("SOAK_RSS_BOUND_MB", "40"))
KEY = DEMO_KEYS["active"]
VM_CRASH = re.compile(r"panicked at|Function: proxy_on_\w+ failed|RuntimeError")

CHAT = {"model": "qai-flash", "messages": [{"role": "user", "content": "soak test prompt"}]}
OK, CUT = {200}, "cut"  # CUT: 200, and the body may end early (the backend cuts the stream)
CASES = [
    # (weight, method, path, headers, body, the statuses it must get)
    (20, "POST", "/v1/chat/completions", {"authorization": f"Bearer {KEY}"}, json.dumps(CHAT), OK),
    (15, "POST", "/v1/chat/completions", {"authorization": f"Bearer {KEY}", "x-demo-chunks": "50"}, json.dumps({**CHAT, "stream": True}), OK),
    (10, "POST", "/v1/messages", {"x-api-key": KEY, "anthropic-version": "2023-06-01"},
     json.dumps({"model": "qai-flash", "max_tokens": 64, "stream": True, "messages": CHAT["messages"]}), OK),
    (10, "POST", "/v1beta/models/qai-flash:streamGenerateContent?alt=sse", {"x-goog-api-key": KEY},
     json.dumps({"contents": [{"parts": [{"text": "soak"}]}]}), OK),
    (5, "POST", "/v1/images/generations", {"authorization": f"Bearer {KEY}"}, json.dumps({"model": "qai-imagine-turbo", "prompt": "a"}), OK),
    (5, "GET", "/v1/models", {"authorization": f"Bearer {KEY}"}, None, OK),
    # hostile
    (5, "POST", "/v1/chat/completions", {"authorization": f"Bearer {KEY}"}, '{"model": "qai-flash", "messages": [{', {400}),
    (5, "POST", "/v1/chat/completions", {"authorization": "Bearer sk-soak-wrong"}, json.dumps(CHAT), {401}),
    (3, "POST", "/v1/chat/completions", {"authorization": f"Bearer {KEY}"}, json.dumps({**CHAT, "model": "m" * 100_000}), {400}),
    (3, "POST", "/v1/messages", {"x-api-key": KEY}, "[" * 50_000, {400}),
    (2, "POST", "/v1/chat/completions", {"authorization": f"Bearer {KEY}"}, '{"model":"qai-flash","messages":[{"role":"user","content":"\udcff"}]}', {400}),
    # faults
    (4, "POST", "/v1/chat/completions", {"authorization": f"Bearer {KEY}", "x-demo-status": "500"}, json.dumps(CHAT), {502}),
    (4, "POST", "/v1/chat/completions", {"authorization": f"Bearer {KEY}", "x-demo-chunks": "40", "x-demo-cut-after": "5"}, json.dumps({**CHAT, "stream": True}), CUT),
    (3, "POST", "/v1/chat/completions", {"authorization": f"Bearer {KEY}", "x-demo-fault": "garbage-json"}, json.dumps(CHAT), {502}),
    (3, "POST", "/v1/messages", {"x-api-key": KEY, "x-demo-fault": "garbage-sse"},
     json.dumps({"model": "qai-flash", "max_tokens": 64, "stream": True, "messages": CHAT["messages"]}), OK),
]
WEIGHTED = [c for c in CASES for _ in range(c[0])]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def disconnect_mid_stream(stack):
    body = json.dumps({**CHAT, "stream": True}).encode()
    s = socket.create_connection(("127.0.0.1", stack.gateway_port), timeout=10)
    s.sendall((f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
               f"Content-Type: application/json\r\nx-demo-chunks: 100\r\nx-demo-chunk-delay-ms: 5\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
    got = b""
    while b"\r\n\r\n" not in got:
        more = s.recv(2000)
        if not more:
            raise ConnectionError(f"closed before the response headers: {got[:200]!r}")
        got += more
    s.close()
    status = int(got.split(b" ", 2)[1])
    rid = re.search(rb"\r\nx-request-id: ([^\r]+)", got, re.I)
    return status, rid.group(1).decode() if rid else None


def main() -> int:
    def high_rpm(cfg):
        for a in cfg["accounts"]:
            if a["id"] == "acct-demo":
                a["rpm"] = 10_000_000
                a["image_rpm"] = 10_000_000
        return cfg

    stack = Stack(concurrency=4, log_level="warning", patch_filter=high_rpm)
    stack.start()
    sent = 0
    statuses: dict[int, int] = {}
    request_ids: list[str | None] = []
    failures: list[str] = []
    lock = threading.Lock()
    stop = time.time() + SECONDS
    rss = []

    def worker(seed):
        nonlocal sent
        rnd = random.Random(seed)
        while time.time() < stop:
            failure = None
            if rnd.random() < 0.03:
                what = "disconnect mid-stream"
                try:
                    status, rid = disconnect_mid_stream(stack)
                    if status != 200:
                        failure = f"{what}: status {status}"
                except Exception as e:
                    status, rid, failure = -1, None, f"{what}: {e!r}"
            else:
                case = rnd.choice(WEIGHTED)
                _, method, path, headers, body, want = case
                what = f"{method} {path} {str(headers)[:80]}"
                cut_ok = want == CUT
                want = OK if cut_ok else want
                data = body.encode("utf-8", "surrogateescape") if body is not None else None
                req = urllib.request.Request(stack.url + path, data=data, method=method,
                                             headers={"content-type": "application/json", **headers})
                rid = None
                try:
                    with urllib.request.urlopen(req, timeout=30) as r:
                        rid = r.headers.get("x-request-id")
                        status = r.status
                        try:
                            r.read()
                        except (http.client.IncompleteRead, ConnectionError) as e:
                            if not cut_ok:
                                failure = f"{what}: body read failed: {e!r}"
                except urllib.error.HTTPError as e:
                    rid = e.headers.get("x-request-id")
                    e.read()
                    status = e.code
                except Exception as e:  # noqa: BLE001 - every other error is a failure, reported
                    status, failure = -1, f"{what}: {e!r}"
                if failure is None and status not in want:
                    failure = f"{what}: status {status}, expected {sorted(want)}"
            if failure is None and not rid:
                failure = f"{what}: no x-request-id in the response"
            with lock:
                sent += 1
                statuses[status] = statuses.get(status, 0) + 1
                request_ids.append(rid)
                if failure:
                    failures.append(failure)

    try:
        def created():
            return {l for l in stack.stats().splitlines() if re.match(r"wasm\.(envoy\.wasm\.runtime\.v8\.created|wasm_vm_count|.*vm_reload\w*): ", l)}
        vms_before = created()
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(CLIENTS)]
        for t in threads:
            t.start()
        t0 = time.time()
        while any(t.is_alive() for t in threads):
            time.sleep(5)
            rss.append((round(time.time() - t0), rss_mb(stack.envoy_proc.pid)))
            print(f"  t={rss[-1][0]:>4}s  requests={sent:>7}  envoy rss={rss[-1][1]:.1f} MB", flush=True)
        for t in threads:
            t.join()
        deadline = time.time() + 15
        while len(stack.billing_records()) < sent and time.time() < deadline:
            time.sleep(0.2)
        by_id = collections.Counter(r.get("request_id") for r in stack.billing_records())
        records = sum(by_id.values())
        vms_after = created()
        log = stack.envoy_log_text()
    finally:
        stack.stop()

    warm = [m for t, m in rss if t >= min(30, SECONDS / 3)] or [m for _, m in rss]
    growth = (max(warm) - warm[0]) if warm else 0.0
    print(f"soak: {SECONDS:.0f} s, {CLIENTS} clients, --concurrency 4: {sent} requests, statuses {dict(sorted(statuses.items()))}")
    print(f"billing records: {records} for {sent} requests")
    print(f"envoy rss after warm-up: {warm[0]:.1f} -> max {max(warm):.1f} MB (growth {growth:.1f} MB, bound {RSS_BOUND_MB} MB)")
    ok = True
    if records != sent:
        print("FAIL: records != requests"); ok = False
    wanted = collections.Counter(request_ids)
    if wanted != by_id:
        missing = sorted(str(k) for k in (wanted - by_id))[:5]
        extra = sorted(str(k) for k in (by_id - wanted))[:5]
        print(f"FAIL: records do not match requests one to one by request id (missing {missing}, extra {extra})"); ok = False
    if failures:
        print(f"FAIL: {len(failures)} requests did not get what their case expects, e.g.:")
        for f in failures[:10]:
            print(f"  {f}")
        ok = False
    if vms_before != vms_after:
        print(f"FAIL: wasm VM stats changed: {sorted(vms_before ^ vms_after)}"); ok = False
    if VM_CRASH.search(log):
        print("FAIL: a wasm VM failed (see the Envoy log)"); ok = False
    if growth > RSS_BOUND_MB:
        print("FAIL: memory grew past the bound"); ok = False
    print("soak: PASS" if ok else "soak: FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
