#!/usr/bin/env bash
# H200 batch of 2026-12-01 (fifth session), run u: the batch reduction spread over column blocks (one
# program per slot took ~130 µs of device time per batch in run t's code). The capture GPU suite; the
# device trace of a module-level capture; module-level capture overhead of this code (new) and of
# 05fda50 (old, carried in .gpuwork/old), new / old / new.
# Run from the repository root on the GPU machine: bash reports/gpu_batch_2026-12-01_u.sh
export PYTHONUNBUFFERED=1
R=${OUT:-/tmp/out}/r; mkdir -p "$R"
NEW=$PWD
PYTHONPATH=$NEW python -m pytest -q -p no:cacheprovider -m cuda tests/gpu/test_capture_gpu.py 2>&1 | tail -3 | tee "$R/gpu_tests.log"
PYTHONPATH=$NEW python benchmarks/capture_device_trace.py --level module 2>&1 | grep -v -i warn | tail -40 > "$R/device_trace_module.txt"
grep -A8 "== capture" "$R/device_trace_module.txt"
overhead() {  # $1: tree, $2: label
  (cd "$1" && PYTHONPATH=$1 python benchmarks/capture_overhead.py --device cuda --repeats 12 --tmp /tmp \
      --modes plain,summary,summary-stats --out "$R/capture_overhead_$2.json" 2>&1 | grep -v Warn | tail -4)
}
overhead "$NEW" new1; overhead "$NEW/.gpuwork/old" old; overhead "$NEW" new2
