#!/usr/bin/env bash
# The figures of docs/results.md, one command each. Run from the repository root with the
# venv active (or prefix with .venv/bin/). CPU budgets: each line notes its wall time on the
# shared 2-core development machine (one torch thread per process, two processes side by side).
#
# Usage: benchmarks/experiments.sh [CIFAR10_MINI_DIR]
#   CIFAR10_MINI_DIR holds train/ and test/ image folders; default
#   $GANAUG_SHARED_DATA/cifar10-mini, with GANAUG_SHARED_DATA defaulting to ../shared/data.
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
CIFAR=${1:-${GANAUG_SHARED_DATA:-../shared/data}/cifar10-mini}
# The CPU backbone of every experiment below: a narrow resnet10t with the cheap CIFAR stem
# (the default resnet18 with a stride-1 stem costs ~10x more per step on a CPU).
CLF=(--backbone resnet10t --stem cifar-3x3-pool --model-kwargs '{channels: [32, 64, 128, 256], stem_width: 16}')
mkdir -p runs/results

# 1. The default preset on mnist5k for 10 minutes of one CPU core (Ctrl-C = SIGINT ends it
#    cleanly and writes generator.safetensors), then its evaluation (CAS ratio).
timeout -s INT 600 ganaug train --data "mnist5k?split=train" --steps 1000000 \
    --sample-every 1000 --out runs/results/mnist10 || true
ganaug evaluate runs/results/mnist10/generator.safetensors --data mnist5k --n-per-class 500 \
    --out runs/results/mnist10/metrics.json

# 2. The default preset on cifar10-mini for 20 minutes of one CPU core, then its evaluation.
timeout -s INT 1200 ganaug train --data "folder:$CIFAR/train" --steps 1000000 \
    --sample-every 1000 --out runs/results/cifar20 || true
ganaug evaluate runs/results/cifar20/generator.safetensors --data "folder:$CIFAR/train" \
    --test "folder:$CIFAR/test" --n-per-class 500 --out runs/results/cifar20/metrics.json

# 3. mnist5k: does it help, by images per class (a GAN trained on each subset and seed).
ganaug experiment --data mnist5k --per-class 10,50,all --seeds 3 --gan-steps 1500 \
    --classifier-steps 150 "${CLF[@]}" --out runs/results/exp_mnist

# 4. mnist5k long tail (max/min class ratio 50).
ganaug experiment --data mnist5k --per-class all --imbalance 50 --seeds 2 --gan-steps 1500 \
    --classifier-steps 150 "${CLF[@]}" --out runs/results/exp_mnist_lt50

# 5. cifar10-mini, all 500 images per class, with the 20-minute generator of step 2 (it was
#    trained on exactly this training split: the leakage check passes), and 50 per class with
#    a GAN trained on each subset.
ganaug experiment --data "folder:$CIFAR/train" --test "folder:$CIFAR/test" --per-class all \
    --seeds 2 --generator runs/results/cifar20/generator.safetensors --classifier-steps 300 \
    "${CLF[@]}" --out runs/results/exp_cifar_all
ganaug experiment --data "folder:$CIFAR/train" --test "folder:$CIFAR/test" --per-class 50 \
    --seeds 2 --gan-steps 2000 --classifier-steps 300 "${CLF[@]}" --out runs/results/exp_cifar_50

# 6. Budgets that converge (#15): train real+aug at S and 2S steps per seed; a budget is fair
#    when doubling it moves real+aug by < 1 point (docs/results.md, "Classifier budgets").
python benchmarks/budget_check.py --data mnist5k --per-class 10 --steps 300,600,1200,2400 --seeds 3 \
    --out runs/results/budget_mnist10
python benchmarks/budget_check.py --data mnist5k --per-class all --imbalance 50 --steps 300,600,1200,2400 \
    --seeds 3 --out runs/results/budget_mnist_lt50

# 7. The recipe, fixed on mnist5k, 10 per class, seed 0 only (300 classifier steps; the real
#    arms are computed once, each line retrains only the GAN arms: the cells are keyed per arm).
TUNE=(--data mnist5k --per-class 10 --seeds 1 --gan-steps 2000 --classifier-steps 300 "${CLF[@]}"
      --out runs/results/tune_mnist10)
