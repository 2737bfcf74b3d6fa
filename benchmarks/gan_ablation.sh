#!/usr/bin/env bash
# The generator ablation of issue #13: the dcgan preset as it was (equal_lr: lr 2e-4 for G and D)
# against a faster D (ttur: lr_d 4e-4, the preset since), + LeCam, + bCR and a wider D,
# 3 seeds each, on a fixed budget of compute per run, then `ganaug evaluate` on each and a
# table of CAS ratio, intra-class FID, precision and recall (mean ± std over seeds).
#
# Usage: benchmarks/gan_ablation.sh DATA MINUTES [OUT] [EXTRA EVALUATE ARGS...]
#   benchmarks/gan_ablation.sh "mnist5k?split=train" 10 runs/ablation_mnist
#   benchmarks/gan_ablation.sh "folder:$CIFAR/train" 30 runs/ablation_cifar --test "folder:$CIFAR/test"
#
# The budget is MINUTES of one quiet CPU core per run, turned into a number of generator steps
# per config before any run: a calibration trains each config for CAL_STEPS (default 300) steps
# and times them (median step time of the second half, out of metrics.jsonl), and the config's
# runs then train MINUTES * 60 / that many steps. A config that costs more per step gets fewer.
# Why steps and not a clock: on this 2-core machine neither wall time (`timeout`) nor CPU time
# survives other jobs. A mnist5k run beside three others reached 3,330 steps in 10 CPU-minutes
# (CPU time, read from /proc), one alone 8,768 in 10 minutes. A step count does survive, so the
# runs may go side by side. The calibration needs the machine to itself: it prints the load, and
# CALIBRATE_ONLY=1 stops after it. The mnist rows of docs/results.md 1.1 predate this; they were
# budgeted in wall time beside one other job.
#
# One torch thread per run (OMP_NUM_THREADS=1). Finished runs (metrics.json present) are skipped
# and calibrations kept ($OUT/calibration/NAME.steps), so a rerun continues; a run killed before
# it finished is moved aside (RUN.stale-TIME), never deleted. MINUTES may be a fraction (0.1 for a
# smoke test); SEEDS="0" and ONLY="ttur bcr_1" narrow the grid.
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
  # The same on top of the preset (ttur), so that their row differs from the ttur row in
  # one setting only: the cifar10-mini lecam row above kept lr_d 2e-4 and lost to ttur on
  # every seed, which confounds the regulariser with the slower D.
  "ttur_bcr_1|{lr_d: 0.0004, cr_weight: 1.0}"
  "ttur_wide_d|{lr_d: 0.0004, arch_kwargs: {width: 32, d_width: 64}}"
  "ttur_lecam|{lr_d: 0.0004, lecam_weight: 0.3}"
  # A cheaper step instead of a regulariser: more steps for the same minutes (mnist5k 1.1.1).
  "ttur_b32|{lr_d: 0.0004, batch_size: 32}"
  # A cheaper step by a narrower D (half the preset's D width; G unchanged).
  "ttur_d16|{lr_d: 0.0004, arch_kwargs: {width: 32, d_width: 16}}"
  # A cheaper step by one D step per G step instead of two. One lost to two at equal rates
  # (config.py); TTUR's claim is that a faster D learning rate stands in for extra D steps.
  "ttur_1d|{lr_d: 0.0004, d_steps: 1}"
  "ttur_1d_lr8|{lr_d: 0.0008, d_steps: 1}"
  # The grey preset since (1 D step at 8e-4) with the narrower D of ttur_d16.
  "ttur_1d_lr8_d16|{lr_d: 0.0008, d_steps: 1, arch_kwargs: {width: 32, d_width: 16}}"
  # The grey preset under bf16 autocast (a CPU with native bf16): a cheaper step, the same nets.
  "ttur_1d_lr8_amp|{lr_d: 0.0008, d_steps: 1, amp: true}"
  # The grey preset with class-conditional BatchNorm in G (the label steers every layer).
  "ttur_1d_lr8_cbn|{lr_d: 0.0008, d_steps: 1, arch_kwargs: {width: 32, cbn: true}}"
  # ... and BigGAN's hierarchical z on top (a chunk of z to each conditional BatchNorm).
  "ttur_1d_lr8_hz|{lr_d: 0.0008, d_steps: 1, arch_kwargs: {width: 32, cbn: true, hier_z: true}}"
)
PY=${PYTHON:-python}
selected() { [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" $1 "* ]]; }
set_config() {  # set_config NAME YAML: CONFIG=(--config FILE), or () for "{}"
  CONFIG=()
  if [ "$2" != "{}" ]; then
    mkdir -p "$OUT/configs"
    echo "$2" > "$OUT/configs/$1.yaml"
    CONFIG=(--config "$OUT/configs/$1.yaml")
  fi
}
# 1. Calibration: each config's step count for MINUTES of one quiet core.
for entry in "${CONFIGS[@]}"; do
  name=${entry%%|*}
  selected "$name" || continue
  [ -f "$OUT/calibration/$name.steps" ] && continue
  cal="$OUT/calibration/$name"
  [ -e "$cal" ] && mv "$cal" "$cal.stale-$(date +%s)"
  echo "== calibrating $name: ${CAL_STEPS:-300} steps (load $(cut -d' ' -f1 /proc/loadavg))"
  set_config "$name" "${entry#*|}"
  mkdir -p "$OUT/calibration"
  ganaug train --data "$DATA" --seed 0 --steps "${CAL_STEPS:-300}" --sample-every 1000000 \
    "${CONFIG[@]}" --out "$cal" --threads 1 > "$cal.log" 2>&1
  "$PY" - "$cal/metrics.jsonl" "$MINUTES" > "$OUT/calibration/$name.steps" <<'CAL'
