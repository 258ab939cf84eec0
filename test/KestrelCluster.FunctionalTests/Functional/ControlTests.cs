using System.Text.Json;
using System.Text.RegularExpressions;
using KestrelCluster.Tests.Infrastructure;
using Xunit.Abstractions;

namespace KestrelCluster.Tests.Functional;

// The control verbs as an operator uses them: on a cluster run by a service user, next to a folder a killed
// supervisor left behind, and on a cluster too large for one control frame.
public sealed partial class ControlTests(ITestOutputHelper output)
{
    private static readonly TimeSpan CliTimeout = TimeSpan.FromSeconds(60);
    private static readonly JsonSerializerOptions Web = new(JsonSerializerDefaults.Web);

    [Theory]
    [InlineData(ServiceLayout.NoRuntimeDirectory)]
    [InlineData(ServiceLayout.SystemdRuntimeDirectory)]
    public async Task ClusterOfAServiceUser_RootListsAndReloadsIt_AThirdUidIsRefused(ServiceLayout layout)
    {
        UnixUser.AssertRoot();
        await using var cluster = await ClusterRun.StartReadyAsync(output, workers: 1, owner: UnixUser.Nobody, layout: layout);

        // root, with the cluster's name only: its own runtime folders hold no such cluster.
        var before = Assert.Single(Parse(await ExpectSuccessAsync(cluster.RunCliAsync(CliTimeout, "list", "--json"))).Workers);
        Assert.Equal("ready", before.State);
        await ExpectSuccessAsync(cluster.RunCliAsync(TimeSpan.FromMinutes(3), "reload"));
        // reload answers once the new worker is ready; the old one may still be draining for a moment.
        var listed = await Wait.ForAsync(
            async () => Parse(await ExpectSuccessAsync(cluster.RunCliAsAsync(null, CliTimeout, "list", "--json", "--user", "65534", "-n", cluster.Name))).Workers,
            workers => workers.Count == 1,
            CliTimeout);
        var after = Assert.Single(listed);
        Assert.Equal(2, after.Generation);
        Assert.NotEqual(before.Pid, after.Pid);
        if (layout == ServiceLayout.NoRuntimeDirectory)
        {
            // Nor is the name needed while it is the only cluster running (TMPDIR is this test's own).
            Assert.Contains("ready", await ExpectSuccessAsync(cluster.RunCliAsAsync(null, CliTimeout, "list")));
        }

        // Another unprivileged uid, even with every folder and socket opened to it, is refused by the supervisor.
        cluster.OpenToOtherUsers();
        var stranger = new UnixUser(4244, 4244);
        var (exitCode, stdout, stderr) = await cluster.RunCliAsAsync(stranger, CliTimeout, "list", "--user", "65534", "-n", cluster.Name);
        Assert.NotEqual(0, exitCode);
        Assert.DoesNotContain("ready", stdout);
        Assert.StartsWith("kestrel-cluster: error:", stderr);
        await cluster.WaitForLineAsync(new Regex(@"Refused a channel peer \(pid \d+, uid 4244\): uid 4244 may not control this cluster"), CliTimeout);
    }

    [Fact]
    public async Task ControlGroup_AMemberControlsTheCluster_ANonMemberCannotReachIt()
    {
        UnixUser.AssertRoot();
        const int group = 4242;
        await using var cluster = await ClusterRun.StartReadyAsync(output, workers: 1, owner: new UnixUser(65534, 65534, group), extraArguments: ["--control-group", $"{group}"]);
        var control = Path.Combine(cluster.RuntimeFolder, "control.sock");

        // Opened to that group only; the workers' channel stays the owner's alone.
        Assert.Equal((UnixFileMode)0b111_101_000, File.GetUnixFileMode(cluster.RuntimeFolder));
        Assert.Equal((UnixFileMode)0b110_110_000, File.GetUnixFileMode(control));
        Assert.Equal((UnixFileMode)0b110_000_000, File.GetUnixFileMode(cluster.ChannelPath));
        Assert.Equal($"{group}\n{group}\n", (await ExternalCommand.RunAsync("stat", ["-c", "%g", cluster.RuntimeFolder, control], CliTimeout)).Stdout);

        var member = new UnixUser(4243, 4243, group);
        var listed = Parse(await ExpectSuccessAsync(cluster.RunCliAsAsync(member, CliTimeout, "list", "--json", "--user", "65534", "-n", cluster.Name)));
        Assert.Equal("ready", Assert.Single(listed.Workers).State);
        Assert.Equal(cluster.Pid, listed.Supervisor.Pid);
        Assert.Contains("1 workers ready", await ExpectSuccessAsync(cluster.RunCliAsAsync(member, CliTimeout, "scale", "1", "--user", "nobody", "-n", cluster.Name)));

        var (exitCode, stdout, stderr) = await cluster.RunCliAsAsync(new UnixUser(4244, 4244), CliTimeout, "list", "--user", "65534", "-n", cluster.Name);
        Assert.NotEqual(0, exitCode);
        Assert.DoesNotContain("ready", stdout);
        Assert.StartsWith("kestrel-cluster: error:", stderr);
    }

