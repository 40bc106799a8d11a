"""Real Redis and real `tollgate-limits` services for tests (issue 14).

`RedisServer` runs Debian's `redis-server` (`make redis` installs it) on a free port with its
own temporary directory, persistence by append-only file (`appendonly yes`, `appendfsync
everysec`: Redis writes every change to the file before it replies, unless a slow disk makes it
postpone the write by up to 2 s, so a crash of the Redis process normally loses nothing it
acknowledged; an OS crash or power loss can lose the last second or two). It can be stopped (cleanly or by SIGKILL) and started again on the same directory and
port, to test what survives a restart. `LimitsService` runs the service binary against it."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from tollgate_harness import ROOT, free_port, wait_port_file

LIMITS_BIN = ROOT / "target" / "release" / "tollgate-limits"


class RedisServer:
    def __init__(self, fsync: str = "everysec"):
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: `make redis` installs Debian's package")
        self.binary = binary
        self.dir = Path(tempfile.mkdtemp(prefix="tollgate-redis-"))
        self.port = free_port()
        self.fsync = fsync
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> "RedisServer":
        args = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
            "--appendonly", "yes", "--appendfsync", self.fsync, "--save", "",
            "--daemonize", "no", "--logfile", str(self.dir / "redis.log"),
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while True:
            try:
                if self.command("PING") == "PONG":
                    return self
            except OSError:
                pass
            except RuntimeError as e:
                # Replaying its append-only file, Redis answers `-LOADING` until it is done.
                if not str(e).startswith("LOADING"):
                    raise
            if time.time() > deadline or self.proc.poll() is not None:
                log = (self.dir / "redis.log").read_text() if (self.dir / "redis.log").exists() else ""
                raise RuntimeError(f"redis-server did not start: {log[-2000:]}")
            time.sleep(0.05)

    def stop(self, kill: bool = False) -> None:
        """Stops Redis: SIGKILL (a crash) with `kill`, else SIGTERM (a clean shutdown)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            self.proc.wait(timeout=10)
        self.proc = None

    def restart(self, kill: bool = False) -> None:
        self.stop(kill=kill)
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def command(self, *args: str):
        """One command over a fresh connection; the reply as str, int, None or list."""
        payload = f"*{len(args)}\r\n".encode() + b"".join(
            f"${len(a.encode())}\r\n".encode() + a.encode() + b"\r\n" for a in args)
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            s.sendall(payload)
            f = s.makefile("rb")
            return _read_reply(f)


def _read_reply(f):
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise OSError("connection closed")
    kind, rest = line[:1], line[1:-2].decode()
    if kind == b"+":
        return rest
    if kind == b"-":
        raise RuntimeError(rest)
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        return None if n < 0 else f.read(n + 2)[:-2].decode()
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read_reply(f) for _ in range(n)]
    raise OSError(f"bad reply {line!r}")


class LimitsService:
    def __init__(self, redis: RedisServer, timeout_ms: int = 300, settled_ttl_secs: int = 86400):
        if not LIMITS_BIN.exists():
            raise RuntimeError(f"{LIMITS_BIN} is missing: run `make build`")
        self.redis = redis
        self.timeout_ms = timeout_ms
        self.settled_ttl_secs = settled_ttl_secs
        self.dir = Path(tempfile.mkdtemp(prefix="tollgate-limits-"))
        self.proc: subprocess.Popen | None = None
        self.port = 0

    def start(self) -> "LimitsService":
        port_file = self.dir / "port"
        port_file.unlink(missing_ok=True)
        self.log = open(self.dir / "service.log", "a")
        self.proc = subprocess.Popen(
            [str(LIMITS_BIN), "--listen", "127.0.0.1:0", "--port-file", str(port_file), "--redis", self.redis.url,
             "--timeout-ms", str(self.timeout_ms), "--settled-ttl-secs", str(self.settled_ttl_secs)],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.port = wait_port_file(port_file, self.proc)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def call(self, path: str, body: dict | None = None, timeout: float = 5.0) -> tuple[int, dict]:
        """POSTs `body` as JSON (GET when None); (status, decoded answer)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data,
                                     headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")
