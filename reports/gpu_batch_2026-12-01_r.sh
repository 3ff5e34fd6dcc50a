#!/usr/bin/env bash
# H200 batch of 2026-12-01 (fifth session), run r: one process-wide module hook instead of one per
# module, tensor addresses handed to Triton's launcher as ints, summaries converted a batch at a time.
# The capture, summary and kernel GPU suites; the host ablation; module-level capture overhead of this
# code (new) and of 05fda50 (old, carried in .gpuwork/old), new / old / new.
# Run from the repository root on the GPU machine: bash reports/gpu_batch_2026-12-01_r.sh
export PYTHONUNBUFFERED=1
R=${OUT:-/tmp/out}/r; mkdir -p "$R"
NEW=$PWD
PYTHONPATH=$NEW python -m pytest -q -p no:cacheprovider -m cuda tests/gpu/test_capture_gpu.py tests/gpu/test_summary_gpu.py \
    "tests/gpu/test_kernels_gpu.py::test_launch_cache_reuses_kernels_only_for_matching_signatures" 2>&1 | tail -4 | tee "$R/gpu_tests.log"
PYTHONPATH=$NEW python benchmarks/host_ablation.py --repeats 9 --out "$R/host_ablation.json" 2>&1 | grep -v Warn | tail -9
overhead() {  # $1: tree, $2: label
  (cd "$1" && PYTHONPATH=$1 python benchmarks/capture_overhead.py --device cuda --repeats 12 --tmp /tmp \
      --modes plain,summary,summary-stats --out "$R/capture_overhead_$2.json" 2>&1 | grep -v Warn | tail -4)
}
overhead "$NEW" new1; overhead "$NEW/.gpuwork/old" old; overhead "$NEW" new2
