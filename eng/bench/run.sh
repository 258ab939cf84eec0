#!/usr/bin/env bash
# Side-by-side HTTP benchmark on 127.0.0.1: one Kestrel process, kestrel-cluster in each --balance mode,
# nginx as a keep-alive reverse proxy in front of N Kestrel processes, and Node's cluster module
# (round-robin and none), each under wrk with keep-alive and with `Connection: close`.
# Prints a table (median of RUNS runs), then the supervisor's memory and fd count after HANDOFFS
# handed-off connections. Installs wrk and nginx (apt) when missing; uses the machine's node.
#
#   eng/bench/run.sh                      # full run: 10 s × 3 runs per target and workload
#   DURATION=3 RUNS=1 HANDOFFS=0 SHARE_DURATION=3 eng/bench/run.sh     # quick look
#   TARGETS="kestrel round-robin shared" eng/bench/run.sh
#
# Every server listens on 127.0.0.1 on a free port; every wrk run is bounded by DURATION; every process
# started here is killed by pid on exit. Not part of CI.
set -euo pipefail

DURATION=${DURATION:-10}          # seconds per wrk run
RUNS=${RUNS:-3}                   # runs per target and workload; the table shows the median
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-64}
WORKERS=${WORKERS:-2}
SHARE_DURATION=${SHARE_DURATION:-10}
HANDOFFS=${HANDOFFS:-1000000}     # connections handed off before the supervisor's memory is read (0: skip)
HANDOFF_LIMIT=${HANDOFF_LIMIT:-180}  # ... but never more seconds than this
SUPERVISOR=${SUPERVISOR:-aot}     # aot: NativeAOT-published supervisor; jit: framework-dependent
CPU_TARGETS=${CPU_TARGETS-"kestrel round-robin shared nginx"}  # measured for CPU per request ("" skips)
TARGETS=${TARGETS:-"kestrel round-robin round-robin-untuned least-connections sticky shared nginx node-rr node-none"}

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bench="$root/eng/bench"
work="$(mktemp -d /tmp/kestrel-cluster-bench.XXXXXX)"
results="$work/results.tsv"
: > "$results"

export DOTNET_NOLOGO=1 DOTNET_CLI_TELEMETRY_OPTOUT=1 MSBUILDTERMINALLOGGER=off MSBUILDDISABLENODEREUSE=1 \
    DOTNET_CLI_USE_MSBUILD_SERVER=0 UseSharedCompilation=false DOTNET_GENERATE_ASPNET_CERTIFICATE=false

say() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# ---- processes: every pid started here is remembered and killed on exit ----
started=()
remember() { started+=("$1"); }
kill_pid() {
    local pid=$1
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
    local pid
    for ((i = ${#started[@]} - 1; i >= 0; i--)); do kill_pid "${started[i]}"; done
    # Children (cluster workers, nginx and node workers) by the pids recorded for them.
    if [[ -f $work/children ]]; then
        while read -r pid; do kill -KILL "$pid" 2>/dev/null || true; done < "$work/children"
    fi
    say "logs and raw results: $work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- tools ----
need=()
command -v wrk > /dev/null || need+=(wrk)
command -v nginx > /dev/null || [[ -x /usr/sbin/nginx ]] || need+=(nginx)
if ((${#need[@]})); then
    say "installing ${need[*]}"
    sudo_cmd=(); [[ $(id -u) == 0 ]] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${need[@]}" > /dev/null
fi
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
command -v node > /dev/null || { echo "kestrel-cluster bench: error: node is not installed" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_http() { # url seconds
    local deadline=$((SECONDS + $2))
    until curl -fs -o /dev/null --max-time 2 "$1"; do
        ((SECONDS < deadline)) || { echo "kestrel-cluster bench: error: $1 did not answer within $2 s" >&2; return 1; }
        sleep 0.3
    done
}

# ---- build ----
say "building the sample and the supervisor (Release)"
dotnet publish "$root/samples/HelloCluster" -c Release -o "$work/app" < /dev/null > "$work/build.log" 2>&1
# The supervisor as production runs it: NativeAOT (README "Running it in production"); SUPERVISOR=jit for
# the framework-dependent build that `dotnet run` and the dotnet tool use.
case $SUPERVISOR in
    aot) supervisor_build=(-r "linux-$(dpkg --print-architecture | sed 's/amd64/x64/')" -p:PublishAot=true) ;;
    jit) supervisor_build=() ;;
    *) echo "kestrel-cluster bench: error: SUPERVISOR must be aot or jit, not '$SUPERVISOR'" >&2; exit 2 ;;
esac
dotnet publish "$root/src/KestrelCluster.Supervisor" -c Release "${supervisor_build[@]}" -o "$work/supervisor" < /dev/null >> "$work/build.log" 2>&1 \
    || { echo "kestrel-cluster bench: error: the supervisor did not build; see $work/build.log" >&2; exit 1; }
app="$work/app/HelloCluster.dll"
supervisor="$work/supervisor/kestrel-cluster"

# The runtime settings kestrel-cluster gives its workers by default (README, "Worker environment"): the
# Kestrels behind nginx get the same, so the comparison is about distribution, not GC settings.
heaps=$(( $(nproc) / WORKERS )); ((heaps > 0)) || heaps=1
worker_env=(DOTNET_GCNoAffinitize=1 "DOTNET_GCHeapCount=$(printf %X "$heaps")" DOTNET_ThreadPool_UnfairSemaphoreSpinLimit=0)
if [[ -n ${WORKER_ENV:-} ]]; then read -r -a worker_env <<< "$WORKER_ENV"; fi

# ---- targets: start_<name> sets port[name], procs[name] (pids whose share counts) ----
declare -A port pids
start_kestrel() { # name [env...]
    local name=$1; shift
    local p; p=$(free_port)
    (cd "$work/app" && exec env "$@" dotnet "$app" --urls "http://127.0.0.1:$p") > "$work/$name.log" 2>&1 &
    remember $!
    port[$name]=$p
    pids[$name]=$!
    wait_http "http://127.0.0.1:$p/" 60
}

start_cluster() { # name mode [env...]
    local name=$1 mode=$2 p; p=$(free_port)
    shift 2
    (cd "$work/app" && exec env "$@" "$supervisor" run -n "bench-$name-$$" -w "$WORKERS" --kill-timeout 5 --balance "$mode" \
        --urls "http://127.0.0.1:$p" -- dotnet "$app") > "$work/$name.log" 2>&1 &
    remember $!
    port[$name]=$p
    pids[$name]=$!
    local deadline=$((SECONDS + 90))
    until grep -q "All $WORKERS workers ready" "$work/$name.log"; do
        ((SECONDS < deadline)) || { echo "kestrel-cluster bench: error: $name did not start; see $work/$name.log" >&2; exit 1; }
        kill -0 "${pids[$name]}" 2>/dev/null || { echo "kestrel-cluster bench: error: $name exited; see $work/$name.log" >&2; exit 1; }
        sleep 0.3
    done
    cluster_json "$name" | python3 -c 'import json,sys; [print(w["pid"]) for w in json.load(sys.stdin)["workers"]]' >> "$work/children"
}

cluster_json() { "$supervisor" list -n "bench-${1}-$$" --json; }

start_nginx() {
    local a b p; start_kestrel nginx-kestrel-a "${worker_env[@]}"; start_kestrel nginx-kestrel-b "${worker_env[@]}"
    a=${port[nginx-kestrel-a]} b=${port[nginx-kestrel-b]} p=$(free_port)
    mkdir -p "$work/nginx"
    cat > "$work/nginx/nginx.conf" <<CONF
worker_processes $WORKERS;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path $work/nginx/body;
    proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi;
    uwsgi_temp_path $work/nginx/uwsgi;
    scgi_temp_path $work/nginx/scgi;
    upstream kestrels {
        server 127.0.0.1:$a;
        server 127.0.0.1:$b;
        keepalive $CONNECTIONS;
    }
    server {
        listen 127.0.0.1:$p;
        location / {
            proxy_pass http://kestrels;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
CONF
    "$nginx_bin" -p "$work/nginx" -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log" > "$work/nginx.log" 2>&1 &
    remember $!
    port[nginx]=$p
    pids[nginx]=$!
    wait_http "http://127.0.0.1:$p/" 30
    pgrep -P "$!" >> "$work/children" || true
}

start_node() { # name policy
    local name=$1 p; p=$(free_port)
    PORT=$p WORKERS=$WORKERS POLICY=$2 node "$bench/node-cluster.js" > "$work/$name.log" 2>&1 &
    remember $!
    port[$name]=$p
    wait_http "http://127.0.0.1:$p/" 30
    pgrep -P "$!" >> "$work/children" || true
}

start_target() {
    case $1 in
        kestrel) start_kestrel kestrel ;;
        round-robin | least-connections | sticky | shared) start_cluster "$1" "$1" ;;
        # The cluster without the runtime settings it gives its workers: what those settings are worth.
        round-robin-untuned) start_cluster "$1" round-robin KESTREL_CLUSTER_RUNTIME_DEFAULTS=0 ;;
        nginx) start_nginx ;;
        node-rr) start_node node-rr rr ;;
        node-none) start_node node-none none ;;
        *) echo "kestrel-cluster bench: error: unknown target '$1'" >&2; exit 2 ;;
    esac
}

wrk_run() { # target workload seconds script
    local headers=()
    [[ $2 == close ]] && headers=(-H "Connection: close")
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"${3}s" --timeout 5s "${headers[@]}" -s "$bench/$4" "http://127.0.0.1:${port[$1]}/" 2>&1
}

# ---- run ----
for t in $TARGETS; do
    say "starting $t"
    start_target "$t"
done

