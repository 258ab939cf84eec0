using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;
using KestrelCluster.Supervisor.Admin;
using KestrelCluster.Supervisor.Distribution;

namespace KestrelCluster.Tests.Admin;

public sealed class ClusterMetricsTests
{
    [Fact]
    public void Meter_KestrelCluster_PublishesTheInstrumentsThatListenersSee()
    {
        using var metrics = Recorded(new Dispatcher(TimeSpan.FromSeconds(30)));
        var seen = new Dictionary<string, double>();

        using (var listener = Listen(metrics, (instrument, value, tags) => seen[instrument.Name + string.Concat(tags.Select(t => $"|{t.Key}={t.Value}"))] = value))
        {
            listener.RecordObservableInstruments();
        }

        Assert.Equal(2, seen["kestrel_cluster.accepted_connections"]);
        Assert.Equal(1, seen["kestrel_cluster.worker.restarts"]);
        Assert.Equal(0, seen["kestrel_cluster.dispatched_connections"]);
        Assert.Equal(0, seen["kestrel_cluster.expired_connections"]);
        Assert.Equal(1, seen["kestrel_cluster.worker.count|kestrel_cluster.worker.state=ready"]);
        Assert.Equal(1, seen["kestrel_cluster.worker.count|kestrel_cluster.worker.state=starting"]);
        Assert.Equal(0, seen["kestrel_cluster.worker.count|kestrel_cluster.worker.state=draining"]);
        Assert.Equal(3, seen["kestrel_cluster.worker.active_connections|kestrel_cluster.worker.id=0|kestrel_cluster.worker.pid=100|kestrel_cluster.worker.generation=2"]);
        Assert.Equal(10, seen["kestrel_cluster.worker.accepted_connections|kestrel_cluster.worker.id=0|kestrel_cluster.worker.pid=100|kestrel_cluster.worker.generation=2"]);
        Assert.Equal(2, seen["kestrel_cluster.generation"]);
    }

    [Fact]
    public void PrometheusText_AfterPublish_HasEveryFamilyNamedByTheOpenTelemetryRules()
    {
        var dispatcher = new Dispatcher(TimeSpan.FromSeconds(30));
        using var metrics = Recorded(dispatcher);
        // Accepted 2 s ago: past the 1 s boundary, within 5 s.
        dispatcher.HandoffCompleted!(Stopwatch.GetTimestamp() - 2 * Stopwatch.Frequency);

        var lines = metrics.ToPrometheusText().Split('\n', StringSplitOptions.RemoveEmptyEntries);

        Assert.Equal(
            [
                "kestrel_cluster_accept_thread_accepted_connections_total counter",
                "kestrel_cluster_accepted_connections_total counter",
                "kestrel_cluster_dispatched_connections_total counter",
                "kestrel_cluster_expired_connections_total counter",
                "kestrel_cluster_generation gauge",
                "kestrel_cluster_handoff_duration_seconds histogram",
                "kestrel_cluster_redispatched_connections_total counter",
                "kestrel_cluster_refused_connections_total counter",
                "kestrel_cluster_worker_accepted_connections_total counter",
                "kestrel_cluster_worker_active_connections gauge",
                "kestrel_cluster_worker_count gauge",
                "kestrel_cluster_worker_restarts_total counter",
            ],
            lines.Where(l => l.StartsWith("# TYPE ", StringComparison.Ordinal)).Select(l => l["# TYPE ".Length..]).Order(StringComparer.Ordinal));
        Assert.Contains("kestrel_cluster_accepted_connections_total 2", lines);
        Assert.Contains("kestrel_cluster_worker_count{kestrel_cluster_worker_state=\"ready\"} 1", lines);
        Assert.Contains("kestrel_cluster_worker_count{kestrel_cluster_worker_state=\"failing\"} 0", lines);
        Assert.Contains("kestrel_cluster_worker_active_connections{kestrel_cluster_worker_id=\"0\",kestrel_cluster_worker_pid=\"100\",kestrel_cluster_worker_generation=\"2\"} 3", lines);
        Assert.Contains("kestrel_cluster_handoff_duration_seconds_bucket{le=\"1\"} 0", lines);
        Assert.Contains("kestrel_cluster_handoff_duration_seconds_bucket{le=\"5\"} 1", lines);
        Assert.Contains("kestrel_cluster_handoff_duration_seconds_bucket{le=\"+Inf\"} 1", lines);
        Assert.Contains("kestrel_cluster_handoff_duration_seconds_count 1", lines);
        Assert.Contains("kestrel_cluster_generation 2", lines);
        Assert.Contains("# HELP kestrel_cluster_worker_count Workers by state", lines);
        Assert.All(lines.Where(l => !l.StartsWith('#')), l => Assert.Matches(@"^[a-z_]+(\{[^}]*\})? (-?[0-9.]+([eE][+-]?[0-9]+)?|\+Inf)$", l));
    }

