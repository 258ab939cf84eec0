#!/usr/bin/env bash
# Zero-downtime check: serves the sample with 2 workers, puts bounded loopback load on it (16 keep-alive
# and 16 new-connection clients for 24 s) and meanwhile reloads twice: once with `kestrel-cluster reload`,
# once with SIGHUP. Prints the load totals; exits non-zero if any request failed or a reload did not happen.
# BALANCE=shared (or another --balance mode) checks that mode.
source "$(dirname "$0")/cluster-script.sh"
start_cluster reload-check 2 30 --balance "${BALANCE:-round-robin}"
$load_tool "http://127.0.0.1:$port/" 24 16 16 &
load=$!
sleep 4
$kc reload -n reload-check
sleep 6
kill -HUP $supervisor
for _ in $(seq 1 300); do [ "$(grep -c 'Reload complete' "$log")" -ge 2 ] && break; sleep 0.1; done
wait $load; status=$?
grep -E "Reload|exited" "$log" || true
$kc stop -n reload-check
[ "$(grep -c 'Reload complete' "$log")" -ge 2 ] && exit $status
echo "a reload did not complete" >&2; exit 1
