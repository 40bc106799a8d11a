"""`make run-cluster`: the limits shared by two Envoy replicas (issue 14), in the foreground
until Ctrl-C: Redis (its data in `.state/redis` of the project, kept across runs; `make
clean-state` wipes it), the limits service (`tollgate-limits`) on it, the demo backend, and two
Envoys with Tollgate on `limits.store: "remote"` (gateways 127.0.0.1:8080 and :8081, admins
:9901 and :9902). GATEWAY_PORTS / ADMIN_PORTS (comma-separated), BACKEND_PORT and REDIS_PORT
move them; STATE_DIR moves the kept state (Redis's data goes in its `redis` folder)."""
import os
import shutil
import signal
import sys
import time
from pathlib import Path

from redis_harness import LimitsService, RedisServer
from tollgate_harness import DEMO_KEYS, ROOT, Stack, spawn_backend, stop_processes, wait_port_file

STATE = Path(os.environ.get("STATE_DIR") or ROOT / ".state") / "redis"


def ports(var: str, default: str) -> list[int]:
    return [int(p) for p in os.environ.get(var, default).split(",")]


def main() -> int:
    gateways, admins = ports("GATEWAY_PORTS", "8080,8081"), ports("ADMIN_PORTS", "9901,9902")
    backend_port = int(os.environ.get("BACKEND_PORT", "8000"))
    if len(gateways) != len(admins):
        print("GATEWAY_PORTS and ADMIN_PORTS must name as many ports", file=sys.stderr)
        return 2
    STATE.mkdir(parents=True, exist_ok=True)
    redis = RedisServer()
    shutil.rmtree(redis.dir, ignore_errors=True)
    redis.dir = STATE
    redis.port = int(os.environ.get("REDIS_PORT", "6390"))
    stop = {"now": False}

    def on_signal(*_):
        stop["now"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    service = None
    backend = None
    envoys: list[Stack] = []
    try:
        redis.start()
        service = LimitsService(redis, timeout_ms=30)
        service.start()
        port_file = service.dir / "backend.port"
        backend = spawn_backend(port_file, backend_port, None, False, quiet=False)
        wait_port_file(port_file, backend)

        def remote(cfg):
            cfg["limits"] = {"store": "remote", "cluster": "limits", "timeout_ms": 50, "fallback": "local",
                             "replicas": len(gateways)}
            return cfg

        for gw, admin in zip(gateways, admins):
            envoys.append(Stack(concurrency=int(os.environ.get("ENVOY_CONCURRENCY", "2")), gateway_port=gw,
                                admin_port=admin, backend_port=backend_port, start_backend=False, strict=False,
                                patch_filter=remote, extra_clusters=["limits"],
                                upstream_overrides={"limits": f"127.0.0.1:{service.port}"},
                                log_level=os.environ.get("ENVOY_LOG_LEVEL", "warning"), quiet=False).start())
        print()
        print("Tollgate cluster is up (limits shared on Redis):")
        for i, s in enumerate(envoys, 1):
            print(f"  replica {i}: gateway {s.url}/v1   admin {s.admin}   billing log {s.billing_log}")
        print(f"  limits service  http://127.0.0.1:{service.port}   (log {service.dir / 'service.log'})")
        print(f"  Redis           {redis.url}   data in {STATE} (kept; `make clean-state` wipes it)")
        print(f"  demo backend    http://127.0.0.1:{backend_port}")
        print("Demo keys:")
        for what, key in DEMO_KEYS.items():
            print(f"  {key:<18} ({what})")
        print()
        print(f"Try: curl {envoys[0].url}/v1/chat/completions -H 'Authorization: Bearer sk-demo-limited' "
              "-H 'content-type: application/json' -d '{\"model\":\"qai-flash\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}'")
        print(f"     (then on {envoys[-1].url}: the same account's 5 rpm is shared)")
        print("Ctrl-C stops everything.", flush=True)
        while not stop["now"]:
            dead = [s for s in envoys if s.envoy_proc.poll() is not None]
            if dead or (service.proc and service.proc.poll() is not None) or (redis.proc and redis.proc.poll() is not None):
                print("a process of the cluster exited; stopping", file=sys.stderr)
                return 1
            time.sleep(0.2)
    finally:
        for s in envoys:
            s.stop()
        stop_processes([backend])
        if service is not None:
            service.close()
        # Stopped, never closed: the data directory stays.
        redis.stop()
        print("stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
