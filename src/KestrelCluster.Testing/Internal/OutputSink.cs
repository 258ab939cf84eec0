using System.Text;
using Microsoft.Extensions.Logging;

namespace KestrelCluster.Testing.Internal;

// Everything a cluster prints (the supervisor's log, its errors, every worker's output) as whole lines:
// to the test's callback, and the last lines kept for the message of a failed start.
internal sealed class OutputSink : ILoggerProvider
{
    private const int KeptLines = 200;

    private readonly Lock _lock = new();
    private readonly Queue<string> _recent = new();

    public OutputSink()
    {
        Writer = new LineWriter(this);
    }

    public Action<string>? Callback { get; set; }

    /// <summary>For the supervisor's worker output and error lines; each WriteLine is one line.</summary>
    public TextWriter Writer { get; }

    public string Recent()
    {
        lock (_lock)
        {
            return string.Join('\n', _recent);
        }
    }

    public void Line(string line)
    {
        lock (_lock)
        {
            if (_recent.Count == KeptLines)
            {
                _recent.Dequeue();
            }

            _recent.Enqueue(line);
        }

        try
        {
            Callback?.Invoke(line);
        }
        catch (Exception ex) when (ex is InvalidOperationException or ObjectDisposedException)
        {
            // xunit's output helper refuses lines once its test has finished; a cluster outlives tests.
        }
    }

    ILogger ILoggerProvider.CreateLogger(string categoryName) => new SinkLogger(this);

    void IDisposable.Dispose()
    {
    }

    private sealed class SinkLogger(OutputSink sink) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Information;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel))
            {
                return;
            }

            var text = $"[supervisor] {Level(logLevel)}: {formatter(state, exception)}";
            sink.Line(exception is null ? text : text + Environment.NewLine + exception);
        }

        private static string Level(LogLevel level) => level switch
        {
            LogLevel.Information => "info",
            LogLevel.Warning => "warn",
            LogLevel.Error => "fail",
            LogLevel.Critical => "crit",
            _ => level.ToString().ToLowerInvariant(),
        };
    }

    private sealed class LineWriter(OutputSink sink) : TextWriter
    {
        private readonly StringBuilder _partial = new();

        public override Encoding Encoding => Encoding.UTF8;

        public override void WriteLine(string? value) => sink.Line(value ?? "");

        public override void Write(char value)
        {
            lock (_partial)
            {
                if (value == '\n')
                {
                    sink.Line(_partial.ToString());
                    _partial.Clear();
                }
                else if (value != '\r')
                {
                    _partial.Append(value);
                }
            }
        }
    }
}
