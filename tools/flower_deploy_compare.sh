#!/usr/bin/env bash
# fedser's deployment mode vs Flower 1.42's deployment mode on the same federated job, each as
# separate OS processes on 127.0.0.1, measured in one run: RAVDESS dev (five classes), actors
# 11 and 12 held out and evaluated centrally by the server after every round, actors 01..10 one
# per client (10 clients), the DNN / Flower's MLP (mean+std-pooled MFCCs), FedAvg, 10 rounds x
# 1 local epoch, batch 32, Adam 1e-3 (no weight decay, no class weights), every client every
# round, no client-side evaluation.
#   Flower: `flower_bench.py deploy` (one flower-superlink + 10 flower-supernodes, started by
#     that script; its own sampler reports the summed PSS/RSS of its process tree).
#   fedser: one `fedser server` (TLS, enrolled Ed25519 keys) + 10 `fedser client` processes
#     (each `--speakers ravdess_NN`); this script sums their PSS/RSS from /proc.
# Both read precomputed features (the peer its .npz, fedser its warm feature cache); feature
# extraction is done before either clock starts. Wall time runs from launching the first
# process to the end of the last round's central evaluation; "rounds" from the end of the
# set-up (Flower: its round-0 evaluation; fedser: the start of round 1) to the same end.
# One run of each, Flower first.
#
# Usage: tools/flower_deploy_compare.sh PEERS_VENV [RAVDESS_DIR]
#   PEERS_VENV: made by ../shared/peers/setup.sh; RAVDESS_DIR default ../shared/data/ravdess-dev
#   FEDSER_BIN: a prebuilt fedser binary (else the release build is brought up to date)
#   FLOWER_PORT: first port tried for the SuperLink (default 9400; supernodes use +100..+109)
set -euo pipefail
venv=$(cd "${1:?usage: tools/flower_deploy_compare.sh PEERS_VENV [RAVDESS_DIR]}" && pwd)
here=$(cd "$(dirname "$0")/.." && pwd)
ravdess=$(cd "${2:-$here/../shared/data/ravdess-dev}" && pwd)
peers=$(cd "$here/../shared/peers" && pwd)
. "$here/tools/fedser_bin.sh"
work=$(mktemp -d "${TMPDIR:-/tmp}/flower-deploy-compare.XXXXXX")
echo "work dir: $work" >&2

# Features for the peer (psf MFCC, five classes, speakers from the RAVDESS file names).
"$venv/bin/python" "$peers/flower_bench.py" features --wav-dir "$ravdess" --out "$work/ravdess.npz" \
  --classes neutral,happy,angry,sad,fear > "$work/features.json"
# Warm fedser's feature cache (a folder in the work dir, passed to the server and every client).
cache="$work/cache"
"$fedser" corpus -q --corpus ravdess --data "$ravdess" --extract --cache "$cache" > /dev/null

python3 - "$work" "$fedser" "$venv/bin/python" "$peers/flower_bench.py" "$ravdess" "$cache" \
  "${FLOWER_PORT:-9400}" <<'PY'
import ctypes, json, os, signal, socket, subprocess, sys, time

work, fedser, vpy, bench, ravdess, cache, port0 = sys.argv[1:8]
CLIENTS, ROUNDS, TEST = 10, 10, "ravdess_11,ravdess_12"
FLOWER_TIMEOUT, FEDSER_TIMEOUT = 1800, 900  # bounded waits (s) for each side's whole run

# Become a child subreaper: whatever our children start and leave behind (Flower's
# superlink/supernodes spawn ServerApp/ClientApp processes) is re-parented to us, so at the
# end every leftover process can be found and killed by its PID.
ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
started = []

def own_children():
    me, out = os.getpid(), []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                f = open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(f[1]) == me:
                out.append((int(d), f[0]))
    return out

def cleanup():
    for p in started:
        if p.poll() is None:
            p.terminate()
    for k in range(50):  # up to 10 s for everything (incl. orphans re-parented to us) to go
        left = []
        for pid, state in own_children():
            if state == "Z":
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
            else:
                left.append(pid)
        if not left:
            return
        for pid in left:
            try:
                os.kill(pid, signal.SIGTERM if k < 25 else signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.2)
    print("warning: processes still running:", own_children(), file=sys.stderr)

def status_kib(pid, key):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0

def pss_kib(pid):
    try:
        for line in open(f"/proc/{pid}/smaps_rollup"):
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0

def free_base(base):
    for b in range(base, base + 500, 20):
        ok = True
        for p in [b] + [b + 100 + i for i in range(CLIENTS)]:
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
                    break
        if ok:
            return b
    raise SystemExit("no free ports for the SuperLink and supernodes")

