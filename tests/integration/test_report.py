"""Usage reports (issue 19): `tollgate-report` over the billing log real Envoy wrote. The test sends
requests whose usage it chooses (`x-demo-usage-fixed: P C` on the demo backend), on every front,
priced models, one estimated, refused ones, then runs the report on the stack's billing log and
checks, exactly, that the totals per account, key, model and day grew by what those requests cost,
and that the report over the whole log equals an independent sum of its records; bad lines in a
second log are skipped and counted; CSV agrees with JSON; the chart is well-formed SVG."""
import csv
import gzip
import io
import json
import subprocess
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "target" / "release" / "tollgate-report"
DIMS = ("account_id", "key_id", "model", "day")
FIELDS = ("requests", "errors", "prompt_tokens", "completion_tokens", "estimated_requests",
          "estimated_prompt_tokens", "estimated_completion_tokens", "cached_tokens", "cache_creation_tokens",
          "reasoning_tokens", "microcredits")
# Demo and conftest prices: per 1k prompt, per 1k completion tokens.
PRICES = {"qai-flash": (0.1, 0.2), "qai-max": (1.5, 4.5), "test-claude": (3.0, 15.0), "test-gemini": (0.3, 2.5)}
KEY = "sk-demo-active"
PROMPT = "Report on this, please"


def report(*args, check=True):
    out = subprocess.run([str(REPORT), *map(str, args)], capture_output=True, text=True, timeout=60)
    if check:
        assert out.returncode == 0, out.stderr
    return out


def report_json(*args):
    out = report("--format", "json", *args)
    return json.loads(out.stdout), out.stderr


def groups(doc):
    return {tuple(g[d] for d in DIMS): {f: g[f] for f in FIELDS} for g in doc["groups"]}


def quiet(log: Path, settle: float = 0.4, timeout: float = 10.0):
    """Waits until the billing log has not grown for `settle` seconds (records of earlier
    requests all written; Envoy flushes every 100 ms)."""
    deadline = time.time() + timeout
    size, since = -1, time.time()
    while time.time() < deadline:
        now = log.stat().st_size if log.exists() else 0
        if now != size:
            size, since = now, time.time()
        elif time.time() - since >= settle:
            return size
        time.sleep(0.05)
    raise AssertionError(f"{log} kept growing")


def independent_totals(lines):
    """The report's sums, computed here from the records themselves."""
    out = defaultdict(lambda: dict.fromkeys(FIELDS, 0))
    for line in lines:
        r = json.loads(line)
        g = out[(r["account_id"], r["key_id"], r["model"], r["time"][:10])]
        g["requests"] += 1
        g["errors"] += 1 if (r["error"] is not None or r["status"] >= 400) else 0
        pre = "estimated_" if r["estimated"] else ""
        g["estimated_requests"] += 1 if r["estimated"] else 0
        g[pre + "prompt_tokens"] += r["prompt_tokens"]
        g[pre + "completion_tokens"] += r["completion_tokens"]
        g["cached_tokens"] += r["cached_tokens"]
        g["cache_creation_tokens"] += r.get("cache_creation_tokens", 0)
        g["reasoning_tokens"] += r["reasoning_tokens"]
        g["microcredits"] += round(r["credits"] * 1e6)
    return dict(out)


def chat(http, model, usage=None, stream=False, key=KEY, front="openai", extra=None):
    headers = {**({"x-demo-usage-fixed": f"{usage[0]} {usage[1]}"} if usage else {}), **(extra or {})}
    if front == "openai":
        headers["Authorization"] = f"Bearer {key}"
        body = {"model": model, "messages": [{"role": "user", "content": PROMPT}], "stream": stream}
        if stream:
            body["stream_options"] = {"include_usage": True}
        status, hdrs, _ = http.request("POST", "/v1/chat/completions", body, headers)
    elif front == "anthropic":
        headers.update({"x-api-key": key, "anthropic-version": "2023-06-01"})
        body = {"model": model, "max_tokens": 300, "messages": [{"role": "user", "content": PROMPT}], "stream": stream}
        status, hdrs, _ = http.request("POST", "/v1/messages", body, headers)
    else:
        headers["x-goog-api-key"] = key
        verb = "streamGenerateContent?alt=sse" if stream else "generateContent"
        body = {"contents": [{"role": "user", "parts": [{"text": PROMPT}]}]}
        status, hdrs, _ = http.request("POST", f"/v1beta/models/{model}:{verb}", body, headers)
    rid = {k.lower(): v for k, v in hdrs.items()}["x-request-id"]
    return status, rid


def micro(model, p, c):
    pp, cp = PRICES[model]
    return round(p * pp * 1000 + c * cp * 1000)  # per 1k tokens, in millionths


