using KestrelCluster.Supervisor.Cli;
using KestrelCluster.Supervisor.Distribution;
using KestrelCluster.Tests.Infrastructure;

namespace KestrelCluster.Tests.Cli;

public sealed class RunSettingsTests
{
    private static RunOptions Parse(params string[] args) => Assert.IsType<RunCommand>(CommandLine.Parse(["run", .. args])).Options;

    [Fact]
    public void ApplyLayers_CommandLineEnvironmentAndFile_CommandLineWinsThenEnvironmentThenFile()
    {
        using var folder = new TemporaryFolder();
        File.WriteAllText(Path.Combine(folder.Path, "kestrel-cluster.json"), """{ "workers": 3, "killTimeout": 7, "readyTimeout": 9, "maxMemory": "256M" }""");
        var environment = new Dictionary<string, string> { ["KESTREL_CLUSTER_KILL_TIMEOUT"] = "5", ["KESTREL_CLUSTER_WORKERS"] = "4" };
        var options = Parse("--workers", "2");

        RunSettings.ApplyLayers(options, environment.GetValueOrDefault, folder.Path);

        Assert.Equal(2, options.Workers);
        Assert.Equal(TimeSpan.FromSeconds(5), options.KillTimeout);
        Assert.Equal(TimeSpan.FromSeconds(9), options.ReadyTimeout);
        Assert.Equal(256L << 20, options.MaxMemoryBytes);
    }

    [Fact]
    public void ApplyLayers_AffinityFromFileOrEnvironment_SetsIt_AndOnWithSharedIsRefused()
    {
        using var folder = new TemporaryFolder();
        File.WriteAllText(Path.Combine(folder.Path, "kestrel-cluster.json"), """{ "affinity": "off" }""");
        var fromFile = Parse();
        var fromEnvironment = Parse();

        RunSettings.ApplyLayers(fromFile, _ => null, folder.Path);
        RunSettings.ApplyLayers(fromEnvironment, v => v == "KESTREL_CLUSTER_AFFINITY" ? "on" : null, folder.Path);

        Assert.Equal(AffinityMode.Off, fromFile.Affinity);
        Assert.Equal(AffinityMode.On, fromEnvironment.Affinity);
        var shared = Parse("--affinity", "on", "--balance", "shared");
        Assert.Contains("--balance shared", Assert.Throws<CommandLineException>(() => RunSettings.ApplyLayers(shared, _ => null, folder.Path)).Message);
    }

    [Fact]
    public void ApplyLayers_CwdFromEnvironmentOrFile_SetsTheCommandsWorkingFolder()
    {
        using var folder = new TemporaryFolder();
        File.WriteAllText(Path.Combine(folder.Path, "kestrel-cluster.json"), """{ "cwd": "/srv/app/current" }""");
        var fromFile = Parse("--", "dotnet", "App.dll");
        var fromEnvironment = Parse("--", "dotnet", "App.dll");

        RunSettings.ApplyLayers(fromFile, _ => null, folder.Path);
        RunSettings.ApplyLayers(fromEnvironment, v => v == "KESTREL_CLUSTER_CWD" ? "/srv/other/current" : null, folder.Path);

        Assert.Equal("/srv/app/current", fromFile.WorkingDirectory);
        Assert.Equal("/srv/other/current", fromEnvironment.WorkingDirectory);
    }

    [Fact]
    public void ApplyLayers_CwdWithAProject_FailsSayingItIsForACommand()
    {
        using var folder = new TemporaryFolder();

        var error = Assert.Throws<CommandLineException>(() => RunSettings.ApplyLayers(Parse("--project", "app", "--cwd", "/srv"), _ => null, folder.Path));

        Assert.StartsWith("--cwd is for a command given after '--'", error.Message);
    }

    [Theory]
    [InlineData("KESTREL_CLUSTER_KILL_TIMEOUT", "-1", "KESTREL_CLUSTER_KILL_TIMEOUT: --kill-timeout must be a number of seconds")]
    [InlineData("KESTREL_CLUSTER_BALANCE", "random", "KESTREL_CLUSTER_BALANCE: --balance must be")]
    [InlineData("KESTREL_CLUSTER_MAX_MEMORY", "lots", "KESTREL_CLUSTER_MAX_MEMORY: --max-memory must be a size")]
    [InlineData("KESTREL_CLUSTER_HEARTBEAT_TIMEOUT", "soon", "KESTREL_CLUSTER_HEARTBEAT_TIMEOUT: --heartbeat-timeout must be a number of seconds")]
    public void ApplyLayers_BadEnvironmentValue_FailsNamingTheVariable(string variable, string value, string expected)
    {
        using var folder = new TemporaryFolder();
        var options = Parse();

        var error = Assert.Throws<CommandLineException>(() => RunSettings.ApplyLayers(options, v => v == variable ? value : null, folder.Path));

        Assert.StartsWith(expected, error.Message);
    }

    [Theory]
    [InlineData("""{ "killTimeout": -3 }""", "'killTimeout' in ")]
    [InlineData("""{ "workers": "many" }""", "'workers' in ")]
    [InlineData("""{ "maxMemory": "12X" }""", "'maxMemory' in ")]
    [InlineData("""{ "wrokers": 2 }""", "unknown setting 'wrokers'")]
    [InlineData("""{ "workers": """, "is not valid JSON")]
    public void ApplyLayers_BadFile_FailsNamingTheSetting(string json, string expected)
    {
        using var folder = new TemporaryFolder();
        File.WriteAllText(Path.Combine(folder.Path, "kestrel-cluster.json"), json);

        var error = Assert.Throws<CommandLineException>(() => RunSettings.ApplyLayers(Parse(), _ => null, folder.Path));

        Assert.Contains(expected, error.Message);
    }

    [Theory]
    [InlineData("512M", 512L << 20)]
    [InlineData("2G", 2L << 30)]
    [InlineData("1.5G", 3L << 29)]
    [InlineData("1048576", 1L << 20)]
    [InlineData("900KB", -1)]
    [InlineData("0M", -1)]
    [InlineData("12X", -1)]
    public void ParseSize_Values_AreBytesOrRefused(string text, long expected)
    {
        if (expected < 0)
        {
            Assert.Throws<CommandLineException>(() => RunSettings.ParseSize("--max-memory", text));
            return;
        }

        Assert.Equal(expected, RunSettings.ParseSize("--max-memory", text));
    }
}