say "warming up"
for t in $TARGETS; do
    for w in keepalive close; do wrk_run "$t" "$w" 2 report.lua > /dev/null; done
done

supervisor_pid=${pids[round-robin]:-}
if [[ -n $supervisor_pid ]]; then
    idle_fds=$(ls "/proc/$supervisor_pid/fd" | wc -l)
    idle_rss=$(awk '/VmRSS/ {print $2}' "/proc/$supervisor_pid/status")
fi

# Interleaved (run 1 of every target, then run 2, ...) so a noisy minute on a shared machine hits all of them.
for r in $(seq "$RUNS"); do
    for w in keepalive close; do
        for t in $TARGETS; do
            line=$(wrk_run "$t" "$w" "$DURATION" report.lua | grep '^RESULT' || echo "RESULT 0 0 -1 -1 0")
            say "run $r $w $t: $line"
            printf '%s\t%s\t%s\n' "$t" "$w" "${line#RESULT }" >> "$results"
        done
    done
done

for w in keepalive close; do
    for t in $TARGETS; do
        [[ $t == kestrel ]] && continue
        wrk_run "$t" "$w" "$SHARE_DURATION" share.lua | grep '^SHARE' | sed "s/^SHARE/$t\t$w\tSHARE/" >> "$results" || true
    done
done

# Where the CPU goes: server CPU time per request (utime + stime from /proc/<pid>/stat of every process of
# the target, its children included), from one more DURATION run per target and workload.
cpu_ticks() { # pid... → total clock ticks
    local total=0 pid t
    for pid in "$@"; do
        t=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)
        total=$((total + t))
    done
    echo "$total"
}
target_pids() { # target → its process and its children (the nginx target adds its two Kestrels)
    local root=${pids[$1]:-}
    [[ -n $root ]] || return 0
    echo "$root"; pgrep -P "$root" || true
    if [[ $1 == nginx ]]; then target_pids nginx-kestrel-a; target_pids nginx-kestrel-b; fi
}
cpu_lines=()
hz=$(getconf CLK_TCK)
for w in keepalive close; do
    for t in $CPU_TARGETS; do
        [[ " $TARGETS " == *" $t "* ]] || continue
        mapfile -t procs < <(target_pids "$t")
        root_pid=${pids[$t]}
        before_root=$(cpu_ticks "$root_pid"); before_all=$(cpu_ticks "${procs[@]}")
        line=$(wrk_run "$t" "$w" "$DURATION" report.lua | grep '^RESULT' || echo "RESULT 0 0 -1 -1 0")
        after_root=$(cpu_ticks "$root_pid"); after_all=$(cpu_ticks "${procs[@]}")
        read -r _ rps _ _ _ requests <<< "$line"
        ((requests > 0)) || continue
        cpu_lines+=("$(python3 - "$t" "$w" "$rps" "$requests" $((after_root - before_root)) $((after_all - before_all)) "$hz" <<'PY'
import sys
target, workload, rps, requests, first, everything, hz = sys.argv[1:]
us = lambda ticks: int(ticks) * 1e6 / int(hz) / int(requests)
print(f"  {target:<18} {workload:<9} {float(rps):>9,.0f} req/s   server CPU per request {us(everything):6.1f} µs "
      f"(first process {us(first):5.1f} µs, the rest {us(int(everything) - int(first)):5.1f} µs)")
PY
)")
    done
done

memory_line=""
if [[ -n $supervisor_pid && $HANDOFFS -gt 0 ]]; then
    total() { cluster_json round-robin | python3 -c 'import json,sys; print(sum(w["totalConnections"] for w in json.load(sys.stdin)["workers"]))'; }
    say "handing off connections through round-robin until $HANDOFFS (at most $HANDOFF_LIMIT s)"
    deadline=$((SECONDS + HANDOFF_LIMIT))
    while (( $(total) < HANDOFFS && SECONDS < deadline )); do
        wrk_run round-robin close 10 report.lua > /dev/null
    done
    handed=$(total)
    # Idle again: every connection closed and acknowledged.
    sleep 3
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$supervisor_pid/status")
    fds=$(ls "/proc/$supervisor_pid/fd" | wc -l)
    memory_line=$(printf 'supervisor (round-robin): %s connections handed off; VmRSS %d MB (idle before load: %d MB); fds %s (idle before load: %s)' \
        "$handed" $((rss / 1024)) $((idle_rss / 1024)) "$fds" "$idle_fds")
fi

python3 "$bench/table.py" "$results" "$TARGETS" "$RUNS" "$DURATION" "$THREADS" "$CONNECTIONS" "$WORKERS"
if ((${#cpu_lines[@]})); then
    echo
    echo "CPU per request (first process: Kestrel, the supervisor or nginx's master; the rest: workers, nginx's workers and its Kestrels):"
    printf '%s\n' "${cpu_lines[@]}"
fi
[[ -n $memory_line ]] && echo && echo "$memory_line"
exit 0
