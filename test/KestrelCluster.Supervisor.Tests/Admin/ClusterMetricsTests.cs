using System.Diagnostics.Metrics;
using KestrelCluster.Supervisor.Admin;
using KestrelCluster.Supervisor.Distribution;

namespace KestrelCluster.Tests.Admin;

public sealed class ClusterMetricsTests
{
    [Fact]
    public void Meter_KestrelCluster_PublishesTheInstrumentsThatListenersSee()
    {
        var dispatcher = new Dispatcher(TimeSpan.FromSeconds(30));
        using var metrics = new ClusterMetrics(dispatcher);
        metrics.ConnectionsAccepted(1);
        metrics.ConnectionsAccepted(1);
        metrics.WorkerRestarted();
        metrics.Publish([new WorkerMetrics(0, 100, 1, "ready", 3, 10, 0), new WorkerMetrics(1, 101, 1, "starting", 0, 0, 1)]);

        var seen = new Dictionary<string, long>();
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == ClusterMetrics.MeterName)
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) => seen[instrument.Name] = value);
        listener.SetMeasurementEventCallback<int>((instrument, value, tags, _) =>
        {
            var key = instrument.Name + string.Concat(tags.ToArray().Select(t => $"|{t.Key}={t.Value}"));
            seen[key] = value;
        });
        listener.Start();
        listener.RecordObservableInstruments();

        Assert.Equal(2, seen["kestrel_cluster.connections.accepted"]);
        Assert.Equal(1, seen["kestrel_cluster.workers.restarts"]);
        Assert.Equal(0, seen["kestrel_cluster.connections.dispatched"]);
        Assert.Equal(1, seen["kestrel_cluster.workers|state=ready"]);
        Assert.Equal(1, seen["kestrel_cluster.workers|state=starting"]);
        Assert.Equal(3, seen["kestrel_cluster.worker.open_connections|worker.id=0|worker.pid=100"]);
    }

    [Fact]
    public void PrometheusText_AfterPublish_HasOneSampleLinePerSeries()
    {
        var dispatcher = new Dispatcher(TimeSpan.FromSeconds(30));
        using var metrics = new ClusterMetrics(dispatcher);
        metrics.ConnectionsAccepted(1);
        metrics.Publish([new WorkerMetrics(0, 100, 2, "ready", 3, 10, 0)]);

        var lines = metrics.ToPrometheusText(generation: 2).Split('\n', StringSplitOptions.RemoveEmptyEntries);

        Assert.Contains("kestrel_cluster_connections_accepted_total 1", lines);
        Assert.Contains("kestrel_cluster_workers{state=\"ready\"} 1", lines);
        Assert.Contains("kestrel_cluster_worker_open_connections{worker=\"0\",pid=\"100\",generation=\"2\"} 3", lines);
        Assert.Contains("kestrel_cluster_handoff_duration_seconds_bucket{le=\"+Inf\"} 0", lines);
        Assert.Contains("kestrel_cluster_generation 2", lines);
        Assert.All(lines.Where(l => !l.StartsWith('#')), l => Assert.Matches(@"^[a-z_]+(\{[^}]*\})? -?[0-9.e+-]+$", l));
    }
}
