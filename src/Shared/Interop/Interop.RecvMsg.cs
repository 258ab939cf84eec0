using System.Runtime.InteropServices;

namespace KestrelCluster.Interop;

internal static unsafe partial class Libc
{
    [LibraryImport(LibraryName, EntryPoint = "recvmsg", SetLastError = true)]
    internal static partial nint RecvMsg(nint socket, MessageHeader* message, int flags);
}