    [Fact]
    public async Task FolderOfAKilledSupervisor_ListWithoutNameTalksToTheLiveCluster_AndTheNameCanBeRunAgain()
    {
        await using var dead = StartSleepers(1);
        await Wait.UntilAsync(() => dead.WorkerPids.Count == 1, ClusterRun.StartTimeout);
        int[] deadPids = [dead.Pid, .. dead.WorkerPids];
        foreach (var pid in deadPids)
        {
            ProcessInfo.Signal(pid, ProcessInfo.SIGKILL);
        }

        Assert.True(await ProcessInfo.WaitUntilGoneAsync(deadPids, TimeSpan.FromSeconds(10)));
        Assert.True(File.Exists(Path.Combine(dead.RuntimeFolder, "control.sock")), "the killed supervisor's folder should still be there");

        // Another cluster in the same runtime folder: `list` without a name must find it, not count the dead one.
        var sameRoot = new Dictionary<string, string> { ["XDG_RUNTIME_DIR"] = dead.RuntimeRoot };
        await using (var live = StartSleepers(1, sameRoot))
        {
            await Wait.UntilAsync(() => live.WorkerPids.Count == 1, ClusterRun.StartTimeout);
            var listed = Parse(await ExpectSuccessAsync(dead.RunCliAsAsync(null, CliTimeout, "list", "--json")));
            Assert.Equal(live.Pid, listed.Supervisor.Pid);

            var (exitCode, _, stderr) = await dead.RunCliAsAsync(null, CliTimeout, "list", "-n", dead.Name);
            Assert.NotEqual(0, exitCode);
            Assert.Contains($"no cluster named '{dead.Name}' is running", stderr);
        }

        // The dead cluster's name is free again.
        await using var again = StartSleepers(1, sameRoot, "--name", dead.Name);
        await Wait.UntilAsync(() => again.WorkerPids.Count == 1, ClusterRun.StartTimeout);
        Assert.Equal(again.Pid, Parse(await ExpectSuccessAsync(dead.RunCliAsync(CliTimeout, "list", "--json"))).Supervisor.Pid);
    }

    [Fact]
    public async Task List_SixHundredWorkers_JsonAndTableHoldEveryRow_AndSigtermLeavesNoWorker()
    {
        // Workers start one per core at a time, so most of these slots are listed as pending: still a row each.
        const int workers = 600;
        await using var cluster = StartSleepers(workers, extraArguments: ["--kill-timeout", "5"]);
        await cluster.WaitForLineAsync(new Regex(@"Worker \d+ started"), ClusterRun.StartTimeout);

        var json = await ExpectSuccessAsync(cluster.RunCliAsync(CliTimeout, "list", "--json"));
        var listed = Parse(json);
        var pids = cluster.WorkerPids;
        output.WriteLine($"list --json: {json.Length} bytes, {listed.Workers.Count} rows, {pids.Count} started");
        Assert.True(json.Length > 64 * 1024, $"{json.Length} bytes fit one frame: the test would not show anything");
        Assert.Equal(workers, listed.Workers.Count);
        Assert.Equal(Enumerable.Range(0, workers), listed.Workers.Select(w => w.Id).Order());
        Assert.Subset(pids.ToHashSet(), listed.Workers.Select(w => w.Pid).Where(pid => pid != 0).ToHashSet());

        var table = (await ExpectSuccessAsync(cluster.RunCliAsync(CliTimeout, "list"))).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(table.Length >= workers + 2, $"{table.Length} lines: header, supervisor and a row per worker expected");
        // A worker's row: its id, then its pid.
        var tableIds = table.Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries)).Where(cells => cells[0].All(char.IsAsciiDigit)).Select(cells => int.Parse(cells[0]));
        Assert.Equal(Enumerable.Range(0, workers), tableIds.Order());

        cluster.Signal(ProcessInfo.SIGTERM);
        Assert.Equal(0, await cluster.WaitForExitAsync(TimeSpan.FromMinutes(2)));
        Assert.True(await ProcessInfo.WaitUntilGoneAsync(cluster.WorkerPids, TimeSpan.FromSeconds(30)), "a worker outlived its supervisor");
    }

    // Workers that never join: cheap, and kept (long ready timeout) while the test looks at them.
    private ClusterRun StartSleepers(int workers, IDictionary<string, string>? environment = null, params string[] extraArguments)
        => ClusterRun.Start(output, ["--workers", $"{workers}", "--ready-timeout", "600", .. extraArguments, "--", "sleep", "600"], environment, appendSampleCommand: false);

    private static async Task<string> ExpectSuccessAsync(Task<(int ExitCode, string Stdout, string Stderr)> cli)
    {
        var (exitCode, stdout, stderr) = await cli;
        Assert.True(exitCode == 0, $"exit {exitCode}: {stderr}");
        Assert.Equal("", stderr);
        return stdout;
    }

    private static ClusterRun.ListedCluster Parse(string json) => JsonSerializer.Deserialize<ClusterRun.ListedCluster>(json, Web)!;
}
