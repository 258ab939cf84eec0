#!/usr/bin/env bash
# Symlink deploys under wrk, the way operators deploy. A temp folder holds releases/v1, v2 and v3 (each a copy of
# the sample's Release build with its own appsettings.json) and current -> releases/v1. The supervisor runs as a
# service (own session) from inside `current`, so $PWD is the logical path: `run -n drill -- dotnet HelloCluster.dll`.
# For v2, then v3: switch the symlink atomically and `reload` under wrk; then delete the previous release and
# SIGKILL a worker under wrk, and wait until all workers are ready again. Each wrk run starts 1 s before its event
# and ends TAIL s after it; one run of each step uses keep-alive clients, the other `Connection: close`.
# After each event, and at the end, every worker must run the new release: its cwd and the HelloCluster.dll it
# mapped (/proc), the generation (`list`, GET /cluster) and the configuration (a `release` field of GET /cluster
# when the app has one; else host filtering: only v3's AllowedHosts admits Host: release-v3.drill.invalid).
# Prints a table; exits non-zero when a request failed (beyond those in flight on the killed worker) or a worker
# runs old code or configuration. The supervisor's log is kept in /tmp/kestrel-cluster-deploy-drill.log.
#   TAIL=4 WORKERS=2 READY_SECONDS=60 PROBES=12 CONNECTIONS=64 CWD_OPTION=0 DELETE_OLD=1 eng/deploy-drill.sh
TAIL=${TAIL:-4}                    # seconds of load after each event (reload done, workers ready again)
WORKERS=${WORKERS:-2}
READY_SECONDS=${READY_SECONDS:-60} # bound on every wait for ready workers and on each reload
wrk_cap=$((READY_SECONDS + TAIL + 20)) # no wrk run lasts longer, whatever happens
PROBES=${PROBES:-12}               # GET /cluster (and host-filter probes) on new connections at the end
CWD_OPTION=${CWD_OPTION:-0}        # 1: also pass --cwd <deploy>/current to `run` (the supervisor must know it)
DELETE_OLD=${DELETE_OLD:-1}        # 0: keep the previous release instead of deleting it
source "$(dirname "$0")/cluster-script.sh"
need_wrk
keep_log=/tmp/kestrel-cluster-deploy-drill.log
name=drill
status=0

# ---- the deploy folder ----
deploy=$XDG_RUNTIME_DIR/deploy
mkdir -p "$deploy/releases"
for v in v1 v2 v3; do
    cp -r samples/HelloCluster/bin/Release/net10.0 "$deploy/releases/$v"
    cat >"$deploy/releases/$v/appsettings.json" <<JSON
{
  "Logging": { "LogLevel": { "Default": "Information", "Microsoft.AspNetCore": "Warning" } },
  "AllowedHosts": "127.0.0.1;localhost;release-$v.drill.invalid",
  "Release": "$v"
}
JSON
done
ln -s releases/v1 "$deploy/current"
physical=$(cd "$deploy" && pwd -P)
switch_to() { (cd "$deploy" && ln -s "releases/$1" current.tmp && mv -T current.tmp current); }
# Which release a worker runs, from /proc: the HelloCluster.dll it mapped and its working directory (the
# configuration's folder), e.g. "v2 v2", or "v1 v1(deleted)".
release_of() { # pid
    local dll cwd
    dll=$(awk '/HelloCluster\.dll/ {print $6 $7; exit}' "/proc/$1/maps" 2>/dev/null || true)
    cwd=$(readlink "/proc/$1/cwd" 2>/dev/null || true)
    dll=${dll#"$physical/releases/"} cwd=${cwd#"$physical/releases/"}
    echo "${dll/\/HelloCluster.dll/} ${cwd// /}" | sed 's/^ /? /; s/ $/ ?/'
}
# "<workers on release v> of <workers>" for the workers of the supervisor's generation (the old ones may still drain).
on_release() { # v
    local total=0 on=0 pid runs seen=()
    for pid in $(cluster_rows "$name" | awk '$1 == "supervisor" {g = $3} $1 != "supervisor" && $3 == g {print $2}'); do
        total=$((total + 1))
        runs=$(release_of "$pid")
        seen+=("${runs/ //}")
        [[ $runs == "$1 $1" ]] && on=$((on + 1))
    done
    echo "$on of $total (code/config: ${seen[*]:-none})"
}

run_options=()
[[ $CWD_OPTION == 1 ]] && run_options+=(--cwd "$deploy/current")
start_service "$deploy/current" "$name" "$WORKERS" "$READY_SECONDS" "${run_options[@]}" -- dotnet HelloCluster.dll
echo "supervisor pid $supervisor (session $supervisor), port $port, deploy folder $deploy"
echo "supervisor's $({ tr '\0' '\n' <"/proc/$supervisor/environ"; } 2>/dev/null | grep '^PWD=' || echo 'PWD: not set'), its cwd $(readlink "/proc/$supervisor/cwd")"
# The /proc check must see v1 now, or it could not tell releases apart later.
on=$(on_release v1)
echo "workers on v1's code and config: $on"
[[ $on == "$WORKERS of $WORKERS "* ]] || { echo "cannot tell which release a worker runs from /proc" >&2; exit 1; }

# Status of GET / with another Host header: 200 when the answering worker's AllowedHosts admits it.
host_status() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "Host: $1" "http://127.0.0.1:$port/" || true; }
# The host-filter probe tells configurations apart only if v1's workers admit v1's name and refuse v3's.
if [[ $(host_status release-v1.drill.invalid) == 200 && $(host_status release-v3.drill.invalid) == 400 ]]; then
    host_probe=1
