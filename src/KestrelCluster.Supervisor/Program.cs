using System.Reflection;
using System.Runtime.InteropServices;
using KestrelCluster.Supervisor.Cli;
using KestrelCluster.Supervisor.Hosting;
using KestrelCluster.Supervisor.Workers;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;

namespace KestrelCluster.Supervisor;

internal static class Program
{
    private const int UsageError = 2;
    private const int RunFailed = 1;

    public static async Task<int> Main(string[] args)
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
                return await RunAsync(run.Options).ConfigureAwait(false);
            default:
                return Error("unsupported command.", UsageError);
        }
    }

    private static async Task<int> RunAsync(RunOptions options)
    {
        if (!OperatingSystem.IsLinux())
        {
            return Error("kestrel-cluster runs on Linux only (it passes sockets with SCM_RIGHTS).", RunFailed);
        }

        using var loggerFactory = LoggerFactory.Create(logging => logging
            .SetMinimumLevel(LogLevel.Information)
            .AddSimpleConsole(console =>
            {
                console.SingleLine = true;
                console.IncludeScopes = false;
                console.ColorBehavior = LoggerColorBehavior.Disabled;
            }));
        var logger = loggerFactory.CreateLogger("kestrel-cluster");

        using var stopping = new CancellationTokenSource();
        ClusterSupervisor? supervisor = null;
        void OnSignal(PosixSignalContext context)
        {
            context.Cancel = true;
            if (supervisor is null)
            {
                stopping.Cancel();
            }
            else
            {
                supervisor.RequestStop(context.Signal.ToString());
            }
        }

        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);

        WorkerCommand workerCommand;
        RuntimeDirectory runtimeDirectory;
        try
        {
            workerCommand = await WorkerCommand.ResolveAsync(options, Console.Error, stopping.Token).ConfigureAwait(false);
            runtimeDirectory = RuntimeDirectory.Create(options.Name ?? SafeName(workerCommand.AppName));
        }
        catch (CommandLineException ex)
        {
            return Error(ex.Message, UsageError);
        }
        catch (OperationCanceledException)
        {
            return Error("cancelled.", RunFailed);
        }

        using (runtimeDirectory)
        {
            using (supervisor = new ClusterSupervisor(options, workerCommand, runtimeDirectory, logger, Console.Out, Console.Error))
            {
                if (stopping.IsCancellationRequested)
                {
                    return Error("cancelled.", RunFailed);
                }

                return await supervisor.RunAsync(stopping.Token).ConfigureAwait(false);
            }
        }
    }

    private static string SafeName(string appName)
    {
        var name = new string(appName.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '-').ToArray());
        return name.Length is > 0 and <= 64 ? name : "app";
    }

    private static int Error(string message, int exitCode)
    {
        Console.Error.WriteLine($"kestrel-cluster: error: {message}");
        return exitCode;
    }
}
