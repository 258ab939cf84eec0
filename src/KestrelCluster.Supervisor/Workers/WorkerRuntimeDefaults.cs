using System.Collections;
using System.Globalization;

namespace KestrelCluster.Supervisor.Workers;

// Runtime settings that let N .NET processes share the machine's cores instead of each acting as if it
// owned them all (issue 5; measured with eng/bench/run.sh, see README "Performance"). Each one is given to
// the workers only when the supervisor's own environment does not set it, so a user overrides any of them
// by setting the variable (DOTNET_GCNoAffinitize=0 restores the runtime's default), or turns them all off
// with KESTREL_CLUSTER_RUNTIME_DEFAULTS=0.
internal static class WorkerRuntimeDefaults
{
    public const string SwitchVariable = "KESTREL_CLUSTER_RUNTIME_DEFAULTS";

    public static IReadOnlyDictionary<string, string> For(int workers, int processors, IDictionary inherited)
    {
        if (inherited[SwitchVariable] is "0")
        {
            return new Dictionary<string, string>();
        }

        var share = Math.Max(1, processors / Math.Max(1, workers));
        var defaults = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            // Each worker sizes its thread pool, socket engine, Kestrel's I/O queues and spin-waits for the cores
            // it sees; give it its share of them, so N workers do not each wake and spin threads for the whole
            // machine (README "Performance", "As a service runs").
            ["DOTNET_PROCESSOR_COUNT"] = share.ToString(CultureInfo.InvariantCulture),
            // Server GC pins one GC thread per core in every process: N processes fight over the same cores.
            ["DOTNET_GCNoAffinitize"] = "1",
            // Server GC makes one heap (and GC thread) per core in every process; split the cores instead.
            // The runtime reads this value as hexadecimal.
            ["DOTNET_GCHeapCount"] = share.ToString("X", CultureInfo.InvariantCulture),
            // Idle thread-pool threads spin before they sleep; in N processes that spinning burns the cores
            // the other workers need.
            ["DOTNET_ThreadPool_UnfairSemaphoreSpinLimit"] = "0",
        };

        foreach (var name in defaults.Keys.ToList())
        {
            if (inherited.Contains(name) || inherited.Contains(name.Replace("DOTNET_", "COMPlus_", StringComparison.Ordinal)))
            {
                defaults.Remove(name);
            }
        }

        return defaults;
    }
}
