#!/usr/bin/env bash
# Chaos under load: serves the sample with W workers (default 2), puts bounded loopback load on it (16 keep-alive
# and 16 new-connection clients) for S seconds (default 60) and meanwhile SIGKILLs a random ready worker every
# 2 s (never the last ready one). Prints requests sent/answered/failed, the failures in flight on a killed worker,
# and the unacknowledged connections the supervisor handed to other workers; exits non-zero on any other failure.
# The supervisor's log is kept in /tmp/kestrel-cluster-chaos.log.
#   eng/chaos.sh [seconds=60] [workers=2]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
workers=${2:-2}
dotnet build src/KestrelCluster.Supervisor -c Release -nologo -v q >/dev/null
dotnet build samples/HelloCluster -c Release -nologo -v q >/dev/null
dotnet build eng/load -c Release -nologo -v q >/dev/null
export XDG_RUNTIME_DIR=$(mktemp -d /tmp/kc-eng-XXXXXX)
log=$XDG_RUNTIME_DIR/cluster.log
kc="dotnet src/KestrelCluster.Supervisor/bin/Release/net10.0/kestrel-cluster.dll"
$kc run -n chaos-check -w "$workers" --urls http://127.0.0.1:0 -- dotnet samples/HelloCluster/bin/Release/net10.0/HelloCluster.dll >"$log" 2>&1 &
supervisor=$!
# Workers are the supervisor's children: they go with it (by pid, nothing broader).
trap 'for p in $(pgrep -P $supervisor 2>/dev/null); do kill -9 $p 2>/dev/null || true; done; kill -9 $supervisor 2>/dev/null || true; cp "$log" /tmp/kestrel-cluster-chaos.log 2>/dev/null || true; rm -rf "$XDG_RUNTIME_DIR"' EXIT
for _ in $(seq 1 600); do grep -qs "All $workers workers ready" "$log" && break; sleep 0.1; done
port=$(grep -o 'Listening on 127.0.0.1:[0-9]*' "$log" | head -1 | cut -d: -f2)
status=0
dotnet eng/load/bin/Release/net10.0/KestrelCluster.Load.dll chaos "http://127.0.0.1:$port/" "$log" "$seconds" 2 16 16 || status=$?
left=$(grep -o 'left [0-9]* unacknowledged' "$log" | awk '{s+=$2} END {print s+0}')
echo "unacknowledged connections the supervisor handed to other workers: $left ($(grep -c 'unacknowledged' "$log" || true) workers killed holding some)"
echo "worker crashes logged: $(grep -c 'exited unexpectedly' "$log" || true); supervisor still up: $(kill -0 $supervisor 2>/dev/null && echo yes || echo no)"
$kc stop -n chaos-check >/dev/null
exit $status
