#!/usr/bin/env bash
# Chaos under load: serves the sample with W workers (default 2), puts bounded loopback load on it (16 keep-alive
# and 16 new-connection clients) for S seconds (default 60) and meanwhile SIGKILLs a random ready worker every
# 2 s (never the last ready one). Prints requests sent/answered/failed, the failures in flight on a killed worker,
# and the unacknowledged connections the supervisor handed to other workers; exits non-zero on any other failure.
# The supervisor's log is kept in /tmp/kestrel-cluster-chaos.log.
#   eng/chaos.sh [seconds=60] [workers=2]
seconds=${1:-60}
workers=${2:-2}
source "$(dirname "$0")/cluster-script.sh"
keep_log=/tmp/kestrel-cluster-chaos.log
start_cluster chaos-check "$workers" 60
status=0
$load_tool chaos "http://127.0.0.1:$port/" "$log" "$seconds" 2 16 16 || status=$?
left=$(grep -o 'left [0-9]* unacknowledged' "$log" | awk '{s+=$2} END {print s+0}')
echo "unacknowledged connections the supervisor handed to other workers: $left ($(grep -c 'unacknowledged' "$log" || true) workers killed holding some)"
echo "worker crashes logged: $(grep -c 'exited unexpectedly' "$log" || true); supervisor still up: $(kill -0 $supervisor 2>/dev/null && echo yes || echo no)"
$kc stop -n chaos-check >/dev/null
exit $status
