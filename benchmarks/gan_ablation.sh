#!/usr/bin/env bash
# The generator ablation of issue #13: the dcgan preset as it was (equal_lr: lr 2e-4 for G and D)
# against a faster D (ttur: lr_d 4e-4, the preset since), + LeCam, + bCR and a wider D,
# 3 seeds each, on a fixed budget of CPU time per run, then `ganaug evaluate` on each and a
# table of CAS ratio, intra-class FID, precision and recall (mean ± std over seeds).
#
# Usage: benchmarks/gan_ablation.sh DATA MINUTES [OUT] [EXTRA EVALUATE ARGS...]
#   benchmarks/gan_ablation.sh "mnist5k?split=train" 10 runs/ablation_mnist
#   benchmarks/gan_ablation.sh "folder:$CIFAR/train" 30 runs/ablation_cifar --test "folder:$CIFAR/test"
# One torch thread per run (OMP_NUM_THREADS=1). The budget is CPU time (benchmarks/cpu_budget.py
# sends Ctrl-C once the run has used MINUTES of CPU: the trainer saves generator.safetensors and
# stops), so runs side by side or beside other jobs get the same compute. (The mnist rows of
# docs/results.md 1.1 were budgeted in wall time, `timeout -s INT`, before this.)
# Finished runs (metrics.json present) are skipped, so a rerun continues; a run cut short before
# its generator was saved is moved aside (RUN.stale-TIME), never deleted. MINUTES may be a
# fraction (0.1 for a smoke test); SEEDS="0" and ONLY="ttur bcr_1" narrow the grid.
set -euo pipefail
DATA=$1
MINUTES=$2
OUT=${3:-runs/ablation}
shift $(( $# >= 3 ? 3 : $# ))
EVAL_DATA=${DATA%%\?*}  # evaluate against the data's own test split
export OMP_NUM_THREADS=1
mkdir -p "$OUT"
# name | extra TrainConfig YAML (a --config file; the command line sets data, seed and steps)
# Each config names its D learning rate: the dcgan preset moved from 2e-4 (equal_lr) to 4e-4
# (ttur) after this ablation, and the rows must stay reproducible.
CONFIGS=(
  "equal_lr|{lr_d: 0.0002}"
  "ttur|{lr_d: 0.0004}"
  "lecam|{lr_d: 0.0002, lecam_weight: 0.3}"
  "bcr|{lr_d: 0.0002, cr_weight: 10.0}"
  "bcr_1|{lr_d: 0.0002, cr_weight: 1.0}"
  "wide_d|{lr_d: 0.0002, arch_kwargs: {width: 32, d_width: 64}}"
)
for entry in "${CONFIGS[@]}"; do
  name=${entry%%|*}
  yaml=${entry#*|}
  [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $name "* ]] && continue
  for seed in ${SEEDS:-0 1 2}; do
    run="$OUT/$name-s$seed"
    [ -f "$run/metrics.json" ] && continue
    if [ -e "$run" ] && [ ! -f "$run/trained" ]; then
      mv "$run" "$run.stale-$(date +%s)"  # killed before its budget was spent: start again
    fi
    mkdir -p "$OUT/configs"
    CONFIG=()
    if [ "$yaml" != "{}" ]; then
      echo "$yaml" > "$OUT/configs/$name.yaml"
      CONFIG=(--config "$OUT/configs/$name.yaml")
    fi
    if [ ! -f "$run/trained" ]; then
      echo "== $name seed $seed: $MINUTES CPU-minutes"
      mkdir -p "$run"
      # $run/trained: written only if the run spent its budget (not if it was killed)
      "${PYTHON:-python}" "$(dirname "$0")/cpu_budget.py" "$MINUTES" --done "$run/trained" \
        -- ganaug train --data "$DATA" --seed "$seed" --steps 1000000 --sample-every 1000 \
        "${CONFIG[@]}" --out "$run" --threads 1 || true
      if [ ! -f "$run/trained" ] || [ ! -f "$run/generator.safetensors" ]; then
        echo "$run was stopped before its budget was spent; rerun to start it again" >&2
        exit 1
      fi
    fi
    ganaug evaluate "$run/generator.safetensors" --data "$EVAL_DATA" --n-per-class 500 \
      --out "$run/metrics.json" "$@"
  done
done
"${PYTHON:-python}" - "$OUT" "${CONFIGS[@]%%|*}" <<'PY'
import json, statistics, sys
from pathlib import Path
out = Path(sys.argv[1])
keys = ("cas_ratio", "intra_fid", "precision", "recall")
print("| config | " + " | ".join(keys) + " | steps | steps vs equal_lr |")
print("|---" * (len(keys) + 3) + "|")
base = None
for name in sys.argv[2:]:  # the CONFIGS names, in their order
    runs = sorted(out.glob(f"{name}-s*/metrics.json"))
    if not runs:
        continue
    ms = [json.loads(p.read_text()) for p in runs]
    steps = []
    for p in runs:
        lines = (p.parent / "metrics.jsonl").read_text().splitlines()
        steps.append(json.loads(lines[-1]).get("step", 0) if lines else 0)
    cells = []
    for k in keys:
        v = [m[k] for m in ms]
        sd = statistics.stdev(v) if len(v) > 1 else float("nan")
        cells.append(f"{statistics.mean(v):.3f} ± {sd:.3f}")
    # Same CPU budget per run: the ratio of steps is the ratio of speed per step.
    if name == "equal_lr":
        base = statistics.mean(steps)
    ratio = f"{statistics.mean(steps) / base:.2f}" if base else "—"
    print(f"| {name} ({len(ms)} seeds) | " + " | ".join(cells)
          + f" | {statistics.mean(steps):,.0f} | {ratio} |")
PY
