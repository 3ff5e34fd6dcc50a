#!/usr/bin/env bash
# H200 batch of 2026-12-01 (sixth session), run x: the summary kernel's fast path (elements assumed
# finite; a program that meets a NaN / ±Inf or an overflow reads its rows again on the exact path).
# GPU capture and summary suites; device µs per launch of this code (new) and of b4b5505 (old,
# carried in .gpuwork/old); module-level capture overhead new / old / new with the host probe;
# then the launch-shape sweep of the new kernel for what time is left.
# Run from the repository root on the GPU machine: bash reports/gpu_batch_2026-12-01_x.sh
export PYTHONUNBUFFERED=1
R=${OUT:-/tmp/out}/r; mkdir -p "$R"
NEW=$PWD
OLD=$NEW/.gpuwork/old
PYTHONPATH=$NEW timeout 240 python -m pytest -q -p no:cacheprovider -x tests/gpu/test_capture_gpu.py \
    tests/gpu/test_summary_gpu.py 2>&1 | tail -4 | tee "$R/gpu_tests.log"
kernel() {  # $1: tree, $2: label
  (cd "$1" && PYTHONPATH=$1 timeout 60 python benchmarks/summary_kernel_time.py --label "$2" \
      --out "$R/kernel_time_$2.json" 2>&1 | grep -v Warn | tail -4)
}
kernel "$NEW" new; kernel "$OLD" old
module() {  # $1: tree, $2: label
  (cd "$1" && PYTHONPATH=$1 timeout 90 python benchmarks/capture_overhead.py --device cuda --repeats 8 \
      --tmp /tmp --modes plain,summary,summary-stats,host --out "$R/capture_overhead_$2.json" 2>&1 \
      | grep -v Warn | tail -5)
}
module "$NEW" new1; module "$OLD" old; module "$NEW" new2
PYTHONPATH=$NEW timeout 150 python benchmarks/sweep_summary_kernel.py > "$R/kernel_sweep.txt" 2>&1
tail -3 "$R/kernel_sweep.txt"
