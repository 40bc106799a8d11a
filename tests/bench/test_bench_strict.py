"""`BENCH_STRICT=1` turns a missed budget into a failing `make bench` (pytest tests/bench)."""
import subprocess
import sys
from pathlib import Path

import bench

MET = {"what": "a", "met": True, "measured": "1"}
MISSED = {"what": "b", "met": False, "measured": "2"}


def test_exit_status_fails_only_when_strict_and_missed():
    assert bench.exit_status([MET, MET], strict=True) == 0
    assert bench.exit_status([MET, MISSED], strict=True) == 1
    assert bench.exit_status([MET, MISSED], strict=False) == 0
    assert bench.exit_status([], strict=True) == 0


def test_bench_strict_environment_variable():
    here = Path(__file__).resolve().parent
    for value, strict in (("1", True), ("yes", True), ("0", False), ("", False)):
        out = subprocess.run([sys.executable, "-c", "import bench; print(bench.STRICT)"], cwd=here,
                             env={"BENCH_STRICT": value, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, check=True)
        assert out.stdout.strip() == str(strict), (value, out.stderr)


def test_per_event_budget_is_the_slope_between_the_two_stream_lengths():
    """The per-event budget is judged on one more event's cost over the floor (the request's own
    cost, which both lengths carry, drops out); the whole over-floor CPU per event is reported too."""
    def res(sid, over_us, events):
        return {"id": sid, "throughput_ratio": 0.9,
                "over_floor": {"cpu_us_per_request": over_us, "unloaded_p50_us": 0.0,
                               "events_per_response": events, "cpu_us_per_event": over_us / events}}
    results = [res("3-openai-stream", 110.0, 203), res("3s-openai-stream-short", 56.0, 23),
               res("4-anthropic-stream", 121.0, 205)]
    bench.add_marginal_event_cost(results, {sc["id"]: sc for sc in bench.scenarios()})
    long3 = results[0]["over_floor"]
    assert long3["cpu_us_per_added_event"] == (110.0 - 56.0) / 180
    assert long3["short_events"] == 23
    # Without its short companion scenario 4 has no slope: judged on the whole figure.
    assert "cpu_us_per_added_event" not in results[2]["over_floor"]
    verdict = {b["what"]: b for b in bench.budgets({"scenarios": results, "wasm_bytes": 1})}
    ev3 = verdict["scenario 3 Envoy CPU <= 0.25 µs/event over the floor"]
    assert ev3["met"] is False and ev3["measured"].startswith("+0.30 µs per added event (203 against 23 events)")
    results[1]["over_floor"]["cpu_us_per_request"] = 70.0
    bench.add_marginal_event_cost(results, {sc["id"]: sc for sc in bench.scenarios()})
    verdict = {b["what"]: b for b in bench.budgets({"scenarios": results, "wasm_bytes": 1})}
    assert verdict["scenario 3 Envoy CPU <= 0.25 µs/event over the floor"]["met"] is True
    assert verdict["scenario 4 Envoy CPU <= 0.25 µs/event over the floor"]["met"] is False
