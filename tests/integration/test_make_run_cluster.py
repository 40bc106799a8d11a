"""`make run-cluster` as the README documents it (issue 14): Redis, the limits service, the demo
backend and two Envoy replicas on the ports its variables name, one rate window shared by both
gateways, every process stopped on Ctrl-C (SIGINT to the process group, as a terminal sends it),
Redis's data kept in STATE_DIR and wiped by `make clean-state`."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))

from tollgate_harness import ROOT, _wait_http, free_port  # noqa: E402

# A nested make (these tests run under `make test`) would inherit the outer one's flags.
MAKE_VARS = ("MAKELEVEL", "MAKEFLAGS", "MFLAGS", "MAKEOVERRIDES")


def clean_env(**extra):
    return {**{k: v for k, v in os.environ.items() if k not in MAKE_VARS}, **extra}


def chat(port, key):
    """(status, remaining requests) of one chat request."""
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/chat/completions", method="POST",
        data=json.dumps({"model": "qai-flash", "messages": [{"role": "user", "content": "hi"}]}).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers["x-ratelimit-remaining-requests"]
    except urllib.error.HTTPError as e:
        return e.code, e.headers["x-ratelimit-remaining-requests"]


def listening(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def test_make_run_cluster_shares_the_limits_stops_on_ctrl_c_and_clean_state_wipes(tmp_path):
    gateways, admins = [free_port(), free_port()], [free_port(), free_port()]
    backend, redis_port = free_port(), free_port()
    state = tmp_path / "state"
    proc = subprocess.Popen(
        ["make", "-s", "--no-print-directory", "run-cluster", f"STATE_DIR={state}"], cwd=ROOT,
        env=clean_env(GATEWAY_PORTS=",".join(map(str, gateways)), ADMIN_PORTS=",".join(map(str, admins)),
                      BACKEND_PORT=str(backend), REDIS_PORT=str(redis_port), ENVOY_CONCURRENCY="1"),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        for admin in admins:
            _wait_http(f"http://127.0.0.1:{admin}/ready", 60, proc)
        # sk-demo-limited (5 rpm) on one window shared by both gateways: 4 left, then 3.
        left = 60 - time.time() % 60
        if left < 5:
            time.sleep(left + 0.2)
        assert chat(gateways[0], "sk-demo-limited") == (200, "4")
        assert chat(gateways[1], "sk-demo-limited") == (200, "3")
        assert chat(gateways[1], "sk-demo-active")[0] == 200
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    # run_cluster.py stops everything and says "stopped."; make then exits by the same signal.
    assert proc.returncode == -signal.SIGINT, out
    assert out.splitlines().count("stopped.") == 1, out
    for port in gateways + admins:
        assert f"127.0.0.1:{port}" in out, out
    service = re.search(r"limits service  http://127\.0\.0\.1:(\d+)", out)
    assert service, out
    ports = gateways + admins + [backend, redis_port, int(service.group(1))]
    assert [p for p in ports if listening(p)] == []
    # Every process of the cluster was started in make's process group: none is left in it.
    try:
        os.killpg(proc.pid, 0)
        left_over = True
    except ProcessLookupError:
        left_over = False
    assert not left_over, subprocess.run(["ps", "-o", "pid,args", "-g", str(proc.pid)], capture_output=True,
                                         text=True).stdout
    # Redis's append-only data is kept in STATE_DIR; `make clean-state` wipes it.
    assert list((state / "redis").glob("appendonlydir/*.aof")), out
    subprocess.run(["make", "-s", "--no-print-directory", "clean-state", f"STATE_DIR={state}"], cwd=ROOT,
                   env=clean_env(), check=True, timeout=30)
    assert not state.exists()
