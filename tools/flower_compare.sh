#!/usr/bin/env bash
# fedser vs Flower 1.42 + PyTorch on the same federated job, measured in one run:
# EMO-DB (five classes), speakers 03 and 08 held out for testing, the other eight speakers'
# utterances split IID over 10 clients, the CNN, 10 rounds x 1 local epoch, batch 32,
# Adam 1e-3, FedAvg, central evaluation each round. Whole processes are timed from outside
# (tools/flower_job.sh); memory is Flower's summed PSS over its process tree and fedser's
# peak RSS. REPEATS runs each, alternating; each run, the medians and their ratios printed.
#
# Usage: tools/flower_compare.sh PEERS_VENV [EMODB_DIR] [REPEATS]
#   PEERS_VENV: made by ../shared/peers/setup.sh
set -euo pipefail
venv=$1; emodb=${2:-../shared/data/emodb}; repeats=${3:-3}
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/tools/flower_job.sh"
flower_args=(--model cnn --partition iid --clients 10 --rounds 10 --local-epochs 1 --batch 32
  --lr 0.001 --test-speakers 03,08)
fedser_args=(--arch cnn --partition iid:10 --test-speakers emodb_03,emodb_08 --rounds 10
  --local-epochs 1 --batch-size 32 --lr 0.001 --optimizer adam --weight-decay 0 --min-clients 10
  --val-fraction 0 --fraction-evaluate 0)
flower_job emodb "$emodb" "$emodb/wav" "$repeats"
