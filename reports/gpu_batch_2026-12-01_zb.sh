#!/usr/bin/env bash
# H200 batch of 2026-12-01 (sixth session), run zb, the session's final code: Triton launches take
# tensor addresses by position (no isinstance per argument); the writer's root attributes without
# h5py's high-level path. The GPU suites this touches (batch-invariant kernels, capture, summaries,
# full capture); module-level capture overhead against b4b5505 in one process (--baseline
# .gpuwork/base), unpinned and pinned to the two cores found fastest; op level likewise, unpinned.
# Run from the repository root on the GPU machine: bash reports/gpu_batch_2026-12-01_zb.sh
export PYTHONUNBUFFERED=1
R=${OUT:-/tmp/out}/r; mkdir -p "$R"
export PYTHONPATH=$PWD
timeout 280 python -m pytest -q -p no:cacheprovider tests/gpu/test_kernels_gpu.py tests/gpu/test_capture_gpu.py \
    tests/gpu/test_summary_gpu.py tests/gpu/test_full_capture_gpu.py 2>&1 | tail -3 | tee "$R/gpu_tests.log"
overhead() {  # $1: label, then the command's prefix
  local label=$1; shift
  "$@" timeout 150 python benchmarks/capture_overhead.py --device cuda --repeats 14 --tmp /tmp \
      --modes plain,summary,summary-stats,host --baseline .gpuwork/base \
      --out "$R/capture_overhead_$label.json" 2>&1 | grep -v Warn | tail -9
}
overhead unpinned env
python benchmarks/host_core_speed.py > "$R/cores.json"
CORES=$(python -c "import json; print(','.join(str(c) for c in json.load(open('$R/cores.json'))['fastest'][:2]))")
echo "pinned to cores $CORES"
overhead pinned taskset -c "$CORES"
timeout 150 python benchmarks/op_capture_overhead.py --device cuda --repeats 6 --tmp /tmp \
    --modes plain,op,trace,host --baseline .gpuwork/base \
    --out "$R/op_capture_overhead.json" 2>&1 | grep -v Warn | tail -10
