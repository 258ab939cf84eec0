using System.Runtime.InteropServices;

namespace KestrelCluster.Interop;

internal static unsafe partial class Libc
{
    [LibraryImport(LibraryName, EntryPoint = "sendmsg", SetLastError = true)]
    internal static partial nint SendMsg(nint socket, MessageHeader* message, int flags);
}
