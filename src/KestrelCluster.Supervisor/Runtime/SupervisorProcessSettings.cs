using KestrelCluster.Supervisor.Systemd;

namespace KestrelCluster.Supervisor.Runtime;

// Settings for the kestrel-cluster process itself (not for a supervisor hosted in a test process).
internal static class SupervisorProcessSettings
{
    // Socket completions run on the epoll thread instead of hopping to the thread pool: a worker's
    // acknowledgement then costs one wake-up, not two. Safe here because no supervisor continuation blocks
    // (README "Performance"); it would not be for app code, so workers never inherit it from us.
    private const string InlineCompletions = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";

    private static bool s_setHere;

    /// <summary>Call before the first socket is created: the runtime reads the variable once.</summary>
    public static void Apply()
    {
        if (Environment.GetEnvironmentVariable(InlineCompletions) is null)
        {
            Environment.SetEnvironmentVariable(InlineCompletions, "1");
            s_setHere = true;
        }
    }

    /// <summary>Variables set for the supervisor alone, to remove from a worker's environment.</summary>
    private static IEnumerable<string> NotForWorkers => s_setHere ? [InlineCompletions] : [];

    /// <summary>
    /// Removes what belongs to this process alone from a child's environment (a worker's, or a publish's):
    /// systemd's notify and listen variables and the settings made here.
    /// </summary>
    public static void RemoveSupervisorOnly(IDictionary<string, string?> environment)
    {
        foreach (var variable in SystemdNotifier.Variables.Concat(NotForWorkers))
        {
            environment.Remove(variable);
        }
    }
}
