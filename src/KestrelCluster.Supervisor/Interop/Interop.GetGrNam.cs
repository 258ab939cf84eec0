using System.Runtime.InteropServices;

namespace KestrelCluster.Interop;

internal static partial class Libc
{
    // struct group *: gr_name, gr_passwd (pointers), then gid_t gr_gid at +16 on 64-bit Linux (glibc and musl).
    [LibraryImport(LibraryName, EntryPoint = "getgrnam", StringMarshalling = StringMarshalling.Utf8)]
    private static partial nint GetGrNam(string name);

    /// <summary>The gid of a group name (through NSS, as `getent group` sees it), or null when there is no such group.</summary>
    internal static uint? GroupIdOf(string name)
    {
        var entry = GetGrNam(name);
        return entry == 0 ? null : (uint)Marshal.ReadInt32(entry, 2 * IntPtr.Size);
    }
}
