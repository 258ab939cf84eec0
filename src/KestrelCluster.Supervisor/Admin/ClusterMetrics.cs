using System.Diagnostics;
using System.Diagnostics.Metrics;
using KestrelCluster.Supervisor.Accept;
using KestrelCluster.Supervisor.Distribution;

namespace KestrelCluster.Supervisor.Admin;

/// <summary>A worker as the metrics see it: published by the supervisor loop once a tick.</summary>
internal sealed record WorkerMetrics(int Id, int Pid, int Generation, string State, int OpenConnections, long Accepted);

// The supervisor's instruments, on the meter "KestrelCluster" (dotnet-counters, OpenTelemetry); /metrics renders the
// same instruments. Names and tags follow OpenTelemetry's semantic conventions (kestrel.* is the model): dotted
// lowercase names under kestrel_cluster, the unit in `unit`, tags under kestrel_cluster.*. Counters are read from the
// dispatcher, which counts under its own lock.
internal sealed class ClusterMetrics : IDisposable
{
    public const string MeterName = "KestrelCluster";

    // Handoff latency buckets (seconds): accept → the worker's acknowledgement. Given as advice, so an OpenTelemetry
    // SDK in the process uses them too.
    private static readonly double[] HandoffBuckets = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5];

    // Every state `list` shows; each is reported, zeros too, so a series does not come and go.
    private static readonly string[] States = ["pending", "starting", "failing", "ready", "draining"];

    private readonly Meter _meter = new(MeterName);
    // Only with --admin-urls: its listener costs every handoff a measurement callback.
    private readonly PrometheusExporter? _exporter;
    private readonly Dispatcher _dispatcher;
    private readonly Histogram<double> _handoff;
    private long _acceptedBySupervisor;
    private long _restarts;
    private volatile IReadOnlyList<WorkerMetrics> _workers = [];

    public ClusterMetrics(Dispatcher dispatcher, bool prometheus = true)
    {
        _dispatcher = dispatcher;
        _meter.CreateObservableCounter("kestrel_cluster.accepted_connections", () => Volatile.Read(ref _acceptedBySupervisor), "{connection}", "Connections accepted by the supervisor");
        _meter.CreateObservableCounter("kestrel_cluster.accept_thread.accepted_connections", AcceptedPerThread, "{connection}", "Connections each supervisor accept thread took");
        _meter.CreateObservableCounter("kestrel_cluster.dispatched_connections", () => _dispatcher.Dispatched, "{connection}", "Connections passed to a worker");
        _meter.CreateObservableCounter("kestrel_cluster.redispatched_connections", () => _dispatcher.Redispatched, "{connection}", "Connections passed again after a refusal or a lost worker");
        _meter.CreateObservableCounter("kestrel_cluster.refused_connections", () => _dispatcher.Refused, "{connection}", "Connections a worker refused because it was draining");
        _meter.CreateObservableCounter("kestrel_cluster.expired_connections", () => _dispatcher.Expired, "{connection}", "Connections closed after waiting too long for a ready worker");
        _meter.CreateObservableCounter("kestrel_cluster.worker.restarts", () => Volatile.Read(ref _restarts), "{restart}", "Worker restarts after a crash");
        _meter.CreateObservableUpDownCounter("kestrel_cluster.worker.count", WorkersByState, "{worker}", "Workers by state");
        _meter.CreateObservableUpDownCounter("kestrel_cluster.worker.active_connections", ActiveConnections, "{connection}", "Open connections per worker");
        _meter.CreateObservableCounter("kestrel_cluster.worker.accepted_connections", AcceptedPerWorker, "{connection}", "Connections a worker accepted");
        _meter.CreateObservableGauge("kestrel_cluster.generation", () => Generation(), "{generation}", "The generation new workers start with");
        _handoff = _meter.CreateHistogram("kestrel_cluster.handoff.duration", "s", "From accept to the worker's acknowledgement", tags: null, new InstrumentAdvice<double> { HistogramBucketBoundaries = HandoffBuckets });
        _exporter = prometheus ? new PrometheusExporter(_meter) : null;
        dispatcher.HandoffCompleted = RecordHandoff;
    }

    /// <summary>The endpoints, for each accept thread's count.</summary>
    public Func<IReadOnlyList<ClusterListener>> Listeners { get; set; } = () => [];

    /// <summary>The meter the instruments are on: a listener can tell this instance's from another's of the same name.</summary>
    public Meter Meter => _meter;

    /// <summary>The generation new workers start with.</summary>
    public Func<int> Generation { get; set; } = () => 1;

    public void ConnectionsAccepted(int count) => Interlocked.Add(ref _acceptedBySupervisor, count);

    public void WorkerRestarted() => Interlocked.Increment(ref _restarts);

    public void Publish(IReadOnlyList<WorkerMetrics> workers) => _workers = workers;

    /// <summary>Prometheus text exposition format 0.0.4, read from the instruments above.</summary>
    public string ToPrometheusText() => (_exporter ?? throw new InvalidOperationException("metrics were created without Prometheus export")).Scrape();

    private void RecordHandoff(long acceptedTimestamp) => _handoff.Record(Stopwatch.GetElapsedTime(acceptedTimestamp).TotalSeconds);

    // Only the endpoints the supervisor accepts on (not --balance shared, where the workers do).
    private IEnumerable<Measurement<long>> AcceptedPerThread()
        => Listeners().Where(l => l.IsAccepting || l.AcceptedBy(0) > 0)
            .SelectMany(l => Enumerable.Range(0, l.AcceptThreads).Select(i => new Measurement<long>(
                l.AcceptedBy(i),
                new KeyValuePair<string, object?>("kestrel_cluster.endpoint", l.BoundText),
                new KeyValuePair<string, object?>("kestrel_cluster.accept_thread.id", i))));

    private IEnumerable<Measurement<int>> WorkersByState()
    {
        var workers = _workers;
        return States.Union(workers.Select(w => w.State))
            .Select(state => new Measurement<int>(workers.Count(w => w.State == state), new KeyValuePair<string, object?>("kestrel_cluster.worker.state", state)));
    }

    private IEnumerable<Measurement<int>> ActiveConnections()
        => _workers.Select(w => new Measurement<int>(w.OpenConnections, WorkerTags(w)));

    private IEnumerable<Measurement<long>> AcceptedPerWorker()
        => _workers.Select(w => new Measurement<long>(w.Accepted, WorkerTags(w)));

    private static KeyValuePair<string, object?>[] WorkerTags(WorkerMetrics worker) =>
    [
        new("kestrel_cluster.worker.id", worker.Id),
        new("kestrel_cluster.worker.pid", worker.Pid),
        new("kestrel_cluster.worker.generation", worker.Generation),
    ];

    public void Dispose()
    {
        _exporter?.Dispose();
        _meter.Dispose();
    }
}
