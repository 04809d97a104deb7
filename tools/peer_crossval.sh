#!/usr/bin/env bash
# The PyTorch peers of ../shared/peers/flower_bench.py (`central`: psf MFCC cropped to 200
# frames, global z-score, Adam 1e-3, batch 32, last epoch kept) on the same speaker-independent
# folds as tools/crossval.sh, so both sides are measured on identical splits in one session.
# Prints mean ± sd over folds of UA (macro recall), accuracy and macro-F1 per peer model.
#
# Usage: [SEEDS="0 1 2"] tools/peer_crossval.sh PEERS_VENV WAV_DIR "FOLD1 FOLD2 ..." [MODELS] [EPOCHS]
#   FOLD is a comma-separated list of test speakers as the peer names them: ravdess_01 for
#   RAVDESS (as fedser), but 03 for EMO-DB speaker 03 (fedser: emodb_03)
#   MODELS defaults to "mlp cnn lstm", EPOCHS to 60, SEEDS to "0"
# Example (RAVDESS dev, two actors out, rotated):
#   tools/peer_crossval.sh VENV ../shared/data/ravdess-dev \
#     "$(for a in 01 03 05 07 09 11; do printf 'ravdess_%s,ravdess_%02d ' $a $((10#$a+1)); done)"
set -euo pipefail
venv=$1; wavs=$2; folds=$3; models=${4:-"mlp cnn lstm"}; epochs=${5:-60}; seeds=${SEEDS:-0}
here=$(cd "$(dirname "$0")/.." && pwd)
bench="$here/../shared/peers/flower_bench.py"
out=$(mktemp -d)
"$venv/bin/python" "$bench" features --wav-dir "$wavs" --out "$out/f.npz" \
  --classes neutral,happy,angry,sad,fear > /dev/null
for model in $models; do
  for seed in $seeds; do
    k=0
    for fold in $folds; do
      k=$((k+1))
      log="$out/$model-$seed-$k.log"
      if ! "$venv/bin/python" "$bench" central --feats "$out/f.npz" --model "$model" --epochs "$epochs" \
        --seed "$seed" --test-speakers "$fold" --json "$out/$model-$seed-$k.json" > "$log" 2>&1; then
        echo "peer run failed ($model, seed $seed, fold $fold):" >&2; tail -20 "$log" >&2; exit 1
      fi
    done
  done
done
python3 - "$out" "$models" <<'PY'
import glob, json, os, statistics, sys
out, models = sys.argv[1], sys.argv[2].split()
print(f"{'peer model':12s} {'UA':>14s} {'accuracy':>14s} {'macro-F1':>14s} runs")
for m in models:
    runs = [json.load(open(f))["final"] for f in sorted(glob.glob(os.path.join(out, f"{m}-*.json")))]
    def ms(key):
        v = [r[key] for r in runs]
        return f"{statistics.mean(v):.3f} ± {statistics.pstdev(v):.3f}"
    print(f"{m:12s} {ms('recall_macro'):>14s} {ms('accuracy'):>14s} {ms('f1_macro'):>14s} {len(runs)}")
    print("  per run UA:", " ".join(f"{r['recall_macro']:.3f}" for r in runs))
PY
