"""Summary of a fedser-vs-Flower job run by tools/flower_job.sh: each run's wall time and UA,
then the medians (wall time, memory, UA, accuracy) and their ratios, and Flower's own timing
breakdown. Memory is Flower's summed PSS over its process tree (its own sampler) and
fedser's peak RSS (one process).

Usage: python3 tools/flower_summary.py WORK_DIR REPEATS
"""
import json
import os
import statistics
import sys

work, n = sys.argv[1], int(sys.argv[2])
runs = range(1, n + 1)


def timed(name):
    wall, kb = open(os.path.join(work, name)).read().split()[-2:]
    return float(wall), float(kb) / 1024


flower = [json.load(open(f"{work}/flower_{r}.json")) for r in runs]
fedser = [
    json.loads(open(f"{work}/fedser_{r}/metrics.jsonl").read().splitlines()[-1])["central"]
    for r in runs
]
print(f"{'run':4s} {'Flower s':>9s} {'fedser s':>9s} {'ratio':>6s} {'Flower UA':>10s} {'fedser UA':>10s}")
for r, f, c in zip(runs, flower, fedser):
    fw, sw = timed(f"flower_{r}.time")[0], timed(f"fedser_{r}.time")[0]
    print(f"{r:<4d} {fw:9.1f} {sw:9.1f} {fw / sw:6.1f} {f['final']['recall_macro']:10.3f} {c['ua']:10.3f}")
fl_wall = statistics.median(timed(f"flower_{r}.time")[0] for r in runs)
fs_wall = statistics.median(timed(f"fedser_{r}.time")[0] for r in runs)
fl_mem = statistics.median(f["peak_tree_pss_mib"] for f in flower)
fs_mem = statistics.median(timed(f"fedser_{r}.time")[1] for r in runs)
# UA is macro recall.
print(
    f"medians: Flower {fl_wall:.1f} s, {fl_mem:.0f} MiB, "
    f"UA {statistics.median(f['final']['recall_macro'] for f in flower):.3f} "
    f"(accuracy {statistics.median(f['final']['accuracy'] for f in flower):.3f}); "
    f"fedser {fs_wall:.1f} s, {fs_mem:.0f} MiB, UA {statistics.median(c['ua'] for c in fedser):.3f} "
    f"(accuracy {statistics.median(c['accuracy'] for c in fedser):.3f})"
)
print(f"fedser {fl_wall / fs_wall:.1f}x faster, {fl_mem / fs_mem:.1f}x less memory (ratio of medians of {n})")
print(
    f"Flower: median round {statistics.median(f['median_round_wall_s_after_first'] for f in flower):.2f} s "
    f"after a first round of {statistics.median(f['first_round_wall_s'] for f in flower):.1f} s; "
    f"imports {statistics.median(f['import_s'] for f in flower):.1f} s"
)