ganaug experiment "${TUNE[@]}" --arms real,real+aug,real+aug+kd,real+aug+gan,real+aug+gan+kd
ganaug experiment "${TUNE[@]}" --arms real+aug+kd,real+aug+gan+kd --teacher-filter 0.1
ganaug experiment "${TUNE[@]}" --arms real+aug+kd,real+aug+gan+kd --synthetic-loss-weight 0.3
ganaug experiment "${TUNE[@]}" --arms real+aug+kd,real+aug+gan+kd --synthetic-ratio 3
ganaug experiment "${TUNE[@]}" --arms real+aug+kd,real+aug+gan+kd --kd-alpha 0
ganaug experiment "${TUNE[@]}" --arms real+aug+kd,real+aug+gan+kd --teacher-filter 0.1 \
    --synthetic-loss-weight 0.3

# 8. The recommended recipe against its controls, 3 seeds, at the converged budget (1200 steps;
#    the seed-0 GAN of step 7 can be copied into runs/results/recipe_mnist10/gans/ to reuse it).
ganaug experiment --data mnist5k --per-class 10 --seeds 3 --gan-steps 2000 \
    --classifier-steps 1200 "${CLF[@]}" --arms real+aug,real+aug+kd,real+aug+gan+kd \
    --teacher-filter 0.1 --synthetic-loss-weight 0.3 --out runs/results/recipe_mnist10

# 9. Diagnosis: how often the seed's teacher agrees with the class the generator was asked for
#    (against its accuracy on real test images).
for s in 0 1 2; do
  python benchmarks/teacher_agreement.py runs/results/recipe_mnist10/gans/10-s$s/generator.safetensors \
      runs/results/recipe_mnist10/cells/10-s$s-real_aug.safetensors --seed $s
done

# 10. The generator ablation of #13 on a fixed budget of one core's minutes per run (equal lr,
#     a faster D, + LeCam, + bCR, a wider D; 3 seeds; then `ganaug evaluate` on each). mnist5k:
#     15 runs x ~13 minutes; cifar10-mini: 15 x ~33 minutes.
bash benchmarks/gan_ablation.sh "mnist5k?split=train" 10 runs/ablation_mnist
# cifar10-mini as run on 2026-11-28 (docs/results.md 1.2): the preset against + LeCam, two runs side
# by side after the calibration (bcr_1 was calibrated too: 3,485 steps, not yet run).
CALIBRATE_ONLY=1 ONLY="ttur lecam bcr_1" bash benchmarks/gan_ablation.sh "folder:$CIFAR/train" 30 runs/ablation_cifar
ONLY=ttur bash benchmarks/gan_ablation.sh "folder:$CIFAR/train" 30 runs/ablation_cifar --test "folder:$CIFAR/test" &
ONLY=lecam bash benchmarks/gan_ablation.sh "folder:$CIFAR/train" 30 runs/ablation_cifar --test "folder:$CIFAR/test"
wait
# Then (2026-11-28, the next session) bCR 1.0 and the wider D on top of the preset, so that each
# row differs from ttur in one setting: calibrated alone, then the two side by side.
CALIBRATE_ONLY=1 ONLY="ttur_bcr_1 ttur_wide_d" bash benchmarks/gan_ablation.sh "folder:$CIFAR/train" 30 runs/ablation_cifar
ONLY=ttur_bcr_1 bash benchmarks/gan_ablation.sh "folder:$CIFAR/train" 30 runs/ablation_cifar --test "folder:$CIFAR/test" &
ONLY=ttur_wide_d bash benchmarks/gan_ablation.sh "folder:$CIFAR/train" 30 runs/ablation_cifar --test "folder:$CIFAR/test"
wait
ONLY="ttur lecam ttur_bcr_1 ttur_wide_d" bash benchmarks/gan_ablation.sh "folder:$CIFAR/train" 30 runs/ablation_cifar  # the table

# 11. The recommended recipe in the long tail (mnist5k, --imbalance 50, 1,200 steps: step 6),
#     against every control (--imbalance adds real+weighted, real+oversample and the two fixes
#     combined with the GAN). About 75 minutes of one core per seed: two processes share the
#     --out and split the seeds, then a last run over all three writes the report from the cells.
LT=(--data mnist5k --per-class all --imbalance 50 --gan-steps 2000 --classifier-steps 1200 "${CLF[@]}"
    --arms real+aug,real+aug+kd,real+aug+gan+kd --teacher-filter 0.1 --synthetic-loss-weight 0.3
    --out runs/results/recipe_mnist_lt50 --threads 1)
