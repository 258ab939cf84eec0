using System.Runtime.InteropServices;

namespace KestrelCluster.Interop;

internal static partial class Libc
{
    internal const int MSG_PEEK = 0x2;

    [LibraryImport(LibraryName, EntryPoint = "recv", SetLastError = true)]
    internal static unsafe partial nint Recv(int socket, byte* buffer, nuint length, int flags);
}
