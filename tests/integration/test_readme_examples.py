"""Every example in README.md, run: the Python blocks with the project's interpreter, the curl
block with bash, the JSON blocks against what the gateway really writes and accepts. The examples
are read from the README itself (the gateway's URL replaced by this module's own), so an edited
example is the one tested; a new block fails `test_every_readme_block_is_covered` until a test
runs it."""
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tollgate_harness import ROOT, Stack

README = (ROOT / "README.md").read_text()
BLOCKS = [(m.group(1), m.group(2)) for m in re.finditer(r"^```(\w*)\n(.*?)^```", README, re.S | re.M)]
DEMO_URL = "http://127.0.0.1:8080"


def blocks(lang, contains=""):
    return [body for kind, body in BLOCKS if kind == lang and contains in body]


# Blocks run elsewhere, by the test named (a whole `make test` is not run from a test).
ELSEWHERE = {
    "make run    # builds everything": "test_make_run.py::test_make_run_serves_on_the_ports_its_variables_name_and_cleans_up",
    "TEXT_UPSTREAM=127.0.0.1:11434 make run": "test_make_run.py::test_text_upstream_leaves_audio_on_its_own_cluster",
    "scrape_configs:": "test_dashboard.py (its Prometheus scrapes with this configuration)",
    "http_filters:": "test_live_config.py::test_the_readme_ecds_filter_is_what_the_harness_runs",
    "ECDS=": "test_live_config.py::test_the_readme_key_tool_block_runs_as_it_is",
    '[{"id": "qai-flash"': "test_auto_model.py::test_the_readme_block_is_the_demo_configuration",
}


@pytest.fixture(scope="module")
def gw():
    with Stack(concurrency=1) as s:
        yield s


