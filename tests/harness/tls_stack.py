"""Starts envoy/production-tls.yaml for tests: the demo backend plus Envoy with TLS on the
gateway listener and the plain-HTTP redirect listener, rendered with temporary ports, the given
certificate and key, and the demo backend as every upstream. (Its own rendering: the gateway
listener here has a connection-limit filter before the HTTP connection manager.)"""
from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import yaml

from tollgate_harness import (BACKEND_BIN, ROOT, UPSTREAM_LOGS, WASM, _wait_http, envoy_bin, free_port, make_tmp,
                              stop_processes)

PRODUCTION_YAML = ROOT / "envoy" / "production-tls.yaml"


def make_self_signed(directory: Path, host: str = "localhost") -> tuple[Path, Path]:
    """A self-signed certificate for `host` (and 127.0.0.1) with openssl: (cert, key)."""
    cert, key = directory / "server.crt", directory / "server.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={host}",
         "-addext", f"subjectAltName=DNS:{host},IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


class TlsStack:
    def __init__(self, cert: Path, key: Path, concurrency: int = 1):
        self.cert, self.key = cert, key
        self.concurrency = concurrency
        self.https_port, self.http_port, self.admin_port = free_port(), free_port(), free_port()
        self.tmp = make_tmp("tollgate-tls-")
        self.access_log = self.tmp / "access.log"
        self.billing_log = self.tmp / "billing.jsonl"
        self.envoy_log = self.tmp / "envoy.log"
        self.backend_port: int | None = None
        self.procs: list[subprocess.Popen] = []

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def backend(self) -> str:
        return f"http://127.0.0.1:{self.backend_port}"

    def render(self) -> dict:
        doc = yaml.safe_load(PRODUCTION_YAML.read_text())
        doc["admin"]["address"]["socket_address"]["port_value"] = self.admin_port
        https, http = doc["static_resources"]["listeners"]
        for listener, port in ((https, self.https_port), (http, self.http_port)):
            listener["address"]["socket_address"].update(address="127.0.0.1", port_value=port)
        chain = https["filter_chains"][0]
        tls = chain["transport_socket"]["typed_config"]["common_tls_context"]
        tls["tls_certificates"][0] = {"certificate_chain": {"filename": str(self.cert)},
                                      "private_key": {"filename": str(self.key)}}
        hcm = chain["filters"][-1]["typed_config"]
        wasm = next(f for f in hcm["http_filters"] if f["name"] == "envoy.filters.http.wasm")
        wasm["typed_config"]["config"]["vm_config"]["code"]["local"]["filename"] = str(WASM)
        for al in hcm["access_log"]:
            if "FILTER_STATE(wasm.tollgate.billing" in json.dumps(al):
                al["typed_config"]["path"] = str(self.billing_log)
                continue
            fmt = {k: v for k, v in al["typed_config"].items() if k != "@type"}
            al["name"] = "envoy.access_loggers.file"
            al["typed_config"] = {"@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
                                  "path": str(self.access_log), **fmt}
        redirect_hcm = http["filter_chains"][0]["filters"][-1]["typed_config"]
        redirect_hcm["route_config"]["virtual_hosts"][0]["routes"][0]["redirect"]["port_redirect"] = self.https_port
        for c in doc["static_resources"]["clusters"]:
            sa = c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
            sa.update(address="127.0.0.1", port_value=self.backend_port)
        return doc

    def start(self) -> "TlsStack":
        for p in (WASM, BACKEND_BIN):
            if not p.exists():
                raise RuntimeError(f"{p} is missing: run `make build` first")
        port_file = self.tmp / "backend.port"
        self.upstream_log = self.tmp / "upstream.jsonl"
        UPSTREAM_LOGS.append(self.upstream_log)
        self.procs.append(subprocess.Popen([str(BACKEND_BIN), "--listen", "127.0.0.1:0", "--port-file", str(port_file),
                                            "--capture-log", str(self.upstream_log)],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.time() + 10
        while not port_file.exists() or not port_file.read_text().strip():
            if time.time() > deadline:
                self.stop()
                raise RuntimeError("demo backend did not start")
            time.sleep(0.02)
        self.backend_port = int(port_file.read_text().strip())
        # Free ports are only free when asked: if one is taken before Envoy binds it, new ones.
        for attempt in range(3):
            cfg = self.tmp / "envoy.yaml"
            cfg.write_text(yaml.safe_dump(self.render(), sort_keys=False))
            log = open(self.envoy_log, "w")
            envoy = subprocess.Popen(
                [envoy_bin(), "-c", str(cfg), "--concurrency", str(self.concurrency), "--use-dynamic-base-id",
                 "-l", "warning", "--disable-hot-restart", "--file-flush-interval-msec", "100"],
                stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT))
            self.procs.append(envoy)
            try:
                _wait_http(f"{self.admin}/ready", 30, envoy)
                return self
            except Exception:
                if attempt < 2 and "Address already in use" in self.envoy_log.read_text():
                    stop_processes([envoy])
                    self.procs.remove(envoy)
                    self.https_port, self.http_port, self.admin_port = free_port(), free_port(), free_port()
                    continue
                self.stop()
                raise RuntimeError(f"Envoy did not start:\n{self.envoy_log.read_text()[-4000:]}")
        raise RuntimeError("unreachable")

    def stop(self) -> None:
        stop_processes(reversed(self.procs))

    def __enter__(self) -> "TlsStack":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
