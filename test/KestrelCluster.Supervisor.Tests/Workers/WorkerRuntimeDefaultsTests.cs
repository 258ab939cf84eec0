using System.Collections;
using KestrelCluster.Supervisor.Workers;

namespace KestrelCluster.Tests.Workers;

public sealed class WorkerRuntimeDefaultsTests
{
    [Fact]
    public void For_NothingSetByUser_SetsAllFour()
    {
        var defaults = WorkerRuntimeDefaults.For(workers: 2, processors: 2, new Hashtable());

        Assert.Equal("1", defaults["DOTNET_PROCESSOR_COUNT"]);
        Assert.Equal("1", defaults["DOTNET_GCNoAffinitize"]);
        Assert.Equal("1", defaults["DOTNET_GCHeapCount"]);
        Assert.Equal("0", defaults["DOTNET_ThreadPool_UnfairSemaphoreSpinLimit"]);
    }

    [Theory]
    [InlineData(2, 32, "10")]
    [InlineData(4, 16, "4")]
    [InlineData(8, 2, "1")]
    public void For_HeapCount_SplitsCoresAmongWorkersInHex(int workers, int processors, string expected)
    {
        Assert.Equal(expected, WorkerRuntimeDefaults.For(workers, processors, new Hashtable())["DOTNET_GCHeapCount"]);
    }

    [Theory]
    [InlineData(2, 32, "16")]
    [InlineData(3, 8, "2")]
    [InlineData(8, 2, "1")]
    public void For_ProcessorCount_SplitsCoresAmongWorkersInDecimal(int workers, int processors, string expected)
    {
        Assert.Equal(expected, WorkerRuntimeDefaults.For(workers, processors, new Hashtable())["DOTNET_PROCESSOR_COUNT"]);
    }

    [Fact]
    public void For_SwitchedOff_SetsNone()
    {
        Assert.Empty(WorkerRuntimeDefaults.For(2, 2, new Hashtable { ["KESTREL_CLUSTER_RUNTIME_DEFAULTS"] = "0" }));
    }

    [Theory]
    [InlineData("DOTNET_GCNoAffinitize")]
    [InlineData("COMPlus_GCNoAffinitize")]
    public void For_UserSetTheVariable_LeavesItToTheUser(string name)
    {
        var defaults = WorkerRuntimeDefaults.For(2, 2, new Hashtable { [name] = "0" });

        Assert.False(defaults.ContainsKey("DOTNET_GCNoAffinitize"));
        Assert.True(defaults.ContainsKey("DOTNET_ThreadPool_UnfairSemaphoreSpinLimit"));
    }
}
