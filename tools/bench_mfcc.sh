#!/usr/bin/env bash
# MFCC throughput of fedser against python_speech_features, librosa and torchaudio, measured
# in one run on the same files (decoding included, one core), plus fedser's speed-up on all
# cores. The three tools are interleaved ROUNDS times so machine noise hits them alike; the
# ratios are medians over rounds.
#
# Usage: tools/bench_mfcc.sh PEERS_VENV [WAV_DIR] [ROUNDS]
#   PEERS_VENV  a venv made by ../shared/peers/setup.sh PEERS_VENV
#   WAV_DIR     default ../shared/data/emodb/wav
set -euo pipefail
venv=${1:?usage: tools/bench_mfcc.sh PEERS_VENV [WAV_DIR] [ROUNDS]}
dir=${2:-../shared/data/emodb/wav}
rounds=${3:-3}
here=$(cd "$(dirname "$0")/.." && pwd)
peers=${PEERS_DIR:-$here/../shared/peers}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

. "$here/tools/fedser_bin.sh"
for r in $(seq "$rounds"); do
  # One core for fedser's single-thread figure: taskset keeps the OS from spreading it.
  taskset -c 0 "$fedser" bench mfcc "$dir" --runs 5 --json > "$out/fedser_$r.json"
  "$fedser" bench mfcc "$dir" --runs 5 --parallel --json > "$out/fedser_par_$r.json"
  taskset -c 0 "$venv/bin/python" "$peers/mfcc_bench.py" --wav-dir "$dir" --runs 5 --threads 1 \
    --libs psf,librosa,ta_mfcc,ta_kaldi --json "$out/peers_$r.json" > /dev/null
done
python3 - "$out" "$rounds" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
rows = {}
for r in range(1, rounds + 1):
    f = json.load(open(f"{out}/fedser_{r}.json"))
    p = json.load(open(f"{out}/peers_{r}.json"))
    fp = json.load(open(f"{out}/fedser_par_{r}.json"))
    rows.setdefault("fedser", []).append(f["single_thread"]["audio_s_per_cpu_s"])
    rows.setdefault("fedser_speedup_all_cores", []).append(fp["all_cores"]["speedup_vs_one_thread"])
    for lib, v in p["results"].items():
        rows.setdefault(lib, []).append(v["rtf_audio_per_cpu_s"])
        rows.setdefault(f"ratio_vs_{lib}", []).append(f["single_thread"]["audio_s_per_cpu_s"] / v["rtf_audio_per_cpu_s"])
print(f"{f['files']} files, {f['audio_seconds']:.1f} s of audio, {rounds} rounds (medians over rounds)")
print(f"{'pipeline':28s} {'audio-s per CPU-s':>18s}")
for k in ["fedser", "psf", "librosa", "ta_mfcc", "ta_kaldi"]:
    if k in rows:
        print(f"{k:28s} {statistics.median(rows[k]):18.0f}")
for k, v in rows.items():
    if k.startswith("ratio_vs_"):
        print(f"fedser / {k[9:]:19s} {statistics.median(v):18.2f}x")
print(f"fedser all cores vs one      {statistics.median(rows['fedser_speedup_all_cores']):17.2f}x")
PY
