#!/usr/bin/env bash
# Side-by-side HTTP benchmark on 127.0.0.1: one Kestrel process, kestrel-cluster in each --balance mode,
# nginx as a keep-alive reverse proxy in front of N Kestrel processes, and Node's cluster module
# (round-robin and none), and two plain Kestrels sharing one port with SO_REUSEPORT, each under wrk with
# keep-alive and with `Connection: close`. ARRANGEMENT says how the servers run: `service` (default) starts
# each one in its own session with setsid, so it has its own scheduling autogroup as a systemd unit has its
# own cgroup, apart from wrk; `shell` starts them as plain background jobs of this script, sharing wrk's
# autogroup; `both` starts both sets and interleaves them round by round.
# Prints a table (median of RUNS runs), then the supervisor's memory and fd count after HANDOFFS
# handed-off connections. Installs wrk and nginx (apt) when missing; uses the machine's node.
#
#   eng/bench/run.sh                      # full run: 10 s × 3 runs per target and workload
#   DURATION=3 RUNS=1 HANDOFFS=0 SHARE_DURATION=3 eng/bench/run.sh     # quick look
#   TARGETS="kestrel round-robin shared" eng/bench/run.sh
#   ARRANGEMENT=both TARGETS="kestrel round-robin reuseport-pair" DURATION=6 RUNS=3 HANDOFFS=0 SHARE_DURATION=3 \
#     CPU_TARGETS="kestrel round-robin" eng/bench/run.sh
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
TARGETS=${TARGETS:-"kestrel round-robin round-robin-untuned least-connections sticky shared reuseport-pair nginx node-rr node-none"}
ARRANGEMENT=${ARRANGEMENT:-service} # service | shell | both
case $ARRANGEMENT in
    service | shell) arrangements=("$ARRANGEMENT") ;;
    both) arrangements=(service shell) ;;
    *) echo "kestrel-cluster bench: error: ARRANGEMENT must be service, shell or both, not '$ARRANGEMENT'" >&2; exit 2 ;;
esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bench="$root/eng/bench"
work="$(mktemp -d /tmp/kestrel-cluster-bench.XXXXXX)"

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
# nginx and node only when a target needs them.
if [[ " $TARGETS " == *" nginx "* ]]; then command -v nginx > /dev/null || [[ -x /usr/sbin/nginx ]] || need+=(nginx); fi
if ((${#need[@]})); then
    say "installing ${need[*]}"
    sudo_cmd=(); [[ $(id -u) == 0 ]] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${need[@]}" > /dev/null
fi
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
if [[ " $TARGETS " == *" node-"* ]]; then
    command -v node > /dev/null || { echo "kestrel-cluster bench: error: node is not installed" >&2; exit 1; }
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_http() { # url seconds
    local deadline=$((SECONDS + $2))
    until curl -fs -o /dev/null --max-time 2 "$1"; do
        ((SECONDS < deadline)) || { echo "kestrel-cluster bench: error: $1 did not answer within $2 s" >&2; return 1; }
        sleep 0.3
    done
}

# ---- build ----
# BUILD=<folder> reuses (or fills, the first time) a folder of builds, for runs one after another.
builds=${BUILD:-$work}
if [[ -z ${BUILD:-} || ! -x $BUILD/supervisor/kestrel-cluster ]]; then
    say "building the sample and the supervisor (Release)"
    dotnet publish "$root/samples/HelloCluster" -c Release -o "$builds/app" < /dev/null > "$work/build.log" 2>&1
    # The supervisor as production runs it: NativeAOT (README "Running it in production", and the tool on linux-x64);
    # SUPERVISOR=jit for the framework-dependent build that `dotnet run` and the tool's `any` fallback use. The
    # project turns PublishAot on, so the JIT build turns it off.
    case $SUPERVISOR in
        aot) supervisor_build=(-r "linux-$(dpkg --print-architecture | sed 's/amd64/x64/')" -p:PublishAot=true) ;;
        jit) supervisor_build=(-p:PublishAot=false) ;;
        *) echo "kestrel-cluster bench: error: SUPERVISOR must be aot or jit, not '$SUPERVISOR'" >&2; exit 2 ;;
    esac
    dotnet publish "$root/src/KestrelCluster.Supervisor" -c Release "${supervisor_build[@]}" -o "$builds/supervisor" < /dev/null >> "$work/build.log" 2>&1 \
        || { echo "kestrel-cluster bench: error: the supervisor did not build; see $work/build.log" >&2; exit 1; }
    if [[ " $TARGETS " == *" reuseport-pair "* ]]; then
        dotnet publish "$bench/ReusePortApp" -c Release -o "$builds/reuseport" < /dev/null >> "$work/build.log" 2>&1 \
            || { echo "kestrel-cluster bench: error: ReusePortApp did not build; see $work/build.log" >&2; exit 1; }
    fi
