#!/usr/bin/env bash
# H200 batch of 2026-12-01 (sixth session), run za, the session's final code (the batch reduction
# kernel renamed summary_reduce_kernel, so that traces tell it from torch's reduce_kernel): the GPU
# capture and summary suites; where a module-level summary capture's device time goes
# (capture_device_trace.py); its host time step by step (host_ablation.py); module-level capture
# overhead of this code and of b4b5505 in one process (--baseline .gpuwork/base), pinned to the
# two cores the probe found fastest.
# Run from the repository root on the GPU machine: bash reports/gpu_batch_2026-12-01_za.sh
export PYTHONUNBUFFERED=1
R=${OUT:-/tmp/out}/r; mkdir -p "$R"
export PYTHONPATH=$PWD
timeout 240 python -m pytest -q -p no:cacheprovider tests/gpu/test_capture_gpu.py tests/gpu/test_summary_gpu.py \
    2>&1 | tail -3 | tee "$R/gpu_tests.log"
timeout 120 python benchmarks/capture_device_trace.py --level module 2>&1 | grep -v Warn > "$R/device_trace_module.txt"
head -24 "$R/device_trace_module.txt"
timeout 120 python benchmarks/host_ablation.py --repeats 6 --modes plain,hooks,launch,sink,summary \
    --out "$R/host_ablation.json" 2>&1 | grep -v Warn | tail -8
python benchmarks/host_core_speed.py > "$R/cores.json"
CORES=$(python -c "import json; print(','.join(str(c) for c in json.load(open('$R/cores.json'))['fastest'][:2]))")
echo "pinned to cores $CORES"
taskset -c "$CORES" timeout 150 python benchmarks/capture_overhead.py --device cuda --repeats 14 --tmp /tmp \
    --modes plain,summary,summary-stats,host --baseline .gpuwork/base \
    --out "$R/capture_overhead_pinned.json" 2>&1 | grep -v Warn | tail -9
