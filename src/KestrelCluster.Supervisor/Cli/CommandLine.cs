using System.Globalization;
using KestrelCluster.Interop;
using KestrelCluster.Supervisor.Distribution;

namespace KestrelCluster.Supervisor.Cli;

internal abstract record ParsedCommand;

internal sealed record HelpCommand(string Text) : ParsedCommand;

internal sealed record VersionCommand : ParsedCommand;

internal sealed record RunCommand(RunOptions Options) : ParsedCommand;

// list, reload, scale, stop: sent to a running cluster over its control socket.
// Owner: the uid the cluster runs as (--user), when it is not the caller's.
// To, Arguments: upgrade's --to and the `run` arguments after '--'.
internal sealed record ControlVerb(string Verb, string? Name, int? Workers = null, bool Json = false, string? Target = null, string? Payload = null, uint? Owner = null, string? To = null, IReadOnlyList<string>? Arguments = null) : ParsedCommand;

// Parses the kestrel-cluster command line. Every mistake is one CommandLineException with a message
// that names the offending word, so the user sees a single clear line.
internal static class CommandLine
{
    public const string Usage = """
        Usage: kestrel-cluster <command> [options]

        Commands:
          run [options] [--project <path>] [-- <command> [args...]]
                                  run an ASP.NET Core app as N workers behind one port

        Options for run:
          --project <path>        a .csproj or its folder: published (Release) into a folder per generation that
                                  its workers run from; reload publishes again first (a failed build refuses it)
          -- <command> [args]     or any command that starts the app (e.g. -- dotnet MyApp.dll)
                                  with neither, the project in the current folder
          --cwd <path>            the command's working folder, resolved again at each worker start
                                  (default: the current folder as $PWD names it, symlinks kept)
          -w, --workers <N|max>   number of worker processes (default: processor count)
          -n, --name <name>       cluster name (default: the app's name)
          --urls <urls>           endpoints for the workers, ';'-separated (sets ASPNETCORE_URLS)
          --balance <mode>        round-robin (default), least-connections, sticky (client address)
                                  or shared (each worker accepts on its own listening socket)
          --affinity <mode>       auto (default): on once a worker serves SignalR or Blazor Server, whose
                                  requests then go to the worker their first request's cookie names; on; off
          --accept-threads <N>    supervisor threads accepting on each TCP endpoint, each on its own
                                  SO_REUSEPORT socket (default: 1 per 4 cores, 1 to 8; not with shared)
          --kill-timeout <s>      drain time before a worker is killed (default 30)
          --ready-timeout <s>     time a new worker has to become ready (default 30)
          --heartbeat-timeout <s> replace a worker silent this long, e.g. a starved thread pool (default 30; 0: off)
          --max-memory <size>     replace a worker whose memory passes this, e.g. 512M (new one ready first)
          --admin-urls <urls>     serve /healthz, /readyz and /metrics here, e.g. http://127.0.0.1:9090
          --control-group <group> members of this group (name or gid) may use list, reload, scale, stop, send too
                                  (the cluster's folder becomes 0750 and its control socket 0660, owned by that group)

          Each option can also come from KESTREL_CLUSTER_<OPTION> (e.g. KESTREL_CLUSTER_KILL_TIMEOUT=10)
          or from kestrel-cluster.json next to the app ({ "workers": 4, "killTimeout": 10 }); the command
          line wins, then the environment, then the file.

          list   [-n name] [--json]   one row per worker: id, pid, generation, state, uptime, restarts,
                                      open and total connections
          reload [-n name]            rolling, zero-downtime: each worker replaced once its successor is ready;
                                      during a reload, another one is queued and runs as one more pass
          scale  <N> [-n name]        run N workers (scaling down drains the extra ones)
          stop   [-n name]            drain every worker and exit
          send   <id|all> <json> [-n name]  deliver a JSON message to one worker or all (IClusterWorker)
          upgrade [-n name] [--to <path>] [-- <run options>]
                                      replace the supervisor itself (the one now on disk, or --to) without
                                      closing a port: it gets the listening sockets, starts its workers and
                                      takes over once they are ready; then this one drains and exits. Without
                                      run options it runs with the current ones. Also SIGUSR2. Refused as PID 1
                                      (-n may be left out while only one cluster runs)
          --user <user|uid>           with any of these: the cluster's user when it is not yours (a unit's User=);
                                      root also finds other users' clusters without it

          -h, --help              show this help
          --version               show the version
        """;

    public const int MaxWorkers = 1024;

