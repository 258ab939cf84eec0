#!/usr/bin/env bash
# Packs the three NuGet packages into one folder:
#   KestrelCluster.Transport   the worker side (UseClusterTransport)
#   KestrelCluster.Testing     ClusterApplicationFactory (carries the supervisor assembly)
#   kestrel-cluster            the supervisor as a .NET tool
# Usage: eng/pack.sh [output folder, default artifacts/packages]
# Builds Release in a private folder (--artifacts-path), so the tree's bin/ and obj/ are left alone and a test
# can run it while other builds use the tree. The version comes from Directory.Build.props.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$(realpath -m "${1:-$root/artifacts/packages}")"
build="$(mktemp -d "${TMPDIR:-/tmp}/kestrel-cluster-pack.XXXXXX")"
trap 'rm -rf "$build"' EXIT

# No build servers or MSBuild nodes left running after the script.
export MSBUILDDISABLENODEREUSE=1 DOTNET_CLI_USE_MSBUILD_SERVER=0 UseSharedCompilation=false
export DOTNET_NOLOGO=1 DOTNET_CLI_TELEMETRY_OPTOUT=1 MSBUILDTERMINALLOGGER=off

mkdir -p "$out"
for project in src/KestrelCluster.Transport src/KestrelCluster.Testing src/KestrelCluster.Supervisor; do
    dotnet pack "$root/$project" -c Release -o "$out" --artifacts-path "$build" -nologo -v q -clp:NoSummary
done
ls "$out"/*.nupkg
