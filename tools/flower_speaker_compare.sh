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
. "$here/tools/flower_job.sh"
flower_args=(--model cnn --partition speaker --clients 10 --rounds "$rounds" --local-epochs "$epochs"
  --batch 32 --lr 0.001 --test-speakers ravdess_11,ravdess_12)
# shellcheck disable=SC2206 # FEDSER_FLAGS is split into words on purpose
fedser_args=(--arch cnn --partition speaker --test-speakers ravdess_11,ravdess_12 --rounds "$rounds"
  --local-epochs "$epochs" --batch-size 32 --lr 0.001 --optimizer adam --weight-decay 0
  --min-clients 10 --val-fraction 0 --fraction-evaluate 0 ${FEDSER_FLAGS:-})
flower_job ravdess "$ravdess" "$ravdess" "$repeats"
