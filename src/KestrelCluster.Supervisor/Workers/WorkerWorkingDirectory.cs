using KestrelCluster.Interop;
using KestrelCluster.Supervisor.Cli;

namespace KestrelCluster.Supervisor.Workers;

// Where command-mode workers start. The path is kept as the user gave it and handed to each spawn, which
// resolves it again: after a symlink deploy (`current` switched to a new release) and a reload, the new
// workers run in the new release, not in the folder the supervisor itself was started in.
internal static class WorkerWorkingDirectory
{
    /// <summary>--cwd (relative to the current folder) when given, else the current folder as the shell names it.</summary>
    public static string ForCommand(string? option)
    {
        var current = Resolve(Environment.GetEnvironmentVariable("PWD"), Directory.GetCurrentDirectory());
        if (option is null)
        {
            return current;
        }

        // Lexical, as `cd` in a shell: a symlink in the path stays a symlink.
        var path = Path.GetFullPath(option, current);
        return Directory.Exists(path) ? path : throw new CommandLineException($"--cwd: folder not found: {path}");
    }

    /// <summary>
    /// The logical <paramref name="pwd"/> (symlinks kept) when it names the current folder (same device and inode),
    /// as getcwd in a shell does; else <paramref name="physical"/>, the folder with symlinks resolved.
    /// </summary>
    public static string Resolve(string? pwd, string physical)
    {
        if (string.IsNullOrEmpty(pwd) || !Path.IsPathFullyQualified(pwd) || pwd == physical)
        {
            return physical;
        }

        return Libc.TryGetFileId(pwd, out var logical) && Libc.TryGetFileId(physical, out var actual) && logical == actual ? pwd : physical;
    }
}
