#!/usr/bin/env bash
# fedser vs Flower 1.42 + PyTorch on a federated job that trains for real, in one run:
# RAVDESS development actors, one client per speaker (actors 01-10, ten clients), actors 11
# and 12 held out for testing, five classes, the CNN, FedAvg, 30 rounds x 5 local epochs,
# batch 32, Adam 1e-3, every client every round, central evaluation each round. Whole
# processes timed from outside (/usr/bin/time); memory is Flower's summed PSS over its
# process tree (its own sampler) and fedser's peak RSS. REPEATS runs each, alternating;
# prints each run, the medians and the ratio of the medians.
#
# Usage: [FEDSER_FLAGS="--max-frames 200"] tools/flower_speaker_compare.sh PEERS_VENV [RAVDESS_DIR] [REPEATS]
#   PEERS_VENV: made by ../shared/peers/setup.sh
#   FEDSER_FLAGS: extra `fedser simulate` flags, e.g. `--max-frames 200` for the peer's
#   200-frame crop (fedser's default reads up to 400 frames per utterance).
set -euo pipefail
venv=$1; ravdess=${2:-../shared/data/ravdess-dev}; repeats=${3:-3}
rounds=${ROUNDS:-30}; epochs=${LOCAL_EPOCHS:-5}
here=$(cd "$(dirname "$0")/.." && pwd)
peers="$here/../shared/peers"
. "$here/tools/fedser_bin.sh"
work=$(mktemp -d)
"$venv/bin/python" "$peers/flower_bench.py" features --wav-dir "$ravdess" --out "$work/ravdess.npz" \
  --classes neutral,happy,angry,sad,fear > /dev/null
# Warm fedser's feature cache once: the peer reads precomputed features too.
"$fedser" corpus --corpus ravdess --data "$ravdess" --extract --cache "$work/cache" -q > /dev/null
for r in $(seq 1 "$repeats"); do
  /usr/bin/time -f "%e %M" -o "$work/flower_$r.time" "$venv/bin/python" "$peers/flower_bench.py" flower \
    --feats "$work/ravdess.npz" --model cnn --partition speaker --clients 10 --rounds "$rounds" \
    --local-epochs "$epochs" --batch 32 --lr 0.001 --test-speakers ravdess_11,ravdess_12 \
    --json "$work/flower_$r.json" > /dev/null 2>&1
  /usr/bin/time -f "%e %M" -o "$work/fedser_$r.time" "$fedser" simulate -q --corpus ravdess \
    --data "$ravdess" --cache "$work/cache" --arch cnn --partition speaker \
    --test-speakers ravdess_11,ravdess_12 --rounds "$rounds" --local-epochs "$epochs" \
    --batch-size 32 --lr 0.001 --optimizer adam --weight-decay 0 --min-clients 10 \
    --val-fraction 0 --fraction-evaluate 0 --no-report --out "$work/fedser_$r" \
    ${FEDSER_FLAGS:-} > /dev/null
done
python3 - "$work" "$repeats" <<'PY'
import json, statistics, sys, os
work, n = sys.argv[1], int(sys.argv[2])
def t(name):
    wall, kb = open(os.path.join(work, name)).read().split()[-2:]
    return float(wall), float(kb) / 1024
runs = range(1, n + 1)
fl = [json.load(open(f"{work}/flower_{r}.json")) for r in runs]
fs = [json.loads(open(f"{work}/fedser_{r}/metrics.jsonl").read().splitlines()[-1])["central"] for r in runs]
print(f"{'run':4s} {'Flower s':>9s} {'fedser s':>9s} {'ratio':>6s} {'Flower UA':>10s} {'fedser UA':>10s}")
for r, f, c in zip(runs, fl, fs):
    fw, sw = t(f"flower_{r}.time")[0], t(f"fedser_{r}.time")[0]
    print(f"{r:<4d} {fw:9.1f} {sw:9.1f} {fw / sw:6.1f} {f['final']['recall_macro']:10.3f} {c['ua']:10.3f}")
fl_wall = statistics.median(t(f"flower_{r}.time")[0] for r in runs)
fs_wall = statistics.median(t(f"fedser_{r}.time")[0] for r in runs)
fl_mem = statistics.median(f["peak_tree_pss_mib"] for f in fl)
fs_mem = statistics.median(t(f"fedser_{r}.time")[1] for r in runs)
print(f"medians: Flower {fl_wall:.1f} s, {fl_mem:.0f} MiB, UA {statistics.median(f['final']['recall_macro'] for f in fl):.3f} "
      f"(accuracy {statistics.median(f['final']['accuracy'] for f in fl):.3f}); "
      f"fedser {fs_wall:.1f} s, {fs_mem:.0f} MiB, UA {statistics.median(c['ua'] for c in fs):.3f} "
      f"(accuracy {statistics.median(c['accuracy'] for c in fs):.3f})")
print(f"fedser {fl_wall / fs_wall:.1f}x faster, {fl_mem / fs_mem:.1f}x less memory (ratio of medians of {n})")
PY
