"""The Grafana dashboard (ops/grafana/tollgate.json) on real Prometheus (issue 19): Debian's
`prometheus` scrapes the test Envoy's admin /stats/prometheus every second, traffic of every kind
goes through the gateway, and every panel's every query is checked against what the billing
records say was driven. A panel without a check here fails the test.

Each query is checked twice: as written (`$__rate_interval` and `$__range` set to 5m), it must
return exactly the expected series, non-zero exactly where the counter moved; in counter form
(`rate(X[...])` and `increase(X[...])` replaced by `X`, so no extrapolation), every value must
equal the records' totals exactly."""

import hashlib
import json
import yaml
import re
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from conftest import Http
from tollgate_harness import Stack, free_port, stop_processes

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "ops" / "grafana" / "tollgate.json"
SANDBOX_KEY = "sk-test-dash-sandbox"
CLASSES = ["1xx", "2xx", "3xx", "4xx", "5xx"]
LIMIT_CODES = ["rate_limit_exceeded", "sandbox_quota_exceeded", "insufficient_funds", "service_unavailable"]


def _patch(cfg):
    sha = hashlib.sha256(SANDBOX_KEY.encode()).hexdigest()
    cfg["keys"].append({"id": "key-dash-sandbox", "account": "acct-demo", "sha256": sha, "sandbox_daily_quota": 1})
    return cfg


