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
