using System.Net.Sockets;
using KestrelCluster.Protocol;

namespace KestrelCluster.Supervisor.Accept;

internal readonly record struct BindOutcome(ClusterListener? Listener, SocketError Error, string Message);

// Binds each endpoint the app asks for once, and hands every worker that asks again the same listener,
// so port 0 means one random port shared by all workers (Node's cluster model).
internal sealed class ListenerRegistry : IDisposable
{
    // Workers track bound listeners in a 64-bit mask.
    public const int MaxListeners = 64;

    private readonly Lock _lock = new();
    private readonly Dictionary<string, ClusterListener> _byRequest = new(StringComparer.Ordinal);
    private readonly List<ClusterListener> _listeners = [];
    private readonly AcceptedHandler _onAccepted;
    private readonly Action<ClusterListener, int> _onAcceptError;
    private readonly bool _workersAccept;
    private readonly int _acceptThreads;
    private bool _stopped;

    // workersAccept: --balance shared, the workers accept on the listening sockets themselves; onAccepted then only
    // takes what a retired slot's socket still held. acceptThreads: per TCP endpoint the supervisor binds and accepts on.
    public ListenerRegistry(AcceptedHandler onAccepted, Action<ClusterListener, int> onAcceptError, bool workersAccept = false, int acceptThreads = 1)
    {
        _onAccepted = onAccepted;
        _onAcceptError = onAcceptError;
        _workersAccept = workersAccept;
        _acceptThreads = workersAccept ? 1 : acceptThreads;
    }

    public IReadOnlyList<ClusterListener> Snapshot()
    {
        lock (_lock)
        {
            return [.. _listeners];
        }
    }

    /// <summary>
    /// Takes listening sockets passed in for one endpoint (socket activation, fd store, upgrade; one accept thread each):
    /// a worker asking for its address, or for <paramref name="requested"/>, gets it. A <paramref name="released"/> one
    /// accepts only after <see cref="Claim"/>.
    /// </summary>
    public ClusterListener Adopt(IReadOnlyList<System.Net.Sockets.Socket> sockets, string? requested = null, bool released = false)
    {
        lock (_lock)
        {
            var listener = ClusterListener.Adopt(_listeners.Count, sockets, requested, released);
            _listeners.Add(listener);
            _byRequest[listener.Requested] = listener;
            if (!_workersAccept && !released)
            {
                listener.Start(_onAccepted, _onAcceptError);
            }

            return listener;
        }
    }

    /// <summary>Upgrade, new supervisor: the old one has stopped accepting (or is about to); accept on every listener.</summary>
    public void Claim()
    {
        lock (_lock)
        {
            foreach (var listener in _listeners)
            {
                listener.Claim();
                if (!_workersAccept && !listener.IsAccepting && !_stopped)
                {
                    listener.Start(_onAccepted, _onAcceptError);
                }
            }
        }
    }

    /// <summary>Upgrade, old supervisor: stop accepting but keep every socket listening for the new one.</summary>
    public void Release()
    {
        List<ClusterListener> listeners;
        lock (_lock)
        {
            _stopped = true;
            listeners = [.. _listeners];
        }

        foreach (var listener in listeners)
        {
            listener.Release();
        }
    }

    public BindOutcome GetOrBind(string requested, out bool created)
    {
        created = false;
        if (!EndpointText.TryParse(requested, out var endPoint))
        {
            return new BindOutcome(null, SocketError.InvalidArgument, $"'{requested}' is not an endpoint the cluster can listen on");
        }

        lock (_lock)
        {
            if (_stopped)
            {
                return new BindOutcome(null, SocketError.Shutdown, "the cluster is stopping");
            }

            if (_byRequest.TryGetValue(requested, out var existing))
            {
                return new BindOutcome(existing, SocketError.Success, existing.BoundText);
            }

            if (_listeners.Count >= MaxListeners)
            {
                return new BindOutcome(null, SocketError.TooManyOpenSockets, $"the cluster serves at most {MaxListeners} endpoints");
            }

            ClusterListener listener;
            try
            {
                listener = ClusterListener.Bind(_listeners.Count, requested, endPoint, socketPerSlot: _workersAccept, acceptThreads: _acceptThreads);
            }
            catch (SocketException ex)
            {
                return new BindOutcome(null, ex.SocketErrorCode, $"cannot listen on {Display(endPoint)}: {Describe(ex.SocketErrorCode, ex.Message)}");
            }

            _listeners.Add(listener);
            _byRequest[requested] = listener;
            created = true;
            if (!_workersAccept)
            {
                listener.Start(_onAccepted, _onAcceptError);
            }

            return new BindOutcome(listener, SocketError.Success, listener.BoundText);
        }
    }

    /// <summary>--balance shared: the slot is scaled away; its sockets' queued connections go to the other workers.</summary>
    public void RetireSlot(int slot)
    {
        foreach (var listener in Snapshot())
        {
            listener.RetireSlot(slot, _onAccepted);
        }
    }

    /// <summary>--balance shared: a retired slot's worker has exited.</summary>
    public void SlotGone(int slot)
    {
        foreach (var listener in Snapshot())
        {
            listener.SlotGone(slot);
        }
    }

    public void StopAccepting()
    {
        List<ClusterListener> listeners;
        lock (_lock)
        {
            _stopped = true;
            listeners = [.. _listeners];
        }

        foreach (var listener in listeners)
        {
            listener.Stop();
        }
    }

    public void Dispose()
    {
        StopAccepting();
        foreach (var listener in Snapshot())
        {
            listener.Dispose();
        }
    }

    private static string Display(System.Net.EndPoint endPoint) => endPoint is UnixDomainSocketEndPoint ? $"unix:{endPoint}" : endPoint.ToString()!;

    private static string Describe(SocketError error, string message) => error switch
    {
        SocketError.AddressAlreadyInUse => "address already in use",
        SocketError.AccessDenied => "permission denied",
        SocketError.AddressNotAvailable => "address not available on this machine",
        _ => message,
    };
}
