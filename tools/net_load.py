#!/usr/bin/env python3
"""Load measurement of the network deployment: one `fedser server` and N `fedser client`
processes on loopback (TLS, enrolled keys), the DNN on the synthetic corpus (one speaker per
client, 10 utterances each), every client every round; against `fedser simulate` running the
same job in one process. Prints rounds per minute, seconds per round, server CPU seconds and
peak memory, all clients' memory together, and bytes per round.

With --one-process the N clients are `fedser load`: one process holding N TLS connections
that speak the real protocol, each returning the global model moved by a small random step
instead of training (so the figures are the server's and the transport's).

Usage: tools/net_load.py N [ROUNDS] [--one-process]   (FEDSER_BIN: the binary, default
target/release/fedser)
"""
import json, os, subprocess, sys, tempfile, time

here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
fedser = os.environ.get("FEDSER_BIN") or os.path.join(here, "target/release/fedser")
if not os.environ.get("FEDSER_BIN"):
    subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "fedser"], cwd=here, check=True)
one_process = "--one-process" in sys.argv
args = [a for a in sys.argv[1:] if a != "--one-process"]
n = int(args[0]) if len(args) > 0 else 20
rounds = int(args[1]) if len(args) > 1 else 5
tmp = tempfile.mkdtemp(prefix="fedser-load-")
env = dict(os.environ, XDG_CACHE_HOME=os.path.join(tmp, "cache"))
corpus = ["--synthetic-speakers", str(n), "--synthetic-per-emotion", "2", "--seed", "1"]
job = ["--test-fraction", "0", "--arch", "dnn", "--rounds", str(rounds), "--local-epochs", "1"]

def rss_kib(pid, key="VmHWM"):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0

def cpu_seconds(pid):
    try:
        f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0

# The in-process simulation of the same job.
t0 = time.time()
sim = subprocess.Popen([fedser, "-q", "simulate", "--out", os.path.join(tmp, "sim"), "--no-report",
                        "--workers", "2", *corpus, *job], env=env, stdout=subprocess.DEVNULL)
sim_peak = 0
while sim.poll() is None:
    sim_peak = max(sim_peak, rss_kib(sim.pid))
    time.sleep(0.05)
sim_wall = time.time() - t0
sim_rounds = [json.loads(l) for l in open(os.path.join(tmp, "sim", "metrics.jsonl"))]

subprocess.run([fedser, "tls-cert", "--out", os.path.join(tmp, "tls")], check=True, stdout=subprocess.DEVNULL)
if one_process:
    subprocess.run([fedser, "-q", "load", "--clients", str(n), "--write-enrolled",
                    os.path.join(tmp, "enrolled.txt")], check=True)
else:
    keys = []
    for i in range(n):
        out = subprocess.run([fedser, "keygen", "--out", os.path.join(tmp, f"id{i}")], check=True,
                             capture_output=True, text=True)
        keys.append(out.stdout.strip())
    open(os.path.join(tmp, "enrolled.txt"), "w").write("\n".join(keys) + "\n")
err = open(os.path.join(tmp, "server.err"), "w")
server = subprocess.Popen([fedser, "-q", "server", "--out", os.path.join(tmp, "srv"), "--listen", "127.0.0.1:0",
                           "--tls-cert", os.path.join(tmp, "tls/cert.pem"), "--tls-key", os.path.join(tmp, "tls/key.pem"),
                           "--enrolled", os.path.join(tmp, "enrolled.txt"), "--client-wait", "600", "--no-report",
                           *corpus, *job], env=env, stdout=subprocess.DEVNULL, stderr=err)
port = None
for _ in range(600):
    text = open(os.path.join(tmp, "server.err")).read()
    if "listening on 127.0.0.1:" in text:
        port = text.split("listening on 127.0.0.1:")[1].split()[0]
        break
    time.sleep(0.1)
assert port, "the server did not start"
started = time.time()
if one_process:
    clients = [subprocess.Popen([fedser, "-q", "load", "--clients", str(n), "--server", f"https://127.0.0.1:{port}",
                                 "--ca", os.path.join(tmp, "tls/cert.pem"), "--json"],
                                env=env, stdout=open(os.path.join(tmp, "load.json"), "w"), stderr=subprocess.DEVNULL)]
else:
    clients = [subprocess.Popen([fedser, "-q", "client", "--server", f"https://127.0.0.1:{port}",
                                 "--ca", os.path.join(tmp, "tls/cert.pem"), "--identity", os.path.join(tmp, f"id{i}"),
                                 "--corpus", "synthetic", "--speakers", f"synth_{i:03}", *corpus],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for i in range(n)]
server_peak = clients_peak = 0
server_cpu = clients_cpu = 0.0
while server.poll() is None:
    server_peak = max(server_peak, rss_kib(server.pid))
    server_cpu = max(server_cpu, cpu_seconds(server.pid))
    clients_peak = max(clients_peak, sum(rss_kib(c.pid, "VmRSS") for c in clients))
    clients_cpu = max(clients_cpu, sum(cpu_seconds(c.pid) for c in clients))
    time.sleep(0.1)
wall = time.time() - started
failed = sum(c.wait(timeout=60) != 0 for c in clients)
net_rounds = [json.loads(l) for l in open(os.path.join(tmp, "srv", "metrics.jsonl"))]
per_round = sorted(r["seconds"] for r in net_rounds)[len(net_rounds) // 2]
sim_per_round = sorted(r["seconds"] for r in sim_rounds)[len(sim_rounds) // 2]
bytes_round = net_rounds[-1]["bytes_up"] + net_rounds[-1]["bytes_down"]
print(f"| job | clients | wall (s) | median s/round | rounds/min | server CPU (s) | server peak (MiB) | clients' memory (MiB) | bytes/round |")
print("|---|---|---|---|---|---|---|---|---|")
what = f"fedser server + `fedser load` ({n} connections)" if one_process else f"fedser server + {n} client processes"
print(f"| {what} | {n} | {wall:.1f} | {per_round:.2f} | {60 / per_round:.0f} | {server_cpu:.1f} | {server_peak / 1024:.0f} | {clients_peak / 1024:.0f} | {bytes_round:,} |")
print(f"| fedser simulate, same job | {n} | {sim_wall:.1f} | {sim_per_round:.2f} | {60 / sim_per_round:.0f} | - | {sim_peak / 1024:.0f} | (in process) | {sim_rounds[-1]['bytes_up'] + sim_rounds[-1]['bytes_down']:,} |")
if one_process:
    print("load process:", open(os.path.join(tmp, "load.json")).read().strip(), f"CPU {clients_cpu:.1f} s")
print(f"(wall: from the first client's start to the server's exit; rounds: {rounds}; failed clients: {failed}; runs in {tmp})")
