"""`make run` as the README documents it: the demo on the ports its variables name, and
`make run CONFIG=path` running the bundled Envoy with the built filter on any configuration file;
both stop on Ctrl-C (SIGINT to the process group, as a terminal sends it) and remove their
temporary directories."""
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))

from tollgate_harness import ROOT, _wait_http, free_port, render  # noqa: E402


# A nested make (these tests run under `make test`) would inherit the outer one's flags and
# print "Entering directory" lines; each `make run` gets its own temporary directory.
MAKE_VARS = ("MAKELEVEL", "MAKEFLAGS", "MFLAGS", "MAKEOVERRIDES")


def clean_env(**extra):
    return {**{k: v for k, v in os.environ.items() if k not in MAKE_VARS}, **extra}


def start_make(args, env_extra):
    env = clean_env(**env_extra)
    return subprocess.Popen(["make", "-s", "--no-print-directory", "run", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def stop_make(proc) -> str:
    """Ctrl-C: run_demo.py stops everything, cleans up and says "stopped."; make then exits by
    the same signal, as it does on any interrupt."""
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGINT, out
    assert out.splitlines().count("stopped.") == 1, out
    return out


def chat(port):
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/chat/completions", method="POST",
        data=json.dumps({"model": "qai-flash", "messages": [{"role": "user", "content": "via make run"}]}).encode(),
        headers={"Authorization": "Bearer sk-demo-active", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())["choices"][0]["message"]["content"]


def test_make_run_serves_on_the_ports_its_variables_name_and_cleans_up():
    gw, admin, backend = free_port(), free_port(), free_port()
    proc = start_make([], {"GATEWAY_PORT": str(gw), "ADMIN_PORT": str(admin), "BACKEND_PORT": str(backend),
                           "ENVOY_CONCURRENCY": "1", "ENVOY_LOG_LEVEL": "warning"})
    try:
        _wait_http(f"http://127.0.0.1:{admin}/ready", 60, proc)
        assert chat(gw) == "Hello from qai-flash! You said: via make run"
        with urllib.request.urlopen(f"http://127.0.0.1:{backend}/__demo/requests", timeout=5) as r:
            assert len(json.loads(r.read())) == 1
    finally:
        out = stop_make(proc)
    tmp = re.search(r"\(all in (\S+), removed on exit", out)
    assert tmp, out
    assert not Path(tmp.group(1)).exists()


def test_make_run_config_runs_envoy_on_any_config_file(tmp_path):
    gw, admin, backend = free_port(), free_port(), free_port()
    billing = tmp_path / "billing.jsonl"
    doc = render(gw, admin, {c: f"127.0.0.1:{backend}" for c in ("demo_text", "demo_image", "demo_video", "demo_audio")},
                 billing_log=billing)
    # The wasm path stays relative, as in envoy/*.yaml: `make run` starts Envoy from the repository.
    wf = doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"][0]
    wf["typed_config"]["config"]["vm_config"]["code"]["local"]["filename"] = "target/wasm32-wasip1/release/tollgate.wasm"
    cfg = tmp_path / "my-envoy.yaml"
    cfg.write_text(yaml.safe_dump(doc, sort_keys=False))
    own_tmp = tmp_path / "tmp"
    own_tmp.mkdir()
    proc = start_make([f"CONFIG={cfg}"], {"BACKEND_PORT": str(backend), "ENVOY_CONCURRENCY": "1",
                                           "ENVOY_LOG_LEVEL": "warning", "TMPDIR": str(own_tmp)})
    try:
        _wait_http(f"http://127.0.0.1:{admin}/ready", 60, proc)
        assert chat(gw) == "Hello from qai-flash! You said: via make run"
    finally:
        out = stop_make(proc)
    assert f"-c {cfg}" in out
    records = [json.loads(line) for line in billing.read_text().splitlines()]
    assert [(r["status"], r["model"]) for r in records] == [(200, "qai-flash")]
    # Nothing `make run` made in this test's own TMPDIR is left behind.
    assert list(own_tmp.iterdir()) == []


def test_make_run_config_names_a_missing_file():
    proc = subprocess.run(["make", "-s", "--no-print-directory", "run", "CONFIG=/nonexistent/envoy.yaml"], cwd=ROOT, env=clean_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "CONFIG=/nonexistent/envoy.yaml: no such file" in proc.stderr


def test_harness_removes_its_temporary_directories_at_exit():
    # Every Stack / TlsStack directory comes from make_tmp: gone when the process (a test session)
    # exits, kept with KEEP_TMP=1.
    code = ("import sys; sys.path.insert(0, 'tests/harness'); from tollgate_harness import make_tmp; "
            "d = make_tmp('tollgate-'); (d / 'envoy.log').write_text('x'); print(d)")
    for keep, exists in (("0", False), ("1", True)):
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                             env={**os.environ, "KEEP_TMP": keep}).stdout.strip()
        assert Path(out).exists() == exists
        if exists:
            subprocess.run(["rm", "-r", out], check=True)


def test_text_upstream_leaves_audio_on_its_own_cluster(tmp_path):
    # TEXT_UPSTREAM moves only the text models: speech and transcription stay on demo_audio (the
    # demo backend here), which AUDIO_UPSTREAM moves.
    from tollgate_harness import spawn_backend, stop_processes, wait_port_file

    text_only = spawn_backend(tmp_path / "text.port", 0, "text-only")
    gw, admin, backend = free_port(), free_port(), free_port()
    try:
        text_port = wait_port_file(tmp_path / "text.port", text_only)
        proc = start_make([], {"GATEWAY_PORT": str(gw), "ADMIN_PORT": str(admin), "BACKEND_PORT": str(backend),
                               "ENVOY_CONCURRENCY": "1", "ENVOY_LOG_LEVEL": "warning",
                               "TEXT_UPSTREAM": f"127.0.0.1:{text_port}"})
        try:
            _wait_http(f"http://127.0.0.1:{admin}/ready", 60, proc)

            def served_by(path, body):
                req = urllib.request.Request(f"http://127.0.0.1:{gw}{path}", method="POST", data=json.dumps(body).encode(),
                                             headers={"Authorization": "Bearer sk-demo-active",
                                                      "Content-Type": "application/json"})
                with urllib.request.urlopen(req, timeout=10) as r:
                    return r.status, r.headers["x-demo-backend"]

            assert served_by("/v1/chat/completions",
                             {"model": "qai-flash", "messages": [{"role": "user", "content": "hi"}]}) == (200, "text-only")
            assert served_by("/v1/audio/speech", {"model": "qai-voice", "input": "hi", "voice": "alloy"}) == (200, "demo")
        finally:
            out = stop_make(proc)
        assert "demo_text -> 127.0.0.1:" in out
    finally:
        stop_processes([text_only])


def test_a_filter_cluster_missing_from_envoy_is_refused_before_envoy_starts(tmp_path):
    # Envoy would start and answer requests for that cluster's models with a bodyless 502: the
    # check names the cluster instead (make run CONFIG=..., make validate).
    def ghost(cfg):
        cfg["clusters"].append({"name": "ghost", "dialect": "openai"})
        return cfg

    doc = render(free_port(), free_port(), {}, patch_filter=ghost)
    cfg = tmp_path / "ghost.yaml"
    cfg.write_text(yaml.safe_dump(doc, sort_keys=False))
    proc = subprocess.run(["make", "-s", "--no-print-directory", "run", f"CONFIG={cfg}"], cwd=ROOT, env=clean_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert (f"CONFIG={cfg}: listener gateway: clusters[4].name 'ghost' is not a cluster of this Envoy configuration "
            "(static_resources.clusters: demo_audio, demo_image, demo_text, demo_video)") in proc.stderr, proc.stderr
    check = [sys.executable, "tests/harness/check_clusters.py"]
    assert subprocess.run([*check, str(cfg)], cwd=ROOT, capture_output=True).returncode == 1
    shipped = subprocess.run([*check, "envoy/demo.yaml", "envoy/production-tls.yaml"], cwd=ROOT, capture_output=True, text=True)
    assert (shipped.returncode, shipped.stderr) == (0, "")


def test_make_fuzz_says_before_installing_its_tools():
    # `make -n` prints the recipe without running it: the messages come before each install.
    out = subprocess.run(["make", "-n", "fuzz-tools"], cwd=ROOT, capture_output=True, text=True, check=True,
                         env=clean_env()).stdout
    assert 'echo "installing cargo-fuzz (once, a few minutes: it is compiled from source)"; cargo install cargo-fuzz' in out
    assert 'echo "installing the nightly Rust toolchain (once, a few minutes)"; rustup toolchain install nightly' in out


def test_make_run_config_runs_the_production_example(tmp_path):
    # envoy/production-tls.yaml as the README suggests (`make run CONFIG=envoy/production-tls.yaml`),
    # with only its ports and billing path moved: the relative wasm and certificate paths resolve
    # (make creates the throwaway certificate when missing).
    import ssl

    https, http, admin, backend = free_port(), free_port(), free_port(), free_port()
    text = (ROOT / "envoy" / "production-tls.yaml").read_text()
    for old, new in (("port_value: 8443}", f"port_value: {https}}}"), ("port_value: 8080}", f"port_value: {http}}}"),
                     ("port_redirect: 8443", f"port_redirect: {https}"), ("port_value: 9901}", f"port_value: {admin}}}"),
                     ("port_value: 8000}", f"port_value: {backend}}}"),
                     ("/tmp/tollgate-billing.jsonl", str(tmp_path / "billing.jsonl"))):
        assert old in text, old
        text = text.replace(old, new)
    cfg = tmp_path / "production.yaml"
    cfg.write_text(text)
    proc = start_make([f"CONFIG={cfg}"], {"BACKEND_PORT": str(backend), "ENVOY_CONCURRENCY": "1",
                                           "ENVOY_LOG_LEVEL": "warning"})
    try:
        _wait_http(f"http://127.0.0.1:{admin}/ready", 60, proc)
        ctx = ssl.create_default_context(cafile=str(ROOT / "envoy" / "tls" / "server.crt"))
        req = urllib.request.Request(
            f"https://localhost:{https}/v1/chat/completions", method="POST",
            data=json.dumps({"model": "qai-flash", "messages": [{"role": "user", "content": "via make run"}]}).encode(),
            headers={"Authorization": "Bearer sk-demo-active", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10, context=ctx) as r:
            assert json.loads(r.read())["choices"][0]["message"]["content"] == "Hello from qai-flash! You said: via make run"
    finally:
        stop_make(proc)
    records = [json.loads(line) for line in (tmp_path / "billing.jsonl").read_text().splitlines()]
    assert [(r["status"], r["model"]) for r in records] == [(200, "qai-flash")]
