using System.Globalization;
using System.Text.RegularExpressions;
using KestrelCluster.Load;

// dotnet run --project eng/load -- <url> [seconds] [keep-alive clients] [new-connection clients]
//   Bounded load on a loopback URL; prints sent/answered/failed and exits 1 if any request failed.
// dotnet run --project eng/load -- chaos <url> <supervisor log> [seconds] [kill interval s] [keep-alive] [new-connection]
//   The same load while a random ready worker (read from the supervisor's log) is SIGKILLed every interval;
//   exits 1 if any failure is not explained by a kill (see Chaos.Account).
if (args.Length > 0 && args[0] == "chaos")
{
    if (args.Length is < 3 or > 7 || !Uri.TryCreate(args[1], UriKind.Absolute, out var chaosTarget))
    {
        Console.Error.WriteLine("usage: load chaos <http://127.0.0.1:port/> <supervisor log> [seconds=60] [kill interval s=2] [keep-alive clients=16] [new-connection clients=16]");
        return 2;
    }

    int ChaosArg(int index, int fallback) => args.Length > index ? int.Parse(args[index], CultureInfo.InvariantCulture) : fallback;
    var log = args[2];
    var duration = TimeSpan.FromSeconds(ChaosArg(3, 60));
    var load = LoadRunner.RunAsync(chaosTarget, ChaosArg(5, 16), ChaosArg(6, 16), duration);
    var (kills, skipped) = await Chaos.KillWorkersAsync(() => ReadyWorkers(log), pid => Kill(pid), TimeSpan.FromSeconds(ChaosArg(4, 2)), duration, log: Console.WriteLine);
    var report = Chaos.Account(await load, kills, skipped);
    Console.WriteLine(report);
    return report.Unexplained.Count == 0 ? 0 : 1;
}

// dotnet run --project eng/load -- churn <port> <connections> [concurrency]
//   Short connections to 127.0.0.1:port (connect, one request, close); exits 1 if any failed.
if (args.Length > 0 && args[0] == "churn")
{
    var churn = await ConnectionChurn.RunAsync(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, int.Parse(args[1], CultureInfo.InvariantCulture)), long.Parse(args[2], CultureInfo.InvariantCulture), args.Length > 3 ? int.Parse(args[3], CultureInfo.InvariantCulture) : 16);
    Console.WriteLine(churn);
    return churn.Failed == 0 ? 0 : 1;
}

if (args.Length is 0 or > 4 || !Uri.TryCreate(args[0], UriKind.Absolute, out var target))
{
    Console.Error.WriteLine("usage: load <http://127.0.0.1:port/> [seconds=20] [keep-alive clients=16] [new-connection clients=16]");
    return 2;
}

int Arg(int index, int fallback) => args.Length > index ? int.Parse(args[index], CultureInfo.InvariantCulture) : fallback;
var result = await LoadRunner.RunAsync(target, Arg(2, 16), Arg(3, 16), TimeSpan.FromSeconds(Arg(1, 20)));
Console.WriteLine(result);
return result.Failed == 0 ? 0 : 1;

// Workers the supervisor reported ready that are still running (a zombie is not).
static IReadOnlyList<int> ReadyWorkers(string log)
{
    string text;
    using (var stream = new FileStream(log, FileMode.Open, FileAccess.Read, FileShare.ReadWrite))
    using (var reader = new StreamReader(stream))
    {
        text = reader.ReadToEnd();
    }

    return [.. Regex.Matches(text, @"Worker \d+ ready \(pid (\d+)").Select(m => int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)).Distinct().Where(IsAlive)];
}

static bool IsAlive(int pid)
{
    try
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        return stat[(stat.LastIndexOf(')') + 2)..][0] is not ('Z' or 'X');
    }
    catch (IOException)
    {
        return false;
    }
}

static void Kill(int pid) => _ = NativeMethods.kill(pid, 9);

internal static partial class NativeMethods
{
    [System.Runtime.InteropServices.LibraryImport("libc", SetLastError = true)]
    internal static partial int kill(int pid, int signal);
}
