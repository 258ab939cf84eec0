using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.DataProtection.KeyManagement;
using Microsoft.AspNetCore.DataProtection.Repositories;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace KestrelCluster.Transport;

// One data protection key ring for every worker of the cluster, in the folder the supervisor gives
// (KESTREL_CLUSTER_DATA_PROTECTION_KEYS). Without it each worker finds its keys under $HOME, or, with no writable
// home, keeps its own keys in memory: a form or cookie made by one worker is refused by the others.
// Only when the app chose no key repository of its own: PersistKeysTo... always wins.
internal sealed class ClusterKeyRing(string folder, IServiceProvider services, IHostEnvironment environment, ILoggerFactory loggerFactory)
    : IPostConfigureOptions<KeyManagementOptions>, IPostConfigureOptions<DataProtectionOptions>
{
    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    public string Folder => folder;

    /// <summary>Whether the app's key ring is this one (known once the app's key management options are built).</summary>
    public bool InUse => services.GetRequiredService<IOptions<KeyManagementOptions>>().Value.XmlRepository is ClusterRepository;

    public void PostConfigure(string? name, KeyManagementOptions options)
    {
        if (options.XmlRepository is not null)
        {
            return;
        }

        // The supervisor made it (0700); made here only for a supervisor that gave the path without making it.
        if (!OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(folder, OwnerOnly);
        }

        options.XmlRepository = new ClusterRepository(new DirectoryInfo(folder), loggerFactory);
    }

    // The default application name is the content root path, and a rolling reload of a symlink deploy (or
    // anything that starts the next generation from another folder) changes it: the new workers would share the
    // keys yet refuse every payload and antiforgery cookie the old ones made. The folder is this cluster's alone,
    // so the app's name isolates nothing here; a stable one keeps payloads valid across generations. An app that
    // named itself (SetApplicationName) keeps its name, and one with its own repository keeps the default, as
    // that repository may be shared with other apps the discriminator keeps apart.
    public void PostConfigure(string? name, DataProtectionOptions options)
    {
        var isDefault = options.ApplicationDiscriminator is null
            || options.ApplicationDiscriminator.TrimEnd('/') == environment.ContentRootPath.TrimEnd('/');
        if (isDefault && InUse)
        {
            options.ApplicationDiscriminator = environment.ApplicationName;
        }
    }

    // Marks the repository as the cluster's (an app's own may be a FileSystemXmlRepository too).
    private sealed class ClusterRepository(DirectoryInfo directory, ILoggerFactory loggerFactory) : FileSystemXmlRepository(directory, loggerFactory);
}

// Workers start together, and each would create a first key of its own when it finds none: the first worker to
// take the folder's lock creates the key, the others then read it. Before the server starts, so a worker is ready
// only with the cluster's key ring in hand.
internal sealed class ClusterKeyRingStartup(ClusterKeyRing keyRing, IServiceProvider services, ILogger<ClusterKeyRingStartup> logger) : IHostedService
{
    private static readonly TimeSpan LockTimeout = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan LockRetry = TimeSpan.FromMilliseconds(20);

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        // No data protection in this app (no antiforgery, no cookies), or keys of its own: nothing to share.
        if (services.GetService<IDataProtectionProvider>() is not { } provider || !keyRing.InUse)
        {
            return;
        }

        using (await LockAsync(cancellationToken).ConfigureAwait(false))
        {
            // Reads the folder, and creates and stores the first key if there is none.
            provider.CreateProtector("KestrelCluster.KeyRing").Protect([]);
        }

        ClusterTransportLog.KeysShared(logger, keyRing.Folder);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    // flock(2) through FileShare.None: released by the kernel if a worker dies holding it.
    private async Task<IDisposable?> LockAsync(CancellationToken cancellationToken)
    {
        var path = Path.Combine(keyRing.Folder, ".lock");
        var deadline = DateTime.UtcNow + LockTimeout;
        while (true)
        {
            try
            {
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(LockRetry, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // Held too long, or unusable: go on without it (at worst, two first keys).
                ClusterTransportLog.KeyRingLockFailed(logger, path, ex.Message);
                return null;
            }
        }
    }
}
