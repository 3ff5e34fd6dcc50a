#!/usr/bin/env bash
# H200 diagnosis (third session of 2026-12-01): where module/op summary capture and full capture spend
# their time, before optimising. Run from the repository root: bash reports/gpu_diag_2026-12-01_d.sh
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
R=${OUT:-/tmp/out}/d; mkdir -p "$R"
{ df -h /tmp; free -g; grep . /proc/sys/vm/dirty_*; nproc; } > "$R/host.txt" 2>&1
python benchmarks/diagnose_capture_gpu.py --out "$R" --sections kernel,io,profile 2>&1 | grep -v Warning
python benchmarks/profile_capture.py --device cuda --out "$R" 2>&1 | tail -8