OMP_NUM_THREADS=1 ganaug experiment "${LT[@]}" --seeds 2 &
OMP_NUM_THREADS=1 ganaug experiment "${LT[@]}" --seeds 1 --first-seed 2
wait
ganaug experiment "${LT[@]}" --seeds 3
for s in 0 1 2; do
  python benchmarks/teacher_agreement.py runs/results/recipe_mnist_lt50/gans/all-s$s/generator.safetensors \
      runs/results/recipe_mnist_lt50/cells/all-s$s-real_aug.safetensors --seed $s
done

# 12. cifar10-mini's budget at 50 per class (step 6's rule), before its recipe table.
python benchmarks/budget_check.py --data "folder:$CIFAR/train" --test "folder:$CIFAR/test" \
    --per-class 50 --steps 600,1200,2400 --seeds 3 --out runs/results/budget_cifar50

# The recipe table of one regime over 3 seeds: two processes share OUT and split the seeds, a
# run over all three writes the report from their cells, then each seed's teacher agreement.
# Usage: recipe_table OUT REGIME ARGS... (REGIME: the --per-class value).
RECIPE=(--gan-steps 2000 --classifier-steps 1200 "${CLF[@]}" --arms real+aug,real+aug+kd,real+aug+gan+kd
        --teacher-filter 0.1 --synthetic-loss-weight 0.3 --threads 1)
recipe_table() {
  local out=$1 regime=$2
  shift 2
  ganaug experiment "$@" --per-class "$regime" "${RECIPE[@]}" --out "$out" --seeds 2 &
  ganaug experiment "$@" --per-class "$regime" "${RECIPE[@]}" --out "$out" --seeds 1 --first-seed 2
  wait
  ganaug experiment "$@" --per-class "$regime" "${RECIPE[@]}" --out "$out" --seeds 3
  for s in 0 1 2; do
    python benchmarks/teacher_agreement.py "$out/gans/$regime-s$s/generator.safetensors" \
        "$out/cells/$regime-s$s-real_aug.safetensors" --seed "$s"
  done
}

# 13. The recommended recipe on cifar10-mini at 50 per class (1,200 steps: step 12), 3 seeds.
#     About 55 minutes of one core per seed (the GAN ~11, each classifier 9-17).
recipe_table runs/results/recipe_cifar50 50 --data "folder:$CIFAR/train" --test "folder:$CIFAR/test"

# 14. The recommended recipe on mnist5k at 50 per class (1,200 steps: the budget checked at 10
#     per class and in the long tail of step 6), 3 seeds; about 35 minutes of one core per seed.
recipe_table runs/results/recipe_mnist50 50 --data mnist5k

# 15. cifar10-mini long tail (--imbalance 10: 500 training images of class 0 down to 50 of class 9,
#     2,044 in all): its classifier budget (step 6's rule). Each 1,200-step run took ~12 minutes
#     of one core, 2,400 ~23, 4,800 ~50; two processes, one budget each.
for steps in 1200 2400; do
  python benchmarks/budget_check.py --data "folder:$CIFAR/train" --test "folder:$CIFAR/test" \
      --per-class all --imbalance 10 --steps $steps --seeds 3 --out runs/results/budget_cifar_lt10_$steps &
done
wait
python benchmarks/budget_check.py --data "folder:$CIFAR/train" --test "folder:$CIFAR/test" \
    --per-class all --imbalance 10 --steps 4800 --seeds 1 --out runs/results/budget_cifar_lt10_4800
#     2,400 -> 4,800 still gained 2 points on seed 0: the check at 4,800 and 9,600 (3 seeds) and
#     the regime's recipe table at 4,800 (about 18 CPU-hours here) are benchmarks/gpu_experiments.sh,
#     for one lent GPU.

# 16. The recipe combined with class weighting in the mnist5k long tail (step 11's --out: its cells
#     are reused, only the two new arms train; about 55 minutes of one core). Made before each
#     arm had its own teacher: with today's code the command is step 17's.
# 17. The same with each arm's own teacher (2026-11-28: real+weighted teaches and filters the
#     class-weighted arms, real+oversample filters real+oversample+gan). Step 11/16's cells are
#     copied in; the cells of those arms are computed again, the others reused (18 cells, about
#     3 hours of one core; the seeds in parallel processes, then one run writes the report).
LT17=("${LT[@]}" --out runs/results/recipe_mnist_lt50_own_teacher
      --arms real+aug,real+aug+kd,real+aug+gan+kd,real+weighted+kd,real+weighted+gan+kd)
