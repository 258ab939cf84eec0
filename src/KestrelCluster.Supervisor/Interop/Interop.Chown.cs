using System.Runtime.InteropServices;

namespace KestrelCluster.Interop;

internal static partial class Libc
{
    /// <summary>Leaves an id unchanged when given as this value ((uid_t)-1).</summary>
    internal const uint Unchanged = uint.MaxValue;

    [LibraryImport(LibraryName, EntryPoint = "chown", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    internal static partial int Chown(string path, uint owner, uint group);
}
