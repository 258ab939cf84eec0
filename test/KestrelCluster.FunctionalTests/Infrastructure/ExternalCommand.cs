using System.Diagnostics;

namespace KestrelCluster.Tests.Infrastructure;

/// <summary>Runs a program to its end with its output captured, bounded in time.</summary>
internal static class ExternalCommand
{
    /// <summary>
    /// The environment for a nested `dotnet` build, publish or pack: none of the MSBuild variables the test host
    /// inherits from `dotnet test`, and no build servers or nodes left running after it.
    /// </summary>
    public static Dictionary<string, string?> NestedDotnetEnvironment()
    {
        var environment = Environment.GetEnvironmentVariables().Keys.Cast<string>()
            .Where(k => k.StartsWith("MSBuild", StringComparison.OrdinalIgnoreCase))
            .ToDictionary(k => k, string? (_) => null);
        environment["MSBUILDDISABLENODEREUSE"] = "1";
        environment["DOTNET_CLI_USE_MSBUILD_SERVER"] = "0";
        environment["UseSharedCompilation"] = "false";
        environment["DOTNET_NOLOGO"] = "1";
        environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        return environment;
    }

    /// <summary>
    /// environment: variables to set, or to remove where the value is null. On timeout the program and its
    /// children are killed and a TimeoutException names the command.
    /// </summary>
    public static async Task<(int ExitCode, string Stdout, string Stderr)> RunAsync(
        string fileName, IEnumerable<string> arguments, TimeSpan timeout, IDictionary<string, string?>? environment = null, string? workingDirectory = null)
    {
        var startInfo = new ProcessStartInfo(fileName)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        if (workingDirectory is not null)
        {
            startInfo.WorkingDirectory = workingDirectory;
        }

        foreach (var argument in arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        foreach (var (name, value) in environment ?? new Dictionary<string, string?>())
        {
            if (value is null)
            {
                startInfo.Environment.Remove(name);
            }
            else
            {
                startInfo.Environment[name] = value;
            }
        }

        using var process = Process.Start(startInfo)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        try
        {
            await process.WaitForExitAsync().WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{fileName} {string.Join(' ', startInfo.ArgumentList)} did not finish within {timeout.TotalSeconds} s");
        }

        return (process.ExitCode, await stdout, await stderr);
    }
}
