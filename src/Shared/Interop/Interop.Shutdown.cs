using System.Runtime.InteropServices;

namespace KestrelCluster.Interop;

internal static partial class Libc
{
    [LibraryImport(LibraryName, EntryPoint = "shutdown", SetLastError = true)]
    internal static partial int Shutdown(nint socket, int how);
}
