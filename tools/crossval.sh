#!/usr/bin/env bash
# Speaker-independent cross-validation of the centralised models with `fedser train`:
# each fold holds out a group of speakers; prints UA, accuracy and macro-F1 averaged over all
# runs (folds × seeds), ± the standard deviation of the fold means, then the mean UA per fold
# and per seed.
#
# Usage: [SEEDS="7 1 2"] tools/crossval.sh CORPUS DATA "FOLD1 FOLD2 ..." [ARCHS] [extra fedser train flags...]
#   FOLD is a comma-separated list of test speakers, e.g. ravdess_01,ravdess_02
#   ARCHS defaults to "dnn cnn lstm lstm-transformer"; SEEDS to "7" (the default seed). A seed
#   sets the initial weights, the shuffling and the validation split; the script passes
#   --seed itself, so leave it out of the extra flags.
# Example (RAVDESS dev, two actors out, rotated):
#   tools/crossval.sh ravdess ../shared/data/ravdess-dev \
#     "$(for a in 01 03 05 07 09 11; do printf 'ravdess_%s,ravdess_%02d ' $a $((10#$a+1)); done)"
set -euo pipefail
corpus=$1; data=$2; folds=$3; archs=${4:-"dnn cnn lstm lstm-transformer"}; shift 4 || shift $#
seeds=${SEEDS:-7}
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/tools/fedser_bin.sh"
out=$(mktemp -d)
cache="${FEDSER_CACHE:-$out/cache}"
for arch in $archs; do
  for seed in $seeds; do
    k=0
    for fold in $folds; do
      k=$((k+1))
      "$fedser" train --quiet --corpus "$corpus" --data "$data" --arch "$arch" --test-speakers "$fold" \
        --seed "$seed" --cache "$cache" --out "$out/$arch/$seed/$k" "$@" > /dev/null
    done
  done
done
python3 - "$out" "$archs" "$seeds" <<'PY'
import json, os, statistics, sys
out, archs, seeds = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
print(f"{'model':18s} {'UA':>14s} {'accuracy':>14s} {'macro-F1':>14s} {'utt/s':>8s} runs")
for arch in archs:
    runs = {(s, k): json.load(open(os.path.join(out, arch, s, k, "metrics.json")))
            for s in seeds for k in os.listdir(os.path.join(out, arch, s))}
    folds = sorted({k for _, k in runs}, key=int)
    def ms(key):
        fold_means = [statistics.mean(runs[(s, k)]["test"][key] for s in seeds) for k in folds]
        return f"{statistics.mean(fold_means):.3f} ± {statistics.pstdev(fold_means):.3f}"
    speed = statistics.median(r["history"]["examples_per_second"] for r in runs.values())
    print(f"{arch:18s} {ms('ua'):>14s} {ms('accuracy'):>14s} {ms('macro_f1'):>14s} {speed:8.0f} {len(runs)}")
    mean_ua = lambda rs: statistics.mean(r["test"]["ua"] for r in rs)
    print("  UA per fold:", " ".join(f"{mean_ua([runs[(s, k)] for s in seeds]):.3f}" for k in folds))
    print("  UA per seed:", " ".join(f"{s}={mean_ua([runs[(s, k)] for k in folds]):.3f}" for s in seeds))
PY
