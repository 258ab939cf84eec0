using System.Runtime.InteropServices;
using System.Text.Json.Nodes;

namespace KestrelCluster.Tests.Infrastructure;

/// <summary>
/// A symlink deployment as Capistrano-style tools lay it out, in a private temp folder:
/// <c>releases/v1</c>, <c>releases/v2</c>, ... each a copy of the built HelloCluster sample whose
/// appsettings.json sets <c>"Release": "&lt;name&gt;"</c> (the sample's <c>GET /cluster</c> shows it), and a
/// <c>current</c> symlink switched atomically (a new symlink renamed over the old one). Deleted on dispose.
/// </summary>
public sealed partial class SymlinkDeploy : IDisposable
{
    public const string AppDll = "HelloCluster.dll";

    private readonly TemporaryFolder _folder = new();

    // The build each release copies: the sample's, or another app's.
    private readonly string _built;

    private SymlinkDeploy(string built)
    {
        _built = built;
    }

    public string Root => _folder.Path;

    /// <summary>The symlink path users run from: <c>&lt;root&gt;/current</c>.</summary>
    public string Current => Path.Combine(Root, "current");

    public string ReleasePath(string release) => Path.Combine(Root, "releases", release);

    /// <summary>Lays out one release per name (default v1, v2, v3) and points <c>current</c> at the first.</summary>
    public static SymlinkDeploy Create(params string[] releases) => CreateOf(TestPaths.SampleDll, releases);

    /// <summary>The same, with releases that are copies of another app's build (the folder of <paramref name="appDll"/>).</summary>
    public static SymlinkDeploy CreateOf(string appDll, params string[] releases)
    {
        var deploy = new SymlinkDeploy(Path.GetDirectoryName(appDll)!);
        try
        {
            foreach (var release in releases.Length > 0 ? releases : ["v1", "v2", "v3"])
            {
                deploy.AddRelease(release);
            }

            deploy.Switch(releases.Length > 0 ? releases[0] : "v1");
            return deploy;
        }
        catch
        {
            deploy.Dispose();
            throw;
        }
    }

    public void AddRelease(string release)
    {
        var target = ReleasePath(release);
        var built = _built;
        foreach (var file in Directory.EnumerateFiles(built, "*", SearchOption.AllDirectories))
        {
            var copy = Path.Combine(target, Path.GetRelativePath(built, file));
            Directory.CreateDirectory(Path.GetDirectoryName(copy)!);
            File.Copy(file, copy);
        }

        var settingsPath = Path.Combine(target, "appsettings.json");
        var settings = JsonNode.Parse(File.ReadAllText(settingsPath))!.AsObject();
        settings["Release"] = release;
        File.WriteAllText(settingsPath, settings.ToJsonString());
    }

    /// <summary>Points <c>current</c> at the release, atomically: at no moment is there no <c>current</c>.</summary>
    public void Switch(string release)
    {
        if (!Directory.Exists(ReleasePath(release)))
        {
            throw new DirectoryNotFoundException(ReleasePath(release));
        }

        var next = Path.Combine(Root, "current.next");
        File.CreateSymbolicLink(next, Path.Combine("releases", release));
        // File.Move would look through the link; rename(2) replaces the link itself.
        if (rename(next, Current) != 0)
        {
            throw new IOException($"rename {next} → {Current}: errno {Marshal.GetLastPInvokeError()}");
        }
    }

    /// <summary>Deletes a release, as a deploy tool does with old ones.</summary>
    public void Delete(string release) => Directory.Delete(ReleasePath(release), recursive: true);

    public void Dispose() => _folder.Dispose();

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int rename(string oldPath, string newPath);
}
