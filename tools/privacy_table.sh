#!/usr/bin/env bash
# The privacy-utility table: for each defence, a federated run on RAVDESS dev that records
# what the server sees, then the gender attack and the speaker-membership attack. The
# federation is actors 01-08: 01-06 are the clients (three men, three women), 07-08 are held
# out for the task's UA. The attacker's shadow speakers are the actors outside the federation's
# training (07-12, three men, three women): re-trained from each round's global model for the
# gender attack, and the non-members of the membership attack (same corpus, so membership is
# not confused with the recording set-up). Prints mean ± sd over seeds.
#
# Usage: tools/privacy_table.sh ARCH [SEEDS] [extra simulate flags...]
#   ONLY: a regular expression picking defences by name (e.g. 'none|secagg').
#   FEDSER_DATA (default ../shared/data): holds ravdess-dev/.
# Example: tools/privacy_table.sh cnn "0 1 2"
set -euo pipefail
arch=${1:-cnn}; seeds=${2:-"0 1 2"}; shift $(( $# < 2 ? $# : 2 ))
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/tools/fedser_bin.sh"
data=${FEDSER_DATA:-$here/../shared/data}
out=${PRIVACY_OUT:-$(mktemp -d)}
cache="${FEDSER_CACHE:-$out/cache}"
rounds=${ROUNDS:-20}
delta=1e-3
# name | simulate flags
defences=(
  "none|"
  "central eps=8|--dp central --clip 1 --target-epsilon 8 --delta $delta"
  "central eps=4|--dp central --clip 1 --target-epsilon 4 --delta $delta"
  "central eps=1|--dp central --clip 1 --target-epsilon 1 --delta $delta"
  "local eps=8|--dp local --clip 1 --target-epsilon 8 --delta $delta"
  "secagg|--secagg"
  "secagg + central eps=4|--secagg --dp central --clip 1 --target-epsilon 4 --delta $delta"
)
for seed in $seeds; do
  for d in "${defences[@]}"; do
    name=${d%%|*}; flags=${d#*|}
    # ONLY (a regular expression) picks defences by name.
    if [ -n "${ONLY:-}" ] && ! [[ $name =~ $ONLY ]]; then continue; fi
    dir="$out/$arch/${name// /_}/$seed"
    rm -rf "$dir"
    # shellcheck disable=SC2086
    "$fedser" -q simulate --corpus ravdess --data "$data/ravdess-dev" --arch "$arch" \
      --speakers "$(printf 'ravdess_%02d,' 1 2 3 4 5 6 7 8 | sed 's/,$//')" \
      --test-speakers ravdess_07,ravdess_08 --rounds "$rounds" --local-epochs 2 --seed "$seed" \
      --record-updates --cache "$cache" --no-report --out "$dir" $flags "$@" > /dev/null
    for kind in gender membership; do
      "$fedser" -q attack "$dir" --kind "$kind" --shadow-corpus ravdess \
        --shadow-data "$data/ravdess-dev" --cache "$cache" --json > /dev/null
    done
  done
done
python3 - "$out/$arch" "$arch" <<'PY'
import json, os, statistics, sys
root, arch = sys.argv[1], sys.argv[2]
def ms(v):
    return f"{statistics.mean(v):.3f} ± {statistics.pstdev(v):.3f}" if v else "-"
print(f"| {arch} defence | epsilon (delta 1e-3) | task UA | gender attack UAR | membership AUC (loss) | membership AUC (LiRA) | seeds |")
print("|---|---|---|---|---|---|---|")
for name in sorted(os.listdir(root), key=lambda n: (n != "none", n.split("=")[0], -float(n.split("=")[-1]) if "=" in n else 0)):
    ua, uar, auc, lira, eps = [], [], [], [], []
    for seed in sorted(os.listdir(os.path.join(root, name))):
        d = os.path.join(root, name, seed)
        rounds = [json.loads(l) for l in open(os.path.join(d, "metrics.jsonl"))]
        ua.append(rounds[-1]["central"]["ua"])
        if "privacy" in rounds[-1]:
            eps.append(rounds[-1]["privacy"]["epsilon"])
        uar.append(json.load(open(os.path.join(d, "attacks", "gender.json")))["uar"])
        m = json.load(open(os.path.join(d, "attacks", "membership.json")))
        auc.append(m["auc"])
        if m.get("lira", {}).get("auc") is not None:
            lira.append(m["lira"]["auc"])
    e = f"{statistics.mean(eps):.2f}" if eps else "∞"
    print(f"| {name.replace('_', ' ')} | {e} | {ms(ua)} | {ms(uar)} | {ms(auc)} | {ms(lira)} | {len(ua)} |")
PY
echo "runs: $out"
