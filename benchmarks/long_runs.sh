#!/usr/bin/env bash
# The README's long runs: LSTM against JANET on 784-step Fashion-MNIST, plain and
# permuted, one seed, a fixed number of epochs (first argument, default 3).
# Needs the Fashion-MNIST IDX files (apt-get install dataset-fashion-mnist).
set -euo pipefail
cd "$(dirname "$0")/.."
epochs="${1:-3}"
for task in fmnist pfmnist; do
  python -m gatedrnn compare --task "$task" --cells janet,lstm --seeds 1 --epochs "$epochs" \
    --out "runs/bench/$task"
  mkdir -p "benchmarks/results/train/$task"
  cp "runs/bench/$task"/results.{md,csv} "runs/bench/$task/curves.png" "benchmarks/results/train/$task/"
done
