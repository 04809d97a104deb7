#!/usr/bin/env bash
# Where client-level DP becomes affordable: the synthetic corpus with N speaker clients (a
# fifth more speakers held out for the task's UA), Poisson sampling with rate Q, central DP at
# several epsilons (delta 1e-5), against no DP. Prints the final UA per (N, epsilon).
#
# Usage: tools/privacy_scale.sh ARCH "N1 N2 ..." [Q] [ROUNDS] [extra simulate flags...]
# Example: tools/privacy_scale.sh dnn "125 500 2000" 0.05 200
set -euo pipefail
arch=${1:-dnn}; sizes=${2:-"125 500"}; q=${3:-0.05}; rounds=${4:-200}; shift $(( $# < 4 ? $# : 4 ))
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/tools/fedser_bin.sh"
out=${PRIVACY_OUT:-$(mktemp -d)}
cache="${FEDSER_CACHE:-$out/cache}"
for n in $sizes; do
  speakers=$(( n * 5 / 4 ))
  for eps in none 8 4 1; do
    dir="$out/$arch/$n/$eps"
    rm -rf "$dir"
    if [ "$eps" = none ]; then dp=(--sampling "poisson:$q"); else
      dp=(--dp central --clip "${CLIP:-1}" --target-epsilon "$eps" --delta 1e-5 --fraction "$q"); fi
    "$fedser" -q simulate --synthetic-speakers "$speakers" --synthetic-per-emotion 2 \
      --test-fraction 0.2 --arch "$arch" --rounds "$rounds" --cache "$cache" --no-report \
      --out "$dir" "${dp[@]}" "$@" > /dev/null
  done
done
python3 - "$out/$arch" "$sizes" "$q" <<'PY'
import json, os, sys
root, sizes, q = sys.argv[1], sys.argv[2].split(), sys.argv[3]
print(f"| clients N | q·N | UA, no DP | UA, eps 8 | UA, eps 4 | UA, eps 1 | z at eps 8 / 4 / 1 |")
print("|---|---|---|---|---|---|---|")
for n in sizes:
    ua, zs = {}, []
    for eps in ["none", "8", "4", "1"]:
        d = os.path.join(root, n, eps)
        rounds = [json.loads(l) for l in open(os.path.join(d, "metrics.jsonl"))]
        tail = rounds[-10:]
        ua[eps] = sum(r["central"]["ua"] for r in tail) / len(tail)
        if eps != "none":
            p = rounds[-1]["privacy"]
            zs.append(f"{p['noise_std'] * float(q) * int(n) / p['clip']:.2f}")
    print(f"| {n} | {float(q) * int(n):g} | {ua['none']:.3f} | {ua['8']:.3f} | {ua['4']:.3f} | {ua['1']:.3f} | {' / '.join(zs)} |")
print("(UA: mean of the last 10 rounds' central UA on the held-out speakers)")
PY
echo "runs: $out"
