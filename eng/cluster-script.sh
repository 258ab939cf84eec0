# Sourced by eng/chaos.sh, eng/leak-check.sh and eng/reload-under-load.sh: builds what they run (Release) and
# gives the cluster a private runtime folder. start_cluster starts the sample under the supervisor, waits for
# its workers and sets $port; on exit the supervisor and its workers (its children, by pid, nothing broader)
# are killed and the folder removed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
dotnet build src/KestrelCluster.Supervisor -c Release -nologo -v q >/dev/null
dotnet build samples/HelloCluster -c Release -nologo -v q >/dev/null
dotnet build eng/load -c Release -nologo -v q >/dev/null
export XDG_RUNTIME_DIR=$(mktemp -d /tmp/kc-eng-XXXXXX)
log=$XDG_RUNTIME_DIR/cluster.log
kc="dotnet src/KestrelCluster.Supervisor/bin/Release/net10.0/kestrel-cluster.dll"
load_tool="dotnet eng/load/bin/Release/net10.0/KestrelCluster.Load.dll"
keep_log=""   # a path: the supervisor's log is copied there on exit

stop_cluster() {
    for p in $(pgrep -P "$supervisor" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
    kill -9 "$supervisor" 2>/dev/null || true
    if [[ -n $keep_log ]]; then cp "$log" "$keep_log" 2>/dev/null || true; fi
    rm -rf "$XDG_RUNTIME_DIR"
}

start_cluster() { # name workers ready-seconds [more `run` options]
    local name=$1 workers=$2 ready=$3
    shift 3
    $kc run -n "$name" -w "$workers" --urls http://127.0.0.1:0 "$@" -- dotnet samples/HelloCluster/bin/Release/net10.0/HelloCluster.dll >"$log" 2>&1 &
    supervisor=$!
    trap stop_cluster EXIT
    for _ in $(seq 1 $((ready * 10))); do grep -qs "All $workers workers ready" "$log" && break; sleep 0.1; done
    port=$(grep -o 'Listening on 127.0.0.1:[0-9]*' "$log" | head -1 | cut -d: -f2)
}
