#!/usr/bin/env bash
# H200 diagnosis of 2026-12-01 (fourth session): module-level summary host time, this tree against
# 998e8ef (the third session's final main, unpacked by the caller into .gpuwork/old with
# `git archive 998e8ef precdiff benchmarks | tar -x -C .gpuwork/old`): cProfile of one module- and one
# op-level capture each (benchmarks/profile_capture.py), then capture_overhead.py's plain and summary
# modes, each tree in its own process, one after the other.
# Run from the repository root on the GPU machine, carrying .gpuwork: bash reports/gpu_diag_2026-12-01_n.sh
export PYTHONUNBUFFERED=1
R=${OUT:-/tmp/out}/r; mkdir -p "$R/new" "$R/old"
OLD=$PWD/.gpuwork/old
PYTHONPATH=$PWD python benchmarks/profile_capture.py --device cuda --out "$R/new" 2>&1 | grep -v Warn | tail -6
(cd "$OLD" && PYTHONPATH=$OLD python benchmarks/profile_capture.py --device cuda --out "$R/old" 2>&1 | grep -v Warn | tail -6)
PYTHONPATH=$PWD python benchmarks/capture_overhead.py --device cuda --repeats 11 --tmp /tmp --modes plain,summary \
    --out "$R/new/capture_overhead_h200.json" 2>&1 | grep -v Warn | tail -3
(cd "$OLD" && PYTHONPATH=$OLD python benchmarks/capture_overhead.py --device cuda --repeats 11 --tmp /tmp \
    --modes plain,summary --out "$R/old/capture_overhead_h200.json" 2>&1 | grep -v Warn | tail -3)
