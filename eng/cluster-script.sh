# Sourced by eng/chaos.sh, eng/leak-check.sh, eng/reload-under-load.sh, eng/deploy-drill.sh and eng/reload-wrk.sh:
# builds what they run (Release) and gives the cluster a private runtime folder. start_cluster starts the sample
# under the supervisor, waits for its workers and sets $port; start_service does the same the way a service runs
# (own session, a chosen folder and command). On exit the supervisor and its workers (its children and every
# worker pid `list` showed, by pid, nothing broader) are killed and the folder removed.
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
worker_pids=$XDG_RUNTIME_DIR/worker-pids   # every worker pid cluster_rows saw: workers outlive a supervisor that died

stop_cluster() {
    for p in $(pgrep -P "$supervisor" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
    # Only a process that still is one of our workers (its channel is in our runtime folder): pids get reused.
    for p in $(sort -u "$worker_pids" 2>/dev/null); do
        { tr '\0' '\n' <"/proc/$p/environ"; } 2>/dev/null | grep -q "^KESTREL_CLUSTER_CHANNEL=$XDG_RUNTIME_DIR/" && kill -9 "$p" 2>/dev/null || true
    done
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

# ---- services under wrk (eng/deploy-drill.sh, eng/reload-wrk.sh) ----
kc_dll=$PWD/src/KestrelCluster.Supervisor/bin/Release/net10.0/kestrel-cluster.dll

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

need_wrk() {
    command -v wrk >/dev/null && return 0
    echo "installing wrk (apt)" >&2
    local sudo_cmd=(); [[ $(id -u) == 0 ]] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq wrk >/dev/null
}

# `list --json` as lines: "supervisor <pid> <generation>", then "<id> <pid> <generation> <state>" per worker;
# nothing when the cluster does not answer. Remembers the worker pids for stop_cluster.
cluster_rows() { # name
    local rows
    rows=$(timeout 15 $kc list -n "$1" --json 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)
s = d.get("supervisor") or {}
print("supervisor", s.get("pid", 0), s.get("generation", 0))
for w in d["workers"]:
    print(w["id"], w["pid"], w["generation"], w["state"])' 2>/dev/null) || true
    [[ -n $rows ]] || return 0
    awk '$1 != "supervisor" {print $2}' <<<"$rows" >>"$worker_pids"
    echo "$rows"
}

# A zombie still answers kill -0; /proc says whether it runs.
supervisor_alive() { [[ -r /proc/$supervisor/stat ]] && [[ $(awk '{print $3}' "/proc/$supervisor/stat" 2>/dev/null) != Z ]]; }

# Waits (bounded) until `list` shows exactly N workers, all ready (and none with the given pid, e.g. one just
# killed that the supervisor may not have noticed yet); returns 1 after the deadline or when the supervisor is gone.
wait_ready() { # name workers seconds [pid]
    local deadline=$((SECONDS + $3)) gone=${4:-} rows workers
    while ((SECONDS < deadline)); do
        rows=$(cluster_rows "$1")
        workers=$(grep -v '^supervisor' <<<"$rows" || true)
        if [[ -n $workers ]] && [[ $(wc -l <<<"$workers") == "$2" ]] && ! grep -vq ' ready$' <<<"$workers" \
            && { [[ -z $gone ]] || ! awk '{print $2}' <<<"$workers" | grep -qx "$gone"; }; then
            return 0
        fi
        supervisor_alive || return 1
        sleep 0.3
    done
    return 1
}

# The supervisor in its own session (setsid), as systemd starts a service, so it does not share wrk's scheduling
# group; started from dir (cd, so $PWD is the logical path even through a symlink). Sets $supervisor and $port.
start_service() { # dir name workers ready-seconds [run options] -- command [args]
    local dir=$1 name=$2 workers=$3 ready=$4
    shift 4
    port=$(free_port)
    (cd "$dir" && export PWD && exec setsid dotnet "$kc_dll" run -n "$name" -w "$workers" --urls "http://127.0.0.1:$port" "$@") </dev/null >"$log" 2>&1 &
    supervisor=$!
    trap stop_cluster EXIT
    if ! wait_ready "$name" "$workers" "$ready"; then
        echo "the cluster did not start within $ready s:" >&2; tail -20 "$log" >&2; exit 1
    fi
    # Without job control the subshell is no group leader, so setsid made the supervisor itself a session leader.
    [[ $(ps -o sid= -p "$supervisor" | tr -d ' ') == "$supervisor" ]] || { echo "the supervisor is not in its own session" >&2; exit 1; }
}

# wrk in the background for at most the given seconds: keepalive or close (`Connection: close`, a new connection
# per request). Sets $wrk_pid; the output goes to the file. stop_wrk ends it earlier (wrk prints its summary on
# SIGINT).
start_wrk() { # out-file seconds keepalive|close [path]
    local headers=()
    [[ $3 == close ]] && headers=(-H "Connection: close")
    wrk -t"${THREADS:-2}" -c"${CONNECTIONS:-64}" -d"${2}s" --timeout 5s "${headers[@]}" "http://127.0.0.1:$port${4:-/}" >"$1" 2>&1 &
    wrk_pid=$!
}

stop_wrk() {
    kill -INT "$wrk_pid" 2>/dev/null || true
    wait "$wrk_pid" || true
}

# wrk's output as "<requests> <connect> <read> <write> <timeout> <non-2xx/3xx>" (wrk prints the last two lines
# only when they are not zero; no summary at all counts as one connect error, so it cannot pass).
wrk_counts() { # out-file
    awk '/ requests in / {r = $1; seen = 1}
         /Socket errors:/ {gsub(",", ""); c = $4; rd = $6; w = $8; t = $10}
         /Non-2xx or 3xx responses:/ {n = $5}
         END {if (!seen) {r = 0; c = 1}; printf "%d %d %d %d %d %d\n", r, c, rd, w, t, n}' "$1"
}
