# Tollgate: `make run` starts the demo, `make test` runs every test. See README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV      := .venv
PY        := $(VENV)/bin/python
STAMP     := $(VENV)/.installed
WASM      := target/wasm32-wasip1/release/tollgate.wasm
BACKEND   := target/release/demo-backend
KEYTOOL   := target/release/tollgate-keytool
REPORT    := target/release/tollgate-report
LIMITS    := target/release/tollgate-limits
TLS_DEV_CERT := envoy/tls/server.crt
NODE_DEPS := tests/node/node_modules/.package-lock.json
ENVOY     = $(shell $(PY) -c 'import envoy,os;print(os.path.join(os.path.dirname(envoy.__file__),"_bin","envoy"))')
FILTER_SRC := $(shell find filter/src core/src -name '*.rs') filter/Cargo.toml core/Cargo.toml Cargo.toml .cargo/config.toml
BACKEND_SRC := $(shell find tests/demo-backend/src -name '*.rs') tests/demo-backend/Cargo.toml
PYTEST_ARGS ?=
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 4

.PHONY: help build wasm-opt-check binaryen bench-filters run run-cluster clean-state test unit clippy validate integration node-deps venv wasm-target keytool clean fuzz fuzz-smoke fuzz-tools bench soak prometheus redis

help:
	@echo "make run    build what is missing, start the demo (gateway 127.0.0.1:8080, admin :9901)"
	@echo "make run CONFIG=envoy/production-tls.yaml   the bundled Envoy + built filter on any config"
	@echo "make run-cluster   Redis, the limits service and two Envoys sharing the limits (8080/8081, admins 9901/9902)"
	@echo "make clean-state   wipe the data make run-cluster keeps (.state/)"
	@echo "make test   unit tests, clippy, config validation, fuzz smoke, integration tests against real Envoy"
	@echo "make build  the wasm filter, the demo backend, the key tool, the report tool and the limits service"
	@echo "make keytool ARGS='new --account acct-demo'   mint a key / hash one"
	@echo "make fuzz   every fuzz target for FUZZ_SECONDS (60) each (cargo fuzz, nightly)"
	@echo "make bench  Tollgate against plain Envoy and the noop / floor filters side by side; table + bench-results/*.json"
	@echo "make soak   SOAK_SECONDS (180) of mixed traffic on 4 workers: records, VM restarts, memory"

$(STAMP): tests/requirements.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	touch $@

venv: $(STAMP)

wasm-target:
	@rustup target list --installed | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1

# The filter: cargo's module, then binaryen's wasm-opt over it in place (WASM_OPT_FLAGS; the
# module's features named, as the stripped module does not list them). `wasm-opt-check` redoes
# the pass when the module is cargo's again: cargo links target/.../release/tollgate.wasm to its
# deps/ copy on every build of the package, even one with nothing to do, so a module equal to
# deps/tollgate.wasm has not been through wasm-opt.
WASM_DEPS := target/wasm32-wasip1/release/deps/tollgate.wasm
WASM_OPT_FLAGS := -O2 --merge-similar-functions --enable-simd --enable-bulk-memory --enable-sign-ext \
	--enable-mutable-globals --enable-nontrapping-float-to-int
$(WASM): $(FILTER_SRC) Cargo.lock | wasm-target binaryen
	cargo build --release --locked -p tollgate-filter --target wasm32-wasip1
	wasm-opt $(WASM_OPT_FLAGS) $@ -o $@.opt && mv $@.opt $@

wasm-opt-check: $(WASM) | binaryen
	@if cmp -s $(WASM) $(WASM_DEPS); then echo "wasm-opt $(WASM_OPT_FLAGS) $(WASM)"; \
	  wasm-opt $(WASM_OPT_FLAGS) $(WASM) -o $(WASM).opt && mv $(WASM).opt $(WASM); fi

$(BACKEND): $(BACKEND_SRC) Cargo.lock
	cargo build --release --locked -p tollgate-demo-backend

$(KEYTOOL): $(FILTER_SRC) tools/keytool/src/main.rs tools/keytool/Cargo.toml Cargo.lock
	cargo build --release --locked -p tollgate-keytool

