using KestrelCluster.Supervisor.Accept;
using KestrelCluster.Supervisor.Cli;
using KestrelCluster.Tests.Infrastructure;

namespace KestrelCluster.Tests.Accept;

public sealed class AcceptThreadCountTests
{
    [Theory]
    [InlineData(1, 1)]
    [InlineData(2, 1)]
    [InlineData(4, 1)]
    [InlineData(7, 1)]
    [InlineData(8, 2)]
    [InlineData(16, 4)]
    [InlineData(32, 8)]
    [InlineData(64, 8)]
    [InlineData(256, 8)]
    public void DefaultFor_Cores_OnePerFourCoresFromOneToEight(int cores, int threads)
        => Assert.Equal(threads, AcceptThreadCount.DefaultFor(cores));

    [Fact]
    public void Run_AcceptThreadsFromCommandLineEnvironmentOrFile_CommandLineWinsThenEnvironmentThenFile()
    {
        using var folder = new TemporaryFolder();
        File.WriteAllText(Path.Combine(folder.Path, "kestrel-cluster.json"), """{ "acceptThreads": 3 }""");
        var fromLine = Parse("--accept-threads", "2");
        var fromEnvironment = Parse();
        var fromFile = Parse();

        RunSettings.ApplyLayers(fromLine, v => v == "KESTREL_CLUSTER_ACCEPT_THREADS" ? "4" : null, folder.Path);
        RunSettings.ApplyLayers(fromEnvironment, v => v == "KESTREL_CLUSTER_ACCEPT_THREADS" ? "4" : null, folder.Path);
        RunSettings.ApplyLayers(fromFile, _ => null, folder.Path);

        Assert.Equal(2, fromLine.AcceptThreads);
        Assert.Equal(4, fromEnvironment.AcceptThreads);
        Assert.Equal(3, fromFile.AcceptThreads);
        Assert.Equal(AcceptThreadCount.DefaultFor(Environment.ProcessorCount), Parse().AcceptThreads);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("17")]
    [InlineData("two")]
    public void Run_AcceptThreadsOutOfRange_FailsNamingTheRange(string value)
    {
        var error = Assert.Throws<CommandLineException>(() => Parse("--accept-threads", value));
        Assert.Equal($"--accept-threads must be a whole number from 1 to 16; got '{value}'.", error.Message);
    }

    private static RunOptions Parse(params string[] args) => Assert.IsType<RunCommand>(CommandLine.Parse(["run", .. args])).Options;
}