res = {}
try:
    # ------------------------------------------------------------------ Flower deployment
    fw = os.path.join(work, "flower")
    port = free_base(int(port0))
    t0 = time.monotonic()
    fl = subprocess.Popen([vpy, bench, "deploy", "--feats", os.path.join(work, "ravdess.npz"), "--model", "mlp",
                           "--partition", "speaker", "--clients", str(CLIENTS), "--rounds", str(ROUNDS),
                           "--local-epochs", "1", "--batch", "32", "--lr", "0.001", "--test-speakers", TEST,
                           "--workdir", fw, "--port", str(port), "--settle-s", "0",
                           "--timeout", str(FLOWER_TIMEOUT - 120), "--json", os.path.join(work, "flower.json")],
                          stdout=open(os.path.join(work, "flower.out"), "w"),
                          stderr=open(os.path.join(work, "flower.err"), "w"))
    started.append(fl)
    try:
        fl.wait(timeout=FLOWER_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise SystemExit(f"Flower did not finish in {FLOWER_TIMEOUT} s; logs in {fw}")
    t_exit = time.monotonic()
    cleanup()  # anything Flower left behind
    if fl.returncode != 0 or not os.path.exists(os.path.join(work, "flower.json")):
        raise SystemExit(f"flower_bench.py deploy failed (rc {fl.returncode}); see {work}/flower.err and {fw}")
    fj = json.load(open(os.path.join(work, "flower.json")))
    tl = json.load(open(os.path.join(fw, "server_timeline.json")))["timeline"]
    if fj["rc_flwr_run"] != 0 or len(tl) != ROUNDS + 1:
        raise SystemExit(f"the Flower run did not complete {ROUNDS} rounds: {fj.get('error_tail', '')}")
    # The ServerApp's timeline uses time.perf_counter(), CLOCK_MONOTONIC like ours.
    end = tl[-1]["t"] + tl[-1]["eval_s"]
    res["flower"] = {"wall": end - t0, "rounds": end - (tl[0]["t"] + tl[0]["eval_s"]),
                     "process_wall": t_exit - t0, "pss": fj["peak_tree_pss_mib"], "rss": fj["peak_tree_rss_mib"],
                     "acc": fj["final"]["accuracy"], "ua": fj["final"]["recall_macro"],
                     "sizes": fj["client_sizes"], "nproc": fj["peak_nproc"], "versions": fj["versions"],
                     "first_round": fj["first_round_wall_s"], "median_round": fj["median_round_wall_s_after_first"]}

    # ------------------------------------------------------------------ fedser deployment
    fsw = os.path.join(work, "fedser")
    os.makedirs(fsw)
    out = lambda name: open(os.path.join(fsw, name), "w")
    t0 = time.monotonic()
    subprocess.run([fedser, "tls-cert", "--out", os.path.join(fsw, "tls")], check=True, stdout=subprocess.DEVNULL)
    keys = [subprocess.run([fedser, "keygen", "--out", os.path.join(fsw, f"id{i}")], check=True,
                           capture_output=True, text=True).stdout.strip() for i in range(CLIENTS)]
    open(os.path.join(fsw, "enrolled.txt"), "w").write("\n".join(keys) + "\n")
    run_dir = os.path.join(fsw, "run")
    server = subprocess.Popen(
        [fedser, "-q", "server", "--out", run_dir, "--listen", "127.0.0.1:0",
         "--tls-cert", os.path.join(fsw, "tls/cert.pem"), "--tls-key", os.path.join(fsw, "tls/key.pem"),
         "--enrolled", os.path.join(fsw, "enrolled.txt"), "--client-wait", "120", "--round-deadline", "300",
         "--no-report", "--corpus", "ravdess", "--data", ravdess, "--test-speakers", TEST,
         "--arch", "dnn", "--hidden", "128", "--dropout", "0.2", "--rounds", str(ROUNDS), "--local-epochs", "1",
         "--batch-size", "32", "--lr", "0.001", "--optimizer", "adam", "--weight-decay", "0",
         "--no-class-weights", "--strategy", "fedavg", "--fraction", "1", "--min-clients", str(CLIENTS),
         "--val-fraction", "0", "--fraction-evaluate", "0", "--cache", cache],
        stdout=out("server.out"), stderr=out("server.err"))
    started.append(server)
    port = None
    for _ in range(600):  # 60 s
        text = open(os.path.join(fsw, "server.err")).read()
        if "listening on 127.0.0.1:" in text:
            port = text.split("listening on 127.0.0.1:")[1].split()[0]
            break
        if server.poll() is not None:
            break
        time.sleep(0.1)
    if not port:
        raise SystemExit("fedser server did not start:\n" + open(os.path.join(fsw, "server.err")).read())
    clients = []
    for i in range(CLIENTS):
        c = subprocess.Popen([fedser, "-q", "client", "--server", f"https://127.0.0.1:{port}",
                              "--ca", os.path.join(fsw, "tls/cert.pem"), "--identity", os.path.join(fsw, f"id{i}"),
                              "--corpus", "ravdess", "--data", ravdess, "--speakers", f"ravdess_{i + 1:02}",
                              "--cache", cache, "--max-wait", "60"],
                             stdout=out(f"client{i}.out"), stderr=out(f"client{i}.err"))
        started.append(c)
        clients.append(c)
    procs = [server] + clients
    metrics = os.path.join(run_dir, "metrics.jsonl")
    seen, peak_pss, peak_rss, hwm = [], 0, 0, {}
    deadline = time.monotonic() + FEDSER_TIMEOUT
    while server.poll() is None and time.monotonic() < deadline:
        live = [p.pid for p in procs if p.poll() is None]
        peak_pss = max(peak_pss, sum(pss_kib(q) for q in live))
        peak_rss = max(peak_rss, sum(status_kib(q, "VmRSS") for q in live))
        for q in live:
            hwm[q] = max(hwm.get(q, 0), status_kib(q, "VmHWM"))
        try:
            n = sum(1 for l in open(metrics) if l.endswith("\n"))
        except OSError:
            n = 0
        while len(seen) < n:
            seen.append(time.monotonic())  # when each round's line appeared (20 ms polling)
        time.sleep(0.02)
    if server.poll() is None:
        raise SystemExit(f"fedser server did not finish in {FEDSER_TIMEOUT} s; logs in {fsw}")
    t_exit = time.monotonic()
    failed = []
    for i, c in enumerate(clients):
        try:
            if c.wait(timeout=60) != 0:
                failed.append(i)
        except subprocess.TimeoutExpired:
            failed.append(i)
    lines = [json.loads(l) for l in open(metrics)]
    if server.returncode != 0 or len(lines) != ROUNDS or failed:
        raise SystemExit(f"fedser run incomplete: server rc {server.returncode}, {len(lines)} rounds, "
                         f"failed clients {failed}:\n" + open(os.path.join(fsw, "server.err")).read()[-3000:])
    while len(seen) < len(lines):
        seen.append(t_exit)
    last = lines[-1]["central"]
    res["fedser"] = {"wall": seen[-1] - t0, "rounds": seen[-1] - (seen[0] - lines[0]["seconds"]),
                     "process_wall": t_exit - t0, "pss": peak_pss / 1024, "rss": peak_rss / 1024,
                     "hwm_sum": sum(hwm.values()) / 1024, "server_hwm": hwm.get(server.pid, 0) / 1024,
                     "acc": last["accuracy"], "ua": last["ua"], "rounds_sum": sum(l["seconds"] for l in lines),
                     "sizes": [c["examples"] for c in lines[-1]["clients"]], "central_n": last["examples"],
                     "version": subprocess.run([fedser, "--version"], capture_output=True, text=True).stdout.strip()}
finally:
    cleanup()

F, S = res["flower"], res["fedser"]
print(f"\nRAVDESS dev, 10 speaker clients, actors 11+12 central test, MLP/DNN, FedAvg, {ROUNDS} rounds x 1 epoch,"
      f" batch 32, Adam 1e-3; one run each on 127.0.0.1 ({os.cpu_count()} cores)\n")
print("| | wall to last round (s) | rounds (s) | process tree exit (s) | peak memory, summed PSS (MiB) | summed RSS (MiB) | accuracy | UA |")
print("|---|---|---|---|---|---|---|---|")
print(f"| Flower {F['versions']['flwr']} + PyTorch {F['versions']['torch']}: superlink + {CLIENTS} supernodes "
      f"| {F['wall']:.1f} | {F['rounds']:.1f} | {F['process_wall']:.1f} | {F['pss']:,.0f} | {F['rss']:,.0f} "
      f"| {F['acc']:.3f} | {F['ua']:.3f} |")
print(f"| {S['version']}: server + {CLIENTS} clients (TLS) | {S['wall']:.2f} | {S['rounds']:.2f} "
      f"| {S['process_wall']:.2f} | {S['pss']:,.0f} | {S['rss']:,.0f} | {S['acc']:.3f} | {S['ua']:.3f} |")
print(f"\nratios (Flower / fedser): wall {F['wall'] / S['wall']:.0f}x, rounds {F['rounds'] / S['rounds']:.0f}x, "
      f"memory (PSS) {F['pss'] / S['pss']:.0f}x, (RSS) {F['rss'] / S['rss']:.0f}x")
print(f"Flower: first round {F['first_round']:.1f} s, then median {F['median_round']:.1f} s/round; "
      f"up to {F['nproc']} processes; client sizes {F['sizes']}")
print(f"fedser: rounds by the server's own clock {S['rounds_sum']:.2f} s; per-process peaks summed {S['hwm_sum']:.0f} MiB "
      f"(server {S['server_hwm']:.0f} MiB); client sizes {S['sizes']}; central test {S['central_n']} utterances")
print(f"(work dir {work})")
PY
