#!/usr/bin/env bash
# Federated vs centralised, speaker-independent: for each fold (held-out test speakers) and
# each strategy, a `fedser simulate` run with one client per remaining speaker; prints the
# final round's central UA / accuracy / macro-F1 (mean ± sd over folds) per strategy.
#
# Usage: tools/fedval.sh CORPUS DATA "FOLD1 FOLD2 ..." ARCH "STRATEGIES" [extra simulate flags...]
# Example (RAVDESS dev, two actors out, rotated; 30 rounds x 2 local epochs = 60 epochs):
#   tools/fedval.sh ravdess ../shared/data/ravdess-dev \
#     "$(for a in 01 03 05 07 09 11; do printf 'ravdess_%s,ravdess_%02d ' $a $((10#$a+1)); done)" \
#     cnn "fedavg fedprox:0.01" --rounds 30 --local-epochs 2
# The centralised counterpart with the same total epochs: tools/crossval.sh ... --epochs 60.
set -euo pipefail
corpus=$1; data=$2; folds=$3; arch=$4; strategies=$5; shift 5
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/tools/fedser_bin.sh"
out=${FEDVAL_OUT:-$(mktemp -d)}
cache="${FEDSER_CACHE:-$out/cache}"
for strategy in $strategies; do
  k=0
  for fold in $folds; do
    k=$((k+1))
    dir="$out/$arch/${strategy//:/_}/$k"
    rm -rf "$dir"
    "$fedser" simulate --quiet --corpus "$corpus" --data "$data" --arch "$arch" \
      --test-speakers "$fold" --strategy "$strategy" --cache "$cache" --no-report \
      --out "$dir" "$@" > /dev/null
  done
done
python3 - "$out/$arch" "$strategies" <<'PY'
import json, os, statistics, sys
root, strategies = sys.argv[1], sys.argv[2].split()
print(f"{'strategy':16s} {'UA':>14s} {'accuracy':>14s} {'macro-F1':>14s} {'UA@best-val':>14s} {'s/round':>8s} folds")
for s in strategies:
    d = os.path.join(root, s.replace(":", "_"))
    last = []
    chosen = []
    secs = []
    for k in sorted(os.listdir(d), key=int):
        rounds = [json.loads(l) for l in open(os.path.join(d, k, "metrics.jsonl"))]
        last.append(rounds[-1]["central"])
        # The round the clients' pooled validation UA prefers (no test data involved).
        best = max(rounds, key=lambda r: (r.get("federated") or {}).get("ua", -1))
        chosen.append(best["central"]["ua"])
        secs += [r["seconds"] for r in rounds]
    pick = f"{statistics.mean(chosen):.3f} ± {statistics.pstdev(chosen):.3f}"
    ms = lambda key: f"{statistics.mean(r[key] for r in last):.3f} ± {statistics.pstdev(r[key] for r in last):.3f}"
    print(f"{s:16s} {ms('ua'):>14s} {ms('accuracy'):>14s} {ms('macro_f1'):>14s} {pick:>14s} {statistics.median(secs):8.2f} {len(last)}")
PY
