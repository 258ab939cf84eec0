using System.Net;
using System.Net.Sockets;
using KestrelCluster.Interop;
using KestrelCluster.Protocol;

namespace KestrelCluster.Supervisor.Accept;

// --balance shared on TCP: one SO_REUSEPORT listening socket per worker slot, all created and kept open here, so
// each worker accepts on its own queue and the steering program (ReusePortSteering) spreads new connections.
// A worker that dies leaves its slot's socket open: connections queue in its backlog until the successor (same
// slot) accepts them. A retired slot's socket first stops getting new connections, then whatever is queued in
// it goes to the other workers through the channel, then it closes: nothing is reset.
//
// The kernel keeps a group's sockets in an array: listen() appends, and the last closing of a socket moves the
// last one into its place. The steering program names array indexes, so that array is mirrored in _kernelOrder and
// the program is attached again whenever it changes.
internal sealed class ReusePortGroup : IDisposable
{
    // A retired socket closes once its worker has exited and nothing arrived for this long (a handshake that
    // began before the steering changed completes into its queue meanwhile).
    private static readonly TimeSpan RetireQuiet = TimeSpan.FromMilliseconds(250);

    private readonly Lock _lock = new();
    private readonly EndPoint _endPoint;
    private readonly Dictionary<int, Socket> _bySlot = [];
    private readonly Dictionary<int, RetiringSocket> _retiring = [];
    private readonly List<Socket> _kernelOrder = [];
    private readonly ReusePortSteering _steering = new();
    private Socket? _unclaimed;
    private volatile bool _disposed;

    public ReusePortGroup(Socket first)
    {
        _endPoint = first.LocalEndPoint!;
        _unclaimed = first;
        _kernelOrder.Add(first);
        lock (_lock)
        {
            SteerLocked();
        }
    }

    public string Steering => _steering.Method;

    public static Socket CreateSocket(EndPoint endPoint) => ListeningSocket.Create(endPoint, reusePort: true);

    /// <summary>The listening socket of a slot (created on its worker's first bind); the worker accepts on it.</summary>
    public nint HandleFor(int slot)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (!_bySlot.TryGetValue(slot, out var socket))
            {
                if (_unclaimed is not null)
                {
                    socket = _unclaimed;
                    _unclaimed = null;
                }
                else
                {
                    try
                    {
                        socket = CreateSocket(_endPoint);
                    }
                    catch (SocketException) when (_bySlot.Count > 0)
                    {
                        // Out of fds, say: this slot shares another slot's queue rather than fail its worker.
                        return _bySlot.Values.First().SafeHandle.DangerousGetHandle();
                    }

                    _kernelOrder.Add(socket);
                }

                _bySlot[slot] = socket;
                SteerLocked();
            }

            return socket.SafeHandle.DangerousGetHandle();
        }
    }

    /// <summary>
    /// Scaling down: no new connection lands in the slot's socket from now on; what is queued in it is taken here
    /// and handed on (to the other workers) until its worker has exited (<see cref="SlotGone"/>); then it closes.
    /// </summary>
    public void Retire(int slot, Action<ReadOnlySpan<int>> handOff)
    {
        RetiringSocket retiring;
        lock (_lock)
        {
            if (_disposed || !_bySlot.Remove(slot, out var socket))
            {
                return;
            }

            retiring = new RetiringSocket(socket);
            _retiring[slot] = retiring;
            SteerLocked();
        }

        new Thread(() => HandOffQueued(slot, retiring, handOff))
        {
            IsBackground = true,
            Name = $"kestrel-cluster retire {slot}",
        }.Start();
    }

    /// <summary>The slot's worker has exited: it holds no copy of the slot's socket any more.</summary>
    public void SlotGone(int slot)
    {
        lock (_lock)
        {
            if (_retiring.TryGetValue(slot, out var retiring))
            {
                retiring.OwnerGone = true;
            }
        }
    }

    private void HandOffQueued(int slot, RetiringSocket retiring, Action<ReadOnlySpan<int>> handOff)
    {
        // Non-blocking (as the worker's accept loop has it already): the retiring worker may take the last one first.
        retiring.Socket.Blocking = false;
        var handle = retiring.Socket.SafeHandle.DangerousGetHandle();
        Span<int> batch = stackalloc int[FrameLimits.MaxFdsPerFrame];
        var lastArrival = Environment.TickCount64;
        while (!_disposed)
        {
            var count = 0;
            while (count < batch.Length)
            {
                var fd = Libc.Accept4(handle, 0, 0, Libc.SOCK_CLOEXEC);
                if (fd < 0)
                {
                    break;
                }

                batch[count++] = fd;
            }

            if (count > 0)
            {
                lastArrival = Environment.TickCount64;
                handOff(batch[..count]);
                continue;
            }

            if (retiring.OwnerGone && Environment.TickCount64 - lastArrival >= RetireQuiet.TotalMilliseconds)
            {
                break;
            }

            var poll = new Libc.PollFd { Fd = (int)handle, Events = Libc.POLLIN };
            _ = Libc.Poll(ref poll, 1, 50);
        }

        lock (_lock)
        {
            if (_retiring.TryGetValue(slot, out var current) && current == retiring)
            {
                _retiring.Remove(slot);
            }

            if (!_disposed)
            {
                CloseLocked(retiring.Socket);
                SteerLocked();
            }
        }
    }

    private void CloseLocked(Socket socket)
    {
        var index = _kernelOrder.IndexOf(socket);
        if (index >= 0)
        {
            // What the kernel does when the socket leaves the group.
            _kernelOrder[index] = _kernelOrder[^1];
            _kernelOrder.RemoveAt(_kernelOrder.Count - 1);
        }

        socket.Dispose();
    }

    // New connections go to the slots' sockets, not to retiring ones (nor to the first socket before a worker claims it,
    // unless it is all there is).
    private void SteerLocked()
    {
        List<Socket> targets = _bySlot.Count > 0 ? [.. _bySlot.Values] : _unclaimed is null ? [] : [_unclaimed];
        Span<int> indexes = stackalloc int[targets.Count];
        var i = 0;
        foreach (var socket in targets.OrderBy(s => _kernelOrder.IndexOf(s)))
        {
            indexes[i++] = _kernelOrder.IndexOf(socket);
        }

        if (i > 0)
        {
            _steering.Attach(targets[0], indexes[..i]);
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            foreach (var socket in _kernelOrder)
            {
                socket.Dispose();
            }

            _kernelOrder.Clear();
            _bySlot.Clear();
            _retiring.Clear();
            _unclaimed = null;
            _steering.Dispose();
        }
    }

    private sealed class RetiringSocket(Socket socket)
    {
        public Socket Socket { get; } = socket;

        public volatile bool OwnerGone;
    }
}