$(REPORT): $(shell find tools/report/src -name '*.rs') tools/report/Cargo.toml Cargo.lock
	cargo build --release --locked -p tollgate-report

$(LIMITS): $(shell find tools/limits-service/src core/src -name '*.rs') tools/limits-service/Cargo.toml core/Cargo.toml Cargo.lock
	cargo build --release --locked -p tollgate-limits

build: wasm-target $(WASM) wasm-opt-check $(BACKEND) $(KEYTOOL) $(REPORT) $(LIMITS)

$(NODE_DEPS): tests/node/package.json tests/node/package-lock.json
	cd tests/node && npm ci --no-audit --no-fund --loglevel=error
	touch $@

node-deps: $(NODE_DEPS)

# `make run CONFIG=path`: the bundled Envoy on that file as it is (see run_demo.py).
CONFIG ?=
run: build $(STAMP) $(if $(CONFIG),$(TLS_DEV_CERT))
	cd tests/harness && CONFIG="$(if $(CONFIG),$(abspath $(CONFIG)))" ../../$(PY) run_demo.py

# `make run-cluster`: Redis (data in .state/redis, kept), the limits service and two Envoy replicas
# (gateways 8080 and 8081, admins 9901 and 9902) sharing the limits, until Ctrl-C.
# STATE_DIR moves what it keeps; GATEWAY_PORTS, ADMIN_PORTS (comma-separated), BACKEND_PORT and
# REDIS_PORT move its ports.
STATE_DIR ?= .state
run-cluster: build $(STAMP) redis
	cd tests/harness && STATE_DIR="$(abspath $(STATE_DIR))" ../../$(PY) run_cluster.py

# Wipes what `make run-cluster` keeps (Redis's data: counters, holds, spent credits).
clean-state:
	rm -rf "$(STATE_DIR)"

keytool: $(KEYTOOL)
	@$(KEYTOOL) $(ARGS)

unit:
	cargo test --workspace --locked

clippy:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

# The production example (envoy/production-tls.yaml) reads envoy/tls/server.{crt,key}: a
# throwaway self-signed pair is made here when missing (git ignores envoy/tls/).
$(TLS_DEV_CERT):
	mkdir -p envoy/tls
	openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj /CN=localhost \
	  -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
	  -keyout envoy/tls/server.key -out $@ 2>/dev/null

