using System.Runtime.InteropServices;

namespace KestrelCluster.Interop;

// Linux libc calls that .NET has no managed API for (fd passing: dotnet/runtime#932).
// One function per file, errno read in one place (Errno.Last), nothing public.
internal static unsafe partial class Libc
{
    private const string LibraryName = "libc";

    internal const int SOL_SOCKET = 1;
    internal const int SCM_RIGHTS = 1;
    internal const int SO_PEERCRED = 17;
    internal const int SO_PEERGROUPS = 59;
    internal const int NGROUPS_MAX = 65536;

    internal const int MSG_CTRUNC = 0x8;
    internal const int MSG_TRUNC = 0x20;
    internal const int MSG_DONTWAIT = 0x40;
    internal const int MSG_NOSIGNAL = 0x4000;
    internal const int MSG_CMSG_CLOEXEC = 0x40000000;

    internal const int SOCK_CLOEXEC = 0x80000;
    internal const int SHUT_RDWR = 2;

    [StructLayout(LayoutKind.Sequential)]
    internal struct IoVec
    {
        public void* Base;
        public nuint Length;
    }

    // struct msghdr: the sequential layout gives 56 bytes on 64-bit Linux (x86_64 and arm64).
    [StructLayout(LayoutKind.Sequential)]
    internal struct MessageHeader
    {
        public void* Name;
        public uint NameLength;
        public IoVec* Iov;
        public nuint IovLength;
        public void* Control;
        public nuint ControlLength;
        public int Flags;
    }

    // struct cmsghdr: 16 bytes, data follows at +16.
    [StructLayout(LayoutKind.Sequential)]
    internal struct ControlMessageHeader
    {
        public nuint Length;
        public int Level;
        public int Type;
    }

    internal static int ControlMessageLength(int dataLength) => sizeof(ControlMessageHeader) + dataLength;

    internal static int ControlMessageSpace(int dataLength) => sizeof(ControlMessageHeader) + ((dataLength + 7) & ~7);

    // Puts fds in one SCM_RIGHTS control message of `header`; `control` holds ControlMessageSpace(fds × 4) bytes.
    internal static void AttachRights(MessageHeader* header, byte* control, ReadOnlySpan<int> fds)
    {
        var controlLength = ControlMessageSpace(fds.Length * sizeof(int));
        new Span<byte>(control, controlLength).Clear();
        var cmsg = (ControlMessageHeader*)control;
        cmsg->Length = (nuint)ControlMessageLength(fds.Length * sizeof(int));
        cmsg->Level = SOL_SOCKET;
        cmsg->Type = SCM_RIGHTS;
        fds.CopyTo(new Span<int>(control + sizeof(ControlMessageHeader), fds.Length));
        header->Control = control;
        header->ControlLength = (nuint)controlLength;
    }
}
