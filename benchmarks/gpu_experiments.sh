#!/usr/bin/env bash
# #15's cifar10-mini long-tail table on one lent GPU, in at most GPU_BUDGET_SECONDS (480): on
# the 2-core CPU it needs about 18 CPU-hours at 4,800 classifier steps.
#   1. budget check: real+aug at 4,800 and 9,600 classifier steps, seeds 0-2 (six processes;
#      on the CPU, 1,200 -> 2,400 gained 1.1 points over 3 seeds, 2,400 -> 4,800 2.05 on seed 0);
#   2. the recipe table with every control at STEPS classifier steps (three processes, one per
#      seed, sharing one --out), then the report over the three seeds.
# Both parts run side by side: the narrow classifiers leave the GPU mostly idle. The GANs are
# the CPU preset (dcgan width 32, EMA 0.999, --gan-config), so the table compares with the CPU
# tables of docs/results.md; the cells of an unfinished process stay in table/cells.
#
# Usage: benchmarks/gpu_experiments.sh [--quick] [CIFAR10_MINI_DIR]
#   --quick: tiny settings on the built-in digits, on the CPU (about two minutes), so the
#   script is tested without a GPU.
# Output ($OUT, else runs/gpu_experiments): budget.txt (one line per budget and seed),
#   report.md (when every seed finished), table.tgz (the table folder without models),
#   log.txt. Environment: PYTHON (python), STEPS (4800), GPU_BUDGET_SECONDS (480).
#   On a lent machine with ganaug not installed: PYTHON=python3 PYTHONPATH=$PWD.
set -uo pipefail

source "$(dirname "$0")/gpu_common.sh"
gpu_args gpu_experiments.sh 2,18p "$@"
PY=${PYTHON:-python}
DEST=${OUT:-runs/gpu_experiments}
BUDGET=${GPU_BUDGET_SECONDS:-480}
mkdir -p "$DEST" || exit 2
WORK=$(mktemp -d)
SECONDS=0
export OMP_NUM_THREADS=1 NO_ALBUMENTATIONS_UPDATE=1

if [ "$QUICK" = 1 ]; then
    DEVICE=cpu
    SPLITS=(--data "digits?size=16")
    BUDGETS=(4 8)
    STEPS=4
    KWARGS='{channels: [8, 8, 8, 8], stem_width: 8}'
    GAN=(--gan-steps 2 --gan-config '{arch: dcgan, arch_kwargs: {width: 8, embed_dim: 8}}')
else
    require_cuda gpu_experiments.sh
    DATA=${DATA:-../shared/data/cifar10-mini}
    DEVICE=cuda
    SPLITS=(--data "folder:$DATA/train" --test "folder:$DATA/test")
    BUDGETS=(4800 9600)
    STEPS=${STEPS:-4800}
    KWARGS='{channels: [32, 64, 128, 256], stem_width: 16}'
    GAN=(--gan-steps 2000
         --gan-config '{arch: dcgan, arch_kwargs: {width: 32}, ema_decay: 0.999, amp: false}')
fi
REGIME=(--per-class all --imbalance 10)
CLF=(--backbone resnet10t --stem cifar-3x3-pool --model-kwargs "$KWARGS")
LEFT=$((BUDGET - 30))  # the report and the archive get the last 30 s

# 1. The budget check.
for steps in "${BUDGETS[@]}"; do
    for seed in 0 1 2; do
        timeout -s INT "$LEFT" "$PY" benchmarks/budget_check.py "${SPLITS[@]}" "${REGIME[@]}" \
            --steps "$steps" --seeds 1 --first-seed "$seed" --device "$DEVICE" --threads 1 \
            "${CLF[@]}" --out "$WORK/budget-$steps-s$seed" > "$WORK/budget-$steps-s$seed.log" 2>&1 &
    done
done

# 2. The table: one process per seed, then the report over all three from their cells.
TABLE=("${SPLITS[@]}" "${REGIME[@]}" "${CLF[@]}" "${GAN[@]}" --classifier-steps "$STEPS"
       --arms real+aug,real+aug+kd,real+aug+gan+kd,real+weighted+kd,real+weighted+gan+kd
       --teacher-filter 0.1 --synthetic-loss-weight 0.3 --device "$DEVICE" --threads 1
       --out "$WORK/table")
mkdir -p "$WORK/table"
for seed in 0 1 2; do
    timeout -s INT "$LEFT" "$PY" -m ganaug experiment "${TABLE[@]}" --seeds 1 \
        --first-seed "$seed" > "$WORK/table-s$seed.log" 2>&1 &
done
FAILED=0
for job in $(jobs -p); do
    wait "$job" || FAILED=$((FAILED + 1))
done
echo "parts done in ${SECONDS}s, $FAILED failed or timed out" | tee "$DEST/log.txt"
if [ "$FAILED" = 0 ]; then
    "$PY" -m ganaug experiment "${TABLE[@]}" --seeds 3 >> "$DEST/log.txt" 2>&1 \
        && cp "$WORK/table/report.md" "$DEST/report.md"
fi
tail -n 3 "$WORK"/*.log >> "$DEST/log.txt"

# 3. What comes back: the budget lines, the table folder without its models.
"$PY" - "$WORK" "$DEST/budget.txt" <<'EOF'
import json, sys
from pathlib import Path

work, out = Path(sys.argv[1]), Path(sys.argv[2])
lines = []
for store in sorted(work.glob("budget-*/budget.json")):
    for key, row in json.loads(store.read_text()).items():
        lines.append(f"{key}\t{row['accuracy']:.4f}\t{row['wall_s']} s\t{row['n_real']} images")
out.write_text("\n".join(lines) + "\n")
print(f"{len(lines)} budget runs -> {out}")
EOF
tar czf "$DEST/table.tgz" -C "$WORK" --exclude='*.safetensors' --exclude='*.pt' table
rm -rf "$WORK"
echo "wrote $DEST (${SECONDS}s)"
[ "$FAILED" = 0 ] && [ -f "$DEST/report.md" ]
