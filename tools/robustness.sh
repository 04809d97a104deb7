#!/usr/bin/env bash
# Robustness to the recording chain, speaker-independent: for each fold (held-out test
# speakers), seed and architecture, trains a model (`fedser train`, or `fedser simulate` with
# one client per remaining speaker when MODE is federated), then scores it with `fedser
# evaluate --perturb`. Prints, per architecture, the clean UA and for each perturbation the
# mean UA and the mean change from clean (points of UA; negative is a loss), ± the standard
# deviation over folds, and the worst fold's change (and, with several seeds, each seed's
# clean UA).
#
# Usage: [SEEDS="7 1 2"] [PERTURB=standard] tools/robustness.sh MODE CORPUS DATA "FOLD1 FOLD2 ..." "ARCHS" [extra train/simulate flags...]
#   MODE: central or federated. FOLD: comma-separated test speakers.
# Example (RAVDESS dev, two actors out, rotated; centralised DNN and CNN):
#   tools/robustness.sh central ravdess ../shared/data/ravdess-dev \
#     "$(for a in 01 03 05 07 09 11; do printf 'ravdess_%s,ravdess_%02d ' $a $((10#$a+1)); done)" "dnn cnn"
set -euo pipefail
mode=$1; corpus=$2; data=$3; folds=$4; archs=$5; shift 5
seeds=${SEEDS:-7}
perturb=${PERTURB:-standard}
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/tools/fedser_bin.sh"
out=${ROBUSTNESS_OUT:-$(mktemp -d)}
cache="${FEDSER_CACHE:-$out/cache}"
for arch in $archs; do
  for seed in $seeds; do
    k=0
    for fold in $folds; do
      k=$((k+1))
      dir="$out/$arch/$seed/$k"
      rm -rf "$dir"
      case $mode in
        central)
          "$fedser" train --quiet --corpus "$corpus" --data "$data" --arch "$arch" --test-speakers "$fold" \
            --seed "$seed" --cache "$cache" --out "$dir" "$@" > /dev/null ;;
        federated)
          "$fedser" simulate --quiet --corpus "$corpus" --data "$data" --arch "$arch" --test-speakers "$fold" \
            --seed "$seed" --cache "$cache" --no-report --out "$dir" "$@" > /dev/null ;;
        *) echo "MODE must be central or federated" >&2; exit 2 ;;
      esac
      "$fedser" evaluate --quiet --model "$dir" --corpus "$corpus" --data "$data" --cache "$cache" \
        --perturb "$perturb" --json > "$dir/robustness.json" 2> /dev/null
    done
  done
done
python3 - "$out" "$archs" "$seeds" <<'PY'
import json, os, statistics, sys
out, archs, seeds = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
for arch in archs:
    runs = {}
    for s in seeds:
        for k in os.listdir(os.path.join(out, arch, s)):
            runs[(s, k)] = json.load(open(os.path.join(out, arch, s, k, "robustness.json")))
    folds = sorted({k for _, k in runs}, key=int)
    def fold_means(get):
        return [statistics.mean(get(runs[(s, k)]) for s in seeds) for k in folds]
    clean = fold_means(lambda r: r["clean"]["ua"])
    print(f"{arch}: clean UA {statistics.mean(clean):.3f} ± {statistics.pstdev(clean):.3f} ({len(runs)} runs)")
    if len(seeds) > 1:
        per_seed = {s: statistics.mean(runs[(s, k)]["clean"]["ua"] for k in folds) for s in seeds}
        print("  clean UA per seed: " + " ".join(f"{s}={u:.3f}" for s, u in per_seed.items()))
    print(f"  {'perturbation':18s} {'UA':>7s} {'change':>16s} {'worst fold':>10s}")
    names = [p["perturbation"] for p in next(iter(runs.values()))["perturbed"]]
    for j, name in enumerate(names):
        ua = fold_means(lambda r: r["perturbed"][j]["ua"])
        change = [100 * (u - c) for u, c in zip(ua, clean)]
        print(f"  {name:18s} {statistics.mean(ua):7.3f} {statistics.mean(change):+8.1f} ± {statistics.pstdev(change):4.1f} {min(change):+10.1f}")
PY
