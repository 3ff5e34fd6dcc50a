#!/usr/bin/env bash
# H200 batch of 2026-12-01 (seventh session), run s7c, the session's final code: run s7b's plus the
# collector's resume without a young collection and the index rows' memory form made once. Every GPU
# suite; op-level capture overhead against 053124a in one process (--baseline .gpuwork/base053);
# module-level summary and full capture (+ fsync) against the disk's sequential write, in one run;
# the host ablation (module and op level).
# Run from the repository root on the GPU machine: bash reports/gpu_batch_2026-12-01_s7c.sh
export PYTHONUNBUFFERED=1
R=${OUT:-/tmp/out}/r; mkdir -p "$R"
export PYTHONPATH=$PWD
timeout 250 python -m pytest -q -p no:cacheprovider tests/gpu 2>&1 | tail -4 | tee "$R/gpu_tests.log"
timeout 120 python benchmarks/op_capture_overhead.py --device cuda --repeats 8 --tmp /tmp \
    --modes plain,op,trace,host --baseline .gpuwork/base053 \
    --out "$R/op_capture_overhead.json" 2>&1 | grep -v Warn | tail -12
timeout 150 python benchmarks/capture_overhead.py --device cuda --repeats 10 --full-repeats 2 --tmp /tmp \
    --modes plain,summary,full+fsync,disk,host --baseline .gpuwork/base053 \
    --out "$R/capture_overhead.json" 2>&1 | grep -v Warn | tail -12
timeout 70 python benchmarks/host_ablation.py --repeats 5 \
    --modes plain,hooks,launch,sink,summary,op-trace,op-launch,op-summary \
    --out "$R/host_ablation.json" 2>&1 | grep -v Warn | tail -12
