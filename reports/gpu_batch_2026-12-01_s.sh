#!/usr/bin/env bash
# H200 batch of 2026-12-01 (fifth session), run s: the summary kernel with its loads two steps ahead
# (AHEAD=2) against one (the sweep, CUDA-graph device times), then module-level capture overhead with
# the sweep's best sketch launch and with the default one.
# It ran with a temporary patch of capture/summary_triton.py (AHEAD, loads two steps ahead) and of
# the sweep; both were dropped (results/h200_2026-12-01_session5/README.md), so this script no longer
# runs as it is against the repository.
# Run from the repository root on the GPU machine: bash reports/gpu_batch_2026-12-01_s.sh
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
R=${OUT:-/tmp/out}/r; mkdir -p "$R"
python benchmarks/sweep_summary_kernel.py --best "$R/best.txt" 2>&1 | grep -v Warn | tee "$R/kernel_sweep.txt" | tail -3
for launch in "" "$(cat "$R/best.txt")"; do
  python benchmarks/capture_overhead.py --device cuda --repeats 12 --tmp /tmp --modes plain,summary,summary-stats \
      ${launch:+--launch $launch} --out "$R/capture_overhead_${launch:-default}.json" 2>&1 | grep -v Warn | tail -4
done
