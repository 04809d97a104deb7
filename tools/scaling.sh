#!/usr/bin/env bash
# How a round's time and the process's memory grow with the number of simulated clients:
#   fixed data:  the same 1,600 training utterances (synthetic corpus, 100 speakers) split IID
#                over 10, 100 and 1,000 clients — total work constant, per-client overhead grows;
#   growing data: one client per synthetic speaker, 10 utterances each, 10/100/1,000 clients.
# CNN, 1 local epoch, batch 8, all clients every round, 5 rounds; median round seconds and
# peak RSS. Usage: tools/scaling.sh [WORKERS]
set -euo pipefail
workers=${1:-0}
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/tools/fedser_bin.sh"
work=$(mktemp -d)
run() { # name, flags...
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$work/$name.time" "$fedser" simulate -q --arch cnn --rounds 5 \
    --local-epochs 1 --batch-size 8 --val-fraction 0 --fraction-evaluate 0 --test-fraction 0.2 \
    --workers "$workers" --cache "$work/cache" --no-report --out "$work/$name" "$@" > /dev/null
}
for n in 10 100 1000; do
  run "fixed_$n" --synthetic-speakers 100 --synthetic-per-emotion 4 --partition "iid:$n"
done
for n in 10 100 1000; do
  # 25% more speakers than clients: a fifth are held out for testing.
  run "growing_$n" --synthetic-speakers $((n * 5 / 4)) --synthetic-per-emotion 2 --partition speaker
done
python3 - "$work" <<'PY'
import json, os, statistics, sys
work = sys.argv[1]
print(f"{'run':14s} {'clients':>7s} {'train utt':>9s} {'round s':>8s} {'ms/client':>9s} {'peak MiB':>8s} {'final UA':>8s}")
for kind in ("fixed", "growing"):
    for n in (10, 100, 1000):
        name = f"{kind}_{n}"
        rounds = [json.loads(l) for l in open(os.path.join(work, name, "metrics.jsonl"))]
        info = json.load(open(os.path.join(work, name, "run.json")))
        secs = statistics.median(r["fit_seconds"] for r in rounds)
        wall, kb = open(os.path.join(work, name + ".time")).read().split()[-2:]
        utt = sum(c["train"] for c in info["clients"])
        print(f"{name:14s} {len(info['clients']):7d} {utt:9d} {secs:8.2f} {1000 * secs / len(info['clients']):9.1f} {float(kb) / 1024:8.0f} {rounds[-1]['central']['ua']:8.3f}")
PY