def test_report_totals_grow_by_exactly_what_the_test_sent(stack, http, tmp_path):
    assert REPORT.exists(), "run `make build`"
    # A record of ours first, so the log exists and every earlier record is written.
    status, rid = chat(http, "qai-flash", (1, 1))
    assert status == 200
    stack.billing_record(rid)
    quiet(stack.billing_log)
    before, _ = report_json(stack.billing_log)
    assert before["skipped"] == 0

    # (front, model, usage the upstream reports, stream); qai-max's 0.5025 and test-gemini's 0.0628
    # credits are a hair under their value as doubles (x 1e6 = 502499.99...): the sums must round.
    sent = [("openai", "qai-flash", (1000, 200), False), ("openai", "qai-flash", (300, 50), True),
            ("openai", "qai-max", (38, 99), False), ("anthropic", "test-claude", (2000, 100), False),
            ("anthropic", "test-claude", (10, 990), True), ("gemini", "test-gemini", (500, 40), False),
            ("gemini", "test-gemini", (1, 25), True)]
    # The first Anthropic request writes 300 of its prompt tokens to the cache (billed as prompt
    # tokens: the model has no cache-write price).
    writes = {3: 300}
    ids = []
    for i, (front, model, usage, stream) in enumerate(sent):
        extra = {"x-demo-usage-details": f"0 0 {writes[i]}"} if i in writes else None
        status, rid = chat(http, model, usage, stream, front=front, extra=extra)
        assert status == 200, (front, model)
        ids.append(rid)
    # Billed on an estimate: the upstream reports no usage.
    status, est_id = chat(http, "qai-flash", extra={"x-demo-no-usage": "1"})
    assert status == 200
    # Refused: an inactive account's key (403), an unknown key (401).
    status, inactive_id = chat(http, "qai-flash", (5, 5), key="sk-demo-inactive")
    assert status == 403
    status, unknown_id = chat(http, "qai-flash", (5, 5), key="sk-not-a-key-of-ours")
    assert status == 401

    recs = [stack.billing_record(r) for r in ids]
    for i, (rec, (front, model, usage, _)) in enumerate(zip(recs, sent)):
        assert (rec["model"], rec["prompt_tokens"], rec["completion_tokens"], rec["estimated"]) == (model, *usage, False)
        assert rec["cache_creation_tokens"] == writes.get(i, 0)
        assert round(rec["credits"] * 1e6) == micro(model, *usage)
    est = stack.billing_record(est_id)
    assert est["estimated"] is True and est["prompt_tokens"] > 0 and est["completion_tokens"] > 0
    inactive = stack.billing_record(inactive_id)
    unknown = stack.billing_record(unknown_id)
    assert (inactive["key_id"], inactive["status"], inactive["credits"]) == ("key-demo-inactive", 403, 0)
    assert (unknown["key_id"], unknown["account_id"], unknown["status"]) == (None, None, 401)
    size = quiet(stack.billing_log)

    after, stderr = report_json(stack.billing_log)
    assert stderr == ""
    assert after["skipped"] == 0 and after["skipped_by_reason"] == {}
    assert after["files"] == [str(stack.billing_log)]
    assert after["by"] == ["account", "key", "model", "day"]

    # What our requests add, per group, from the usage the test chose (the estimate from its record).
    expect = defaultdict(lambda: dict.fromkeys(FIELDS, 0))
    for i, (rec, (_, model, (p, c), _)) in enumerate(zip(recs, sent)):
        g = expect[("acct-demo", "key-demo-active", model, rec["time"][:10])]
        g["requests"] += 1
        g["cache_creation_tokens"] += writes.get(i, 0)
        g["prompt_tokens"] += p
        g["completion_tokens"] += c
        g["microcredits"] += micro(model, p, c)
    g = expect[("acct-demo", "key-demo-active", "qai-flash", est["time"][:10])]
    g["requests"] += 1
    g["estimated_requests"] += 1
    g["estimated_prompt_tokens"] += est["prompt_tokens"]
    g["estimated_completion_tokens"] += est["completion_tokens"]
    g["microcredits"] += round(est["credits"] * 1e6)
    for r in (inactive, unknown):
        g = expect[(r["account_id"], r["key_id"], r["model"], r["time"][:10])]
        g["requests"] += 1
        g["errors"] += 1

    b, a = groups(before), groups(after)
    delta = {}
    for k in set(a) | set(b):
        d = {f: a.get(k, {}).get(f, 0) - b.get(k, {}).get(f, 0) for f in FIELDS}
        if any(d.values()):
            delta[k] = d
    assert delta == dict(expect)
    assert after["records"] - before["records"] == len(sent) + 3
    assert after["totals"]["microcredits"] - before["totals"]["microcredits"] == (
        sum(micro(m, *u) for _, m, u, _ in sent) + round(est["credits"] * 1e6))

    # The whole log (whatever other tests wrote too) against an independent sum of its records.
    raw = stack.billing_log.read_bytes()[:size]
    lines = [ln for ln in raw.decode().splitlines() if ln.strip()]
    assert after["lines"] == len(lines) == after["records"]
    assert a == independent_totals(lines)
    tot = after["totals"]
    assert tot["requests"] == len(lines)
    assert tot["microcredits"] == sum(g["microcredits"] for g in a.values())
    assert tot["credits"] == tot["microcredits"] / 1e6

    # A second log with lines that are not records: skipped, counted, said on stderr; one copy
    # of a real record in it is counted once more.
    extra = tmp_path / "rotated.jsonl"
    one = next(ln for ln in lines if json.loads(ln)["request_id"] == ids[0])
    extra.write_text("not json\n-\n{\"time\": \"2026-11-23T10:00:00Z\"}\n\n" + one + "\n" + one[: len(one) // 2] + "\n")
    both, stderr = report_json(stack.billing_log, extra)
    assert both["skipped"] == 4
    assert both["skipped_by_reason"] == {"not_json": 2, "no_record": 1, "not_a_record": 1}
    assert both["lines"] == len(lines) + 5
    assert both["records"] == len(lines) + 1
    assert both["totals"]["microcredits"] == tot["microcredits"] + micro("qai-flash", 1000, 200)
    assert stderr.startswith(f"tollgate-report: skipped 4 of {len(lines) + 5} lines") and f"{extra}:1 (not_json)" in stderr

    # The same log gzipped (a rotated one), and on stdin: the same groups.
    gz = tmp_path / "billing.jsonl.1.gz"
    gz.write_bytes(gzip.compress(raw))
    assert groups(report_json(gz)[0]) == a
    piped = subprocess.run([str(REPORT), "--format", "json", "-"], input=raw, capture_output=True, timeout=60)
    assert piped.returncode == 0 and groups(json.loads(piped.stdout)) == a

    # CSV by model says what JSON by model says.
    by_model, _ = report_json("--by", "model", stack.billing_log)
    rows = list(csv.DictReader(io.StringIO(report("--format", "csv", "--by", "model", stack.billing_log).stdout)))
    assert [r["model"] for r in rows] == [g["model"] or "" for g in by_model["groups"]]
    for r, g in zip(rows, by_model["groups"]):
        assert int(r["requests"]) == g["requests"] and int(r["prompt_tokens"]) == g["prompt_tokens"]
        assert int(r["cache_creation_tokens"]) == g["cache_creation_tokens"]
        assert round(float(r["credits"]) * 1e6) == g["microcredits"]

    # Dates: nothing after the last day, everything from the first.
    last_day = max(json.loads(ln)["time"][:10] for ln in lines)
    first_day = min(json.loads(ln)["time"][:10] for ln in lines)
    later, _ = report_json("--since", "2099-01-01", stack.billing_log)
    assert (later["records"], later["filtered_out"], later["groups"]) == (0, len(lines), [])
    window, _ = report_json("--since", first_day, "--until", last_day, stack.billing_log)
    assert (window["records"], window["filtered_out"]) == (len(lines), 0)

    # The chart: well-formed SVG, a bar segment for our qai-max spend, a legend entry per model.
    chart = tmp_path / "spend.svg"
    report("--svg", chart, "-o", tmp_path / "table.txt", stack.billing_log)
    root = ET.parse(chart).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    text = chart.read_text()
    spent = sorted({m for (_, _, m, _), g in a.items() if g["microcredits"] > 0})
    for m in spent:
        assert f">{m} · " in text, m
    assert "<svg" in text and text.count("<svg") == 1
    table = (tmp_path / "table.txt").read_text().splitlines()
    assert table[0].split()[:5] == ["account", "key", "model", "day", "requests"]
    assert table[-1].startswith("TOTAL")


def test_report_refuses_bad_arguments_and_missing_logs(tmp_path):
    assert report("--by", "week", tmp_path, check=False).returncode == 2
    assert report("--since", "2026-02-30", tmp_path, check=False).returncode == 2
    assert report("--since", "2026-02-02", "--until", "2026-02-01", tmp_path, check=False).returncode == 2
    assert report(check=False).returncode == 2
    missing = report(tmp_path / "nope.jsonl", check=False)
    assert missing.returncode == 1 and "nope.jsonl" in missing.stderr
