"""Work before refusal (issue 12, item 5), measured: an account already over its rate sends 8 MiB
chat bodies from N parallel connections for a while, and meanwhile another account's small chat
requests are timed. Prints Envoy's resident memory before and after, and the other account's
latency without and with the attack, as one JSON line.

    .venv/bin/python tests/bench/refusal_attack.py [--wasm path/to/tollgate.wasm] [--seconds 10]
        [--parallel 4] [--legacy]

`--wasm` runs another build (e.g. main's, copied aside); `--legacy` drops configuration fields that
build does not know. Loopback only, bounded in time (about `--seconds` + 15 s, plus up to a minute
of waiting so that the run fits in one rate window; `--seconds` at most 50)."""
import argparse
import json
import socket
import statistics
import sys
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))

from tollgate_harness import Stack  # noqa: E402

ATTACKER = "sk-demo-limited"  # 5 requests a minute
VICTIM = "sk-demo-active"
CHAT = {"model": "qai-flash", "messages": [{"role": "user", "content": "hi"}]}


def rss_kb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def envoy_heap_mb(admin):
    """Envoy's own heap (tcmalloc: buffers, headers), which excludes the wasm VMs' linear memory
    (V8 maps that itself): RSS minus this is mostly the VMs."""
    with urllib.request.urlopen(admin + "/memory", timeout=5) as r:
        return int(json.loads(r.read())["total_physical_bytes"]) / 2**20


def chat_ms(url, key):
    req = urllib.request.Request(url + "/v1/chat/completions", data=json.dumps(CHAT).encode(), method="POST",
                                 headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=30) as r:
        r.read()
        assert r.status == 200
    return (time.perf_counter() - t0) * 1000


def timed(url, seconds):
    out, end = [], time.time() + seconds
    while time.time() < end:
        out.append(chat_ms(url, VICTIM))
        time.sleep(0.02)
    return out


def attacker(port, body, stop, counts):
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer {ATTACKER}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    while not stop.is_set():
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
        except OSError:
            continue
        try:
            s.sendall(head)
            sent = 0
            try:
                view = memoryview(body)
                for i in range(0, len(view), 1 << 20):
                    s.sendall(view[i:i + (1 << 20)])
                    sent += min(1 << 20, len(view) - i)
            except OSError:
                pass  # refused at the headers: the gateway closed before taking the body
            got = s.recv(200)
            status = got.split(b" ", 2)[1].decode() if got.startswith(b"HTTP/1.1 ") else "none"
            counts[status] = counts.get(status, 0) + 1
            counts["body_bytes_sent"] = counts.get("body_bytes_sent", 0) + sent
        except OSError:
            counts["error"] = counts.get("error", 0) + 1
        finally:
            s.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wasm", default=None)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--parallel", type=int, default=4)
    ap.add_argument("--legacy", action="store_true")
    a = ap.parse_args()
    a.seconds = min(a.seconds, 50)

    def patch_filter(cfg):
        if a.legacy:
            for k in ["pass_request_headers", "max_media_body_bytes"]:
                cfg.pop(k, None)
        return cfg

    def patch_envoy(doc):
        if a.wasm:
            hcm = doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
            for f in hcm["http_filters"]:
                if f["name"] == "envoy.filters.http.wasm":
                    f["typed_config"]["config"]["vm_config"]["code"]["local"]["filename"] = str(Path(a.wasm).resolve())
        return doc

    body = json.dumps({**CHAT, "messages": [{"role": "user", "content": "x" * (8 * 1024 * 1024 - 200)}]}).encode()
    with Stack(concurrency=2, patch_filter=patch_filter, patch_envoy=patch_envoy) as s:
        pid = s.envoy_proc.pid
        # The whole run inside one rate window (the unix minute), so the attacker's account stays
        # over its rate throughout and every attack request is one the gateway refuses.
        need = a.seconds + 8
        if 60 - time.time() % 60 < need:
            time.sleep(60 - time.time() % 60 + 0.05)
        for _ in range(5):  # the attacker's account is over its rate from here on
            urllib.request.urlopen(urllib.request.Request(s.url + "/v1/models", headers={"Authorization": f"Bearer {ATTACKER}"}), timeout=10).read()
        timed(s.url, 1)  # warm-up
        rss0, heap0 = rss_kb(pid), envoy_heap_mb(s.admin)
        quiet = timed(s.url, 3)
        stop, counts = threading.Event(), {}
        threads = [threading.Thread(target=attacker, args=(s.gateway_port, body, stop, counts), daemon=True)
                   for _ in range(a.parallel)]
        for t in threads:
            t.start()
        rss_peak, heap_peak = rss0, heap0
        loaded = []
        end = time.time() + a.seconds
        while time.time() < end:
            loaded += timed(s.url, 0.5)
            rss_peak = max(rss_peak, rss_kb(pid))
            heap_peak = max(heap_peak, envoy_heap_mb(s.admin))
        stop.set()
        for t in threads:
            t.join(timeout=30)
        time.sleep(1)
        rss1, heap1 = rss_kb(pid), envoy_heap_mb(s.admin)

    def q(v, p):
        return round(statistics.quantiles(v, n=100)[p - 1], 2) if len(v) >= 2 else None

    print(json.dumps({
        "wasm": a.wasm or "this tree", "seconds": a.seconds, "parallel": a.parallel,
        "attack_requests": {k: v for k, v in counts.items() if k != "body_bytes_sent"},
        "attack_body_mib_sent": round(counts.get("body_bytes_sent", 0) / 2**20, 1),
        "envoy_rss_mb": {"before": round(rss0 / 1024, 1), "peak": round(rss_peak / 1024, 1), "after": round(rss1 / 1024, 1)},
        "envoy_heap_mb": {"before": round(heap0, 1), "peak": round(heap_peak, 1), "after": round(heap1, 1)},
        "rss_minus_heap_mb": {"before": round(rss0 / 1024 - heap0, 1), "after": round(rss1 / 1024 - heap1, 1)},
        "victim_ms": {"quiet_p50": round(statistics.median(quiet), 2), "quiet_p90": q(quiet, 90), "quiet_n": len(quiet),
                      "attack_p50": round(statistics.median(loaded), 2), "attack_p90": q(loaded, 90), "attack_n": len(loaded)},
    }))


if __name__ == "__main__":
    main()
