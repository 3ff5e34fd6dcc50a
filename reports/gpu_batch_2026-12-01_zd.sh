#!/usr/bin/env bash
# H200 batch of 2026-12-01 (sixth session), run zd, the session's final code: issue #16's two capture
# figures in one run (capture_overhead.py, every mode: summary against plain, full capture + fsync
# against the same bytes written sequentially and fsynced), with the host probe.
# Run from the repository root on the GPU machine: bash reports/gpu_batch_2026-12-01_zd.sh
export PYTHONUNBUFFERED=1
R=${OUT:-/tmp/out}/r; mkdir -p "$R"
export PYTHONPATH=$PWD
timeout 320 python benchmarks/capture_overhead.py --device cuda --repeats 10 --full-repeats 2 --tmp /tmp \
    --modes plain,summary,summary-stats,host,full,full+fsync,disk \
    --out "$R/capture_overhead_all.json" 2>&1 | grep -v Warn | tail -12
