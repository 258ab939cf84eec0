#!/usr/bin/env bash
# Reloads and a scale-down under a client that never retries: the sample with WORKERS workers (default 3) runs as a
# service (own session) and wrk -t2 -c64 loads it while RELOADS `kestrel-cluster reload`s (default 5) run one after
# the other, then `scale SCALE_TO` (default 2) and `scale WORKERS` back. Once with keep-alive connections, once
# with `Connection: close`. wrk starts 1 s before the first command and stops TAIL s after the last (never later
# than LIMIT s). Before each pass, a CONTROL s wrk run without any command shows what the same client sees from
# an undisturbed cluster (0 errors expected: errors in the pass then come from the commands). Prints wrk's requests, socket errors and non-2xx/3xx answers per pass; exits non-zero unless every
# command succeeded and both counts are 0 in both passes. The supervisor's log is kept in
# /tmp/kestrel-cluster-reload-wrk.log.
#   RELOADS=5 WORKERS=3 SCALE_TO=2 TAIL=3 LIMIT=120 CONTROL=5 CONNECTIONS=64 PASSES="keepalive close" eng/reload-wrk.sh
RELOADS=${RELOADS:-5}
WORKERS=${WORKERS:-3}
SCALE_TO=${SCALE_TO:-2}
TAIL=${TAIL:-3}                    # seconds of load after the last command
LIMIT=${LIMIT:-120}                # no wrk run lasts longer, whatever happens
PASSES=${PASSES:-keepalive close}
CONTROL=${CONTROL:-5}              # seconds of the run without commands before each pass (0: none)
source "$(dirname "$0")/cluster-script.sh"
need_wrk
keep_log=/tmp/kestrel-cluster-reload-wrk.log
name=reload-wrk
status=0
start_service samples/HelloCluster/bin/Release/net10.0 "$name" "$WORKERS" 60 -- dotnet HelloCluster.dll
echo "supervisor pid $supervisor (session $supervisor), port $port, $WORKERS workers"

now() { echo "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}'; }
generation() { cluster_rows "$name" | awk '$1 == "supervisor" {print $3}'; }

# Runs one control command (bounded); appends "<what> <seconds> s" or "<what> FAILED: <reply>" to $done_list.
control() { # what command...
    local what=$1 started reply
    shift
    started=$(now)
    if reply=$(timeout 90 $kc "$@" -n "$name" 2>&1); then
        done_list+=("$what $(since "$started") s")
    else
        done_list+=("$what FAILED after $(since "$started") s: ${reply//$'\n'/ }")
        pass_ok=0
    fi
}

rows_md=()
for client in $PASSES; do
    supervisor_alive || { rows_md+=("| $client | skipped: the supervisor had exited | - | - | - | FAIL |"); status=1; continue; }
    if ((CONTROL > 0)); then
        out=$XDG_RUNTIME_DIR/wrk-$client-control.txt
        start_wrk "$out" "$CONTROL" "$client"
        wait "$wrk_pid" || true
        read -r r c rd w t n < <(wrk_counts "$out")
        verdict=ok
        ((c + rd + w + t + n == 0)) || { verdict=FAIL; status=1; }
        rows_md+=("| $client | control: no command | $r | $c / $rd / $w / $t | $n | $verdict |")
    fi
    pass_ok=1 done_list=()
    from=$(generation)
    out=$XDG_RUNTIME_DIR/wrk-$client.txt
    start_wrk "$out" "$LIMIT" "$client"
    sleep 1
    for i in $(seq "$RELOADS"); do control "reload $i" reload; done
    control "scale $SCALE_TO" scale "$SCALE_TO"
    control "scale $WORKERS" scale "$WORKERS"
    sleep "$TAIL"
    if ! kill -0 "$wrk_pid" 2>/dev/null; then
        done_list+=("wrk ENDED before the last command (LIMIT=$LIMIT s)")
        pass_ok=0
    fi
    stop_wrk
    to=$(generation)
    reloads=$((${to:-0} - ${from:-0}))
    ((reloads == RELOADS)) || { done_list+=("generation $from -> ${to:-?}: $reloads reloads, not $RELOADS"); pass_ok=0; }
    read -r r c rd w t n < <(wrk_counts "$out")
    verdict=ok
    ((c + rd + w + t + n == 0 && pass_ok)) || { verdict=FAIL; status=1; }
    rows_md+=("| $client | generation $from -> ${to:-?}; $(IFS=,; echo "${done_list[*]}" | sed 's/,/, /g') | $r | $c / $rd / $w / $t | $n | $verdict |")
    # The next pass starts with all workers ready and no old ones draining.
    wait_ready "$name" "$WORKERS" 60 || true
done

echo
echo "reloads under wrk: $WORKERS workers, wrk -t${THREADS:-2} -c${CONNECTIONS:-64}, $RELOADS reloads, scale $WORKERS -> $SCALE_TO -> $WORKERS per pass (keepalive: keep-alive; close: \`Connection: close\`)"
echo
echo "| client | during the wrk run | requests | socket errors (connect / read / write / timeout) | non-2xx/3xx | |"
echo "| --- | --- | --- | --- | --- | --- |"
printf '%s\n' "${rows_md[@]}"
echo
if supervisor_alive; then
    echo "supervisor: running; its log: $keep_log"
    timeout 60 $kc stop -n "$name" >/dev/null 2>&1 || true
else
    exit_code=0; wait "$supervisor" 2>/dev/null || exit_code=$?
    echo "supervisor: EXITED (exit code $exit_code); its log: $keep_log"
    status=1
fi
echo "reloads under wrk: $([[ $status == 0 ]] && echo PASS || echo FAIL)"
exit $status
