using System.Globalization;
using KestrelCluster.Interop;
using KestrelCluster.Supervisor.Runtime;

namespace KestrelCluster.Supervisor.Control;

// Finds the control socket the CLI talks to. An ordinary user looks in their own runtime folder. With --user,
// or as root, it also looks where another user's supervisor keeps its folders: /run/user/<uid>/kestrel-cluster
// (a login session), $TMPDIR/kestrel-cluster-<uid> (a service without XDG_RUNTIME_DIR) and
// /run/<dir>/kestrel-cluster (a systemd unit's RuntimeDirectory= given as XDG_RUNTIME_DIR). Folders left by a
// supervisor that is gone are passed over.
internal static class ClusterLocator
{
    // Owner: the uid the folders belong to, where the path says it.
    private readonly record struct Root(string Path, uint? Owner);

    private readonly record struct Cluster(string Folder, uint? Owner);

    /// <summary>The control socket of the named cluster, or of the only one running when no name is given.</summary>
    public static string FindControlSocket(string? clusterName, uint? user)
    {
        var self = Libc.GetEffectiveUserId();
        var roots = Roots(self, user);
        var running = new List<Cluster>();
        var gone = new List<string>();
        var closed = new List<string>();
        foreach (var root in roots)
        {
            string[] folders;
            try
            {
                folders = clusterName is null ? Directory.GetDirectories(root.Path) : [Path.Combine(root.Path, clusterName)];
            }
            catch (UnauthorizedAccessException)
            {
                // Only where the cluster asked for may be: not every other user's folder this one cannot list.
                if (root.Owner == (user ?? self))
                {
                    closed.Add(root.Path);
                }

                continue;
            }
            catch (IOException)
            {
                // not there (or not a folder)
                continue;
            }

            foreach (var folder in folders)
            {
                if (!File.Exists(Path.Combine(folder, RuntimeDirectory.ControlSocketName)))
                {
                    if (clusterName is not null && Directory.Exists(folder) && !CanEnter(folder))
                    {
                        closed.Add(folder);
                    }

                    continue;
                }

                var (isGone, owner) = RuntimeDirectory.ReadSupervisor(folder);
                owner ??= root.Owner;
                if (user is { } wanted && owner is { } actual && actual != wanted)
                {
                    continue;
                }

                if (isGone)
                {
                    gone.Add(folder);
                }
                else
                {
                    running.Add(new Cluster(folder, owner));
                }
            }
        }

        var what = clusterName is null ? "cluster is" : $"cluster named '{clusterName}' is";
        switch (running.Count)
        {
            case 1:
                return Path.Combine(running[0].Folder, RuntimeDirectory.ControlSocketName);
            case 0 when closed.Count > 0:
                throw new ControlRequestException($"no {what} running that uid {self} may reach: {string.Join(", ", closed)} {(closed.Count == 1 ? "is" : "are")} closed to it "
                    + (clusterName is null ? "(name the cluster with -n)." : "(run this as root, as the cluster's user, or as a member of its --control-group)."));
            case 0 when gone.Count > 0:
                throw new ControlRequestException($"no {what} running ({string.Join(", ", gone)} {(gone.Count == 1 ? "was" : "were")} left by a supervisor that is gone).");
            case 0:
                var looked = roots.Where(r => Directory.Exists(r.Path)).Select(r => r.Path).DefaultIfEmpty(roots[0].Path);
                throw new ControlRequestException($"no {what} running (looked in {string.Join(", ", looked)}).");
        }

        var found = string.Join(", ", running.Select(r => $"'{Path.GetFileName(r.Folder)}' of uid {r.Owner?.ToString(CultureInfo.InvariantCulture) ?? "?"} in {Path.GetDirectoryName(r.Folder)}"));
        throw clusterName is null
            ? new ControlRequestException($"{running.Count} clusters are running ({found}); name one with -n.")
            : new ControlRequestException($"{running.Count} clusters named '{clusterName}' are running ({found}); choose one with --user.");
    }

    private static List<Root> Roots(uint self, uint? user)
    {
        List<Root> roots = user is null || user == self ? [new(RuntimeDirectory.RootFor(self), self)] : [];
        if ((user is null && self != 0) || user == self)
        {
            return roots;
        }

        if (user is { } uid)
        {
            roots.Add(new($"/run/user/{uid.ToString(CultureInfo.InvariantCulture)}/kestrel-cluster", uid));
            roots.Add(new(RuntimeDirectory.TempRootFor(uid), uid));
        }
        else
        {
            roots.AddRange(FoldersByUid("/run/user", "").Select(r => r with { Path = Path.Combine(r.Path, "kestrel-cluster") }));
            roots.AddRange(FoldersByUid(Path.GetTempPath(), RuntimeDirectory.TempRootPrefix));
        }

        roots.AddRange(ListDirectories("/run").Where(d => d != "/run/user").Select(d => new Root(Path.Combine(d, "kestrel-cluster"), null)));
        return [.. roots.DistinctBy(r => Path.TrimEndingDirectorySeparator(r.Path))];
    }

    // The folders <parent>/<prefix><uid>, with their uid.
    private static IEnumerable<Root> FoldersByUid(string parent, string prefix)
    {
        foreach (var folder in ListDirectories(parent))
        {
            var name = Path.GetFileName(folder);
            if (name.StartsWith(prefix, StringComparison.Ordinal)
                && uint.TryParse(name.AsSpan(prefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out var uid))
            {
                yield return new Root(folder, uid);
            }
        }
    }

    private static string[] ListDirectories(string parent)
    {
        try
        {
            return Directory.GetDirectories(parent);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }

    private static bool CanEnter(string folder)
    {
        try
        {
            _ = Directory.GetFileSystemEntries(folder);
            return true;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }
}
