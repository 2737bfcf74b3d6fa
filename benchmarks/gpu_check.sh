#!/usr/bin/env bash
# One-GPU check of ganaug, at most 8 minutes (GPU_BUDGET_SECONDS): training speed against the plain PyTorch loop,
# sampling throughput, and a short resnet run on cifar10-mini with its CAS ratio.
#
# Usage: benchmarks/gpu_check.sh [--quick] [CIFAR10_MINI_DIR]
#   Run from the repository root. CIFAR10_MINI_DIR holds train/ and test/ image folders
#   (default ../shared/data/cifar10-mini); when it is absent the run uses the built-in digits
#   at 32 px RGB instead (and says so in the JSON).
#   --quick: tiny settings on the CPU (about a minute), so the script is tested without a GPU.
# Output: $OUT/gpu_check.json when OUT is set, else runs/gpu_check/gpu_check.json, plus each
#   step's own JSON and log under parts/ next to it. A step that fails or runs out of time is
#   recorded in "failures" and the check goes on; the exit status is 1 if any step failed.
# Environment: PYTHON (default: python), GPU_TRAIN_SECONDS (default 90: wall time of the
#   cifar10-mini run, ended by SIGINT, which saves the model), GPU_BUDGET_SECONDS (default 480).
set -uo pipefail

