using System.Collections;

namespace KestrelCluster.Supervisor.Workers;

// pm2 clusters a Node app unchanged; this does the same for a framework-dependent ASP.NET Core app without
// `builder.WebHost.UseClusterTransport()`: DOTNET_STARTUP_HOOKS makes each worker load the hook shipped beside
// kestrel-cluster, which adds the transport as the app's host is built (an app with the line registers it once).
// KESTREL_CLUSTER_STARTUP_HOOK=0 turns it off. NativeAOT and trimmed apps run no startup hooks: they need the line.
internal static class WorkerStartupHook
{
    public const string SwitchVariable = "KESTREL_CLUSTER_STARTUP_HOOK";
    public const string Variable = "DOTNET_STARTUP_HOOKS";
    public const string FileName = "KestrelCluster.StartupHook.dll";

    /// <summary>The DOTNET_STARTUP_HOOKS to give workers (the user's hooks first), or nothing when it is off or not shipped.</summary>
    public static IReadOnlyDictionary<string, string> For(IDictionary inherited, string folder)
    {
        var hook = Path.Combine(folder, FileName);
        if (inherited[SwitchVariable] is "0" || !File.Exists(hook))
        {
            return new Dictionary<string, string>();
        }

        var hooks = inherited[Variable] as string;
        if (!string.IsNullOrEmpty(hooks) && hooks.Split(Path.PathSeparator).Contains(hook, StringComparer.Ordinal))
        {
            return new Dictionary<string, string>();
        }

        return new Dictionary<string, string> { [Variable] = string.IsNullOrEmpty(hooks) ? hook : hooks + Path.PathSeparator + hook };
    }
}
