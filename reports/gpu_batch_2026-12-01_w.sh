#!/usr/bin/env bash
# H200 batch of 2026-12-01 (fifth session), run w: module-level capture overhead of the final code
# (new) and of 05fda50 (old, in .gpuwork/old) in four alternating processes, new / old / new / old,
# 6 rounds each: the host's speed drifted within runs u and v, so one process per side was not enough.
# Run from the repository root on the GPU machine, right after run v: bash reports/gpu_batch_2026-12-01_w.sh
export PYTHONUNBUFFERED=1
R=${OUT:-/tmp/out}/r; mkdir -p "$R"
NEW=$PWD
module() {  # $1: tree, $2: label
  (cd "$1" && PYTHONPATH=$1 python benchmarks/capture_overhead.py --device cuda --repeats 6 --tmp /tmp \
      --modes plain,summary,summary-stats --out "$R/capture_overhead_$2.json" 2>&1 | grep -v Warn | tail -3)
}
module "$NEW" new1; module "$NEW/.gpuwork/old" old1; module "$NEW" new2; module "$NEW/.gpuwork/old" old2
