#!/usr/bin/env bash
# H200 batch of 2026-12-01 (fifth session), run v, the session's final code: at op level, tensors of
# up to 64 MiB share summary launches (until 128 MiB wait per dtype). Every GPU suite; module-level and
# op-level capture overhead of this code (new) and of 05fda50 (old, carried in .gpuwork/old), each
# new / old / new.
# Run from the repository root on the GPU machine: bash reports/gpu_batch_2026-12-01_v.sh
export PYTHONUNBUFFERED=1
R=${OUT:-/tmp/out}/r; mkdir -p "$R"
NEW=$PWD
PYTHONPATH=$NEW timeout 300 python -m pytest -q -p no:cacheprovider -m cuda tests/gpu 2>&1 | tail -4 | tee "$R/gpu_tests.log"
module() {  # $1: tree, $2: label
  (cd "$1" && PYTHONPATH=$1 python benchmarks/capture_overhead.py --device cuda --repeats 12 --tmp /tmp \
      --modes plain,summary,summary-stats --out "$R/capture_overhead_$2.json" 2>&1 | grep -v Warn | tail -4)
}
op() {  # $1: tree, $2: label
  (cd "$1" && PYTHONPATH=$1 python benchmarks/op_capture_overhead.py --device cuda --repeats 6 --tmp /tmp \
      --modes plain,op,trace --out "$R/op_capture_overhead_$2.json" 2>&1 | grep -v Warn | tail -4)
}
module "$NEW" new1; module "$NEW/.gpuwork/old" old; module "$NEW" new2
op "$NEW" new1; op "$NEW/.gpuwork/old" old; op "$NEW" new2