class Prometheus:
    def __init__(self, target):
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail("prometheus is not installed: `make integration` installs Debian's package")
        self.tmp = Path(tempfile.mkdtemp(prefix="tollgate-prom-"))
        cfg = self.tmp / "prometheus.yml"
        # The README's scrape configuration ("Dashboard"), pointed at this Envoy's admin port.
        readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
        (block,) = re.findall(r"^```yaml\n(scrape_configs:.*?)^```", readme, re.S | re.M)
        scrape = yaml.safe_load(block)
        scrape["scrape_configs"][0]["static_configs"] = [{"targets": [target]}]
        cfg.write_text(json.dumps({"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}, **scrape}))
        self.port = free_port()
        self.proc = subprocess.Popen(
            [binary, f"--config.file={cfg}", f"--storage.tsdb.path={self.tmp / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=open(self.tmp / "prometheus.log", "w"), stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"prometheus did not start: {(self.tmp / 'prometheus.log').read_text()[-2000:]}")
            time.sleep(0.2)

    def query(self, expr):
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=10) as r:
            doc = json.load(r)
        assert doc["status"] == "success", doc
        return {tuple(sorted(s["metric"].items())): float(s["value"][1]) for s in doc["data"]["result"]}

    def wait(self, expr, value, timeout=20.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            got = self.query(expr)
            if list(got.values()) == [value]:
                return
            time.sleep(0.3)
        raise AssertionError(f"{expr} never reached {value}: {got}")

    def stop(self):
        stop_processes([self.proc])
        shutil.rmtree(self.tmp, ignore_errors=True)


def _avoid_window_edge(period, margin=5.0):
    """A burst must fall inside one fixed window: wait out the end of the current one."""
    left = period - time.time() % period
    if left < margin:
        time.sleep(left + 0.2)


def _drive(stack):
    """Traffic of every kind; returns the billing records it wrote."""
    http = Http(stack.url)
    active = {"Authorization": "Bearer sk-demo-active"}

    def chat(model, headers=None, key="sk-demo-active", **extra):
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}
        return http.request("POST", "/v1/chat/completions", body, {"Authorization": f"Bearer {key}", **(headers or {})})

    for _ in range(3):
        assert chat("qai-flash", {"x-demo-usage-fixed": "10 5"})[0] == 200
    for _ in range(2):
        assert chat("qai-pro", {"x-demo-usage-fixed": "20 10"})[0] == 200
    # A stream without usage (an estimated bill) and one cut short (estimated, incomplete).
    assert chat("qai-pro", {"x-demo-no-usage": "1", "x-demo-chunks": "4"}, stream=True)[0] == 200
    req = urllib.request.Request(stack.url + "/v1/chat/completions", method="POST",
                                 data=json.dumps({"model": "qai-flash", "stream": True,
                                                  "messages": [{"role": "user", "content": "hi"}]}).encode(),
                                 headers={**active, "Content-Type": "application/json",
                                          "x-demo-chunks": "6", "x-demo-cut-after": "3"})
    with urllib.request.urlopen(req, timeout=30) as r:
        try:
            r.read()
        except Exception:  # noqa: BLE001 - the cut is the point
            pass
    assert chat("qai-flash", {"x-demo-status": "500"})[0] == 502
    assert http.request("POST", "/v1/images/generations", {"model": "qai-imagine-turbo", "prompt": "a cat",
                                                           "size": "256x256"}, active)[0] == 200
    assert chat("qai-flash", key="sk-nope")[0] == 401
    assert chat("qai-nope")[0] == 400
    _avoid_window_edge(60)  # acct-limited: 5 a minute (fixed windows)
    # A second account with known usage (the per-account panels: 5 x 7 prompt + 3 completion).
    limited = [chat("qai-flash", {"x-demo-usage-fixed": "7 3"}, key="sk-demo-limited")[0] for _ in range(6)]
    assert limited == [200] * 5 + [429]
    _avoid_window_edge(86400)  # the sandbox quota: per UTC day
    assert [chat("qai-hello-world", key=SANDBOX_KEY)[0] for _ in range(2)] == [200, 429]
    spend = []
    for _ in range(8):
        spend.append(chat("qai-think", key="sk-demo-capped", max_tokens=100)[0])
        if spend[-1] == 402:
            break
    assert spend == [200, 200, 200, 402]
    n = 2 + 3 + 2 + 1 + 1 + 1 + 1 + 1 + 1 + 6 + 2 + 4  # the 2 warm-up requests first
    deadline = time.time() + 10
    while len(stack.billing_records()) < n and time.time() < deadline:
        time.sleep(0.1)
    records = stack.billing_records()
    assert len(records) == n
    return records


@pytest.fixture(scope="module")
def prom():
    # Envoy publishes histograms at each stats flush (5 s by default): every second here.
    stack = Stack(concurrency=2, patch_filter=_patch, patch_envoy=lambda doc: {**doc, "stats_flush_interval": "1s"})
    stack.start()
    p = None
    try:
        # One request per cluster first, so the latency histograms exist before the first scrape
        # (a series that appears with its final counts shows no rate).
        http = Http(stack.url)
        active = {"Authorization": "Bearer sk-demo-active"}
        assert http.request("POST", "/v1/chat/completions", {"model": "qai-flash", "messages": [
            {"role": "user", "content": "warm"}]}, active)[0] == 200
        assert http.request("POST", "/v1/images/generations", {"model": "qai-imagine-turbo", "prompt": "warm",
                                                               "size": "256x256"}, active)[0] == 200
        time.sleep(1.5)
        p = Prometheus(f"127.0.0.1:{stack.admin_port}")
        # A first scrape before the traffic: every counter has a sample from before it.
        p.wait('sum(tollgate_requests{model="qai-flash"})', 1.0)
        records = _drive(stack)
        p.wait("sum(tollgate_requests)", float(len(records)))
        time.sleep(2.5)  # one more stats flush and scrape: every series at its final value
        yield p, records
    finally:
        if p is not None:
            p.stop()
        stack.stop()


def _key(**labels):
    return tuple(sorted(labels.items()))


def _by(records, label_fn, value_fn, keep=lambda r: True):
    out = Counter()
    for r in records:
        if keep(r):
            out[label_fn(r)] += value_fn(r)
    return out


def _model(r):
    return r["model"] or "none"


def _class(r):
    return f"{r['status'] // 100}xx"


MODELS = ["qai-hello-world", "qai-flash", "qai-pro", "qai-max", "qai-think", "qai-imagine-turbo",
          "qai-imagine-quality", "qai-motion", "qai-voice", "qai-listen", "qai-embed", "auto"]


def _with_zeros(counts, keys):
    """Stats the filter defines at configuration show at zero: every key, counted or not."""
    return {k: float(counts.get(k, 0)) for k in set(keys) | set(counts)}


def expected_requests_by_model(records):
    c = _by(records, lambda r: _key(model=_model(r)), lambda r: 1)
    return _with_zeros(c, [_key(model=m) for m in [*MODELS, "none"]])


def expected_requests_by_class(records):
    c = _by(records, lambda r: _key(**{"class": _class(r)}), lambda r: 1)
    return _with_zeros(c, [_key(**{"class": k}) for k in ["2xx", "4xx", "5xx"]])


def expected_errors_by_model(records):
    c = _by(records, lambda r: _key(model=_model(r)), lambda r: 1, lambda r: r["status"] >= 400)
    return _with_zeros(c, [_key(model=m) for m in [*MODELS, "none"]])


def expected_errors_by_code(records):
    c = _by(records, lambda r: _key(code=r["error"]), lambda r: 1, lambda r: r["error"] is not None)
    codes = ["missing_field", "invalid_model", "bad_request", "context_length_exceeded", "unauthorized",
             "insufficient_funds", "forbidden", "not_found", "method_not_allowed", "request_entity_too_large", "rate_limit_exceeded",
             "sandbox_quota_exceeded", "internal_error", "upstream_error", "service_unavailable"]
    return _with_zeros(c, [_key(code=k) for k in codes])


TOKEN_KINDS = ["prompt", "completion", "cached", "reasoning", "cache_creation"]


def expected_tokens(records):
    c = Counter()
    for r in records:
        if r["model"]:
            for kind in TOKEN_KINDS:
                c[_key(model=r["model"], kind=kind)] += r[f"{kind}_tokens"]
    return _with_zeros(c, [_key(model=m, kind=k) for m in MODELS for k in TOKEN_KINDS])


def _micros(records):
    c = _by(records, lambda r: _key(model=r["model"]), lambda r: round(r["credits"] * 1e6), lambda r: r["model"])
    return _with_zeros(c, [_key(model=m) for m in MODELS])


def expected_credits(records):
    return {k: v / 1e6 for k, v in _micros(records).items()}


def expected_refusals(records):
    c = _by(records, lambda r: _key(code=r["error"]), lambda r: 1, lambda r: r["error"] in LIMIT_CODES)
    return _with_zeros(c, [_key(code=k) for k in LIMIT_CODES])


def expected_store_failures(records):
    return {(): 0.0}


def expected_incomplete(records):
    c = _by(records, lambda r: _key(model=r["model"]), lambda r: 1, lambda r: r["model"] and not r["complete"])
    return _with_zeros(c, [_key(model=m) for m in MODELS])


def expected_estimated(records):
    c = _by(records, lambda r: _key(model=r["model"]), lambda r: 1, lambda r: r["model"] and r["estimated"])
    return _with_zeros(c, [_key(model=m) for m in MODELS])


ACCOUNTS = ["acct-demo", "acct-limited", "acct-capped", "acct-inactive", "acct-tokens"]


def expected_account_tokens(records):
    c = Counter()
    for r in records:
        if r["model"] and r["account_id"]:
            for kind in TOKEN_KINDS:
                c[_key(account=r["account_id"], kind=kind)] += r[f"{kind}_tokens"]
    return _with_zeros(c, [_key(account=a, kind=k) for a in ACCOUNTS for k in TOKEN_KINDS])


def expected_account_credits(records):
    c = _by(records, lambda r: _key(account=r["account_id"]), lambda r: round(r["credits"] * 1e6),
            lambda r: r["model"] and r["account_id"])
    return {k: v / 1e6 for k, v in _with_zeros(c, [_key(account=a) for a in ACCOUNTS]).items()}


# (panel title, refId) -> the counter-form values the records predict.
CHECKS = {
    ("Requests by model", "A"): expected_requests_by_model,
    ("Requests by status class", "A"): expected_requests_by_class,
    ("Errors by model", "A"): expected_errors_by_model,
    ("Errors by code", "A"): expected_errors_by_code,
    ("Tokens by model", "A"): expected_tokens,
    ("Credits by model", "A"): expected_credits,
    ("Credits by model in range", "A"): expected_credits,
    ("Refusals by limit", "A"): expected_refusals,
    ("Refusals by limit", "B"): expected_store_failures,
    ("Stream cut-offs by model", "A"): expected_incomplete,
    ("Estimated bills by model", "A"): expected_estimated,
    ("Tokens by account", "A"): expected_account_tokens,
    ("Credits by account", "A"): expected_account_credits,
}
# Histogram quantiles: no counter form; checked by `check_latency`.
LATENCY = {("Upstream latency", "A"), ("Upstream latency", "B"), ("Upstream latency", "C")}


def counter_form(expr):
    return re.sub(r"\b(?:rate|increase)\((.*?)\[\$__(?:rate_interval|range)\]\)", r"\1", expr)


def as_written(expr):
    return expr.replace("$__rate_interval", "5m").replace("$__range", "5m")


def _targets():
    doc = json.loads(DASHBOARD.read_text())
    return doc, [(p["title"], t["refId"], t["expr"]) for p in doc["panels"] for t in p.get("targets", [])]


def test_dashboard_is_importable_and_every_query_has_a_check():
    doc, targets = _targets()
    assert [v["name"] for v in doc["templating"]["list"] if v["type"] == "datasource"] == ["datasource"]
    for p in doc["panels"]:
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], p["title"]
    assert len({p["id"] for p in doc["panels"]}) == len(doc["panels"])
    assert sorted((t, r) for t, r, _ in targets) == sorted([*CHECKS, *LATENCY])
    # The README's promise: never a per-key label; per account only in the panels of the opt-in
    # `account_metrics` stats.
    assert not any(re.search(r"key_id", e) for _, _, e in targets)
    by_account = sorted(t for t, _, e in targets if re.search(r"account", e))
    assert by_account == ["Credits by account", "Tokens by account"]


@pytest.mark.parametrize("title,ref", sorted(CHECKS))
def test_panel_query_returns_the_driven_counts(prom, title, ref):
    p, records = prom
    expr = next(e for t, r, e in _targets()[1] if (t, r) == (title, ref))
    want = CHECKS[(title, ref)](records)
    assert p.query(counter_form(expr)) == want
    # As written: exactly the same series, moving exactly where the counters moved.
    got = p.query(as_written(expr))
    assert sorted(got) == sorted(want)
    assert {k: v > 0 for k, v in got.items()} == {k: v > 0 for k, v in want.items()}


def test_upstream_latency_panel_has_a_quantile_per_cluster_used(prom):
    p, records = prom
    used = {r["cluster"] for r in records if r["cluster"]}
    assert used == {"demo_text", "demo_image"}
    for title, ref, expr in _targets()[1]:
        if (title, ref) not in LATENCY:
            continue
        got = p.query(as_written(expr))
        # Every cluster shows (NaN where nothing was timed); the ones used have a latency.
        timed = {dict(k)["envoy_cluster_name"]: v for k, v in got.items() if v == v}
        assert set(timed) == used, (ref, got)
        assert all(0 < v < 5000 for v in timed.values()), (ref, timed)


def test_account_panels_split_usage_between_two_accounts(prom):
    """Two accounts with usage chosen by the demo backend: acct-limited's 5 billed qai-flash calls
    of 7 prompt + 3 completion tokens (0.1 and 0.2 credits per 1k) are its own, exactly."""
    p, records = prom
    exprs = {t: counter_form(e) for t, _, e in _targets()[1]}
    tokens = p.query(exprs["Tokens by account"])
    assert {k: v for k, v in tokens.items() if dict(k)["account"] == "acct-limited"} == {
        _key(account="acct-limited", kind="prompt"): 35.0, _key(account="acct-limited", kind="completion"): 15.0,
        _key(account="acct-limited", kind="cached"): 0.0, _key(account="acct-limited", kind="reasoning"): 0.0,
        _key(account="acct-limited", kind="cache_creation"): 0.0}
    assert tokens[_key(account="acct-demo", kind="prompt")] == expected_account_tokens(records)[_key(account="acct-demo", kind="prompt")]
    credits = p.query(exprs["Credits by account"])
    assert credits[_key(account="acct-limited")] == 0.0065
    assert credits[_key(account="acct-inactive")] == 0.0
    # The per-account totals are the per-model ones, split differently.
    assert sum(tokens.values()) == sum(p.query(exprs["Tokens by model"]).values())
    assert round(sum(credits.values()), 6) == round(sum(p.query(exprs["Credits by model"]).values()), 6)


def test_account_stats_are_opt_in():
    """Without `account_metrics` the filter defines no per-account stat, even after billed traffic
    from an account (the README's cardinality promise); the per-model ones still count."""
    stack = Stack(concurrency=1, patch_filter=lambda cfg: {k: v for k, v in cfg.items() if k != "account_metrics"})
    stack.start()
    try:
        http = Http(stack.url)
        status, _, _ = http.request("POST", "/v1/chat/completions", {
            "model": "qai-flash", "messages": [{"role": "user", "content": "hi"}]},
            {"Authorization": "Bearer sk-demo-active", "x-demo-usage-fixed": "7 3"})
        assert status == 200
        stats = stack.stats()
        assert "wasmcustom.tollgate.tokens.model=.=qai-flash;.;kind=.=prompt;.;: 7" in stats.splitlines()
        assert [line for line in stats.splitlines() if "account" in line] == []
        assert "account" not in stack.stats("prometheus")
    finally:
        stack.stop()