fi
app="$builds/app/HelloCluster.dll"
supervisor="$builds/supervisor/kestrel-cluster"

# The runtime settings kestrel-cluster gives its workers by default (README, "Worker environment"): the
# Kestrels behind nginx get the same, so the comparison is about distribution, not GC settings.
heaps=$(( $(nproc) / WORKERS )); ((heaps > 0)) || heaps=1
worker_env=("DOTNET_PROCESSOR_COUNT=$heaps" DOTNET_GCNoAffinitize=1 "DOTNET_GCHeapCount=$(printf %X "$heaps")" DOTNET_ThreadPool_UnfairSemaphoreSpinLimit=0)
if [[ -n ${WORKER_ENV:-} ]]; then read -r -a worker_env <<< "$WORKER_ENV"; fi

# ---- targets: start_<name> sets port[name], pids[name]; a name is <target>@<arrangement> ----
declare -A port pids
arr=service  # the arrangement the next spawn starts its process in

# Starts "$@" in directory $1... as the current arrangement says; spawned = its pid, remembered for cleanup.
# service: setsid gives it (and the workers it forks) a session and so an autogroup of its own. A background
# job of this non-interactive script is not a process-group leader, so setsid execs in place: the pid is the
# server's, not a short-lived setsid's (checked once below).
spawn() { # dir log command...
    local dir=$1 log=$2; shift 2
    if [[ $arr == service ]]; then
        (cd "$dir" && exec setsid "$@") > "$log" 2>&1 < /dev/null &
    else
        (cd "$dir" && exec "$@") > "$log" 2>&1 < /dev/null &
    fi
    spawned=$!
    remember "$spawned"
}

start_kestrel() { # name [env...]
    local name=$1; shift
    local p; p=$(free_port)
    spawn "$builds/app" "$work/$name.log" env "$@" dotnet "$app" --urls "http://127.0.0.1:$p"
    port[$name]=$p
    pids[$name]=$spawned
    wait_http "http://127.0.0.1:$p/" 60
}

# Two plain Kestrels on one port (SO_REUSEPORT), with the cluster workers' runtime settings.
start_reuseport() { # name
    local name=$1 p b deadline; p=$(free_port)
    spawn "$builds/reuseport" "$work/$name.log" env "${worker_env[@]}" dotnet "$builds/reuseport/ReusePortApp.dll" --urls "http://127.0.0.1:$p"
    port[$name]=$p
    pids[$name]=$spawned
    wait_http "http://127.0.0.1:$p/" 60
    spawn "$builds/reuseport" "$work/$name-b.log" env "${worker_env[@]}" dotnet "$builds/reuseport/ReusePortApp.dll" --urls "http://127.0.0.1:$p"
    b=$spawned
    pids[$name-b]=$b
    # Ready when the second process answers too (the kernel picks a process per new connection).
    deadline=$((SECONDS + 60))
    until curl -fs --max-time 2 "http://127.0.0.1:$p/" 2>/dev/null | grep -qx "Hello from $b"; do
        ((SECONDS < deadline)) || { echo "kestrel-cluster bench: error: $name's second process did not answer; see $work/$name-b.log" >&2; exit 1; }
        kill -0 "$b" 2>/dev/null || { echo "kestrel-cluster bench: error: $name's second process exited; see $work/$name-b.log" >&2; exit 1; }
        sleep 0.1
    done
}

