using System.Reflection;
using System.Runtime.InteropServices;
using System.Text.Json;
using KestrelCluster.Interop;
using KestrelCluster.Supervisor.Cli;
using KestrelCluster.Supervisor.Control;
using KestrelCluster.Supervisor.Hosting;
using KestrelCluster.Supervisor.Logging;
using KestrelCluster.Supervisor.Output;
using KestrelCluster.Supervisor.Runtime;
using KestrelCluster.Supervisor.Upgrade;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;

namespace KestrelCluster.Supervisor;

internal static class Program
{
    private const int UsageError = 2;
    private const int RunFailed = 1;
    // Raw signal numbers are allowed by PosixSignalRegistration; SIGUSR2 has no named PosixSignal.
    private const PosixSignal Sigusr2 = (PosixSignal)12;

    public static async Task<int> Main(string[] args)
    {
        UpgradeHandover? handover;
        try
        {
            handover = await UpgradeHandover.ConnectFromEnvironmentAsync().ConfigureAwait(false);
        }
        catch (IOException ex)
        {
            return Error(ex.Message, RunFailed);
        }

        if (handover is null)
        {
            return await MainAsync(args, null).ConfigureAwait(false);
        }

        // Started by `kestrel-cluster upgrade`: whatever makes this run fail is the reason the upgrade reports.
        var errors = new LastErrorWriter(Console.Error);
        Console.SetError(errors);
        using (handover)
        {
            var exitCode = await MainAsync(args, handover).ConfigureAwait(false);
            if (exitCode != 0)
            {
                handover.SendFailed(errors.LastError ?? $"the new supervisor exited with code {exitCode}");
            }

            return exitCode;
        }
    }

    private static async Task<int> MainAsync(string[] args, UpgradeHandover? handover)
    {
        ParsedCommand command;
        try
        {
            command = CommandLine.Parse(args);
        }
        catch (CommandLineException ex)
        {
            return Error(ex.Message, UsageError);
        }

        switch (command)
        {
            case HelpCommand help:
                Console.Out.WriteLine(help.Text);
                return 0;
            case VersionCommand:
                Console.Out.WriteLine(typeof(Program).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown");
                return 0;
            case RunCommand run:
                return await RunAsync(run.Options, handover).ConfigureAwait(false);
            case ControlVerb verb:
                return await ControlAsync(verb).ConfigureAwait(false);
            default:
                return Error("unsupported command.", UsageError);
        }
    }

    private static async Task<int> RunAsync(RunOptions options, UpgradeHandover? handover)
    {
        if (!OperatingSystem.IsLinux())
        {
            return Error("kestrel-cluster runs on Linux only (it passes sockets with SCM_RIGHTS).", RunFailed);
        }

        SupervisorProcessSettings.Apply();
        // Our log and the workers' lines go through one non-blocking writer: a stdout nobody reads must not stall the supervisor.
        using var stdout = new LineOutput(Console.OpenStandardOutput());
        Console.SetOut(stdout);
        using var loggerFactory = LoggerFactory.Create(logging => logging
            .SetMinimumLevel(LogLevel.Information)
            .AddConsole(console => console.QueueFullMode = ConsoleLoggerQueueFullMode.DropWrite)
            .AddSimpleConsole(console =>
            {
                console.SingleLine = true;
                console.IncludeScopes = false;
                console.ColorBehavior = LoggerColorBehavior.Disabled;
            }));
        var outputLogger = loggerFactory.CreateLogger("kestrel-cluster");
        stdout.OnDropped(count => SupervisorLog.OutputDropped(outputLogger, count));

        using var stopping = new CancellationTokenSource();
        ClusterHost? host = null;
        void OnSignal(PosixSignalContext context)
        {
            context.Cancel = true;
            if (host is null)
            {
                stopping.Cancel();
            }
            else
            {
                host.RequestStop(context.Signal.ToString());
            }
        }

        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
        using var sighup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, context =>
        {
            context.Cancel = true;
            host?.RequestReload("SIGHUP");
        });
        // nginx's and unicorn's signal for a binary upgrade.
        using var sigusr2 = PosixSignalRegistration.Create(Sigusr2, context =>
        {
            context.Cancel = true;
            host?.RequestUpgrade("SIGUSR2");
        });

        try
        {
            RunSettings.ApplyLayers(options, Environment.GetEnvironmentVariable, AppFolder(options));
            host = await ClusterHost.StartAsync(options, loggerFactory, stdout, Console.Error, stopping.Token, handover: handover).ConfigureAwait(false);
        }
        catch (Exception ex) when (ClusterHost.IsRefusedStart(ex))
        {
            // The cluster never started: exit 2, for bad input and these alike.
            return Error(ex.Message, UsageError);
        }
        catch (OperationCanceledException)
        {
            return Error("cancelled.", RunFailed);
        }

        await using (host.ConfigureAwait(false))
        {
            return await host.Completion.ConfigureAwait(false);
        }
    }

    private static async Task<int> ControlAsync(ControlVerb verb)
    {
        var timeout = verb.Verb == ControlCommands.List ? TimeSpan.FromSeconds(30) : TimeSpan.FromMinutes(10);
        ControlResponse response;
        try
        {
            response = await ControlClient.SendAsync(verb.Name, verb.Owner, new ControlRequest(verb.Verb, verb.Workers, verb.Target, verb.Payload, verb.To, verb.Arguments), timeout).ConfigureAwait(false);
        }
        catch (ControlRequestException ex)
        {
            return Error(ex.Message, RunFailed);
        }

        if (!response.Ok)
        {
            return Error(response.Message, RunFailed);
        }

        if (verb.Verb == ControlCommands.Stop && response.Supervisor is { Pid: var pid } && !await ExitedAsync(pid, StopExitLimit).ConfigureAwait(false))
        {
            return Error($"the cluster stopped its workers, but the supervisor (pid {pid}) is still running after {StopExitLimit.TotalSeconds} s", RunFailed);
        }

        if (verb.Verb != ControlCommands.List)
        {
            Console.Out.WriteLine(response.Message);
        }
        else if (verb.Json)
        {
            Console.Out.WriteLine(JsonSerializer.Serialize(new ListOutput(response.Supervisor, response.Workers ?? []), ControlJson.Default.ListOutput));
        }
        else
        {
            Console.Out.Write(WorkerTable.Format(response.Supervisor, response.Workers ?? []));
        }

        return 0;
    }

    // The supervisor answers `stop` just before it exits; "stopped" is printed once it has.
    private static readonly TimeSpan StopExitLimit = TimeSpan.FromSeconds(30);

    private static async Task<bool> ExitedAsync(int pid, TimeSpan limit)
    {
        var started = ProcStat.Read(pid)?.StartTime;
        var deadline = Environment.TickCount64 + (long)limit.TotalMilliseconds;
        while (ProcStat.Read(pid) is { IsRunning: true } stat && stat.StartTime == started)
        {
            if (Environment.TickCount64 > deadline)
            {
                return false;
            }

            await Task.Delay(20).ConfigureAwait(false);
        }

        return true;
    }

    // kestrel-cluster.json is read from the app's folder: the --project folder, else the current one.
    private static string AppFolder(RunOptions options)
    {
        if (options.Project is null)
        {
            return Directory.GetCurrentDirectory();
        }

        var project = Path.GetFullPath(options.Project);
        return Directory.Exists(project) ? project : Path.GetDirectoryName(project) ?? Directory.GetCurrentDirectory();
    }

    private static int Error(string message, int exitCode)
    {
        Console.Error.WriteLine($"kestrel-cluster: error: {message}");
        return exitCode;
    }
}
