#!/usr/bin/env bash
# H200 batch of 2026-12-01 (sixth session), run z, on run y's code: whether the core a process runs
# on explains the host's speed (benchmarks/host_core_speed.py, twice); where a module-level summary
# capture's device time goes now (capture_device_trace.py); module-level capture overhead of this
# code and of b4b5505 side by side in one process, unpinned, then pinned to the two cores that the
# probe found fastest.
# Run from the repository root on the GPU machine: bash reports/gpu_batch_2026-12-01_z.sh
export PYTHONUNBUFFERED=1
R=${OUT:-/tmp/out}/r; mkdir -p "$R"
export PYTHONPATH=$PWD
python benchmarks/host_core_speed.py | tee "$R/cores1.json"
python benchmarks/host_core_speed.py | tee "$R/cores2.json"
timeout 120 python benchmarks/capture_device_trace.py --level module 2>&1 | grep -v Warn > "$R/device_trace_module.txt"
head -30 "$R/device_trace_module.txt"
overhead() {  # $1: label, then the command's prefix
  local label=$1; shift
  "$@" timeout 150 python benchmarks/capture_overhead.py --device cuda --repeats 14 --tmp /tmp \
      --modes plain,summary,summary-stats,host --baseline .gpuwork/base \
      --out "$R/capture_overhead_$label.json" 2>&1 | grep -v Warn | tail -9
}
overhead unpinned env
CORES=$(python -c "import json; print(','.join(str(c) for c in json.load(open('$R/cores2.json'))['fastest'][:2]))")
echo "pinned to cores $CORES"
overhead pinned taskset -c "$CORES"
