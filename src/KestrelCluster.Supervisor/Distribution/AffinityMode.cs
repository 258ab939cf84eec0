namespace KestrelCluster.Supervisor.Distribution;

// Request-aware affinity (README "SignalR and Blazor Server"): each new connection goes to the worker its first
// request's affinity cookie names.
internal enum AffinityMode
{
    // On once a worker reports SignalR or Blazor Server endpoints.
    Auto,

    On,

    Off,
}
