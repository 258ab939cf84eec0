using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;

namespace KestrelCluster.Supervisor.Admin;

// /metrics read from the meter's own instruments, so the Prometheus text cannot drift from what dotnet-counters or an
// OpenTelemetry exporter sees (issue 16). Names follow OpenTelemetry's Prometheus compatibility rules: dots become
// underscores, the unit becomes a suffix ({connection}-style annotations are dropped), counters end in _total.
// Observable instruments are read on each scrape; histograms (of double) are aggregated here as they are recorded.
// Other instruments are not rendered: ClusterMetricsTests checks that every instrument of the meter is.
internal sealed class PrometheusExporter : IDisposable
{
    // OpenTelemetry's default explicit boundaries, for a histogram without bucket advice.
    private static readonly double[] DefaultBoundaries = [0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000];

    private readonly MeterListener _listener;
    private readonly List<(Instrument Instrument, HistogramAggregator? Histogram)> _instruments = [];
    private readonly Lock _scrapeLock = new();
    private List<Sample>? _samples;

    public PrometheusExporter(Meter meter)
    {
        _listener = new MeterListener
        {
            InstrumentPublished = (instrument, listener) =>
            {
                // This meter object only: tests run several ClusterMetrics (same meter name) in one process.
                if (instrument.Meter != meter || !(instrument.IsObservable || instrument is Histogram<double>))
                {
                    return;
                }

                var histogram = instrument is Histogram<double> h ? new HistogramAggregator(h.Advice?.HistogramBucketBoundaries?.ToArray() ?? DefaultBoundaries) : null;
                lock (_instruments)
                {
                    _instruments.Add((instrument, histogram));
                }

                listener.EnableMeasurementEvents(instrument, histogram);
            },
            MeasurementsCompleted = (instrument, _) =>
            {
                lock (_instruments)
                {
                    _instruments.RemoveAll(i => i.Instrument == instrument);
                }
            },
        };
        _listener.SetMeasurementEventCallback<int>((instrument, value, tags, _) => Observed(instrument, value, tags));
        _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) => Observed(instrument, value, tags));
        _listener.SetMeasurementEventCallback<double>((instrument, value, tags, state) =>
        {
            // The per-connection path: the aggregator came with the instrument, no lookup.
            if (state is HistogramAggregator histogram)
            {
                histogram.Record(value);
            }
            else
            {
                Observed(instrument, value, tags);
            }
        });
        _listener.Start();
    }

    /// <summary>Prometheus text exposition format 0.0.4.</summary>
    public string Scrape()
    {
        lock (_scrapeLock)
        {
            // Observable callbacks run synchronously on this thread, into this scrape's list.
            _samples = [];
            _listener.RecordObservableInstruments();
            var samples = _samples;
            _samples = null;

            (Instrument Instrument, HistogramAggregator? Histogram)[] instruments;
            lock (_instruments)
            {
                instruments = [.. _instruments];
            }

            var text = new StringBuilder();
            foreach (var (instrument, histogram) in instruments)
            {
                var type = TypeOf(instrument);
                var name = MetricName(instrument, type);
                text.Append(CultureInfo.InvariantCulture, $"# HELP {name} {EscapeHelp(instrument.Description ?? instrument.Name)}\n# TYPE {name} {type}\n");
                if (histogram is not null)
                {
                    histogram.WriteTo(text, name);
                    continue;
                }

                foreach (var sample in samples.Where(s => s.Instrument == instrument))
                {
                    text.Append(name);
                    AppendLabels(text, sample.Tags);
                    text.Append(' ').Append(Number(sample.Value)).Append('\n');
                }
            }

            return text.ToString();
        }
    }

    /// <summary>The Prometheus metric name of an instrument (OpenTelemetry → Prometheus compatibility).</summary>
    public static string MetricName(Instrument instrument) => MetricName(instrument, TypeOf(instrument));

    /// <summary>The Prometheus label name of a tag.</summary>
    public static string LabelName(string tag) => Sanitize(tag, allowColon: false);

    private void Observed(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        => _samples?.Add(new Sample(instrument, value, tags.ToArray()));

    private static string TypeOf(Instrument instrument) => instrument switch
    {
        ObservableCounter<int> or ObservableCounter<long> or ObservableCounter<double> => "counter",
        Histogram<double> => "histogram",
        // ObservableGauge, and ObservableUpDownCounter (a sum that goes up and down: a gauge in Prometheus).
        _ => "gauge",
    };

    private static string MetricName(Instrument instrument, string type)
    {
        var name = Sanitize(instrument.Name, allowColon: true);
        var unit = UnitSuffix(instrument.Unit, type);
        if (unit.Length > 0 && !name.EndsWith("_" + unit, StringComparison.Ordinal))
        {
            name += "_" + unit;
        }

        return type == "counter" && !name.EndsWith("_total", StringComparison.Ordinal) ? name + "_total" : name;
    }

    private static string UnitSuffix(string? unit, string type)
    {
        // Annotations in braces ({connection}) are for humans; what is left is the UCUM unit.
        var bare = unit ?? "";
        for (int open; (open = bare.IndexOf('{', StringComparison.Ordinal)) >= 0;)
        {
            var close = bare.IndexOf('}', open);
            bare = close < 0 ? bare[..open] : bare[..open] + bare[(close + 1)..];
        }

        return bare switch
        {
            "" => "",
            "s" => "seconds",
            "ms" => "milliseconds",
            "By" => "bytes",
            "1" => type == "gauge" ? "ratio" : "",
            _ => Sanitize(bare.Replace("/", "_per_", StringComparison.Ordinal), allowColon: false),
        };
    }

    // Invalid characters become '_', and runs of '_' one.
    private static string Sanitize(string name, bool allowColon)
    {
        var text = new StringBuilder(name.Length + 1);
        if (name.Length > 0 && char.IsAsciiDigit(name[0]))
        {
            text.Append('_');
        }

        foreach (var c in name)
        {
            var valid = char.IsAsciiLetterOrDigit(c) || c == '_' || (allowColon && c == ':');
            if (valid || text.Length == 0 || text[^1] != '_')
            {
                text.Append(valid ? c : '_');
            }
        }

        return text.ToString();
    }

    private static void AppendLabels(StringBuilder text, KeyValuePair<string, object?>[] tags)
    {
        if (tags.Length == 0)
        {
            return;
        }

        text.Append('{');
        for (var i = 0; i < tags.Length; i++)
        {
            text.Append(i == 0 ? "" : ",").Append(LabelName(tags[i].Key)).Append("=\"")
                .Append(EscapeLabel(Convert.ToString(tags[i].Value, CultureInfo.InvariantCulture) ?? "")).Append('"');
        }

        text.Append('}');
    }

    // Label values: backslash, quote and newline escaped (a Unix socket path may hold any of them).
    private static string EscapeLabel(string value) => value.Replace("\\", "\\\\").Replace("\"", "\\\"").Replace("\n", "\\n");

    private static string EscapeHelp(string value) => value.Replace("\\", "\\\\").Replace("\n", "\\n");

    private static string Number(double value) => value switch
    {
        double.PositiveInfinity => "+Inf",
        double.NegativeInfinity => "-Inf",
        _ => value.ToString(CultureInfo.InvariantCulture),
    };

    public void Dispose() => _listener.Dispose();

    private sealed record Sample(Instrument Instrument, double Value, KeyValuePair<string, object?>[] Tags);

    // Explicit-bucket histogram, recorded on the per-connection path: one increment and one compare-exchange.
    private sealed class HistogramAggregator(double[] boundaries)
    {
        // One per boundary (values <= it), and one past the last; the count is their sum, so +Inf always equals _count.
        private readonly long[] _counts = new long[boundaries.Length + 1];
        private double _sum;

        public void Record(double value)
        {
            // A NaN or infinite sum would never compare equal in the loop below.
            if (!double.IsFinite(value))
            {
                return;
            }

            // A plain loop: a lambda capturing `value` would allocate on every record.
            var bucket = 0;
            while (bucket < boundaries.Length && value > boundaries[bucket])
            {
                bucket++;
            }

            Interlocked.Increment(ref _counts[bucket]);
            var seen = Volatile.Read(ref _sum);
            double sum;
            do
            {
                sum = seen;
                seen = Interlocked.CompareExchange(ref _sum, sum + value, sum);
            }
            while (seen != sum);
        }

        public void WriteTo(StringBuilder text, string name)
        {
            long cumulative = 0;
            for (var i = 0; i < _counts.Length; i++)
            {
                cumulative += Volatile.Read(ref _counts[i]);
                var le = i < boundaries.Length ? Number(boundaries[i]) : "+Inf";
                text.Append(CultureInfo.InvariantCulture, $"{name}_bucket{{le=\"{le}\"}} {cumulative}\n");
            }

            text.Append(CultureInfo.InvariantCulture, $"{name}_sum {Number(Volatile.Read(ref _sum))}\n");
            text.Append(CultureInfo.InvariantCulture, $"{name}_count {cumulative}\n");
        }
    }
}