[ -d runs/results/recipe_mnist_lt50_own_teacher ] ||
  cp -a runs/results/recipe_mnist_lt50 runs/results/recipe_mnist_lt50_own_teacher
OMP_NUM_THREADS=1 ganaug experiment "${LT17[@]}" --seeds 1 &
OMP_NUM_THREADS=1 ganaug experiment "${LT17[@]}" --seeds 1 --first-seed 1 &
OMP_NUM_THREADS=1 ganaug experiment "${LT17[@]}" --seeds 1 --first-seed 2
wait
ganaug experiment "${LT17[@]}" --seeds 3

# 18. The mnist5k generator ablation again, on step budgets (2026-11-28, docs/results.md 1.1):
#     each row one setting away from the preset (ttur), calibrated alone on a quiet machine
#     (ttur 9,557 steps, ttur_bcr_1 6,710, ttur_lecam 9,880 for 10 minutes), then two runs side by
#     side; then the preset at twice the budget (the calibration doubled by hand), 3 seeds.
CALIBRATE_ONLY=1 ONLY="ttur ttur_bcr_1 ttur_lecam" bash benchmarks/gan_ablation.sh "mnist5k?split=train" 10 runs/ablation_mnist_steps
ONLY=ttur bash benchmarks/gan_ablation.sh "mnist5k?split=train" 10 runs/ablation_mnist_steps &
ONLY=ttur_lecam bash benchmarks/gan_ablation.sh "mnist5k?split=train" 10 runs/ablation_mnist_steps
wait
ONLY=ttur_bcr_1 SEEDS="0 2" bash benchmarks/gan_ablation.sh "mnist5k?split=train" 10 runs/ablation_mnist_steps &
ONLY=ttur_bcr_1 SEEDS=1 bash benchmarks/gan_ablation.sh "mnist5k?split=train" 10 runs/ablation_mnist_steps
wait
ONLY="ttur ttur_bcr_1 ttur_lecam" bash benchmarks/gan_ablation.sh "mnist5k?split=train" 10 runs/ablation_mnist_steps  # the table
mkdir -p runs/ablation_mnist_20/calibration
echo $(( 2 * $(cat runs/ablation_mnist_steps/calibration/ttur.steps) )) > runs/ablation_mnist_20/calibration/ttur.steps
ONLY=ttur SEEDS=0 bash benchmarks/gan_ablation.sh "mnist5k?split=train" 20 runs/ablation_mnist_20 &
ONLY=ttur SEEDS=1 bash benchmarks/gan_ablation.sh "mnist5k?split=train" 20 runs/ablation_mnist_20
wait
ONLY=ttur SEEDS=2 bash benchmarks/gan_ablation.sh "mnist5k?split=train" 20 runs/ablation_mnist_20
wait
# Then a cheaper step instead: the preset at batch 32, calibrated alone, then seeds 0 and 1 side by
# side and seed 2.
CALIBRATE_ONLY=1 ONLY=ttur_b32 bash benchmarks/gan_ablation.sh "mnist5k?split=train" 10 runs/ablation_mnist_steps
ONLY=ttur_b32 SEEDS="0 2" bash benchmarks/gan_ablation.sh "mnist5k?split=train" 10 runs/ablation_mnist_steps &
ONLY=ttur_b32 SEEDS=1 bash benchmarks/gan_ablation.sh "mnist5k?split=train" 10 runs/ablation_mnist_steps
wait