import json, statistics, sys
records = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
times = [r["step_time"] for r in records[len(records) // 2:] if r.get("step_time")]
print(max(1, round(float(sys.argv[2]) * 60 / statistics.median(times))))
CAL
  echo "   $name: $(cat "$OUT/calibration/$name.steps") steps for $MINUTES minutes"
done
[ -n "${CALIBRATE_ONLY:-}" ] && exit 0
# 2. The runs: each config's step count, then the evaluation.
for entry in "${CONFIGS[@]}"; do
  name=${entry%%|*}
  selected "$name" || continue
  steps=$(cat "$OUT/calibration/$name.steps")
  for seed in ${SEEDS:-0 1 2}; do
    run="$OUT/$name-s$seed"
    [ -f "$run/metrics.json" ] && continue
    if [ -e "$run" ] && [ ! -f "$run/trained" ]; then
      mv "$run" "$run.stale-$(date +%s)"  # killed before it finished: start again
    fi
    if [ ! -f "$run/trained" ]; then
      echo "== $name seed $seed: $steps steps ($MINUTES quiet CPU-minutes)"
      set_config "$name" "${entry#*|}"
      ganaug train --data "$DATA" --seed "$seed" --steps "$steps" --sample-every 1000 \
        "${CONFIG[@]}" --out "$run" --threads 1
      touch "$run/trained"
    fi
    ganaug evaluate "$run/generator.safetensors" --data "$EVAL_DATA" --n-per-class 500 \
      --out "$run/metrics.json" "$@"
  done
done
"$PY" - "$OUT" "${CONFIGS[@]%%|*}" <<'PY'
import json, re, statistics, sys
from pathlib import Path
out = Path(sys.argv[1])
keys = ("cas_ratio", "intra_fid", "precision", "recall")
print("| config | " + " | ".join(keys) + " | steps | steps vs first row |")
print("|---" * (len(keys) + 3) + "|")
base = None
for name in sys.argv[2:]:  # the CONFIGS names, in their order
    # NAME-sSEED only: a run moved aside (NAME-sSEED.stale-TIME) is never counted.
    runs = sorted(p for p in out.glob(f"{name}-s*/metrics.json")
                  if re.fullmatch(rf"{re.escape(name)}-s\d+", p.parent.name))
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
    # Same budget per run: the ratio of steps is the ratio of speed per step (calibration),
    # against the first config listed (equal_lr when it ran, else the preset ttur).
    if base is None:
        base = statistics.mean(steps)
    ratio = f"{statistics.mean(steps) / base:.2f}" if base else "—"
    print(f"| {name} ({len(ms)} seeds) | " + " | ".join(cells)
          + f" | {statistics.mean(steps):,.0f} | {ratio} |")
PY
