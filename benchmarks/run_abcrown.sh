#!/usr/bin/env bash
# Run alpha-beta-CROWN (CPU) on the 14 MNIST-FC peer instances, one at a time.
#
# Installation (made by hand on this machine, as in shared/peers/README.md; nothing here comes from
# this repo):
#   - sources: /work/abcrown = alpha-beta-CROWN commit 8250d5f (models/ and datasets/ binaries not
#     checked out), with auto_LiRPA commit 9d100ec at /work/abcrown/auto_LiRPA (found through the
#     complete_verifier/auto_LiRPA symlink, not pip-installed).
#   - venv /work/abcrown-venv (Python 3.11): torch 2.13.0+cpu, torchvision 0.28.0, onnx2pytorch 0.6.0,
#     onnx 1.23.2, onnxruntime 1.32.0, gurobipy 13.0.3 (pip licence), pyyaml, packaging,
#     sortedcontainers, appdirs, psutil, tqdm, pandas, termcolor.
#   - edit 1: complete_verifier/load_model.py passes quirks= to onnx2pytorch.ConvertModel only when
#     non-empty; edit 2: the venv's torchvision/_meta_registrations.py registers the fake
#     torchvision::nms/qnms ops only when torchvision.extension._has_ops() (original kept at
#     /work/abcrown-venv/_meta_registrations.py.orig).
#   - config /work/abcrown/mnistfc_cpu.yaml = exp_configs/vnncomp22/mnistfc.yaml (bab-refine) with
#     general.device: cpu and root_path/csv_name/data.start/data.end removed.
#
# Usage: run_abcrown.sh [T=300] [OUT_CSV=./abcrown_results.csv] [NET:PROP ...]
#   NET:PROP (e.g. 256x4:prop_8_0.03) restricts the run to those instances; default: all 14.
#   CSV columns: network,property,verdict,wall_s  (verdict: unsat/sat/timeout, or error when no
#   "Result:" line was printed); full logs go to <OUT_CSV without .csv>_logs/.
# Environment: ABCROWN_DIR, ABCROWN_PY, ABCROWN_CFG, BENCH_DIR override the paths below.
set -u

T="${1:-300}"
OUT_CSV="${2:-./abcrown_results.csv}"
shift 2 2>/dev/null || shift $#

ABCROWN_DIR="${ABCROWN_DIR:-/work/abcrown}"
PY="${ABCROWN_PY:-/work/abcrown-venv/bin/python}"
CFG="${ABCROWN_CFG:-/work/abcrown/mnistfc_cpu.yaml}"
BENCH_DIR="${BENCH_DIR:-/work/shared/benchmarks/mnist_fc}"
ONNX_DIR="$BENCH_DIR/onnx"
VNNLIB_DIR="$BENCH_DIR/vnnlib_2022"

ALL=(
  256x4:prop_0_0.05 256x4:prop_5_0.05 256x4:prop_11_0.05 256x4:prop_13_0.05
  256x4:prop_14_0.05 256x4:prop_6_0.03 256x4:prop_8_0.03 256x4:prop_3_0.05
  256x6:prop_1_0.03 256x6:prop_9_0.03 256x6:prop_0_0.05 256x6:prop_3_0.05
  256x6:prop_8_0.05 256x6:prop_7_0.03
)
if [ "$#" -gt 0 ]; then INSTANCES=("$@"); else INSTANCES=("${ALL[@]}"); fi

for f in "$PY" "$CFG" "$ABCROWN_DIR/complete_verifier/abcrown.py"; do
  [ -e "$f" ] || { echo "missing: $f (see the header of $0)" >&2; exit 2; }
done

mkdir -p "$(dirname "$OUT_CSV")"
OUT_CSV="$(cd "$(dirname "$OUT_CSV")" && pwd)/$(basename "$OUT_CSV")"
LOG_DIR="${OUT_CSV%.csv}_logs"
mkdir -p "$LOG_DIR"
echo "network,property,verdict,wall_s" > "$OUT_CSV"

for inst in "${INSTANCES[@]}"; do
  size="${inst%%:*}"; prop="${inst#*:}"
  net="mnist-net_${size}.onnx"
  onnx="$ONNX_DIR/$net"
  src_vnnlib="$VNNLIB_DIR/${prop}.vnnlib"
  tag="${size}_${prop}"
  run_dir="$LOG_DIR/$tag"
  rm -rf "$run_dir"; mkdir -p "$run_dir"
  # Copy the property so that alpha-beta-CROWN's .compiled cache is written here, not in shared/.
  cp "$src_vnnlib" "$run_dir/"
  vnnlib="$run_dir/${prop}.vnnlib"
  log="$LOG_DIR/${tag}.log"

  start=$(date +%s.%N)
  ( cd "$ABCROWN_DIR/complete_verifier" && \
    "$PY" abcrown.py --config "$CFG" --onnx_path "$onnx" --vnnlib_path "$vnnlib" \
      --timeout "$T" --results_file "$run_dir/out.txt" --cex_path "$run_dir/cex.txt" ) \
    > "$log" 2>&1
  rc=$?
  end=$(date +%s.%N)
  wall=$(awk -v a="$start" -v b="$end" 'BEGIN{printf "%.1f", b-a}')

  raw=$(grep -E '^Result:' "$log" | tail -n 1 | sed -E 's/^Result:[[:space:]]*//; s/[[:space:]]+in [0-9.]+ seconds$//')
  case "$raw" in
    *unknown*|*timeout*|*"timed out"*) verdict=timeout ;;
    unsat*) verdict=unsat ;;
    sat*) verdict=sat ;;
    *unsafe*) verdict=sat ;;
    *safe*) verdict=unsat ;;
    *) verdict=error ;;
  esac
  echo "exit code: $rc; wall: $wall s" >> "$log"
  echo "$net,${prop}.vnnlib,$verdict,$wall" >> "$OUT_CSV"
  echo "$net ${prop}: $verdict (${wall} s; alpha-beta-CROWN said: ${raw:-nothing}; rc=$rc)"
done
