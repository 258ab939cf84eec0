#!/bin/sh
# Checks the sample systemd units with systemd-analyze verify (Debian package systemd). The ExecStart= binary
# need not be installed: a stand-in is made at /opt/kestrel-cluster/kestrel-cluster when it is missing.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
command -v systemd-analyze >/dev/null || { echo "systemd-analyze not found (apt-get install systemd)" >&2; exit 1; }
made=""
if [ ! -e /opt/kestrel-cluster/kestrel-cluster ]; then
    mkdir -p /opt/kestrel-cluster
    printf '#!/bin/sh\n' > /opt/kestrel-cluster/kestrel-cluster
    chmod +x /opt/kestrel-cluster/kestrel-cluster
    made=1
fi
status=0
# It exits 0 on a directive it cannot parse ("Failed to parse ..., ignoring"), so any remark fails the check too.
remarks=$(systemd-analyze verify --man=no "$here/samples/deploy/systemd/hello-cluster.socket" "$here/samples/deploy/systemd/hello-cluster.service" 2>&1) || status=$?
if [ -n "$remarks" ]; then
    printf '%s\n' "$remarks" >&2
    [ "$status" -ne 0 ] || status=1
fi
[ -n "$made" ] && rm -f /opt/kestrel-cluster/kestrel-cluster && rmdir /opt/kestrel-cluster 2>/dev/null || true
exit $status
