"""Envoy's instructions per request, counted: Envoy (one worker, the bench's configuration) runs
under valgrind's callgrind, N requests of one scenario are counted after a warm-up, and the count
over N is printed. Counts do not depend on the machine's load, so two filters compare run to run.

    python tests/bench/envoy_callgrind.py WHICH N [baseline]

WHICH is a `.wasm` path (Tollgate's configuration with that filter; `baseline` strips the fields
an older filter refuses, see bench.baseline_config) or one of `plain`, `noop`, `floor`, `calls`
(tools/bench/filters, `make bench-filters`). SCEN=openai|anthropic|stream|astream|badkey picks
the scenario (default openai; `stream` is bench.py's scenario 3, `astream` its scenario 4: the
Anthropic front's 200-event stream from the demo backend's OpenAI upstream; CHUNKS=N another number of events: the
slope between two lengths is one more event's cost). Needs `make build bench-filters` and valgrind.
"""
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    which, n, base = sys.argv[1], int(sys.argv[2]), len(sys.argv) > 3
    tmp = Path(tempfile.mkdtemp(prefix="envoy-cg-"))
    backend = subprocess.Popen([str(bench.BACKEND_BIN), "--listen", "127.0.0.1:0", "--port-file", str(tmp / "bp"),
                                "--no-capture", "--threads", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    envoy = None
    try:
        while not (tmp / "bp").exists():
            time.sleep(0.05)
        bport = int((tmp / "bp").read_text())
        gw, admin = bench.free_port(), bench.free_port()
        if which in ("plain", "noop", "floor", "calls"):
            doc = bench.config_doc(which, gw, admin, bport)
        else:
            doc = bench.tollgate_doc(gw, admin, bport)
            cfgv = bench._wasm_filter(doc)["typed_config"]["config"]
            cfgv["vm_config"]["code"]["local"]["filename"] = which
            if base:
                inner = cfgv["configuration"]
                inner["value"] = json.dumps(bench.baseline_config(json.loads(inner["value"])))
        (tmp / "envoy.json").write_text(json.dumps(doc))
        out = tmp / "cg.out"
        envoy = subprocess.Popen(["valgrind", "--tool=callgrind", "--instr-atstart=no", "--smc-check=all-non-file",
                                  f"--callgrind-out-file={out}", bench.envoy_bin(), "-c", str(tmp / "envoy.json"),
                                  "--concurrency", "1", "--use-dynamic-base-id", "--disable-hot-restart",
                                  "-l", "warning"], cwd=ROOT, stdout=open(tmp / "envoy.log", "w"),
                                 stderr=subprocess.STDOUT)
        bench._wait_http(f"http://127.0.0.1:{admin}/ready", 600, envoy)
        scen = os.environ.get("SCEN", "openai")
        json_hdr = {"content-type": "application/json"}
        if scen == "openai":
            path, hdr, body = "/v1/chat/completions", {"authorization": "Bearer " + bench.GOOD_KEY}, bench.OPENAI_BODY
        elif scen == "anthropic":
            path, hdr, body = ("/v1/messages", {"x-api-key": bench.GOOD_KEY, "anthropic-version": "2023-06-01"},
                               bench.ANTHROPIC_BODY)
        elif scen == "stream":
            path, hdr = "/v1/chat/completions", {"authorization": "Bearer " + bench.GOOD_KEY, "x-demo-chunks": os.environ.get("CHUNKS", "200")}
            body = {**bench.OPENAI_BODY, "stream": True, "max_tokens": 1000}
        elif scen == "astream":
            path = "/v1/messages"
            hdr = {"x-api-key": bench.GOOD_KEY, "anthropic-version": "2023-06-01", "x-demo-chunks": os.environ.get("CHUNKS", "200")}
            body = {**bench.ANTHROPIC_BODY, "stream": True, "max_tokens": 1000}
        elif scen == "badkey":
            path, hdr, body = "/v1/chat/completions", {"authorization": "Bearer " + bench.BAD_KEY}, bench.OPENAI_BODY
        else:
            sys.exit(f"unknown SCEN {scen}")
        hdr = {**hdr, **json_hdr}
        data = json.dumps(body)
        conn = http.client.HTTPConnection("127.0.0.1", gw, timeout=120)

        def send(k: int) -> int:
            status = 0
            for _ in range(k):
                conn.request("POST", path, body=data, headers=hdr)
                r = conn.getresponse()
                r.read()
                status = r.status
            return status

        send(50)
        subprocess.run(["callgrind_control", "-i", "on", str(envoy.pid)], check=True, capture_output=True)
        send(100)
        subprocess.run(["callgrind_control", "-z", str(envoy.pid)], check=True, capture_output=True)
        status = send(n)
        subprocess.run(["callgrind_control", "-d", str(envoy.pid)], check=True, capture_output=True)
        time.sleep(1)
        dump = next(d for d in sorted(tmp.glob("cg.out*")) if d.name.endswith(".1"))
        total = next(int(line.split()[1]) for line in open(dump) if line.startswith("summary:"))
        print(json.dumps({"which": which, "scen": scen, "status": status, "n": n, "dump": str(dump),
                          "ir_per_req": total // n}))
    finally:
        if envoy:
            envoy.terminate()
            envoy.wait(60)
        backend.terminate()
        backend.wait()


if __name__ == "__main__":
    main()
