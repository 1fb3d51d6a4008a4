#!/usr/bin/env bash
# The prepared command for a machine with one accelerator: the correctness checks
# (benchmarks/accelerator_check.py) and then the benchmark (benchmarks/accelerator.py), within
# ACCEL_BUDGET_S seconds in all (default 480). The checks get at most ACCEL_CHECK_S (default 180);
# the benchmark gets what is left, less a margin, as its --deadline_s, and skips the rows that
# would start after it (its table says which). Writes under ${OUT:-/tmp/accel_out}:
# accelerator_check.json / .log and accelerator.json / .log.
#
#   bash benchmarks/accelerator_device.sh                 # on the accelerator
#   ACCEL_TINY=1 bash benchmarks/accelerator_device.sh    # rehearsal on CPU: tiny settings
#
# The configs import ml_collections: where it is not installed, carry its wheel in .whl/ at the
# repository root (see benchmarks/accelerator.py); this script installs .whl/*.whl first when
# .whl exists. PYTHON picks the interpreter (default python3). Exit status: 1 if a check
# failed, 2 if something could not run, else the benchmark's.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
OUT="${OUT:-/tmp/accel_out}"
PYTHON="${PYTHON:-python3}"
BUDGET_S="${ACCEL_BUDGET_S:-480}"
CHECK_S="${ACCEL_CHECK_S:-180}"
MARGIN_S=20
mkdir -p "$OUT"
start=$(date +%s)

if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site || exit 2
fi
if ! "$PYTHON" -c "import ml_collections" 2>/dev/null; then
  echo "ml_collections is not installed for $PYTHON: put its wheel in .whl/ (see benchmarks/accelerator.py)." >&2
  exit 2
fi

tiny=()
if [ "${ACCEL_TINY:-0}" = 1 ]; then
  tiny=(--tiny)
  export JAX_PLATFORMS="${JAX_PLATFORMS:-cpu}"
fi
"$PYTHON" -c "import jax, sys; print('jax', jax.__version__, jax.devices(), sys.version.split()[0])" 2>&1 |
  tee "$OUT/accelerator_check.log"

timeout --kill-after=10 "$CHECK_S" "$PYTHON" benchmarks/accelerator_check.py "${tiny[@]}" \
  --json "$OUT/accelerator_check.json" 2>&1 | tee -a "$OUT/accelerator_check.log"
check_status=${PIPESTATUS[0]}
[ "$check_status" = 124 ] && echo "The checks did not finish within ${CHECK_S} s." | tee -a "$OUT/accelerator_check.log"

left=$((BUDGET_S - ($(date +%s) - start) - MARGIN_S))
echo "benchmark: ${left} s left of ${BUDGET_S} s" | tee "$OUT/accelerator.log"
"$PYTHON" benchmarks/accelerator.py "${tiny[@]}" --deadline_s "$left" \
  --json "$OUT/accelerator.json" 2>&1 | tee -a "$OUT/accelerator.log"
bench_status=${PIPESTATUS[0]}

echo "checks: exit ${check_status}; benchmark: exit ${bench_status}; $(($(date +%s) - start)) s in all" |
  tee -a "$OUT/accelerator.log"
if [ "$check_status" = 1 ]; then exit 1; fi
if [ "$check_status" != 0 ] || [ "$bench_status" != 0 ]; then exit 2; fi
exit 0
