"""`make soak`: a few minutes of mixed valid, hostile and faulty traffic against real Envoy with
`--concurrency 4`, on loopback. Passes when: no wasm VM was restarted or failed, Envoy's resident
memory after warm-up grew by less than SOAK_RSS_BOUND_MB, and every request has exactly one
billing record. Prints a summary. SOAK_SECONDS (default 180), SOAK_CLIENTS (default 8)."""
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
CASES = [
    # (weight, method, path, headers, body bytes)
    (20, "POST", "/v1/chat/completions", {"authorization": f"Bearer {KEY}"}, json.dumps(CHAT)),
    (15, "POST", "/v1/chat/completions", {"authorization": f"Bearer {KEY}", "x-demo-chunks": "50"}, json.dumps({**CHAT, "stream": True})),
    (10, "POST", "/v1/messages", {"x-api-key": KEY, "anthropic-version": "2023-06-01"},
     json.dumps({"model": "qai-flash", "max_tokens": 64, "stream": True, "messages": CHAT["messages"]})),
    (10, "POST", "/v1beta/models/qai-flash:streamGenerateContent?alt=sse", {"x-goog-api-key": KEY},
     json.dumps({"contents": [{"parts": [{"text": "soak"}]}]})),
    (5, "POST", "/v1/images/generations", {"authorization": f"Bearer {KEY}"}, json.dumps({"model": "qai-imagine-turbo", "prompt": "a"})),
    (5, "GET", "/v1/models", {"authorization": f"Bearer {KEY}"}, None),
    # hostile
    (5, "POST", "/v1/chat/completions", {"authorization": f"Bearer {KEY}"}, '{"model": "qai-flash", "messages": [{'),
    (5, "POST", "/v1/chat/completions", {"authorization": "Bearer sk-soak-wrong"}, json.dumps(CHAT)),
    (3, "POST", "/v1/chat/completions", {"authorization": f"Bearer {KEY}"}, json.dumps({**CHAT, "model": "m" * 100_000})),
    (3, "POST", "/v1/messages", {"x-api-key": KEY}, "[" * 50_000),
    (2, "POST", "/v1/chat/completions", {"authorization": f"Bearer {KEY}"}, '{"model":"qai-flash","messages":[{"role":"user","content":"\udcff"}]}'),
    # faults
    (4, "POST", "/v1/chat/completions", {"authorization": f"Bearer {KEY}", "x-demo-status": "500"}, json.dumps(CHAT)),
    (4, "POST", "/v1/chat/completions", {"authorization": f"Bearer {KEY}", "x-demo-chunks": "40", "x-demo-cut-after": "5"}, json.dumps({**CHAT, "stream": True})),
    (3, "POST", "/v1/chat/completions", {"authorization": f"Bearer {KEY}", "x-demo-fault": "garbage-json"}, json.dumps(CHAT)),
    (3, "POST", "/v1/messages", {"x-api-key": KEY, "x-demo-fault": "garbage-sse"},
     json.dumps({"model": "qai-flash", "max_tokens": 64, "stream": True, "messages": CHAT["messages"]})),
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
    s.recv(2000)
    s.close()


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
    lock = threading.Lock()
    stop = time.time() + SECONDS
    rss = []

    def worker(seed):
        nonlocal sent
        rnd = random.Random(seed)
        while time.time() < stop:
            if rnd.random() < 0.03:
                disconnect_mid_stream(stack)
                status = 0
            else:
                _, method, path, headers, body = rnd.choice(WEIGHTED)
                data = body.encode("utf-8", "surrogateescape") if body is not None else None
                req = urllib.request.Request(stack.url + path, data=data, method=method,
                                             headers={"content-type": "application/json", **headers})
                try:
                    with urllib.request.urlopen(req, timeout=30) as r:
                        r.read()
                        status = r.status
                except urllib.error.HTTPError as e:
                    e.read()
                    status = e.code
                except Exception:
                    status = -1  # a cut stream
            with lock:
                sent += 1
                statuses[status] = statuses.get(status, 0) + 1

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
        records = len(stack.billing_records())
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