    public static ParsedCommand Parse(IReadOnlyList<string> args)
    {
        if (args.Count == 0)
        {
            throw new CommandLineException("no command given. Try 'kestrel-cluster run --help'.");
        }

        return args[0] switch
        {
            "-h" or "--help" or "help" => new HelpCommand(Usage),
            "--version" => new VersionCommand(),
            "run" => ParseRun(args.Skip(1).ToList()),
            "list" or "reload" or "scale" or "stop" or "send" or "upgrade" => ParseControl(args[0], args.Skip(1).ToList()),
            var other when other.StartsWith('-') => throw new CommandLineException($"unknown option '{other}'. Try 'kestrel-cluster --help'."),
            var other => throw new CommandLineException($"unknown command '{other}'. Try 'kestrel-cluster --help'."),
        };
    }

    private static ParsedCommand ParseRun(List<string> args)
    {
        var options = new RunOptions();
        for (var i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            if (arg == "--")
            {
                options.Command = args[(i + 1)..];
                if (options.Command.Count == 0)
                {
                    throw new CommandLineException("'--' must be followed by the command that starts the app.");
                }

                break;
            }

            string name = arg;
            string? inlineValue = null;
            var equals = arg.IndexOf('=');
            if (arg.StartsWith("--", StringComparison.Ordinal) && equals > 2)
            {
                name = arg[..equals];
                inlineValue = arg[(equals + 1)..];
            }

            string Value()
            {
                if (inlineValue is not null)
                {
                    return inlineValue;
                }

                if (i + 1 >= args.Count || args[i + 1] == "--")
                {
                    throw new CommandLineException($"option '{name}' needs a value.");
                }

                return args[++i];
            }

            if (name is "-h" or "--help")
            {
                return new HelpCommand(Usage);
            }

            var setting = RunSettings.FindOption(name);
            if (setting is null)
            {
                throw arg.StartsWith('-')
                    ? new CommandLineException($"unknown option '{arg}' for 'run'. Try 'kestrel-cluster run --help'.")
                    : new CommandLineException($"unexpected argument '{arg}'. To give the app's command, put it after '--'.");
            }

            var value = Value();
            if (setting.Option == "project" && value.Length == 0)
            {
                throw new CommandLineException($"option '{name}' needs a value.");
            }

            setting.Apply(options, value);
            options.ExplicitSettings.Add(setting.Option);
        }

        if (options.Project is not null && options.Command.Count > 0)
        {
            throw new CommandLineException("give either --project or a command after '--', not both.");
        }

        return new RunCommand(options);
    }

    private static ParsedCommand ParseControl(string verb, List<string> args)
    {
        string? name = null;
        uint? owner = null;
        int? workers = null;
        var json = false;
        string? to = null;
        IReadOnlyList<string>? arguments = null;
        var positional = new List<string>();
        for (var i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            switch (arg)
            {
                case "-h" or "--help":
                    return new HelpCommand(Usage);
                case "-n" or "--name":
                    name = i + 1 < args.Count ? ParseName(args[++i]) : throw new CommandLineException($"option '{arg}' needs a value.");
                    break;
                case "--user":
                    owner = i + 1 < args.Count ? ParseUser(args[++i]) : throw new CommandLineException($"option '{arg}' needs a value.");
                    break;
                case "--json" when verb == "list":
                    json = true;
                    break;
                case "--to" when verb == "upgrade":
                    // Resolved here: the supervisor's working folder is not the caller's.
                    to = i + 1 < args.Count && args[i + 1].Length > 0 ? Path.GetFullPath(args[++i]) : throw new CommandLineException($"option '{arg}' needs a value.");
                    break;
                case "--" when verb == "upgrade":
                    arguments = args[(i + 1)..];
                    i = args.Count;
                    break;
                default:
                    if (verb == "scale" && workers is null && !arg.StartsWith('-'))
                    {
                        workers = ParseWorkers(arg);
                        break;
                    }

                    // send <id|all> <json>: the JSON may well start with '-' (a number) or '[': take two positionals.
                    if (verb == "send" && positional.Count < 2 && (positional.Count == 1 || !arg.StartsWith('-')))
                    {
                        positional.Add(arg);
                        break;
                    }

                    throw arg.StartsWith('-')
                        ? new CommandLineException($"unknown option '{arg}' for '{verb}'. Try 'kestrel-cluster --help'.")
                        : new CommandLineException($"unexpected argument '{arg}' for '{verb}'.");
            }
        }

        if (verb == "scale" && workers is null)
        {
            throw new CommandLineException("scale needs the number of workers, e.g. 'kestrel-cluster scale 4'.");
        }

        if (verb == "send")
        {
            if (positional.Count < 2)
            {
                throw new CommandLineException("send needs a target and a JSON message, e.g. kestrel-cluster send all '{\"invalidate\":\"*\"}'.");
            }

            if (positional[0] != "all" && !int.TryParse(positional[0], NumberStyles.None, CultureInfo.InvariantCulture, out _))
            {
                throw new CommandLineException($"send: the target must be a worker id or 'all'; got '{positional[0]}'.");
            }

            try
            {
                using var document = System.Text.Json.JsonDocument.Parse(positional[1]);
            }
            catch (System.Text.Json.JsonException ex)
            {
                throw new CommandLineException($"send: the message is not valid JSON ({ex.Message}).");
            }

            return new ControlVerb(verb, name, Target: positional[0], Payload: positional[1], Owner: owner);
        }

        return new ControlVerb(verb, name, workers, json, Owner: owner, To: to, Arguments: arguments);
    }

