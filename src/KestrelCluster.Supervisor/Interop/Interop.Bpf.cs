using System.Runtime.InteropServices;

namespace KestrelCluster.Interop;

internal static unsafe partial class Libc
{
    internal const int SO_REUSEPORT = 15;
    internal const int SO_ATTACH_REUSEPORT_CBPF = 51;
    internal const int SO_ATTACH_REUSEPORT_EBPF = 52;

    internal const int BPF_MAP_CREATE = 0;
    internal const int BPF_PROG_LOAD = 5;

    // No libc wrapper for bpf(2); the syscall number differs per architecture.
    private static long SysBpf => RuntimeInformation.ProcessArchitecture switch
    {
        Architecture.X64 => 321,
        Architecture.Arm64 => 280,
        _ => -1,
    };

    [LibraryImport(LibraryName, EntryPoint = "syscall", SetLastError = true)]
    private static partial long Syscall(long number, long command, void* attributes, long size);

    /// <summary>bpf(2): a new fd, or -1 with errno (ENOSYS on an architecture we do not know).</summary>
    internal static int Bpf(int command, void* attributes, int size)
    {
        if (SysBpf < 0)
        {
            Marshal.SetLastPInvokeError(38);
            return -1;
        }

        return (int)Syscall(SysBpf, command, attributes, size);
    }
}