validate: $(STAMP) $(WASM) wasm-opt-check $(TLS_DEV_CERT)
	$(PY) tests/harness/check_clusters.py envoy/*.yaml
	@for f in envoy/*.yaml; do \
	  echo "envoy --mode validate $$f"; \
	  $(ENVOY) --mode validate -c $$f --use-dynamic-base-id -l error >/dev/null || exit 1; \
	done

# Debian's prometheus for the dashboard test (tests/integration/test_dashboard.py), installed when
# missing; the test runs the binary itself on a free port. The packaged service is not used: on a
# host with systemd it is stopped right after the install.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
prometheus:
	@command -v prometheus >/dev/null || { \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus && \
	  { $(SUDO) systemctl stop prometheus 2>/dev/null || true; }; }

# Debian's binaryen for wasm-opt, the filter's post-link pass (above), installed when missing.
binaryen:
	@command -v wasm-opt >/dev/null || { \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends binaryen; }

# Debian's redis-server for the shared limits service tests (tests/integration/test_limits_service.py),
# installed when missing; the tests run the binary themselves on a free port with a temp dir. As
# with prometheus, the packaged service is stopped right after the install on a host with systemd.
redis:
	@command -v redis-server >/dev/null || { \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server && \
	  { $(SUDO) systemctl stop redis-server 2>/dev/null || true; }; }

integration: build bench-filters $(STAMP) $(NODE_DEPS) prometheus redis
	$(PY) -m pytest -q tests/integration tests/bench/test_bench_strict.py tests/bench/test_bench_floor.py $(PYTEST_ARGS)

# Fuzzing (fuzz/, its own workspace): nightly and cargo-fuzz are installed when missing.
fuzz-tools:
	@rustup toolchain list | grep -q '^nightly' || { echo "installing the nightly Rust toolchain (once, a few minutes)"; rustup toolchain install nightly --profile minimal; }
	@cargo +nightly fuzz --version >/dev/null 2>&1 || { echo "installing cargo-fuzz (once, a few minutes: it is compiled from source)"; cargo install cargo-fuzz --locked; }

fuzz: fuzz-tools
	fuzz/run.sh $(FUZZ_SECONDS)

# A few seconds per target from the committed seeds, with a throwaway corpus: part of `make test`.
fuzz-smoke: fuzz-tools
	FUZZ_CORPUS=tmp fuzz/run.sh $(FUZZ_SMOKE_SECONDS)

test: build unit clippy validate fuzz-smoke integration

# The bench's floor filters (tools/bench/filters): a do-nothing proxy-wasm filter, one doing only
# what any body-routing filter must, and `calls` (the floor plus Tollgate's host calls on a chat
# request, for tests/bench/envoy_callgrind.py), built like Tollgate's. Not part of `make build`.
BENCH_FILTERS := target/wasm32-wasip1/release/bench_noop.wasm target/wasm32-wasip1/release/bench_floor.wasm \
	target/wasm32-wasip1/release/bench_calls.wasm
BENCH_FILTERS_SRC := $(shell find tools/bench/filters -name '*.rs' -o -name Cargo.toml)

$(BENCH_FILTERS) &: $(BENCH_FILTERS_SRC) Cargo.lock .cargo/config.toml | wasm-target
	cargo build --release --locked -p tollgate-bench-noop -p tollgate-bench-floor -p tollgate-bench-calls --target wasm32-wasip1

bench-filters: $(BENCH_FILTERS)

# The host calls per exchange, counted by the glue's fake host (issue 17). Then the overhead
# against plain Envoy and the floor filters, side by side (issues 7, 17): table on stdout,
# JSON in bench-results/. Then live configuration at scale (issue 15): updates of a compact key
# table of 100k and 1M keys through ECDS (LIVE_BENCH_KEYS, LIVE_BENCH_UPDATES; LIVE_BENCH_KEYS=
# empty skips it). Then the shared limits' cost (issue 14): the same Tollgate on the local and the
# remote store (Redis and the limits service) side by side, short by default: REMOTE_BENCH_ROUNDS
# rounds of REMOTE_BENCH_SECONDS at concurrency REMOTE_BENCH_CONCURRENCY (REMOTE_BENCH_ROUNDS=0 skips it).
LIVE_BENCH_KEYS ?= 100000,1000000
LIVE_BENCH_UPDATES ?= 5
REMOTE_BENCH_ROUNDS ?= 2
REMOTE_BENCH_SECONDS ?= 3
REMOTE_BENCH_CONCURRENCY ?= 16
bench: build bench-filters $(STAMP) redis
	cargo build --release --locked -p tollgate-bench
	cargo test --release --locked -q -p tollgate-filter --test glue_hostcalls -- hostcalls_table --ignored --nocapture
	$(PY) tests/bench/bench.py
	$(if $(filter-out 0,$(REMOTE_BENCH_ROUNDS)),BENCH_ROUNDS=$(REMOTE_BENCH_ROUNDS) BENCH_DURATION=$(REMOTE_BENCH_SECONDS) BENCH_CONCURRENCY=$(REMOTE_BENCH_CONCURRENCY) BENCH_LATENCY_DURATION=2 BENCH_WARMUP=1 $(PY) tests/bench/remote_bench.py)
	$(if $(LIVE_BENCH_KEYS),$(PY) tests/bench/live_config_bench.py --keys $(LIVE_BENCH_KEYS) --updates $(LIVE_BENCH_UPDATES))

# A few minutes of mixed valid, hostile and faulty traffic on 4 workers (SOAK_SECONDS, default 180).
soak: build $(STAMP)
	$(PY) tests/soak/soak.py

clean:
	cargo clean
	rm -rf $(VENV) tests/node/node_modules
