using System.Runtime.InteropServices;

namespace KestrelCluster.Interop;

internal static partial class Libc
{
    internal const int AF_INET = 2;
    internal const int AF_INET6 = 10;

    // struct sockaddr_storage is 128 bytes.
    internal const int SockAddrStorageSize = 128;

    [LibraryImport(LibraryName, EntryPoint = "getpeername", SetLastError = true)]
    internal static unsafe partial int GetPeerName(int socket, byte* address, uint* addressLength);
}
