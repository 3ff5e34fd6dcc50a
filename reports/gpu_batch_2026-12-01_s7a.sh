#!/usr/bin/env bash
# H200 batch of 2026-12-01 (seventh session), run s7a: summary rows written a batch at a time as
# arrays (store/index_rows.py: one HDF5 write with the strings' addresses), SummaryBatch handing
# blocks of arrays to the sink, shared-launch tables with one event per 16 copies, the op tracer's
# pre-dispatch check made once. GPU suites of capture, summaries and full capture (shared launches over
# laps of the table ring: new test); op-level and module-level capture overhead against 053124a in one
# process (--baseline .gpuwork/base053); the host ablation, op level included.
# Run from the repository root on the GPU machine: bash reports/gpu_batch_2026-12-01_s7a.sh
export PYTHONUNBUFFERED=1
R=${OUT:-/tmp/out}/r; mkdir -p "$R"
export PYTHONPATH=$PWD
timeout 240 python -m pytest -q -p no:cacheprovider tests/gpu/test_capture_gpu.py tests/gpu/test_summary_gpu.py \
    tests/gpu/test_full_capture_gpu.py 2>&1 | tail -4 | tee "$R/gpu_tests.log"
timeout 150 python benchmarks/op_capture_overhead.py --device cuda --repeats 8 --tmp /tmp \
    --modes plain,op,trace,host --baseline .gpuwork/base053 \
    --out "$R/op_capture_overhead.json" 2>&1 | grep -v Warn | tail -12
timeout 110 python benchmarks/capture_overhead.py --device cuda --repeats 14 --tmp /tmp \
    --modes plain,summary,host --baseline .gpuwork/base053 \
    --out "$R/capture_overhead.json" 2>&1 | grep -v Warn | tail -9
timeout 90 python benchmarks/host_ablation.py --repeats 7 \
    --modes plain,hooks,launch,sink,summary,op-trace,op-launch,op-summary \
    --out "$R/host_ablation.json" 2>&1 | grep -v Warn | tail -12
