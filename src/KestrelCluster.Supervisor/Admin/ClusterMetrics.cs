using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;
using KestrelCluster.Supervisor.Accept;
using KestrelCluster.Supervisor.Distribution;

namespace KestrelCluster.Supervisor.Admin;

/// <summary>A worker as the metrics see it: published by the supervisor loop once a tick.</summary>
internal sealed record WorkerMetrics(int Id, int Pid, int Generation, string State, int OpenConnections, long Accepted, int Restarts);

// The supervisor's instruments, on the meter "KestrelCluster" (dotnet-counters, OpenTelemetry) and as
// Prometheus text for /metrics. Counters are read from the dispatcher, which counts under its own lock.
internal sealed class ClusterMetrics : IDisposable
{
    public const string MeterName = "KestrelCluster";

    // Handoff latency buckets (seconds): accept → the worker's acknowledgement.
    private static readonly double[] Buckets = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5];

    private readonly Meter _meter = new(MeterName);
    private readonly Dispatcher _dispatcher;
    private readonly Histogram<double> _handoff;
    private readonly long[] _bucketCounts = new long[Buckets.Length + 1];
    private long _handoffCount;
    private long _handoffTicks;
    private long _acceptedBySupervisor;
    private long _restarts;
    private volatile IReadOnlyList<WorkerMetrics> _workers = [];

    public ClusterMetrics(Dispatcher dispatcher)
    {
        _dispatcher = dispatcher;
        _meter.CreateObservableCounter("kestrel_cluster.connections.accepted", () => Volatile.Read(ref _acceptedBySupervisor), "{connection}", "Connections accepted by the supervisor");
        _meter.CreateObservableCounter("kestrel_cluster.accept_thread.connections", AcceptedPerThread, "{connection}", "Connections each supervisor accept thread took");
        _meter.CreateObservableCounter("kestrel_cluster.connections.dispatched", () => _dispatcher.Dispatched, "{connection}", "Connections passed to a worker");
        _meter.CreateObservableCounter("kestrel_cluster.connections.redispatched", () => _dispatcher.Redispatched, "{connection}", "Connections passed again after a refusal or a lost worker");
        _meter.CreateObservableCounter("kestrel_cluster.connections.refused", () => _dispatcher.Refused, "{connection}", "Connections a worker refused (it was draining)");
        _meter.CreateObservableCounter("kestrel_cluster.workers.restarts", () => Volatile.Read(ref _restarts), "{restart}", "Worker restarts after a crash");
        _meter.CreateObservableGauge("kestrel_cluster.workers", WorkersByState, "{worker}", "Workers by state");
        _meter.CreateObservableGauge("kestrel_cluster.worker.open_connections", OpenConnections, "{connection}", "Open connections per worker");
        _handoff = _meter.CreateHistogram<double>("kestrel_cluster.handoff.duration", "s", "From accept to the worker's acknowledgement");
        dispatcher.HandoffCompleted = RecordHandoff;
    }

    /// <summary>The endpoints, for each accept thread's count.</summary>
    public Func<IReadOnlyList<ClusterListener>> Listeners { get; set; } = () => [];

    public void ConnectionsAccepted(int count) => Interlocked.Add(ref _acceptedBySupervisor, count);

    public void WorkerRestarted() => Interlocked.Increment(ref _restarts);

    public void Publish(IReadOnlyList<WorkerMetrics> workers) => _workers = workers;

    private void RecordHandoff(long acceptedTimestamp)
    {
        var elapsed = Stopwatch.GetElapsedTime(acceptedTimestamp);
        var seconds = elapsed.TotalSeconds;
        // A plain loop: a lambda capturing `seconds` would allocate on every handoff.
        var bucket = 0;
        while (bucket < Buckets.Length && seconds > Buckets[bucket])
        {
            bucket++;
        }

        Interlocked.Increment(ref _bucketCounts[bucket]);
        Interlocked.Increment(ref _handoffCount);
        Interlocked.Add(ref _handoffTicks, elapsed.Ticks);
        _handoff.Record(seconds);
    }

    // Only the endpoints the supervisor accepts on (not --balance shared, where the workers do).
    private IEnumerable<(string EndPoint, int Thread, long Accepted)> AcceptThreads()
        => Listeners().Where(l => l.IsAccepting || l.AcceptedBy(0) > 0)
            .SelectMany(l => Enumerable.Range(0, l.AcceptThreads).Select(i => (l.BoundText, i, l.AcceptedBy(i))));

    private IEnumerable<Measurement<long>> AcceptedPerThread()
        => AcceptThreads().Select(t => new Measurement<long>(t.Accepted, new KeyValuePair<string, object?>("endpoint", t.EndPoint), new KeyValuePair<string, object?>("thread", t.Thread)));

    private IEnumerable<Measurement<int>> WorkersByState()
        => _workers.GroupBy(w => w.State).Select(g => new Measurement<int>(g.Count(), new KeyValuePair<string, object?>("state", g.Key)));

    private IEnumerable<Measurement<int>> OpenConnections()
        => _workers.Select(w => new Measurement<int>(w.OpenConnections, new KeyValuePair<string, object?>("worker.id", w.Id), new KeyValuePair<string, object?>("worker.pid", w.Pid)));

    /// <summary>Prometheus text exposition format 0.0.4.</summary>
    public string ToPrometheusText(int generation)
    {
        var text = new StringBuilder();
        Counter(text, "kestrel_cluster_connections_accepted_total", "Connections accepted by the supervisor.", Volatile.Read(ref _acceptedBySupervisor));
        text.Append("# HELP kestrel_cluster_accept_thread_connections_total Connections each supervisor accept thread took.\n# TYPE kestrel_cluster_accept_thread_connections_total counter\n");
        foreach (var (endPoint, thread, accepted) in AcceptThreads())
        {
            text.Append(CultureInfo.InvariantCulture, $"kestrel_cluster_accept_thread_connections_total{{endpoint=\"{Escape(endPoint)}\",thread=\"{thread}\"}} {accepted}\n");
        }

        Counter(text, "kestrel_cluster_connections_dispatched_total", "Connections passed to a worker.", _dispatcher.Dispatched);
        Counter(text, "kestrel_cluster_connections_redispatched_total", "Connections passed again after a refusal or a lost worker.", _dispatcher.Redispatched);
        Counter(text, "kestrel_cluster_connections_refused_total", "Connections a worker refused because it was draining.", _dispatcher.Refused);
        Counter(text, "kestrel_cluster_connections_expired_total", "Connections closed after waiting too long for a ready worker.", _dispatcher.Expired);
        Counter(text, "kestrel_cluster_worker_restarts_total", "Worker restarts after a crash.", Volatile.Read(ref _restarts));

        text.Append("# HELP kestrel_cluster_handoff_duration_seconds From accept to the worker's acknowledgement.\n# TYPE kestrel_cluster_handoff_duration_seconds histogram\n");
        long cumulative = 0;
        for (var i = 0; i < Buckets.Length; i++)
        {
            cumulative += Volatile.Read(ref _bucketCounts[i]);
            text.Append(CultureInfo.InvariantCulture, $"kestrel_cluster_handoff_duration_seconds_bucket{{le=\"{Buckets[i].ToString(CultureInfo.InvariantCulture)}\"}} {cumulative}\n");
        }

        var count = Volatile.Read(ref _handoffCount);
        text.Append(CultureInfo.InvariantCulture, $"kestrel_cluster_handoff_duration_seconds_bucket{{le=\"+Inf\"}} {count}\n");
        text.Append(CultureInfo.InvariantCulture, $"kestrel_cluster_handoff_duration_seconds_sum {TimeSpan.FromTicks(Volatile.Read(ref _handoffTicks)).TotalSeconds.ToString("0.#########", CultureInfo.InvariantCulture)}\n");
        text.Append(CultureInfo.InvariantCulture, $"kestrel_cluster_handoff_duration_seconds_count {count}\n");

        var workers = _workers;
        text.Append("# HELP kestrel_cluster_workers Workers by state.\n# TYPE kestrel_cluster_workers gauge\n");
        foreach (var state in new[] { "pending", "starting", "failing", "ready", "draining" })
        {
            text.Append(CultureInfo.InvariantCulture, $"kestrel_cluster_workers{{state=\"{state}\"}} {workers.Count(w => w.State == state)}\n");
        }

        text.Append("# HELP kestrel_cluster_worker_open_connections Open connections per worker.\n# TYPE kestrel_cluster_worker_open_connections gauge\n");
        foreach (var worker in workers)
        {
            text.Append(CultureInfo.InvariantCulture, $"kestrel_cluster_worker_open_connections{{worker=\"{worker.Id}\",pid=\"{worker.Pid}\",generation=\"{worker.Generation}\"}} {worker.OpenConnections}\n");
        }

        text.Append("# HELP kestrel_cluster_worker_connections_total Connections a worker accepted.\n# TYPE kestrel_cluster_worker_connections_total counter\n");
        foreach (var worker in workers)
        {
            text.Append(CultureInfo.InvariantCulture, $"kestrel_cluster_worker_connections_total{{worker=\"{worker.Id}\",pid=\"{worker.Pid}\",generation=\"{worker.Generation}\"}} {worker.Accepted}\n");
        }

        text.Append(CultureInfo.InvariantCulture, $"# HELP kestrel_cluster_generation The generation new workers start with.\n# TYPE kestrel_cluster_generation gauge\nkestrel_cluster_generation {generation}\n");
        return text.ToString();
    }

    // Prometheus label values: backslash, quote and newline escaped (a Unix socket path may hold any of them).
    private static string Escape(string value) => value.Replace("\\", "\\\\").Replace("\"", "\\\"").Replace("\n", "\\n");

    private static void Counter(StringBuilder text, string name, string help, long value)
        => text.Append(CultureInfo.InvariantCulture, $"# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n");

    public void Dispose() => _meter.Dispose();
}
