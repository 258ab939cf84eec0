using System.Runtime.InteropServices;

namespace KestrelCluster.Interop;

internal static partial class Libc
{
    internal const int RLIMIT_NOFILE = 7;

    [StructLayout(LayoutKind.Sequential)]
    internal struct ResourceLimit
    {
        public ulong Current;
        public ulong Maximum;
    }

    [LibraryImport(LibraryName, EntryPoint = "getrlimit", SetLastError = true)]
    internal static partial int GetRLimit(int resource, out ResourceLimit limit);
}
