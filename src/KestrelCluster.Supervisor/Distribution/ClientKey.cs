using System.Buffers.Binary;
using KestrelCluster.Interop;

namespace KestrelCluster.Supervisor.Distribution;

// The sticky key of an accepted connection: a hash of the client's IP address (not its port), read with
// getpeername on the fd. 0 means "no address" (Unix sockets, a peer already gone): round-robin then.
internal static class ClientKey
{
    public static unsafe ulong Of(int fd)
    {
        var address = stackalloc byte[Libc.SockAddrStorageSize];
        uint length = Libc.SockAddrStorageSize;
        if (Libc.GetPeerName(fd, address, &length) != 0)
        {
            return 0;
        }

        var family = *(ushort*)address;
        if (family == Libc.AF_INET && length >= 8)
        {
            // sockaddr_in: sin_addr at +4.
            return Hash(new ReadOnlySpan<byte>(address + 4, 4));
        }

        if (family == Libc.AF_INET6 && length >= 24)
        {
            // sockaddr_in6: sin6_addr at +8. An IPv4-mapped address (dual-mode listener) hashes as its IPv4 form.
            var ip = new ReadOnlySpan<byte>(address + 8, 16);
            return IsV4Mapped(ip) ? Hash(ip[12..]) : Hash(ip);
        }

        return 0;
    }

    public static ulong Hash(ReadOnlySpan<byte> address)
    {
        // FNV-1a, then a finalizer so neighbouring addresses (127.0.0.1, 127.0.0.2) land far apart.
        var hash = 14695981039346656037UL;
        foreach (var b in address)
        {
            hash = (hash ^ b) * 1099511628211UL;
        }

        hash = Mix(hash);
        return hash == 0 ? 1 : hash;
    }

    // Rendezvous (highest random weight) hashing: every worker gets a score for the key and the highest
    // wins, so removing a worker moves only the keys it had, and adding one takes only the keys it wins.
    public static ulong Score(ulong key, int workerId) => Mix(key ^ (0x9E3779B97F4A7C15UL * (ulong)(workerId + 1)));

    private static bool IsV4Mapped(ReadOnlySpan<byte> ip)
        => BinaryPrimitives.ReadUInt64LittleEndian(ip) == 0 && ip[8] == 0 && ip[9] == 0 && ip[10] == 0xff && ip[11] == 0xff;

    // splitmix64's finalizer.
    private static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