# 19. After the NHWC layout fix (2026-11-28, docs/performance.md), the preset again on 10 quiet
#     minutes, and a cheaper step by a narrower D (ttur_d16: D width 16, G unchanged). The machine
#     was not quiet, so the step counts are derived: the preset's quiet calibration of step 18
#     (9,557) times the fix's paired speed-up (median 1.112, three alternated whole runs) = 10,627;
#     ttur_d16 = 10,627 x 1.377 (the median ratio of three alternated 300-step calibrations,
#     ttur against ttur_d16) = 14,633. Then two runs side by side, 3 seeds each.
mkdir -p runs/ablation_mnist_fast/calibration
echo 10627 > runs/ablation_mnist_fast/calibration/ttur.steps
echo 14633 > runs/ablation_mnist_fast/calibration/ttur_d16.steps
ONLY=ttur SEEDS="0 2" bash benchmarks/gan_ablation.sh "mnist5k?split=train" 10 runs/ablation_mnist_fast &
ONLY=ttur SEEDS=1 bash benchmarks/gan_ablation.sh "mnist5k?split=train" 10 runs/ablation_mnist_fast
wait
ONLY=ttur_d16 SEEDS="0 2" bash benchmarks/gan_ablation.sh "mnist5k?split=train" 10 runs/ablation_mnist_fast &
ONLY=ttur_d16 SEEDS=1 bash benchmarks/gan_ablation.sh "mnist5k?split=train" 10 runs/ablation_mnist_fast
wait
ONLY="ttur ttur_d16" bash benchmarks/gan_ablation.sh "mnist5k?split=train" 10 runs/ablation_mnist_fast  # the table
# ... and ttur_d16 at twice that budget (2 seeds were run)
mkdir -p runs/ablation_mnist_fast20/calibration
echo 29266 > runs/ablation_mnist_fast20/calibration/ttur_d16.steps
ONLY=ttur_d16 SEEDS=0 bash benchmarks/gan_ablation.sh "mnist5k?split=train" 20 runs/ablation_mnist_fast20 &
ONLY=ttur_d16 SEEDS=1 bash benchmarks/gan_ablation.sh "mnist5k?split=train" 20 runs/ablation_mnist_fast20
wait

# 20. One D step per G step at a faster D rate (2026-11-29, docs/results.md 1.1.3). Calibration:
#     300-step runs of the preset and of one D step, alternated three times on a quiet machine
#     (step 18's command with --config {lr_d: 0.0004} or {lr_d: 0.0004, d_steps: 1}); the
#     median ratio of their median step times of the second half (1.456) times step 19's 10,627
#     = 15,468 steps for both one-step configs. Seed 0 of each chose the recipe (ttur_1d_lr8),
#     then its seeds 1 and 2 ran once, side by side.
# Usage: alternated_calibration OUT DATA STEPS "NAME|YAML"...: each config trains STEPS steps,
# the configs alternated three times (OUT/cal/NAME-rR); the ratios of their median step times
# (second half of metrics.jsonl) scale a known step budget.
alternated_calibration() {
  local out=$1 data=$2 steps=$3
  shift 3
  mkdir -p "$out/cal" "$out/calibration"
  for r in 1 2 3; do
    for c in "$@"; do
      echo "${c#*|}" > "$out/cal/${c%%|*}.yaml"
      ganaug train --data "$data" --seed 0 --steps "$steps" --sample-every 1000000 \
        --config "$out/cal/${c%%|*}.yaml" --threads 1 --out "$out/cal/${c%%|*}-r$r"
    done
  done
}
alternated_calibration runs/ablation_mnist_1d "mnist5k?split=train" 300 \
  "ttur|{lr_d: 0.0004}" "ttur_1d|{lr_d: 0.0004, d_steps: 1}"
echo 15468 > runs/ablation_mnist_1d/calibration/ttur_1d.steps
echo 15468 > runs/ablation_mnist_1d/calibration/ttur_1d_lr8.steps
ONLY=ttur_1d SEEDS=0 bash benchmarks/gan_ablation.sh "mnist5k?split=train" 10 runs/ablation_mnist_1d &
ONLY=ttur_1d_lr8 SEEDS=0 bash benchmarks/gan_ablation.sh "mnist5k?split=train" 10 runs/ablation_mnist_1d
wait
ONLY=ttur_1d_lr8 SEEDS=1 bash benchmarks/gan_ablation.sh "mnist5k?split=train" 10 runs/ablation_mnist_1d &
ONLY=ttur_1d_lr8 SEEDS=2 bash benchmarks/gan_ablation.sh "mnist5k?split=train" 10 runs/ablation_mnist_1d
wait
# Then the narrower D on the new preset: three alternated 300-step calibrations of
# {lr_d: 0.0008, d_steps: 1} and the same with arch_kwargs {width: 32, d_width: 16} (as above,
# beside two cifar runs; median ratio 1.262): 15,468 x 1.262 = 19,521 steps. Seed 0, then 1 and 2.
alternated_calibration runs/ablation_mnist_1d16 "mnist5k?split=train" 300 "lr8|{lr_d: 0.0008, d_steps: 1}" \
  "lr8_d16|{lr_d: 0.0008, d_steps: 1, arch_kwargs: {width: 32, d_width: 16}}"