cluster_name() { local n=${1/@/-}; n=${n//:/-}; echo "bench-$n-$$"; }

start_cluster() { # name mode [workers=N] [env...]
    local name=$1 mode=$2 p workers=$WORKERS; p=$(free_port)
    shift 2
    if [[ ${1:-} == workers=* ]]; then workers=${1#workers=}; shift; fi
    spawn "$builds/app" "$work/$name.log" env "$@" "$supervisor" run -n "$(cluster_name "$name")" -w "$workers" --kill-timeout 5 --balance "$mode" \
        --urls "http://127.0.0.1:$p" -- dotnet "$app"
    port[$name]=$p
    pids[$name]=$spawned
    local deadline=$((SECONDS + 90))
    until grep -q "All $workers workers ready" "$work/$name.log"; do
        ((SECONDS < deadline)) || { echo "kestrel-cluster bench: error: $name did not start; see $work/$name.log" >&2; exit 1; }
        kill -0 "${pids[$name]}" 2>/dev/null || { echo "kestrel-cluster bench: error: $name exited; see $work/$name.log" >&2; exit 1; }
        sleep 0.3
    done
    cluster_json "$name" | python3 -c 'import json,sys; [print(w["pid"]) for w in json.load(sys.stdin)["workers"]]' >> "$work/children"
}

cluster_json() { "$supervisor" list -n "$(cluster_name "$1")" --json; }

start_nginx() { # name
    local name=$1 a b p dir="$work/nginx-$arr"
    start_kestrel "nginx-kestrel-a@$arr" "${worker_env[@]}"; start_kestrel "nginx-kestrel-b@$arr" "${worker_env[@]}"
    a=${port[nginx-kestrel-a@$arr]} b=${port[nginx-kestrel-b@$arr]} p=$(free_port)
    mkdir -p "$dir"
    cat > "$dir/nginx.conf" <<CONF
worker_processes $WORKERS;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
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
    spawn "$dir" "$work/$name.log" "$nginx_bin" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log"
    port[$name]=$p
    pids[$name]=$spawned
    wait_http "http://127.0.0.1:$p/" 30
    pgrep -P "$spawned" >> "$work/children" || true
}

start_node() { # name policy
    local name=$1 p; p=$(free_port)
    spawn "$bench" "$work/$name.log" env "PORT=$p" "WORKERS=$WORKERS" "POLICY=$2" node "$bench/node-cluster.js"
    port[$name]=$p
    pids[$name]=$spawned
    wait_http "http://127.0.0.1:$p/" 30
    pgrep -P "$spawned" >> "$work/children" || true
}

start_target() { # target arrangement
    arr=$2
    local name="$1@$2"
    case $1 in
        kestrel) start_kestrel "$name" ;;
        round-robin | least-connections | sticky | shared) start_cluster "$name" "$1" ;;
        # The cluster without the runtime settings it gives its workers: what those settings are worth.
        round-robin-untuned) start_cluster "$name" round-robin KESTREL_CLUSTER_RUNTIME_DEFAULTS=0 ;;
        reuseport-pair) start_reuseport "$name" ;;
        # round-robin:<label>: the round-robin cluster with VARIANT_<label>'s words: an optional workers=N, then
        # environment assignments for the supervisor (and so its workers), e.g.
        # VARIANT_w1="workers=1" VARIANT_inline="DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1".
        round-robin:*)
            local label=${1#round-robin:} words=()
            local var="VARIANT_$label"
            [[ -n ${!var+x} ]] || { echo "kestrel-cluster bench: error: target $1 needs $var" >&2; exit 2; }
            read -r -a words <<< "${!var}"
            start_cluster "$name" round-robin "${words[@]}" ;;
        nginx) start_nginx "$name" ;;
        node-rr) start_node "$name" rr ;;
        node-none) start_node "$name" none ;;
        *) echo "kestrel-cluster bench: error: unknown target '$1'" >&2; exit 2 ;;
    esac
}

wrk_run() { # target workload seconds script
    local headers=()
    [[ $2 == close ]] && headers=(-H "Connection: close")
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"${3}s" --timeout 5s "${headers[@]}" -s "$bench/$4" "http://127.0.0.1:${port[$1]}/" 2>&1
}

# ---- run ----
for a in "${arrangements[@]}"; do
    for t in $TARGETS; do
        say "starting $t ($a)"
        start_target "$t" "$a"
    done
done

