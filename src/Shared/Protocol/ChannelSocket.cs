using System.Net.Sockets;
using KestrelCluster.Interop;

namespace KestrelCluster.Protocol;

internal enum ReceiveStatus
{
    Frame,
    WouldBlock,
    Closed,
    // truncated data, or more fds than a frame may carry (MSG_TRUNC / MSG_CTRUNC): the peer broke the protocol
    Malformed,
    // The frame arrived whole, but the kernel could not install all of its fds (MSG_CTRUNC with room left in
    // the control buffer: this process is at its fd limit). The fds that did arrive are the frame's first ones.
    // Only a worker can meet this legitimately; whoever expects no fds treats it as a violation.
    FdsTruncated,
}

// A SOCK_SEQPACKET Unix socket carrying frames and passed fds. One message is one frame, and the fds
// of a message arrive with that message only. Sends never block the caller beyond a bounded wait.
internal sealed unsafe class ChannelSocket : IDisposable
{
    private static readonly TimeSpan SendWaitLimit = TimeSpan.FromSeconds(5);

    public ChannelSocket(Socket socket)
    {
        Socket = socket;
    }

    public Socket Socket { get; }

    public static Socket CreateSocket() => new(AddressFamily.Unix, SocketType.Seqpacket, ProtocolType.Unspecified);

    /// <summary>Sends one frame without waiting; returns 0 or the errno (EAGAIN when the peer's queue is full).</summary>
    public int TrySend(ReadOnlySpan<byte> frame, ReadOnlySpan<int> fds = default)
    {
        if (fds.Length > FrameLimits.MaxFdsPerFrame)
        {
            throw new ArgumentOutOfRangeException(nameof(fds));
        }

        var handle = Socket.SafeHandle;
        var addedRef = false;
        try
        {
            handle.DangerousAddRef(ref addedRef);
            var controlLength = fds.IsEmpty ? 0 : Libc.ControlMessageSpace(fds.Length * sizeof(int));
            var control = stackalloc byte[Math.Max(controlLength, 1)];
            fixed (byte* data = frame)
            {
                var iov = new Libc.IoVec { Base = data, Length = (nuint)frame.Length };
                var header = new Libc.MessageHeader { Iov = &iov, IovLength = 1 };
                if (!fds.IsEmpty)
                {
                    Libc.AttachRights(&header, control, fds);
                }

                while (true)
                {
                    var sent = Libc.SendMsg(handle.DangerousGetHandle(), &header, Libc.MSG_DONTWAIT | Libc.MSG_NOSIGNAL);
                    if (sent >= 0)
                    {
                        return 0;
                    }

                    var errno = Errno.Last;
                    if (errno != Errno.EINTR)
                    {
                        return errno;
                    }
                }
            }
        }
        catch (ObjectDisposedException)
        {
            return Errno.EBADF;
        }
        finally
        {
            if (addedRef)
            {
                handle.DangerousRelease();
            }
        }
    }

    /// <summary>Sends one frame, waiting a bounded time for room; throws SocketException when it cannot.</summary>
    public void Send(ReadOnlySpan<byte> frame, ReadOnlySpan<int> fds = default)
    {
        var deadline = Environment.TickCount64 + (long)SendWaitLimit.TotalMilliseconds;
        while (true)
        {
            var errno = TrySend(frame, fds);
            if (errno == 0)
            {
                return;
            }

            var remaining = deadline - Environment.TickCount64;
            if (errno != Errno.EAGAIN || remaining <= 0)
            {
                throw new SocketException((int)Errno.ToSocketError(errno));
            }

            Socket.Poll(TimeSpan.FromMilliseconds(Math.Min(remaining, 100)), SelectMode.SelectWrite);
        }
    }