echo 19521 > runs/ablation_mnist_1d/calibration/ttur_1d_lr8_d16.steps
ONLY=ttur_1d_lr8_d16 SEEDS=0 bash benchmarks/gan_ablation.sh "mnist5k?split=train" 10 runs/ablation_mnist_1d
ONLY=ttur_1d_lr8_d16 SEEDS=1 bash benchmarks/gan_ablation.sh "mnist5k?split=train" 10 runs/ablation_mnist_1d &
ONLY=ttur_1d_lr8_d16 SEEDS=2 bash benchmarks/gan_ablation.sh "mnist5k?split=train" 10 runs/ablation_mnist_1d
wait
ONLY="ttur_1d ttur_1d_lr8 ttur_1d_lr8_d16" bash benchmarks/gan_ablation.sh "mnist5k?split=train" 10 runs/ablation_mnist_1d  # the table
# Grids: ganaug sample RUN/generator.safetensors --out g.png for ablation_mnist_fast/ttur-s0 and
# ablation_mnist_1d/{ttur_1d,ttur_1d_lr8}-s0, then benchmarks/grid_panels.py
# docs/img/ablation_mnist_1d_grids.png "TITLE=g.png" ...

# 21. The same on cifar10-mini, RGB (2026-11-29, docs/results.md 1.2.1): alternated 200-step
#     calibrations of the preset and of ttur_1d_lr8 (beside other jobs: ratio 1.733), times the
#     preset row's 6,034 steps of step 10 = 10,455; 3 seeds, evaluated against test/.
alternated_calibration runs/ablation_cifar_1d "folder:$CIFAR/train" 200 \
  "ttur|{lr_d: 0.0004}" "ttur_1d_lr8|{lr_d: 0.0008, d_steps: 1}"
echo 10455 > runs/ablation_cifar_1d/calibration/ttur_1d_lr8.steps
ONLY=ttur_1d_lr8 SEEDS=0 bash benchmarks/gan_ablation.sh "folder:$CIFAR/train" 30 runs/ablation_cifar_1d --test "folder:$CIFAR/test" &
ONLY=ttur_1d_lr8 SEEDS=1 bash benchmarks/gan_ablation.sh "folder:$CIFAR/train" 30 runs/ablation_cifar_1d --test "folder:$CIFAR/test"
wait
ONLY=ttur_1d_lr8 SEEDS=2 bash benchmarks/gan_ablation.sh "folder:$CIFAR/train" 30 runs/ablation_cifar_1d --test "folder:$CIFAR/test"

# 22. #15's cifar10-mini long-tail table on the CPU, over several sessions (2026-11-29 started):
#     the table of benchmarks/gpu_experiments.sh (4,800 classifier steps; the five asked arms plus
#     the four long-tail arms), one process per seed sharing one --out. A finished cell is kept
#     in OUT/cells and reused by the next run with the same settings; a killed one is computed
#     again. When every seed has finished, the last line writes the report over the three.
#     (2026-11-29: to use both cores to the end, a second process per seed ran the two
#     class-weighted distilled arms, `--arms real+weighted+gan+kd,real+weighted+kd`, once the
#     seed's undistilled cells were cached, and the first process was stopped after writing
#     real+aug+gan+kd. Each cell is keyed by its settings and seed, not by the process.)
#     (Finished in the next session: seed 2's four distilled cells as two processes,
#     `--arms real+aug,real+aug+kd,real+aug+gan+kd` and `--arms real+weighted+gan+kd,real+weighted+kd`,
#     about 45 minutes beside a GAN run; then the last line. docs/results.md 2.6.)
LT10=(--data "folder:$CIFAR/train" --test "folder:$CIFAR/test" --per-class all --imbalance 10 "${CLF[@]}"
      --gan-steps 2000 --gan-config '{arch: dcgan, arch_kwargs: {width: 32}, ema_decay: 0.999, amp: false}'
      --classifier-steps 4800 --arms real+aug,real+aug+kd,real+aug+gan+kd,real+weighted+kd,real+weighted+gan+kd
      --teacher-filter 0.1 --synthetic-loss-weight 0.3 --threads 1 --out runs/results/recipe_cifar_lt10)
for s in 0 1 2; do
  OMP_NUM_THREADS=1 ganaug experiment "${LT10[@]}" --seeds 1 --first-seed $s &