# The arrangement as the kernel sees it: each server's session and autogroup (and its first child's) against
# this script's, where wrk runs.
autogroup() { sed 's/ nice.*//' "/proc/$1/autogroup" 2>/dev/null || echo "?"; }
mine=$(autogroup $$)
echo "this script and wrk: session $(awk '{print $6}' /proc/$$/stat), autogroup $mine" >&2
for a in "${arrangements[@]}"; do
    for t in $TARGETS; do
        pid=${pids[$t@$a]}
        sid=$(awk '{print $6}' "/proc/$pid/stat")
        theirs=$(autogroup "$pid")
        kids=$(pgrep -P "$pid" | head -1 || true)
        echo "  $t ($a): pid $pid, session $sid, autogroup $theirs${kids:+ (its child $kids: $(autogroup "$kids"))}" >&2
        if [[ $a == service && ( $theirs == "$mine" || $sid != "$pid" ) ]]; then
            echo "kestrel-cluster bench: error: the service arrangement did not give $t a session and autogroup of its own" >&2; exit 1
        fi
        if [[ $a == shell && $theirs != "$mine" ]]; then
            echo "kestrel-cluster bench: error: the shell arrangement put $t in another autogroup" >&2; exit 1
        fi
    done
done

# AUTOGROUP_NICE=<n> (e.g. -15; root only): on a machine others use too, give wrk's autogroup and every server's the
# same higher weight, so the rest of the machine's load takes less of the CPU from the run; the split between wrk
# and a server stays as it is.
if [[ -n ${AUTOGROUP_NICE:-} ]]; then
    echo "$AUTOGROUP_NICE" > "/proc/$$/autogroup"
    for key in "${!pids[@]}"; do echo "$AUTOGROUP_NICE" > "/proc/${pids[$key]}/autogroup" 2>/dev/null || true; done
    echo "autogroup nice $AUTOGROUP_NICE: $(cat /proc/$$/autogroup)" >&2
fi

say "warming up"
for a in "${arrangements[@]}"; do
    for t in $TARGETS; do
        for w in keepalive close; do wrk_run "$t@$a" "$w" 2 report.lua > /dev/null; done
    done
    : > "$work/results-$a.tsv"
done

supervisor_key="round-robin@${arrangements[0]}"
supervisor_pid=${pids[$supervisor_key]:-}
if [[ -n $supervisor_pid ]]; then
    idle_fds=$(ls "/proc/$supervisor_pid/fd" | wc -l)
    idle_rss=$(awk '/VmRSS/ {print $2}' "/proc/$supervisor_pid/status")
fi

# Interleaved (run 1 of every target in every arrangement, then run 2, ...) so a noisy minute on a shared
# machine hits all of them.
for r in $(seq "$RUNS"); do
    for w in keepalive close; do
        for a in "${arrangements[@]}"; do
            for t in $TARGETS; do
                line=$(wrk_run "$t@$a" "$w" "$DURATION" report.lua | grep '^RESULT' || echo "RESULT 0 0 -1 -1 0")
                say "run $r $w $t ($a): $line"
                printf '%s\t%s\t%s\n' "$t" "$w" "${line#RESULT }" >> "$work/results-$a.tsv"
            done
        done
    done
done

for w in keepalive close; do
    for a in "${arrangements[@]}"; do
        for t in $TARGETS; do
            [[ $t == kestrel ]] && continue
            wrk_run "$t@$a" "$w" "$SHARE_DURATION" share.lua | grep '^SHARE' | sed "s/^SHARE/$t\t$w\tSHARE/" >> "$work/results-$a.tsv" || true
        done
    done
done

