"""`make run`: the demo backend and Envoy with Tollgate on 127.0.0.1:8080 (admin 9901), in the
foreground until Ctrl-C. TEXT_UPSTREAM / IMAGE_UPSTREAM / VIDEO_UPSTREAM / AUDIO_UPSTREAM=host:port put that model
type's cluster in front of another OpenAI-compatible server instead of the bundled backend.

`make run CONFIG=path` (CONFIG in the environment here, an absolute path) runs the bundled Envoy
on that configuration file as it is, from the repository root (so the config's relative paths,
`target/wasm32-wasip1/release/tollgate.wasm` and `envoy/tls/...`, resolve), plus the demo backend
on BACKEND_PORT unless NO_BACKEND=1."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from tollgate_harness import BACKEND_BIN, DEMO_KEYS, ROOT, Stack, envoy_bin, spawn_backend, stop_processes, wait_port_file


def run_config(config: str, backend: int) -> int:
    """Envoy on `config` as it is (and the demo backend), until Ctrl-C or until Envoy exits."""
    path = Path(config)
    if not path.is_file():
        print(f"CONFIG={config}: no such file", file=sys.stderr)
        return 2
    import check_clusters

    missing = check_clusters.missing_clusters(yaml.safe_load(path.read_text()) or {})
    for line in missing:
        print(f"CONFIG={config}: {line}", file=sys.stderr)
    if missing:
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="tollgate-run-"))
    procs: list[subprocess.Popen] = []
    stop = {"now": False}

    def on_signal(*_):
        stop["now"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        if os.environ.get("NO_BACKEND") != "1":
            bp = spawn_backend(tmp / "backend.port", backend, None, False, quiet=False)
            procs.append(bp)
            wait_port_file(tmp / "backend.port", bp)
            print(f"demo backend on 127.0.0.1:{backend}")
        cmd = [envoy_bin(), "-c", str(path.resolve()), "--concurrency", os.environ.get("ENVOY_CONCURRENCY", "2"),
               "-l", os.environ.get("ENVOY_LOG_LEVEL", "info"), "--use-dynamic-base-id", "--disable-hot-restart"]
        print("running (from " + str(ROOT) + "):", " ".join(cmd), flush=True)
        envoy = subprocess.Popen(cmd, cwd=str(ROOT))
        procs.insert(0, envoy)
        print("Ctrl-C stops everything.", flush=True)
        while not stop["now"]:
            if envoy.poll() is not None:
                print(f"Envoy exited with {envoy.returncode}", file=sys.stderr)
                return 1
            time.sleep(0.2)
    finally:
        stop_processes(procs)
        shutil.rmtree(tmp, ignore_errors=True)
        print("stopped.", flush=True)
    return 0


def main() -> int:
    overrides = {}
    for env, cluster in (("TEXT_UPSTREAM", "demo_text"), ("IMAGE_UPSTREAM", "demo_image"), ("VIDEO_UPSTREAM", "demo_video"),
                         ("AUDIO_UPSTREAM", "demo_audio")):
        v = os.environ.get(env)
        if v:
            if ":" not in v:
                print(f"{env} must be host:port, got {v!r}", file=sys.stderr)
                return 2
            overrides[cluster] = v
    gw = int(os.environ.get("GATEWAY_PORT", "8080"))
    admin = int(os.environ.get("ADMIN_PORT", "9901"))
    backend = int(os.environ.get("BACKEND_PORT", "8000"))
    if os.environ.get("CONFIG"):
        if not BACKEND_BIN.exists():
            print(f"{BACKEND_BIN} is missing: run `make build` first", file=sys.stderr)
            return 2
        return run_config(os.environ["CONFIG"], backend)
    import socket

    for port, var in ((gw, "GATEWAY_PORT"), (admin, "ADMIN_PORT"), (backend, "BACKEND_PORT")):
        with socket.socket() as probe:
            # Like the servers themselves: a port with connections in TIME_WAIT is still free.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                print(f"port {port} on 127.0.0.1 is in use: stop what holds it or set {var}=another port",
                      file=sys.stderr)
                return 1
    stack = Stack(
        concurrency=int(os.environ.get("ENVOY_CONCURRENCY", "2")),
        gateway_port=gw,
        admin_port=admin,
        backend_port=backend,
        upstream_overrides=overrides,
        log_level=os.environ.get("ENVOY_LOG_LEVEL", "info"),
        quiet=False,
        # The demo stays lenient: one backend for every cluster, no strict request checks.
        strict=False,
        # The filter's configuration comes from a file through ECDS: `tollgate-keytool` edits it
        # while the demo serves (README, "Live configuration").
        ecds=True,
    )
    stop = {"now": False}

    def on_signal(*_):
        stop["now"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    stack.start()
    try:
        print()
        print(f"Tollgate is up: gateway {stack.url}/v1   admin {stack.admin}")
        print(f"  demo backend  {stack.backend}")
        for cluster, addr in overrides.items():
            print(f"  {cluster} -> {addr}")
        print(f"  Envoy log     {stack.envoy_log}")
        print(f"  access log    {stack.access_log}")
        print(f"  billing log   {stack.billing_log}")
        print(f"  live config   {stack.ecds_path}")
        print(f"    (ECDS: edit it with target/release/tollgate-keytool ... --file {stack.ecds_path})")
        print(f"  (all in {stack.tmp}, removed on exit; KEEP_TMP=1 keeps it)")
        print("Demo keys:")
        for what, key in DEMO_KEYS.items():
            print(f"  {key:<18} ({what})")
        print()
        print(f"Try: curl {stack.url}/v1/models -H 'Authorization: Bearer sk-demo-active'")
        print("Ctrl-C stops everything.", flush=True)
        while not stop["now"]:
            if stack.envoy_proc.poll() is not None:
                print("Envoy exited; see", stack.envoy_log, file=sys.stderr)
                return 1
            if stack.backend_proc is not None and stack.backend_proc.poll() is not None:
                print("the demo backend exited", file=sys.stderr)
                return 1
            time.sleep(0.2)
    finally:
        stack.stop()
        if os.environ.get("KEEP_TMP") != "1":
            shutil.rmtree(stack.tmp, ignore_errors=True)
        print("stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
