#!/usr/bin/env bash
# Training-step speed, fedser (Burn, flex backend) against PyTorch on the same shapes, one
# thread each, in one run: ../shared/peers/flower_bench.py `micro` (batch 32, 200 frames of
# 13 MFCCs, Adam) and `fedser bench train` with the peer's LSTM shape (one direction, 128).
# Prints per model the median step time of both and the ratio (> 1: fedser faster).
#
# Usage: tools/bench_train.sh PEERS_VENV [EMODB_DIR] [REPS]
set -euo pipefail
venv=$1; emodb=${2:-../shared/data/emodb}; reps=${3:-20}
here=$(cd "$(dirname "$0")/.." && pwd)
peers="$here/../shared/peers"
. "$here/tools/fedser_bin.sh"
work=$(mktemp -d)
"$venv/bin/python" "$peers/flower_bench.py" features --wav-dir "$emodb/wav" --out "$work/f.npz" \
  --classes neutral,happy,angry,sad,fear > /dev/null
"$venv/bin/python" "$peers/flower_bench.py" micro --feats "$work/f.npz" --models mlp,cnn,lstm \
  --client-threads 1 --reps "$reps" --json "$work/torch.json" > /dev/null 2>&1
"$fedser" bench train --archs dnn,cnn,lstm --peer-lstm --reps "$reps" --json \
  > "$work/fedser.json"
python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
torch = json.load(open(f"{work}/torch.json"))["models"]
ours = {m["arch"]: m for m in json.load(open(f"{work}/fedser.json"))["models"]}
print(f"{'model':14s} {'PyTorch ms':>10s} {'fedser ms':>10s} {'ratio':>6s}   {'FedAvg(10) numpy ms':>19s} {'fedser ms':>9s}")
for peer, mine in (("mlp", "dnn"), ("cnn", "cnn"), ("lstm", "lstm")):
    t, o = torch[peer], ours[mine]
    print(f"{peer + '/' + mine:14s} {t['train_step_ms_median']:10.2f} {o['train_step_ms_median']:10.2f} "
          f"{t['train_step_ms_median'] / o['train_step_ms_median']:6.2f}   "
          f"{t['fedavg_numpy_ms_median']:19.3f} {o['fedavg10_ms_median']:9.3f}")
PY
