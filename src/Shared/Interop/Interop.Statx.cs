using System.Runtime.InteropServices;

namespace KestrelCluster.Interop;

internal static unsafe partial class Libc
{
    private const int AT_FDCWD = -100;
    private const uint STATX_INO = 0x100;

    // struct statx has one layout on every architecture (256 bytes): stx_ino at +32, stx_dev_major/minor at +136/+140.
    [LibraryImport(LibraryName, EntryPoint = "statx", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int StatxCore(int directoryFd, string path, int flags, uint mask, byte* buffer);

    /// <summary>The (device, inode) pair that names a file, symlinks followed; false if it cannot be read.</summary>
    internal static bool TryGetFileId(string path, out (ulong Device, ulong Inode) id)
    {
        id = default;
        var buffer = stackalloc byte[256];
        try
        {
            if (StatxCore(AT_FDCWD, path, 0, STATX_INO, buffer) != 0)
            {
                return false;
            }
        }
        catch (EntryPointNotFoundException)
        {
            // a libc older than statx (glibc 2.28, musl 1.2.5)
            return false;
        }

        id = (((ulong)*(uint*)(buffer + 136) << 32) | *(uint*)(buffer + 140), *(ulong*)(buffer + 32));
        return true;
    }
}
