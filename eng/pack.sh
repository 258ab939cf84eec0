#!/usr/bin/env bash
# Packs the NuGet packages into one folder:
#   KestrelCluster.Transport      the worker side (UseClusterTransport)
#   KestrelCluster.Testing        ClusterApplicationFactory (carries the supervisor assembly)
#   kestrel-cluster               the supervisor as a .NET tool: the package users install, which points at
#     kestrel-cluster.linux-x64     the NativeAOT supervisor (what `dotnet tool install` and `dnx` pick on linux-x64)
#     kestrel-cluster.any           the framework-dependent build, for every other platform
# Usage: eng/pack.sh [output folder, default artifacts/packages]
# Builds Release in a private folder (--artifacts-path), so the tree's bin/ and obj/ are left alone and a test
# can run it while other builds use the tree. The version comes from Directory.Build.props. The NativeAOT pack
# needs clang (or gcc) and zlib1g-dev, and takes minutes.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$(realpath -m "${1:-$root/artifacts/packages}")"
build="$(mktemp -d "${TMPDIR:-/tmp}/kestrel-cluster-pack.XXXXXX")"
trap 'rm -rf "$build"' EXIT

# No build servers or MSBuild nodes left running after the script.
export MSBUILDDISABLENODEREUSE=1 DOTNET_CLI_USE_MSBUILD_SERVER=0 UseSharedCompilation=false
export DOTNET_NOLOGO=1 DOTNET_CLI_TELEMETRY_OPTOUT=1 MSBUILDTERMINALLOGGER=off

pack() {
    dotnet pack "$root/$1" -c Release -o "$out" --artifacts-path "$build" -nologo -v q -clp:NoSummary "${@:2}"
}

mkdir -p "$out"
pack src/KestrelCluster.Transport
pack src/KestrelCluster.Testing
# The tool (RID-specific packages, .NET 10 SDK): with PublishAot on, a plain pack makes only the package that points
# at the others, and each of those is packed for its RID. The native one leaves out its 20 MB of debug symbols
# (kestrel-cluster.dbg).
pack src/KestrelCluster.Supervisor
pack src/KestrelCluster.Supervisor -r linux-x64 -p:CopyOutputSymbolsToPublishDirectory=false
pack src/KestrelCluster.Supervisor -r any -p:PublishAot=false
ls "$out"/*.nupkg