    /// <summary>Waits until a frame (or end of stream) can be read. Consumes nothing.</summary>
    public ValueTask<int> WaitReadableAsync(CancellationToken cancellationToken)
        => Socket.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None, cancellationToken);

    /// <summary>
    /// Reads one frame without waiting. Received fds are close-on-exec and owned by the caller
    /// (on Malformed they are closed here already; on FdsTruncated the caller owns those that arrived).
    /// </summary>
    public ReceiveStatus TryReceive(Span<byte> buffer, Span<int> fds, out int length, out int fdCount)
    {
        length = 0;
        fdCount = 0;
        var controlLength = Libc.ControlMessageSpace(fds.Length * sizeof(int));
        var control = stackalloc byte[controlLength];
        var handle = Socket.SafeHandle;
        var addedRef = false;
        try
        {
            handle.DangerousAddRef(ref addedRef);
            fixed (byte* data = buffer)
            {
                var iov = new Libc.IoVec { Base = data, Length = (nuint)buffer.Length };
                var header = new Libc.MessageHeader
                {
                    Iov = &iov,
                    IovLength = 1,
                    Control = control,
                    ControlLength = (nuint)controlLength,
                };

                nint received;
                while (true)
                {
                    received = Libc.RecvMsg(handle.DangerousGetHandle(), &header, Libc.MSG_DONTWAIT | Libc.MSG_CMSG_CLOEXEC);
                    if (received >= 0)
                    {
                        break;
                    }

                    var errno = Errno.Last;
                    if (errno == Errno.EINTR)
                    {
                        continue;
                    }

                    return errno == Errno.EAGAIN ? ReceiveStatus.WouldBlock : ReceiveStatus.Closed;
                }

                fdCount = CollectFds(&header, fds);
                var truncated = header.Flags & (Libc.MSG_TRUNC | Libc.MSG_CTRUNC);
                if (truncated == Libc.MSG_CTRUNC && fdCount < fds.Length && received > 0)
                {
                    // The kernel installs a message's fds in order and stops at the fd limit.
                    length = (int)received;
                    return ReceiveStatus.FdsTruncated;
                }

                if (truncated != 0)
                {
                    CloseAll(fds[..fdCount]);
                    fdCount = 0;
                    return ReceiveStatus.Malformed;
                }

                if (received == 0)
                {
                    CloseAll(fds[..fdCount]);
                    fdCount = 0;
                    return ReceiveStatus.Closed;
                }

                length = (int)received;
                return ReceiveStatus.Frame;
            }
        }
        catch (ObjectDisposedException)
        {
            return ReceiveStatus.Closed;
        }
        finally
        {
            if (addedRef)
            {
                handle.DangerousRelease();
            }
        }
    }

    public static void CloseAll(ReadOnlySpan<int> fds)
    {
        foreach (var fd in fds)
        {
            Libc.Close(fd);
        }
    }

    private static int CollectFds(Libc.MessageHeader* header, Span<int> fds)
    {
        var count = 0;
        var offset = 0;
        var control = (byte*)header->Control;
        var controlLength = (int)header->ControlLength;
        while (offset + sizeof(Libc.ControlMessageHeader) <= controlLength)
        {
            var cmsg = (Libc.ControlMessageHeader*)(control + offset);
            var cmsgLength = (int)cmsg->Length;
            if (cmsgLength < sizeof(Libc.ControlMessageHeader))
            {
                break;
            }

            if (cmsg->Level == Libc.SOL_SOCKET && cmsg->Type == Libc.SCM_RIGHTS)
            {
                var n = (cmsgLength - sizeof(Libc.ControlMessageHeader)) / sizeof(int);
                var data = (int*)(control + offset + sizeof(Libc.ControlMessageHeader));
                for (var i = 0; i < n; i++)
                {
                    if (count < fds.Length)
                    {
                        fds[count++] = data[i];
                    }
                    else
                    {
                        Libc.Close(data[i]);
                    }
                }
            }

            offset += (cmsgLength + 7) & ~7;
        }

        return count;
    }

    public void Dispose() => Socket.Dispose();
}

// Outside the unsafe class: an async method cannot be an unsafe context.
internal static class ChannelSocketExtensions
{
    /// <summary>Waits for one frame, or for the end of the stream: never returns WouldBlock. For one-shot exchanges (hello, a control request).</summary>
    public static async ValueTask<(ReceiveStatus Status, int Length, int FdCount)> ReceiveOneAsync(this ChannelSocket socket, byte[] buffer, int[] fds, CancellationToken cancellationToken)
    {
        while (true)
        {
            await socket.WaitReadableAsync(cancellationToken).ConfigureAwait(false);
            var status = socket.TryReceive(buffer, fds, out var length, out var fdCount);
            if (status != ReceiveStatus.WouldBlock)
            {
                return (status, length, fdCount);
            }
        }
    }
}
