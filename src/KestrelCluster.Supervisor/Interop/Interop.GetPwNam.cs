using System.Runtime.InteropServices;

namespace KestrelCluster.Interop;

internal static partial class Libc
{
    // struct passwd *: pw_name, pw_passwd (pointers), then uid_t pw_uid at +16 on 64-bit Linux (glibc and musl).
    [LibraryImport(LibraryName, EntryPoint = "getpwnam", StringMarshalling = StringMarshalling.Utf8)]
    private static partial nint GetPwNam(string name);

    /// <summary>The uid of a user name (through NSS, as `id -u` sees it), or null when there is no such user.</summary>
    internal static uint? UserIdOf(string name)
    {
        var entry = GetPwNam(name);
        return entry == 0 ? null : (uint)Marshal.ReadInt32(entry, 2 * IntPtr.Size);
    }
}
