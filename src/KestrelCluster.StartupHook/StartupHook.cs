using System.Reflection;
using System.Runtime.Loader;
using KestrelCluster.Protocol;

// The runtime calls StartupHook.Initialize (no namespace, by convention) before the app's Main, for every
// assembly named in DOTNET_STARTUP_HOOKS. Nothing here may touch ASP.NET Core types: the process may be any
// .NET program the worker command starts (a `dotnet run` wrapper, a console app).
internal static class StartupHook
{
    public static void Initialize()
    {
        // Only a process the supervisor started as a worker is changed.
        if (string.IsNullOrEmpty(Environment.GetEnvironmentVariable(ClusterEnvironment.Channel)))
        {
            return;
        }

        var self = typeof(StartupHook).Assembly;
        var folder = Path.GetDirectoryName(self.Location)!;
        var selfName = self.GetName().Name!;
        // Resolving runs only for what the app does not carry itself: an app that references the transport loads
        // its own copy, so the process never holds two (two copies are two sets of types).
        AssemblyLoadContext.Default.Resolving += (context, name) =>
        {
            if (name.Name == selfName)
            {
                return self;
            }

            if (name.Name == KestrelCluster.StartupHook.ClusterHostingStartup.TransportAssembly)
            {
                var path = Path.Combine(folder, name.Name + ".dll");
                return File.Exists(path) ? context.LoadFromAssemblyPath(path) : null;
            }

            return null;
        };

        // ASP.NET Core's hosting (WebApplication.CreateBuilder, ConfigureWebHostDefaults) runs the IHostingStartup of
        // each assembly listed here as it builds the host, before the app's own configuration.
        const string Variable = "ASPNETCORE_HOSTINGSTARTUPASSEMBLIES";
        var listed = Environment.GetEnvironmentVariable(Variable);
        if (listed is null || !listed.Split(';', StringSplitOptions.TrimEntries).Contains(selfName, StringComparer.OrdinalIgnoreCase))
        {
            Environment.SetEnvironmentVariable(Variable, string.IsNullOrEmpty(listed) ? selfName : listed + ";" + selfName);
        }
    }
}
