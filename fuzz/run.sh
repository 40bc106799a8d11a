#!/usr/bin/env bash
# Runs every fuzz target (or those named after the seconds) for SECONDS each, from the committed
# seeds plus the working corpus, and prints the executions per target. Exits non-zero on the
# first crash, leaving the input in fuzz/artifacts/<target>/ (`cargo +nightly fuzz run <target>
# <file>` replays it).
#   fuzz/run.sh SECONDS [TARGET...]
# FUZZ_CORPUS=tmp uses a throwaway working corpus (the smoke run), else fuzz/corpus/<target>.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:?usage: fuzz/run.sh SECONDS [TARGET...]}
shift
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi
cargo +nightly fuzz build >/dev/null 2>build.log || { cat build.log; exit 1; }
rm -f build.log
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
summary=()
for t in "${targets[@]}"; do
  if [ "${FUZZ_CORPUS:-}" = tmp ]; then corpus="$tmp/$t"; else corpus="corpus/$t"; fi
  mkdir -p "$corpus" "artifacts/$t"
  log="$tmp/$t.log"
  if ! cargo +nightly fuzz run "$t" "$corpus" "seeds/$t" -- \
      -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
      -print_final_stats=1 >"$log" 2>&1; then
    tail -40 "$log"
    echo "fuzz: $t FAILED (input saved under fuzz/artifacts/$t/)"
    exit 1
  fi
  runs=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | tail -1 | awk '{print $2}')
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | awk '{print $2}')
  eps=$(grep -o 'exec/s: [0-9]*' "$log" | tail -1 | awk '{print $2}')
  summary+=("$(printf '%-18s %10s execs in %3ss  (%s exec/s, cov %s)' "$t" "${runs:-?}" "$secs" "${eps:-?}" "${cov:-?}")")
done
printf '%s\n' "${summary[@]}"
