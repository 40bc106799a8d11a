"""The module Envoy loads (target/wasm32-wasip1/release/tollgate.wasm, the one every other test
runs) is the one `make build` finishes with binaryen's wasm-opt, and it is under issue 7's size
target. cargo's own output stays in deps/tollgate.wasm: the two must differ, the optimized one
the smaller."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))

from tollgate_harness import WASM  # noqa: E402

CARGO_OUT = WASM.parent / "deps" / "tollgate.wasm"


def test_envoy_loads_the_wasm_opt_module():
    built, linked = WASM.read_bytes(), CARGO_OUT.read_bytes()
    assert built[:8] == b"\0asm\x01\0\0\0"
    assert built != linked, "tollgate.wasm is cargo's module: run `make build` (it runs wasm-opt)"
    assert len(built) < len(linked)


def test_module_is_under_one_megabyte():
    assert WASM.stat().st_size < 1_000_000, f"tollgate.wasm is {WASM.stat().st_size} bytes (issue 7: < 1,000,000)"
