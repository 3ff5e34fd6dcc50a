#!/usr/bin/env bash
# H200 batch of 2026-12-01 (sixth session), run y: the summary kernel's fast path with the launch
# shape run x's sweep chose (256, 8, 4, 8). Every GPU suite; device µs per launch of this code (new)
# and of b4b5505 (old, .gpuwork/old); module-level and op-level capture overhead of both versions in
# ONE process each, alternating round by round (--baseline .gpuwork/base, made by
# benchmarks/baseline_package.py b4b5505 .gpuwork/base), so that both see the same host speed.
# Run from the repository root on the GPU machine: bash reports/gpu_batch_2026-12-01_y.sh
export PYTHONUNBUFFERED=1
R=${OUT:-/tmp/out}/r; mkdir -p "$R"
NEW=$PWD
OLD=$NEW/.gpuwork/old
PYTHONPATH=$NEW timeout 300 python -m pytest -q -p no:cacheprovider -m cuda tests/gpu 2>&1 | tail -4 | tee "$R/gpu_tests.log"
kernel() {  # $1: tree, $2: label
  (cd "$1" && PYTHONPATH=$1 timeout 60 python benchmarks/summary_kernel_time.py --label "$2" \
      --out "$R/kernel_time_$2.json" 2>&1 | grep -v Warn | tail -4)
}
kernel "$NEW" new; kernel "$OLD" old
PYTHONPATH=$NEW timeout 150 python benchmarks/capture_overhead.py --device cuda --repeats 12 --tmp /tmp \
    --modes plain,summary,summary-stats,host --baseline .gpuwork/base \
    --out "$R/capture_overhead.json" 2>&1 | grep -v Warn | tail -10
PYTHONPATH=$NEW timeout 150 python benchmarks/op_capture_overhead.py --device cuda --repeats 6 --tmp /tmp \
    --modes plain,op,trace,host --baseline .gpuwork/base \
    --out "$R/op_capture_overhead.json" 2>&1 | grep -v Warn | tail -10