source "$(dirname "$0")/gpu_common.sh"
gpu_args gpu_check.sh 2,15p "$@"
PY=${PYTHON:-python}
DATA=${DATA:-../shared/data/cifar10-mini}
DEST=${OUT:-runs/gpu_check}
PARTS="$DEST/parts"
BUDGET=${GPU_BUDGET_SECONDS:-480}
mkdir -p "$PARTS" || exit 2
rm -f "$PARTS"/*.json "$PARTS"/*.log  # this script's own outputs from an earlier check
FAILURES="$PARTS/failures.txt"
: > "$FAILURES"
SECONDS=0

if [ "$QUICK" = 1 ]; then
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
    DEVICE=cpu
    TRAIN_SIZE=(--size 16 --batch 8 --width 8 --quick --threads 1)
    SAMPLE=(--quick --threads 1 --size 16)
else
    require_cuda gpu_check.sh
    DEVICE=cuda
    TRAIN_SIZE=(--size 32 --batch 64)
    SAMPLE=(--size 32)
fi

# step NAME SECONDS CMD...: run CMD with a time limit, its output in parts/NAME.log.
#   No step runs past the budget: its limit is cut to what is left, and a step with under
#   15 s left is skipped (recorded as a failure), so the whole check ends within BUDGET.
step() {
    local name=$1 limit=$2
    shift 2
    local left=$((BUDGET - SECONDS))
    if [ "$left" -lt 15 ]; then
        echo "$name: skipped, the ${BUDGET}s budget is spent" | tee -a "$FAILURES"
        return 1
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    echo "== $name (limit ${limit}s, ${SECONDS}s used)"
    timeout -s INT "$limit" "$@" > "$PARTS/$name.log" 2>&1
    local rc=$?
    tail -n 3 "$PARTS/$name.log"
    if [ "$rc" != 0 ]; then
        echo "$name: exit $rc (see parts/$name.log)" >> "$FAILURES"
    fi
    return "$rc"
}

# 1. bench train: dcgan and resnet, fp32 / channels_last (the CUDA default) / AMP +
#    channels_last (/ channels_last + torch.compile). --quick keeps fp32 and channels_last (AMP
#    is CUDA-only, a no-op on the CPU).
if [ "$QUICK" = 1 ]; then
    SETTINGS=(fp32 cl) ARCHS=(dcgan)
else
    SETTINGS=(fp32 cl amp-cl) ARCHS=(dcgan resnet)
fi
for arch in dcgan resnet; do
    for setting in "${SETTINGS[@]}"; do
        case "$setting" in
            fp32) FLAGS=() ;;
            cl) FLAGS=(--channels-last) ;;
            amp-cl) FLAGS=(--amp --channels-last) ;;
        esac
        [ "$QUICK" = 1 ] && [ "$arch" = resnet ] && [ "$setting" = fp32 ] && continue
        step "train-$arch-$setting" 60 "$PY" -m ganaug bench train --arch "$arch" \
            --device "$DEVICE" "${TRAIN_SIZE[@]}" "${FLAGS[@]}" \
            --json "$PARTS/train-$arch-$setting.json"
    done
done
# 2. bench sample: batches 1, 16, 256 and 1024 of an untrained dcgan and resnet (--quick:
#    dcgan only; the default-width resnet takes a minute per 1024 images on a CPU core).
for arch in "${ARCHS[@]}"; do
    step "sample-$arch" 60 "$PY" -m ganaug bench sample --arch "$arch" --device "$DEVICE" \
        "${SAMPLE[@]}" --json "$PARTS/sample-$arch.json"
done

# 3. A short resnet run on cifar10-mini (or digits at 32 px RGB), then its CAS ratio.
if [ -d "$DATA/train" ] && [ -d "$DATA/test" ]; then
    TRAIN_DATA="folder:$DATA/train"
    EVAL_DATA=(--data "folder:$DATA/train" --test "folder:$DATA/test")
else
    TRAIN_DATA="digits?size=32&channels=3&split=train"
    EVAL_DATA=(--data digits)  # evaluate resizes to the generator's 32 px RGB
fi
RUN="$PARTS/run-$(date +%Y%m%d-%H%M%S)-$$"
if [ "$QUICK" = 1 ]; then
    TRAIN=(--steps 4 --batch 8 --config "$PARTS/tiny.yaml")
    printf 'arch_kwargs: {width: 16, embed_dim: 16}\nd_steps: 1\nsample_every: 1000\n' \
        > "$PARTS/tiny.yaml"
    EVAL=(--n-per-class 10 --classifier-steps 5)
    LIMIT=60
else
    # Ended by SIGINT after GPU_TRAIN_SECONDS: the trainer saves generator.safetensors.
    TRAIN=(--steps 1000000 --sample-every 100000)
    # 1,000 feature-classifier steps: the default 300 stopped at 50.8 % on an H200, under the
    # 55 % at which evaluate trusts its figures.
    EVAL=(--n-per-class 500 --classifier-steps 1000)
    LIMIT=${GPU_TRAIN_SECONDS:-90}
fi
step "cifar-train" "$LIMIT" "$PY" -m ganaug train --data "$TRAIN_DATA" --arch resnet \
    --device "$DEVICE" --out "$RUN" "${TRAIN[@]}"
if [ -f "$RUN/generator.safetensors" ]; then
    # The SIGINT that ends a timed run is not a failure.
    sed -i '/^cifar-train: exit 124/d;/^cifar-train: exit 130/d' "$FAILURES"
    step "cifar-evaluate" 120 "$PY" -m ganaug evaluate "$RUN/generator.safetensors" \
        "${EVAL_DATA[@]}" --device "$DEVICE" "${EVAL[@]}" --out "$PARTS/cifar-evaluate.json"
fi

# 4. torch.compile last, with what is left of the budget: it costs a minute or more up front,
#    so each arch runs only while 150 s remain (the JSON says whether it paid).
for arch in dcgan resnet; do
    if [ "$QUICK" = 0 ] && [ $((BUDGET - SECONDS)) -gt 150 ]; then
        step "train-$arch-cl-compile" 140 "$PY" -m ganaug bench train --arch "$arch" \
            --device "$DEVICE" "${TRAIN_SIZE[@]}" --channels-last --compile \
            --json "$PARTS/train-$arch-cl-compile.json"
    fi
done

# 5. One JSON of everything.
"$PY" - "$PARTS" "$DEST/gpu_check.json" "$QUICK" "$SECONDS" "$TRAIN_DATA" "$RUN" <<'EOF'
import json, sys
from pathlib import Path

import torch

parts, out, quick, seconds, data, run = sys.argv[1:]
parts = Path(parts)


def read(name):
    path = parts / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


train = {}
for path in sorted(parts.glob("train-*.json")):
    r = json.loads(path.read_text())
    rows = {row["side"]: row for row in r["rows"]}
    train[path.stem[len("train-"):]] = {
        "arch": r["arch"], "device": r["device"], "amp": r["amp"],
        "channels_last": r["channels_last"], "compile": r.get("compile", False),
        "ms_per_step": rows["ganaug"]["ms_per_step"],
        "images_per_s": rows["ganaug"]["images_per_s"],
        "reference_ms_per_step": rows["reference"]["ms_per_step"],
        "ratio_vs_plain_pytorch": r["ratio"], "peak_memory_mb": rows["ganaug"]["peak_memory_mb"]}
for arch in ("dcgan", "resnet"):
    eager, compiled = train.get(f"{arch}-cl"), train.get(f"{arch}-cl-compile")
    if eager and compiled:
        compiled["speedup_vs_eager"] = eager["ms_per_step"] / compiled["ms_per_step"]
sample = {}
for arch in ("dcgan", "resnet"):
    r = read(f"sample-{arch}")
    if r:
        sample[arch] = {str(row["batch"]): row["images_per_s"] for row in r["rows"]}
metrics = read("cifar-evaluate")
cifar = {"data": data, "run": run, "cas_ratio": None}
if metrics:
    cifar.update({k: metrics.get(k) for k in ("cas_ratio", "cas", "real_accuracy", "fid",
                                               "intra_fid", "precision", "recall")})
    cifar["feature_classifier_trusted"] = (metrics.get("feature_classifier") or {}).get("trusted")
    cifar["worst_classes"] = metrics.get("worst_classes")
failures = [ln for ln in (parts / "failures.txt").read_text().splitlines() if ln.strip()]
doc = {"quick": quick == "1", "torch": torch.__version__,
       "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() and quick != "1"
       else "cpu", "seconds": int(seconds), "train": train, "sample_images_per_s": sample,
       "cifar_run": cifar, "failures": failures}
Path(out).write_text(json.dumps(doc, indent=2) + "\n")
print(f"wrote {out} ({int(seconds)} s, {len(failures)} failure(s))")
sys.exit(1 if failures else 0)
EOF
