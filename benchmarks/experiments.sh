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
