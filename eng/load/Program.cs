using System.Globalization;
using KestrelCluster.Load;

// dotnet run --project eng/load -- <url> [seconds] [keep-alive clients] [new-connection clients]
// Bounded load on a loopback URL; prints sent/answered/failed and exits 1 if any request failed.
if (args.Length is 0 or > 4 || !Uri.TryCreate(args[0], UriKind.Absolute, out var target))
{
    Console.Error.WriteLine("usage: load <http://127.0.0.1:port/> [seconds=20] [keep-alive clients=16] [new-connection clients=16]");
    return 2;
}

int Arg(int index, int fallback) => args.Length > index ? int.Parse(args[index], CultureInfo.InvariantCulture) : fallback;
var result = await LoadRunner.RunAsync(target, Arg(2, 16), Arg(3, 16), TimeSpan.FromSeconds(Arg(1, 20)));
Console.WriteLine(result);
return result.Failed == 0 ? 0 : 1;
