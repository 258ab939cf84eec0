namespace KestrelCluster.Tests.Infrastructure;

/// <summary>
/// An identity a test switches to with setpriv (the test runs as root, as CI does). The uids need no
/// account: setpriv takes numbers, and dotnet runs with HOME=/tmp.
/// </summary>
public sealed record UnixUser(int Uid, int Gid, params int[] Groups)
{
    public static readonly UnixUser Nobody = new(65534, 65534);

    public IReadOnlyList<string> SetprivPrefix =>
    [
        "setpriv", $"--reuid={Uid}", $"--regid={Gid}",
        Groups.Length == 0 ? "--clear-groups" : $"--groups={string.Join(',', Groups)}",
    ];

    public static void AssertRoot() =>
        Assert.True(Environment.UserName == "root", "this test switches to other uids with setpriv and must run as root (CI does)");
}

/// <summary>Where a supervisor run as another user keeps its runtime folder, as a systemd service would.</summary>
public enum ServiceLayout
{
    /// <summary>No XDG_RUNTIME_DIR (a system unit's default): $TMPDIR/kestrel-cluster-&lt;uid&gt;.</summary>
    NoRuntimeDirectory,

    /// <summary>RuntimeDirectory=x with XDG_RUNTIME_DIR=/run/x, as in samples/deploy/systemd: /run/x/kestrel-cluster.</summary>
    SystemdRuntimeDirectory,
}