def run_python(gw, code, cwd):
    out = subprocess.run([sys.executable, "-c", code.replace(DEMO_URL, gw.url)], cwd=cwd, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_every_readme_block_is_covered():
    kinds = [(kind, body.splitlines()[0] if body else "") for kind, body in BLOCKS]
    assert [k for k, _ in kinds] == ["sh", "python", "python", "python", "python", "sh", "sh", "json", "json", "yaml", "", "",
                                     "json", "yaml", "sh", ""]
    assert sum(1 for _, first in kinds if any(first.startswith(k) for k in ELSEWHERE)) == len(ELSEWHERE)


def test_readme_openai_example(gw, tmp_path):
    (code,) = blocks("python", "from openai import OpenAI\nclient = OpenAI(base_url=\"http://127.0.0.1:8080/v1\", api_key=\"sk-demo-active\")\nprint(client.chat")
    assert run_python(gw, code, tmp_path) == "Hello from qai-flash! You said: Hi\nHello from qai-flash! You said: Stream\n"


def test_readme_anthropic_example(gw, tmp_path):
    (code,) = blocks("python", "import anthropic")
    assert run_python(gw, code, tmp_path) == "Hello from qai-flash! You said: Hi\n"


def test_readme_google_genai_example(gw, tmp_path):
    (code,) = blocks("python", "from google import genai")
    assert run_python(gw, code, tmp_path) == "Hello from qai-flash! You said: Hi\n"


def test_readme_media_example(gw, tmp_path):
    (code,) = blocks("python", "images.generate")
    out = run_python(gw, code, tmp_path)
    assert out.splitlines()[0] == "1 image, 360 base64 characters"
    assert (tmp_path / "hello.wav").read_bytes()[:4] == b"RIFF"
    # The demo backend "transcribes" by counting the multipart body it got.
    assert re.fullmatch(r"demo transcription of \d+ bytes", out.splitlines()[1])
    assert len(out.splitlines()) == 2


def test_readme_curl_examples(gw, tmp_path):
    (script,) = blocks("sh", "curl -s")
    commands = re.split(r"\n(?=curl )", script.replace(DEMO_URL, gw.url).strip())
    assert len(commands) == 7
    outs = []
    for cmd in commands:
        r = subprocess.run(["bash", "-c", cmd], cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, (cmd, r.stderr)
        outs.append(r.stdout)
    chat, messages, gemini, image, speech, transcription, models = outs
    assert json.loads(chat)["choices"][0]["message"]["content"] == "Hello from qai-flash! You said: Hi"
    assert json.loads(messages)["content"][0]["text"] == "Hello from qai-flash! You said: Hi"
    assert json.loads(gemini)["candidates"][0]["content"]["parts"][0]["text"] == "Hello from qai-flash! You said: Hi"
    assert len(json.loads(image)["data"]) == 1
    assert speech == "" and (tmp_path / "hello.wav").read_bytes()[:4] == b"RIFF"
    assert re.fullmatch(r"demo transcription of \d+ bytes", json.loads(transcription)["text"])
    assert "qai-flash" in [m["id"] for m in json.loads(models)["data"]]


def chat(url, key, model="qai-flash"):
    import urllib.request
    req = urllib.request.Request(f"{url}/v1/chat/completions", method="POST",
                                 data=json.dumps({"model": model, "messages": [{"role": "user", "content": "Hi"}]}).encode(),
                                 headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, r.headers["x-request-id"], json.loads(r.read())


def test_readme_billing_record_example_has_the_fields_of_a_real_record(gw):
    (example,) = blocks("json", '"request_id"')
    example = json.loads(example)
    status, rid, _ = chat(gw.url, "sk-demo-active")
    real = gw.billing_record(rid)
    assert sorted(example) == sorted(real)
    assert {k: example[k] for k in ("endpoint", "model", "cluster", "front", "upstream", "status", "key_id")} == {
        k: real[k] for k in ("endpoint", "model", "cluster", "front", "upstream", "status", "key_id")}


def test_readme_configuration_example_is_accepted(tmp_path):
    (example,) = blocks("json", '"defaults"')
    key = "sk-readme-example"
    cfg = json.loads(example.replace("<64 hex chars>", hashlib.sha256(key.encode()).hexdigest()))
    with Stack(concurrency=1, extra_clusters=["vllm", "openai"], patch_filter=lambda _: cfg) as s:
        status, _, body = chat(s.url, key)
        assert (status, body["model"]) == (200, "qai-flash")
        sent = json.loads(s.backend_requests("vllm")[-1]["body"])
        assert sent["model"] == "Qwen/Qwen3-8B"


def test_readme_keytool_example_mints_a_key_the_demo_accepts():
    (cmd,) = re.findall(r"`(make keytool ARGS='new [^`]*)`", README)
    # Without the outer make's variables (under `make test` a nested make prints "Entering directory").
    env = {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS", "MAKEOVERRIDES")}
    out = subprocess.run(["bash", "-c", cmd], cwd=ROOT, capture_output=True, text=True, timeout=300, check=True,
                         env=env).stdout
    key = re.search(r"^key \(shown once, store it now\): (\S+)$", out, re.M).group(1)
    record = json.loads(out.strip().splitlines()[-1])

    def add(cfg):
        cfg["keys"].append(record)
        return cfg

    with Stack(concurrency=1, patch_filter=add) as s:
        status, rid, _ = chat(s.url, key)
        assert status == 200
        assert s.billing_record(rid)["key_id"] == record["id"]


REPORT = ROOT / "target" / "release" / "tollgate-report"


def test_readme_report_examples_run_on_a_real_billing_log(gw, tmp_path):
    """The "Usage reports" commands, on the billing log this module's Envoy wrote (and a gzipped
    copy of it as the rotated log), and the example table's columns as the tool prints them."""
    import gzip
    import shutil
    import xml.etree.ElementTree as ET

    status, rid, _ = chat(gw.url, "sk-demo-active")
    assert status == 200
    gw.billing_record(rid)
    shutil.copy(gw.billing_log, tmp_path / "billing.jsonl")
    with open(gw.billing_log, "rb") as f, gzip.open(tmp_path / "billing.jsonl.1.gz", "wb") as g:
        g.write(f.read())
    (script,) = blocks("", "tollgate-report billing.jsonl")
    lines = [line.split("#")[0].strip() for line in script.strip().splitlines()]
    assert len(lines) == 4 and all(line.startswith("tollgate-report ") for line in lines)
    outs = []
    for line in lines:
        cmd = str(REPORT) + line[len("tollgate-report"):]
        out = subprocess.run(["bash", "-c", cmd], cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, (line, out.stderr)
        outs.append(out.stdout)
    assert outs[0].splitlines()[0].split() == blocks("", "account        key")[0].splitlines()[0].split()
    assert outs[0].splitlines()[-1].startswith("TOTAL")
    csv = (tmp_path / "spend.csv").read_text().splitlines()
    assert csv[0].split(",")[:2] == ["model", "day"]
    written = [ln for ln in (tmp_path / "billing.jsonl").read_text().splitlines() if ln.strip() not in ("", "-")]
    assert json.loads(outs[2])["records"] == len(written)
    assert ET.parse(tmp_path / "spend.svg").getroot().tag == "{http://www.w3.org/2000/svg}svg"
