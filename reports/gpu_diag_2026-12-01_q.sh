#!/usr/bin/env bash
# H200 diagnosis of 2026-12-01 (fifth session), run q: where a summary capture's host time goes,
# step by step (benchmarks/host_ablation.py), once as the process starts and once pinned to the CPUs of
# the GPU's NUMA node; a cProfile of module- and op-level captures; the host's CPU layout.
# Run from the repository root on the GPU machine: bash reports/gpu_diag_2026-12-01_q.sh
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
R=${OUT:-/tmp/out}/r; mkdir -p "$R"
{
  nproc; cat /proc/cpuinfo | grep "model name" | sort | uniq -c
  bus=$(nvidia-smi --query-gpu=pci.bus_id --format=csv,noheader | head -1 | tr 'A-Z' 'a-z' | sed 's/^0000//')
  for d in /sys/bus/pci/devices/*"${bus#0000}"; do echo "gpu $d numa_node $(cat $d/numa_node) local_cpulist $(cat $d/local_cpulist)"; done
  echo "affinity $(taskset -pc $$)"; lscpu | grep -i -E "numa|socket|mhz" ; nvidia-smi topo -m 2>/dev/null | head -5
} > "$R/host.txt" 2>&1
python benchmarks/host_ablation.py --repeats 9 --out "$R/host_ablation.json" 2>&1 | grep -v Warn | tail -9
local=$(cat /sys/bus/pci/devices/*$(nvidia-smi --query-gpu=pci.bus_id --format=csv,noheader | head -1 | tr 'A-Z' 'a-z' | sed 's/^0000//; s/^00000000//')/local_cpulist 2>/dev/null | head -1)
mine=$(python -c "import os; print(','.join(map(str, sorted(os.sched_getaffinity(0)))))")
echo "local=$local mine=$mine" >> "$R/host.txt"
python - "$local" "$mine" > "$R/pin.txt" <<'PY'
import sys
def parse(text):
    out = set()
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-"); out |= set(range(int(a), int(b) + 1))
        elif part:
            out.add(int(part))
    return out
both = sorted(parse(sys.argv[1]) & parse(sys.argv[2])) if sys.argv[1] else []
print(",".join(map(str, both[:4])))
PY
pin=$(cat "$R/pin.txt"); echo "pinned to: $pin"
if [ -n "$pin" ]; then
  taskset -c "$pin" python benchmarks/host_ablation.py --repeats 9 --modes plain,launch,summary,op-trace,op-summary \
      --out "$R/host_ablation_pinned.json" 2>&1 | grep -v Warn | tail -6
fi
python benchmarks/profile_capture.py --out "$R" 2>&1 | grep -v Warn | tail -6