done
wait
ganaug experiment "${LT10[@]}" --seeds 3

# 23. #13: the grey preset under bf16 autocast on a CPU with native bf16 (2026-11-29): three
#     alternated 300-step calibrations of the preset with and without amp: true (beside three
#     cifar experiment processes; ratios 1.079, 1.246, 1.306, median 1.246): 15,468 x 1.246 =
#     19,277 steps; seed 0, then seeds 1 and 2 side by side.
alternated_calibration runs/ablation_mnist_amp "mnist5k?split=train" 300 \
  "lr8|{lr_d: 0.0008, d_steps: 1}" "lr8_amp|{lr_d: 0.0008, d_steps: 1, amp: true}"
echo 19277 > runs/ablation_mnist_amp/calibration/ttur_1d_lr8_amp.steps
ONLY=ttur_1d_lr8_amp SEEDS=0 bash benchmarks/gan_ablation.sh "mnist5k?split=train" 10 runs/ablation_mnist_amp
ONLY=ttur_1d_lr8_amp SEEDS=1 bash benchmarks/gan_ablation.sh "mnist5k?split=train" 10 runs/ablation_mnist_amp &
ONLY=ttur_1d_lr8_amp SEEDS=2 bash benchmarks/gan_ablation.sh "mnist5k?split=train" 10 runs/ablation_mnist_amp
wait

# 24. #13: class-conditional BatchNorm in the dcgan G, and BigGAN's hierarchical z on top
#     (2026-11-29, docs/results.md 1.1.5): three alternated 300-step calibrations of each against
#     the grey preset (beside two cifar experiment processes; median ratios 0.972 and 0.918):
#     15,468 x ratio = 15,030 and 14,198 steps. Seed 0 only: both lost on it.
alternated_calibration runs/ablation_mnist_cbn "mnist5k?split=train" 300 \
  "lr8|{lr_d: 0.0008, d_steps: 1}" "lr8_cbn|{lr_d: 0.0008, d_steps: 1, arch_kwargs: {width: 32, cbn: true}}"
alternated_calibration runs/ablation_mnist_hz "mnist5k?split=train" 300 \
  "lr8|{lr_d: 0.0008, d_steps: 1}" \
  "lr8_hz|{lr_d: 0.0008, d_steps: 1, arch_kwargs: {width: 32, cbn: true, hier_z: true}}"
echo 15030 > runs/ablation_mnist_cbn/calibration/ttur_1d_lr8_cbn.steps
echo 14198 > runs/ablation_mnist_hz/calibration/ttur_1d_lr8_hz.steps
ONLY=ttur_1d_lr8_cbn SEEDS=0 bash benchmarks/gan_ablation.sh "mnist5k?split=train" 10 runs/ablation_mnist_cbn &
ONLY=ttur_1d_lr8_hz SEEDS=0 bash benchmarks/gan_ablation.sh "mnist5k?split=train" 10 runs/ablation_mnist_hz
wait
# Grids: ganaug sample RUN/generator.safetensors --out g.png for ablation_mnist_1d/ttur_1d_lr8-s0,
# ablation_mnist_cbn/ttur_1d_lr8_cbn-s0 and ablation_mnist_hz/ttur_1d_lr8_hz-s0, then
# benchmarks/grid_panels.py docs/img/ablation_mnist_cbn_grids.png "TITLE=g.png" ...

# 25. #13: the grey preset (1 D step at lr_d 8e-4) at 20 quiet minutes (2026-11-29, docs/results.md
#     1.1.5): twice the 10-minute steps of step 20 (15,468 x 2 = 30,936), 3 seeds, into the folder
#     of step 18's 20-minute runs (its table then prints both presets). Seeds 0 and 1 side by side.
mkdir -p runs/ablation_mnist_20/calibration
echo 30936 > runs/ablation_mnist_20/calibration/ttur_1d_lr8.steps
ONLY=ttur_1d_lr8 SEEDS=0 bash benchmarks/gan_ablation.sh "mnist5k?split=train" 20 runs/ablation_mnist_20 &
ONLY=ttur_1d_lr8 SEEDS=1 bash benchmarks/gan_ablation.sh "mnist5k?split=train" 20 runs/ablation_mnist_20
wait
ONLY=ttur_1d_lr8 SEEDS=2 bash benchmarks/gan_ablation.sh "mnist5k?split=train" 20 runs/ablation_mnist_20
