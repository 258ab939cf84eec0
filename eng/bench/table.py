"""Prints eng/bench/run.sh's results as a Markdown table: medians, ratio to one Kestrel process, share."""
import statistics
import sys
from collections import defaultdict

path, targets, runs, duration, threads, connections, workers = sys.argv[1:8]
targets = targets.split()
labels = {
    "kestrel": "Kestrel, 1 process",
    "round-robin": f"kestrel-cluster round-robin ({workers} workers)",
    "round-robin-untuned": f"kestrel-cluster round-robin ({workers}), runtime defaults off",
    "least-connections": f"kestrel-cluster least-connections ({workers})",
    "sticky": f"kestrel-cluster sticky ({workers})",
    "shared": f"kestrel-cluster shared ({workers})",
    "reuseport-pair": "2 Kestrel processes on one port (SO_REUSEPORT), no supervisor",
    "nginx": f"nginx → {workers} Kestrel processes",
    "node-rr": f"Node cluster, round-robin ({workers})",
    "node-none": f"Node cluster, none ({workers})",
}
rps = defaultdict(list)
p99 = defaultdict(list)
errors = defaultdict(int)
share = defaultdict(dict)
for line in open(path):
    f = line.rstrip("\n").split("\t")
    if f[2].startswith("SHARE"):
        _, pid, n = f[2].split()
        share[(f[0], f[1])][pid] = int(n)
        continue
    r, lat, sock, status, _ = f[2].split()
    rps[(f[0], f[1])].append(float(r))
    p99[(f[0], f[1])].append(int(lat))
    errors[(f[0], f[1])] += max(0, int(sock)) + max(0, int(status))

print(f"\nwrk -t{threads} -c{connections} -d{duration}s, median of {runs} runs; share = max/min answers per process\n")
print("| target | keep-alive req/s | × 1 Kestrel | p99 ms | share | `Connection: close` req/s | × 1 Kestrel | p99 ms | share |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
base = {w: statistics.median(rps[("kestrel", w)]) if rps[("kestrel", w)] else None for w in ("keepalive", "close")}
for t in targets:
    cells = [labels.get(t, t)]
    for w in ("keepalive", "close"):
        values = rps[(t, w)]
        if not values:
            cells += ["-", "-", "-", "-"]
            continue
        m = statistics.median(values)
        cells.append(f"{m:,.0f}" + (f" ({errors[(t, w)]} errors)" if errors[(t, w)] else ""))
        cells.append(f"{m / base[w]:.2f}" if base[w] else "-")
        cells.append(f"{statistics.median(p99[(t, w)]) / 1000:.1f}")
        counts = share.get((t, w), {})
        if t == "kestrel" or not counts:
            cells.append("-")
        elif len(counts) < int(workers):
            cells.append(f"{len(counts)} of {workers} served")
        else:
            cells.append(f"{max(counts.values()) / max(1, min(counts.values())):.2f}")
    print("| " + " | ".join(cells) + " |")
print("\nraw runs (req/s):")
for t in targets:
    print(f"  {t:18} keep-alive {' '.join(f'{v:,.0f}' for v in rps[(t, 'keepalive')])}   close {' '.join(f'{v:,.0f}' for v in rps[(t, 'close')])}")
