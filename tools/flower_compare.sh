#!/usr/bin/env bash
# fedser vs Flower 1.42 + PyTorch on the same federated job, measured in one run:
# EMO-DB (five classes), speakers 03 and 08 held out for testing, the other eight speakers'
# utterances split IID over 10 clients, the CNN, 10 rounds x 1 local epoch, batch 32,
# Adam 1e-3, FedAvg, central evaluation each round. Whole processes are timed from outside
# (/usr/bin/time); memory is Flower's summed PSS over its process tree (its own sampler) and
# fedser's peak RSS (one process). REPEATS runs each, alternating; medians and ratios printed.
#
# Usage: tools/flower_compare.sh PEERS_VENV [EMODB_DIR] [REPEATS]
#   PEERS_VENV: made by ../shared/peers/setup.sh
set -euo pipefail
venv=$1; emodb=${2:-../shared/data/emodb}; repeats=${3:-3}
here=$(cd "$(dirname "$0")/.." && pwd)
peers="$here/../shared/peers"
. "$here/tools/fedser_bin.sh"
work=$(mktemp -d)
"$venv/bin/python" "$peers/flower_bench.py" features --wav-dir "$emodb/wav" --out "$work/emodb.npz" \
  --classes neutral,happy,angry,sad,fear > /dev/null
# Warm fedser's feature cache once: the peer reads precomputed features too.
"$fedser" corpus --corpus emodb --data "$emodb" --extract --cache "$work/cache" -q > /dev/null
for r in $(seq 1 "$repeats"); do
  /usr/bin/time -f "%e %M" -o "$work/flower_$r.time" "$venv/bin/python" "$peers/flower_bench.py" flower \
    --feats "$work/emodb.npz" --model cnn --partition iid --clients 10 --rounds 10 --local-epochs 1 \
    --batch 32 --lr 0.001 --test-speakers 03,08 --json "$work/flower_$r.json" > /dev/null 2>&1
  /usr/bin/time -f "%e %M" -o "$work/fedser_$r.time" "$fedser" simulate -q --corpus emodb --data "$emodb" \
    --cache "$work/cache" --arch cnn --partition iid:10 --test-speakers emodb_03,emodb_08 \
    --rounds 10 --local-epochs 1 --batch-size 32 --lr 0.001 --optimizer adam --weight-decay 0 \
    --min-clients 10 --val-fraction 0 --fraction-evaluate 0 --no-report --out "$work/fedser_$r" > /dev/null
done
python3 - "$work" "$repeats" <<'PY'
import json, statistics, sys, os
work, n = sys.argv[1], int(sys.argv[2])
def t(name):
    wall, kb = open(os.path.join(work, name)).read().split()[-2:]
    return float(wall), float(kb) / 1024
fl = [json.load(open(f"{work}/flower_{r}.json")) for r in range(1, n + 1)]
fl_wall = statistics.median(t(f"flower_{r}.time")[0] for r in range(1, n + 1))
fl_mem = statistics.median(f["peak_tree_pss_mib"] for f in fl)
fl_acc = statistics.median(f["final"]["accuracy"] for f in fl)
fl_ua = statistics.median(f["final"]["recall_macro"] for f in fl)  # UA = macro recall
fs_wall = statistics.median(t(f"fedser_{r}.time")[0] for r in range(1, n + 1))
fs_mem = statistics.median(t(f"fedser_{r}.time")[1] for r in range(1, n + 1))
fs_last = [json.loads(open(f"{work}/fedser_{r}/metrics.jsonl").read().splitlines()[-1])["central"] for r in range(1, n + 1)]
fs_acc = statistics.median(c["accuracy"] for c in fs_last)
fs_ua = statistics.median(c["ua"] for c in fs_last)
print(f"{'':10s} {'wall s':>8s} {'memory MiB':>11s} {'accuracy':>9s}")
print(f"{'Flower':10s} {fl_wall:8.1f} {fl_mem:11.0f} {fl_acc:9.3f}  (UA {fl_ua:.3f})")
print(f"{'fedser':10s} {fs_wall:8.1f} {fs_mem:11.0f} {fs_acc:9.3f}  (UA {fs_ua:.3f})")
print(f"ratios: fedser {fl_wall / fs_wall:.1f}x faster, {fl_mem / fs_mem:.1f}x less memory (medians of {n})")
print(f"Flower: median round {statistics.median(f['median_round_wall_s_after_first'] for f in fl):.2f} s after a first round of {statistics.median(f['first_round_wall_s'] for f in fl):.1f} s; imports {statistics.median(f['import_s'] for f in fl):.1f} s")
PY
