using System.Collections;
using KestrelCluster.Supervisor.Workers;
using KestrelCluster.Tests.Infrastructure;

namespace KestrelCluster.Tests.Workers;

public sealed class WorkerStartupHookTests : IDisposable
{
    private readonly string _folder = TestPaths.NewTempDirectory();

    private string Hook => Path.Combine(_folder, "KestrelCluster.StartupHook.dll");

    public WorkerStartupHookTests() => File.WriteAllText(Hook, "");

    [Fact]
    public void For_NoHooksOfTheUser_GivesTheShippedHook()
    {
        Assert.Equal(Hook, WorkerStartupHook.For(new Hashtable(), _folder)["DOTNET_STARTUP_HOOKS"]);
    }

    [Fact]
    public void For_UserHooks_AppendsAfterThem()
    {
        var hooks = WorkerStartupHook.For(new Hashtable { ["DOTNET_STARTUP_HOOKS"] = "/opt/a.dll:/opt/b.dll" }, _folder);

        Assert.Equal($"/opt/a.dll:/opt/b.dll:{Hook}", hooks["DOTNET_STARTUP_HOOKS"]);
    }

    [Fact]
    public void For_SwitchedOff_GivesNothing()
    {
        Assert.Empty(WorkerStartupHook.For(new Hashtable { ["KESTREL_CLUSTER_STARTUP_HOOK"] = "0" }, _folder));
    }

    [Fact]
    public void For_NotShippedBesideTheSupervisor_GivesNothing()
    {
        File.Delete(Hook);

        Assert.Empty(WorkerStartupHook.For(new Hashtable(), _folder));
    }

    public void Dispose() => Directory.Delete(_folder, recursive: true);
}