    [Fact]
    public void PrometheusText_ComparedWithAMeterListener_ShowsTheSameSeriesLabelsAndValues()
    {
        var dispatcher = new Dispatcher(TimeSpan.FromSeconds(30));
        using var metrics = Recorded(dispatcher);
        var instruments = new List<Instrument>();
        var observed = new HashSet<string>(StringComparer.Ordinal);
        var handoffs = new List<double>();
        using var listener = Listen(metrics, (instrument, value, tags) =>
        {
            if (instrument.IsObservable)
            {
                observed.Add(Series(PrometheusExporter.MetricName(instrument), tags, value));
            }
            else
            {
                Assert.Empty(tags);
                handoffs.Add(value);
            }
        }, instruments);
        dispatcher.HandoffCompleted!(Stopwatch.GetTimestamp());
        dispatcher.HandoffCompleted!(Stopwatch.GetTimestamp() - 2 * Stopwatch.Frequency);

        var text = metrics.ToPrometheusText();
        listener.RecordObservableInstruments();

        var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var families = lines.Where(l => l.StartsWith("# TYPE ", StringComparison.Ordinal)).Select(l => l.Split(' ')[2]).ToList();
        // Every instrument is a family of /metrics, and every family comes from an instrument.
        Assert.Equal(instruments.Select(PrometheusExporter.MetricName).Order(StringComparer.Ordinal), families.Order(StringComparer.Ordinal));
        Assert.Equal(12, instruments.Count);
        // Every sample of /metrics outside the histogram is one measurement the listener got: same labels, same value.
        var histogram = PrometheusExporter.MetricName(instruments.Single(i => i is Histogram<double>));
        var samples = lines.Where(l => !l.StartsWith('#')).ToList();
        Assert.Equal(observed.Order(StringComparer.Ordinal), samples.Where(l => !l.StartsWith(histogram + "_", StringComparison.Ordinal)).Order(StringComparer.Ordinal));
        // The histogram counts what was recorded: two handoffs, one of them past 1 s.
        Assert.Equal(2, handoffs.Count);
        Assert.Contains($"{histogram}_count 2", samples);
        Assert.Contains($"{histogram}_bucket{{le=\"+Inf\"}} 2", samples);
        Assert.Contains($"{histogram}_bucket{{le=\"1\"}} 1", samples);
        var sum = double.Parse(samples.Single(l => l.StartsWith(histogram + "_sum ", StringComparison.Ordinal)).Split(' ')[1], CultureInfo.InvariantCulture);
        Assert.Equal(handoffs.Sum(), sum, precision: 3);
    }

    private static ClusterMetrics Recorded(Dispatcher dispatcher)
    {
        var metrics = new ClusterMetrics(dispatcher) { Generation = () => 2 };
        metrics.ConnectionsAccepted(1);
        metrics.ConnectionsAccepted(1);
        metrics.WorkerRestarted();
        metrics.Publish([new WorkerMetrics(0, 100, 2, "ready", 3, 10), new WorkerMetrics(1, 101, 2, "starting", 0, 0)]);
        return metrics;
    }

    // Every measurement of this instance's instruments (not another test's meter of the same name), as a double.
    private static MeterListener Listen(ClusterMetrics metrics, Action<Instrument, double, KeyValuePair<string, object?>[]> measured, List<Instrument>? instruments = null)
    {
        var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter == metrics.Meter)
                {
                    instruments?.Add(instrument);
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<int>((instrument, value, tags, _) => measured(instrument, value, tags.ToArray()));
        listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) => measured(instrument, value, tags.ToArray()));
        listener.SetMeasurementEventCallback<double>((instrument, value, tags, _) => measured(instrument, value, tags.ToArray()));
        listener.Start();
        return listener;
    }

    private static string Series(string name, KeyValuePair<string, object?>[] tags, double value)
    {
        var labels = tags.Length == 0 ? "" : "{" + string.Join(',', tags.Select(t => $"{PrometheusExporter.LabelName(t.Key)}=\"{t.Value}\"")) + "}";
        return $"{name}{labels} {value.ToString(CultureInfo.InvariantCulture)}";
    }
}