else
    host_probe=0
    echo "cannot verify configuration through host filtering: v1's workers do not answer 200/400 to v1's/v3's host names"
fi

# ---- the steps ----
rows_md=()
# allowed: read/write errors that do not fail the drill. A SIGKILLed worker takes the requests in flight on its
# connections with it, and wrk does not retry: at most one per client connection, so up to CONNECTIONS. A
# supervisor that exits, or a worker that never comes back, fails far more than that.
add_row() { # step client event counts-file [allowed]
    local r c rd w t n allowed=${5:-0} verdict=ok
    read -r r c rd w t n < <(wrk_counts "$4")
    ((c + t + n == 0 && rd + w <= allowed && event_ok)) || { verdict=FAIL; status=1; }
    ((allowed == 0)) || verdict+=" (≤ $allowed read/write errors allowed: in flight on the killed worker)"
    rows_md+=("| $1 | $2 | $3 | $r | $c / $rd / $w / $t | $n | $verdict |")
}
now() { echo "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}'; }

clients=(keepalive close)
step=0
previous=v1
for v in v2 v3; do
    first=${clients[step % 2]} second=${clients[(step + 1) % 2]}
    step=$((step + 1))
    if ! supervisor_alive; then
        rows_md+=("| $v | - | skipped: the supervisor had exited | - | - | - | FAIL |")
        status=1
        continue
    fi

    # Switch and reload under load.
    event_ok=1
    switch_to "$v"
    out=$XDG_RUNTIME_DIR/wrk-$v-reload.txt
    start_wrk "$out" "$wrk_cap" "$first"
    sleep 1
    started=$(now)
    if reply=$(timeout "$READY_SECONDS" $kc reload -n "$name" 2>&1); then
        event="current -> $v, \`reload\` done in $(since "$started") s"
        on=$(on_release "$v")
        event+="; workers on $v's code and config: $on"
        [[ $on == "$WORKERS of $WORKERS "* ]] || event_ok=0
    else
        event="current -> $v, \`reload\` FAILED after $(since "$started") s: ${reply//$'\n'/ }"
        event_ok=0
    fi
    sleep "$TAIL"
    stop_wrk
    add_row "$v" "$first" "$event" "$out"

    # Delete the previous release, then kill a worker: its replacement must start from the new release.
    if [[ $DELETE_OLD == 1 ]]; then rm -rf "${deploy:?}/releases/$previous"; deleted="releases/$previous deleted"; else deleted="releases/$previous kept"; fi
    out=$XDG_RUNTIME_DIR/wrk-$v-kill.txt
    event_ok=1
    start_wrk "$out" "$wrk_cap" "$second"
    sleep 1
    victim=$(cluster_rows "$name" | awk '$1 != "supervisor" && $4 == "ready" {print $1, $2; exit}')
    if [[ -z $victim ]]; then
        event="$deleted; no ready worker to kill (supervisor $(supervisor_alive && echo up || echo gone))"
        event_ok=0
    else
        read -r victim_id victim_pid <<<"$victim"
        kill -9 "$victim_pid"
        started=$(now)
        if wait_ready "$name" "$WORKERS" "$READY_SECONDS" "$victim_pid"; then
            event="$deleted, worker $victim_id SIGKILLed, all ready again after $(since "$started") s"
            on=$(on_release "$v")
            event+="; workers on $v's code and config: $on"
            [[ $on == "$WORKERS of $WORKERS "* ]] || event_ok=0
        elif supervisor_alive; then
            event="$deleted, worker $victim_id SIGKILLed, NOT all ready after $READY_SECONDS s"
            event_ok=0
        else
            event="$deleted, worker $victim_id SIGKILLed, the SUPERVISOR EXITED after $(since "$started") s"
            event_ok=0
        fi
    fi
    sleep "$TAIL"
    stop_wrk
    add_row "$v" "$second" "$event" "$out" "${CONNECTIONS:-64}"
    previous=$v
done

# ---- what runs at the end ----
expected_generation=3
final=()
rows=$(cluster_rows "$name")
workers=$(grep -v '^supervisor' <<<"$rows" || true)
if [[ -z $rows ]]; then
    final+=("the cluster does not answer \`list\` (supervisor $(supervisor_alive && echo up || echo gone)): nothing runs v3")
    status=1
else
    read -r _ _ generation < <(grep '^supervisor' <<<"$rows") || true
    count=$(grep -c . <<<"$workers" || true)
    new_code=0 new_generation=0
    for pid in $(awk '{print $2}' <<<"$workers"); do
        read -r code cwd < <(release_of "$pid")
        gen=$(awk -v p="$pid" '$2 == p {print $3}' <<<"$workers")
        [[ $gen == "$expected_generation" ]] && new_generation=$((new_generation + 1))
        [[ $code == v3 && $cwd == v3 ]] && new_code=$((new_code + 1))
        final+=("worker pid $pid: generation $gen, code releases/$code, working directory releases/$cwd")
    done
    final+=("$count workers (expected $WORKERS); supervisor generation $generation, $new_generation on generation $expected_generation; $new_code run releases/v3's code from releases/v3")
    ((count == WORKERS && generation == expected_generation && new_generation == count && new_code == count)) || status=1

    # Configuration, through GET /cluster on new connections.
    seen_release=0 new_release=0 answered=0 right_generation=0
    for _ in $(seq "$PROBES"); do
        body=$(curl -s --max-time 5 -H "Connection: close" "http://127.0.0.1:$port/cluster" || true)
        read -r gen release < <(python3 -c 'import json,sys
try: d = json.loads(sys.argv[1])
except ValueError: print("- -"); sys.exit()
print(d.get("generation") or "-", d.get("release", "<none>"))' "$body")
        [[ $gen == - ]] && continue
        answered=$((answered + 1))
        [[ $gen == "$expected_generation" ]] && right_generation=$((right_generation + 1))
        [[ $release != "<none>" ]] && seen_release=1
        [[ $release == v3 ]] && new_release=$((new_release + 1))
    done
    final+=("GET /cluster on $PROBES new connections: $answered answered, $right_generation said generation $expected_generation")
    ((answered == PROBES && right_generation == PROBES)) || status=1
    if ((seen_release)); then
        final+=("configuration (GET /cluster release): $new_release of $answered answers say v3")
        ((new_release == answered)) || status=1
    else
        final+=("cannot verify configuration: GET /cluster has no field release")
    fi
    if ((host_probe)); then
        admitted=0
        for _ in $(seq "$PROBES"); do [[ $(host_status release-v3.drill.invalid) == 200 ]] && admitted=$((admitted + 1)); done
        final+=("configuration (host filtering): $admitted of $PROBES requests with Host: release-v3.drill.invalid admitted by v3's AllowedHosts")
        ((admitted == PROBES)) || status=1
    fi
fi

echo
echo "deploy drill: $WORKERS workers; per row wrk -t${THREADS:-2} -c${CONNECTIONS:-64} from 1 s before the event to $TAIL s after it (keepalive: keep-alive; close: \`Connection: close\`)"
echo
echo "| release | client | during the wrk run | requests | socket errors (connect / read / write / timeout) | non-2xx/3xx | |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
printf '%s\n' "${rows_md[@]}"
echo
printf '%s\n' "${final[@]}"
if supervisor_alive; then
    echo "supervisor: running; its log: $keep_log"
else
    exit_code=0; wait "$supervisor" 2>/dev/null || exit_code=$?
    echo "supervisor: EXITED (exit code $exit_code); its log: $keep_log"
    status=1
fi
grep -E "Reload|exited|cannot start|failed|Unhandled" "$log" | grep -v '^\[worker' | tail -15 || true
if supervisor_alive; then timeout 30 $kc stop -n "$name" >/dev/null 2>&1 || true; fi
echo "deploy drill: $([[ $status == 0 ]] && echo PASS || echo FAIL)"
exit $status