# Where the CPU goes: server CPU time per request (utime + stime from /proc/<pid>/stat of every process of
# the target, its children included), from one more DURATION run per target, arrangement and workload; with
# the context switches of every thread (/proc/<pid>/task/*/status) and each process's thread count.
cpu_ticks() { # pid... → total clock ticks
    local total=0 pid t
    for pid in "$@"; do
        t=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)
        total=$((total + t))
    done
    echo "$total"
}
switches() { # pid... → voluntary and nonvoluntary context switches, summed over every thread
    local pid
    for pid in "$@"; do cat /proc/"$pid"/task/*/status 2>/dev/null || true; done \
        | awk '/^voluntary_ctxt_switches/ {v += $2} /^nonvoluntary_ctxt_switches/ {n += $2} END {print v + 0, n + 0}'
}
threads() { # pid... → thread count per process, a+b+...
    local pid out=()
    for pid in "$@"; do out+=("$(ls "/proc/$pid/task" 2>/dev/null | wc -l)"); done
    local IFS=+; echo "${out[*]}"
}
target_pids() { # name → its process and its children (nginx adds its two Kestrels, reuseport-pair its second)
    local root=${pids[$1]:-} t=${1%@*} a=${1#*@}
    [[ -n $root ]] || return 0
    echo "$root"; pgrep -P "$root" || true
    if [[ $t == nginx ]]; then target_pids "nginx-kestrel-a@$a"; target_pids "nginx-kestrel-b@$a"; fi
    if [[ $t == reuseport-pair ]]; then echo "${pids[$1-b]}"; fi
}
cpu_lines=()
hz=$(getconf CLK_TCK)
for w in keepalive close; do
    for a in "${arrangements[@]}"; do
        for t in $CPU_TARGETS; do
            [[ " $TARGETS " == *" $t "* ]] || continue
            mapfile -t procs < <(target_pids "$t@$a")
            root_pid=${pids[$t@$a]}
            read -r before_v before_n <<< "$(switches "${procs[@]}")"
            before_root=$(cpu_ticks "$root_pid"); before_all=$(cpu_ticks "${procs[@]}")
            line=$(wrk_run "$t@$a" "$w" "$DURATION" report.lua | grep '^RESULT' || echo "RESULT 0 0 -1 -1 0")
            after_root=$(cpu_ticks "$root_pid"); after_all=$(cpu_ticks "${procs[@]}")
            read -r after_v after_n <<< "$(switches "${procs[@]}")"
            read -r _ rps _ _ _ requests <<< "$line"
            ((requests > 0)) || continue
            cpu_lines+=("$(python3 - "$t ($a)" "$w" "$rps" "$requests" $((after_root - before_root)) $((after_all - before_all)) "$hz" \
                $((after_v - before_v)) $((after_n - before_n)) "$(threads "${procs[@]}")" <<'PY2'
import sys
target, workload, rps, requests, first, everything, hz, vol, invol, threads = sys.argv[1:]
us = lambda ticks: int(ticks) * 1e6 / int(hz) / int(requests)
print(f"  {target:<24} {workload:<9} {float(rps):>9,.0f} req/s   server CPU per request {us(everything):6.1f} µs "
      f"(first process {us(first):5.1f} µs, the rest {us(int(everything) - int(first)):5.1f} µs); "
      f"context switches per request {int(vol) / int(requests):.2f} voluntary, {int(invol) / int(requests):.3f} not; threads {threads}")
PY2
)")
        done
    done
done

memory_line=""
if [[ -n $supervisor_pid && $HANDOFFS -gt 0 ]]; then
    total() { cluster_json "$supervisor_key" | python3 -c 'import json,sys; print(sum(w["totalConnections"] for w in json.load(sys.stdin)["workers"]))'; }
    say "handing off connections through $supervisor_key until $HANDOFFS (at most $HANDOFF_LIMIT s)"
    deadline=$((SECONDS + HANDOFF_LIMIT))
    while (( $(total) < HANDOFFS && SECONDS < deadline )); do
        wrk_run "$supervisor_key" close 10 report.lua > /dev/null
    done
    handed=$(total)
    # Idle again: every connection closed and acknowledged.
    sleep 3
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$supervisor_pid/status")
    fds=$(ls "/proc/$supervisor_pid/fd" | wc -l)
    memory_line=$(printf 'supervisor (round-robin, %s): %s connections handed off; VmRSS %d MB (idle before load: %d MB); fds %s (idle before load: %s)' \
        "${arrangements[0]}" "$handed" $((rss / 1024)) $((idle_rss / 1024)) "$fds" "$idle_fds")
fi

for a in "${arrangements[@]}"; do
    case $a in
        service) echo; echo "### service arrangement: every server in its own session and autogroup (setsid), wrk in the script's" ;;
        shell) echo; echo "### shell arrangement: every server a background job of the script, in wrk's autogroup" ;;
    esac
    python3 "$bench/table.py" "$work/results-$a.tsv" "$TARGETS" "$RUNS" "$DURATION" "$THREADS" "$CONNECTIONS" "$WORKERS"
done
if ((${#cpu_lines[@]})); then
    echo
    echo "CPU per request (first process: Kestrel, the supervisor, nginx's master or the pair's first Kestrel; the rest: workers, nginx's workers and its Kestrels, the pair's second):"
    printf '%s\n' "${cpu_lines[@]}"
fi
[[ -n $memory_line ]] && echo && echo "$memory_line"
exit 0
