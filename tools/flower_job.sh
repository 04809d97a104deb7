# Sourced by tools/flower_compare.sh and tools/flower_speaker_compare.sh (after they set
# $here, the project root, and $venv, the peers' environment): one fedser-vs-Flower job,
# measured the same way for both. `flower_job CORPUS DATA WAV_DIR REPEATS` prepares both
# sides' precomputed features (the peer's `.npz`, fedser's warm feature cache), then runs the
# peer's `flower_bench.py flower` with the array `flower_args` and `fedser simulate` with the
# array `fedser_args`, alternating, REPEATS times each, whole processes timed from outside
# (/usr/bin/time), and prints each run, the medians and their ratios
# (tools/flower_summary.py).
. "$here/tools/fedser_bin.sh"
peers="$here/../shared/peers"

flower_job() {
  local corpus=$1 data=$2 wavs=$3 repeats=$4 work r
  work=$(mktemp -d)
  "$venv/bin/python" "$peers/flower_bench.py" features --wav-dir "$wavs" --out "$work/feats.npz" \
    --classes neutral,happy,angry,sad,fear > /dev/null
  # Warm fedser's feature cache once: the peer reads precomputed features too.
  "$fedser" corpus --corpus "$corpus" --data "$data" --extract --cache "$work/cache" -q > /dev/null
  for r in $(seq 1 "$repeats"); do
    /usr/bin/time -f "%e %M" -o "$work/flower_$r.time" "$venv/bin/python" "$peers/flower_bench.py" \
      flower --feats "$work/feats.npz" "${flower_args[@]}" --json "$work/flower_$r.json" > /dev/null 2>&1
    /usr/bin/time -f "%e %M" -o "$work/fedser_$r.time" "$fedser" simulate -q --corpus "$corpus" \
      --data "$data" --cache "$work/cache" "${fedser_args[@]}" --no-report --out "$work/fedser_$r" \
      > /dev/null
  done
  python3 "$here/tools/flower_summary.py" "$work" "$repeats"
}