    internal static int ParseWorkers(string value)
    {
        if (value == "max")
        {
            return Environment.ProcessorCount;
        }

        if (!int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var workers) || workers < 1 || workers > MaxWorkers)
        {
            throw new CommandLineException($"--workers must be a whole number from 1 to {MaxWorkers}, or 'max'; got '{value}'.");
        }

        return workers;
    }

    internal static int ParseAcceptThreads(string value)
    {
        if (!int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var threads) || threads < 1 || threads > Accept.AcceptThreadCount.Max)
        {
            throw new CommandLineException($"--accept-threads must be a whole number from 1 to {Accept.AcceptThreadCount.Max}; got '{value}'.");
        }

        return threads;
    }

    internal static TimeSpan ParseSeconds(string name, string value, bool allowZero)
    {
        if (!double.TryParse(value, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var seconds)
            || double.IsNaN(seconds) || seconds > 86_400 || seconds < 0 || (!allowZero && seconds == 0))
        {
            var range = allowZero ? "0 or more" : "more than 0";
            throw new CommandLineException($"{name} must be a number of seconds, {range} (at most 86400); got '{value}'.");
        }

        return TimeSpan.FromSeconds(seconds);
    }

    internal static string ParseName(string value)
    {
        if (value.Length is 0 or > 64 || value is "." or ".." || !value.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))
        {
            throw new CommandLineException($"--name must be 1 to 64 letters, digits, '-', '_' or '.'; got '{value}'.");
        }

        return value;
    }

    /// <summary>A user name or uid, e.g. for `--user www-data`.</summary>
    internal static uint ParseUser(string value)
    {
        if (uint.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var uid))
        {
            return uid;
        }

        return (value.Length > 0 ? Libc.UserIdOf(value) : null) ?? throw new CommandLineException($"--user: no user named '{value}'.");
    }

    /// <summary>A group name or gid, e.g. for `--control-group ops`.</summary>
    internal static uint ParseGroup(string value)
    {
        if (uint.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var gid))
        {
            return gid;
        }

        return (value.Length > 0 ? Libc.GroupIdOf(value) : null) ?? throw new CommandLineException($"--control-group: no group named '{value}'.");
    }

    internal static string ParseUrls(string value, string name)
    {
        var urls = value.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (urls.Length == 0)
        {
            throw new CommandLineException($"{name} needs at least one URL, e.g. http://127.0.0.1:5000.");
        }

        foreach (var url in urls)
        {
            if (!url.StartsWith("http://", StringComparison.OrdinalIgnoreCase) && !url.StartsWith("https://", StringComparison.OrdinalIgnoreCase))
            {
                throw new CommandLineException($"{name}: '{url}' is not an http:// or https:// URL.");
            }
        }

        return string.Join(';', urls);
    }

    internal static AffinityMode ParseAffinity(string value) => value switch
    {
        "auto" => AffinityMode.Auto,
        "on" => AffinityMode.On,
        "off" => AffinityMode.Off,
        _ => throw new CommandLineException($"--affinity must be one of auto, on, off; got '{value}'."),
    };

    internal static BalanceMode ParseBalance(string value) => value switch
    {
        "round-robin" => BalanceMode.RoundRobin,
        "least-connections" => BalanceMode.LeastConnections,
        "sticky" => BalanceMode.Sticky,
        "shared" => BalanceMode.Shared,
        _ => throw new CommandLineException($"--balance must be one of round-robin, least-connections, sticky, shared; got '{value}'."),
    };

}
