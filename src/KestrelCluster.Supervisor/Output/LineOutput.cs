using System.Text;

namespace KestrelCluster.Supervisor.Output;

/// <summary>
/// The supervisor's stdout (its own log and the workers' forwarded lines) as a writer that never blocks:
/// complete lines go into one bounded buffer that a dedicated thread writes out, in order. A stdout nobody
/// reads (a paused terminal, Docker's blocking log driver, `| tee` on a slow disk) would otherwise stall
/// the supervisor loop, the control socket and the readers of the workers' pipes; here, while the buffer
/// is full, lines are dropped and counted, and one line says how many where the gap is.
/// </summary>
internal sealed class LineOutput : TextWriter
{
    public const int DefaultMaxLines = 10_000;
    public const int DefaultMaxChars = 4 << 20;
    // At exit, buffered lines get this long to reach a slow stdout; a blocked one does not hold the exit.
    private static readonly TimeSpan DrainOnExit = TimeSpan.FromSeconds(2);

    private readonly Stream _stream;
    private readonly int _maxLines;
    private readonly int _maxChars;
    // A Monitor (not System.Threading.Lock): the writer thread waits on it for lines.
    private readonly object _lock = new();
    private readonly Queue<string> _lines = new();
    private readonly StringBuilder _partial = new();
    private readonly Thread _writer;
    private int _queuedChars;
    private long _dropped;
    private bool _completing;
    private Action<long>? _onDropped;

    public LineOutput(Stream stream, int maxLines = DefaultMaxLines, int maxChars = DefaultMaxChars)
    {
        _stream = stream;
        _maxLines = maxLines;
        _maxChars = maxChars;
        // Background: a writer stuck in write(2) on a stdout nobody reads must not keep the process alive.
        _writer = new Thread(WriteLoop) { IsBackground = true, Name = "kestrel-cluster stdout" };
        _writer.Start();
    }

    public override Encoding Encoding => Encoding.UTF8;

    /// <summary>Called on the writer thread after it wrote a dropped-lines notice, e.g. to log it.</summary>
    public void OnDropped(Action<long> onDropped) => _onDropped = onDropped;

    public static string DroppedNotice(long count) => $"kestrel-cluster: dropped {count} lines of output (stdout was blocked)";

    public override void WriteLine(string? value)
    {
        lock (_lock)
        {
            if (_partial.Length > 0)
            {
                value = _partial.Append(value).ToString();
                _partial.Clear();
            }

            Enqueue(value ?? "");
        }
    }

    public override void Write(string? value)
    {
        if (string.IsNullOrEmpty(value))
        {
            return;
        }

        lock (_lock)
        {
            var start = 0;
            int newline;
            while ((newline = value.IndexOf('\n', start)) >= 0)
            {
                var end = newline > start && value[newline - 1] == '\r' ? newline - 1 : newline;
                if (_partial.Length > 0)
                {
                    Enqueue(_partial.Append(value, start, end - start).ToString());
                    _partial.Clear();
                }
                else
                {
                    Enqueue(value[start..end]);
                }

                start = newline + 1;
            }

            _partial.Append(value, start, value.Length - start);
        }
    }

    public override void Write(char value)
    {
        if (value == '\n')
        {
            WriteLine((string?)null);
        }
        else if (value != '\r')
        {
            lock (_lock)
            {
                _partial.Append(value);
            }
        }
    }

    public override void Write(char[] buffer, int index, int count) => Write(new string(buffer, index, count));

    // Never waits for the stream: what is buffered is written by the writer thread.
    public override void Flush()
    {
    }

    /// <summary>Writes what is buffered (and any unfinished line), waiting at most <paramref name="timeout"/> for stdout.</summary>
    public bool Complete(TimeSpan timeout)
    {
        lock (_lock)
        {
            if (_partial.Length > 0)
            {
                Enqueue(_partial.ToString());
                _partial.Clear();
            }

            _completing = true;
            Monitor.PulseAll(_lock);
        }

        return _writer.Join(timeout);
    }

    private void Enqueue(string line)
    {
        if (_completing)
        {
            return;
        }

        // Once lines are dropped, every later one is until the writer takes the buffer: the notice marks one gap.
        if (_dropped > 0 || _lines.Count >= _maxLines || _queuedChars + line.Length > _maxChars)
        {
            _dropped++;
            return;
        }

        if (_lines.Count == 0)
        {
            Monitor.Pulse(_lock);
        }

        _lines.Enqueue(line);
        _queuedChars += line.Length;
    }

    private void WriteLoop()
    {
        var batch = new List<string>();
        var bytes = new MemoryStream();
        using var text = new StreamWriter(bytes, new UTF8Encoding(encoderShouldEmitUTF8Identifier: false), bufferSize: 16 << 10, leaveOpen: true) { NewLine = "\n" };
        while (true)
        {
            long dropped;
            lock (_lock)
            {
                while (_lines.Count == 0 && _dropped == 0 && !_completing)
                {
                    Monitor.Wait(_lock);
                }

                if (_lines.Count == 0 && _dropped == 0)
                {
                    return;
                }

                batch.AddRange(_lines);
                _lines.Clear();
                _queuedChars = 0;
                // Lines dropped while the buffer was full came after every line it held.
                dropped = _dropped;
                _dropped = 0;
            }

            foreach (var line in batch)
            {
                text.WriteLine(line);
            }

            if (dropped > 0)
            {
                text.WriteLine(DroppedNotice(dropped));
            }

            batch.Clear();
            text.Flush();
            try
            {
                _stream.Write(bytes.GetBuffer(), 0, (int)bytes.Length);
                _stream.Flush();
            }
            catch (IOException)
            {
                // stdout closed (EPIPE): nothing to show output on any more; keep draining so nobody waits.
            }

            bytes.SetLength(0);
            if (dropped > 0)
            {
                _onDropped?.Invoke(dropped);
            }
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            Complete(DrainOnExit);
        }

        base.Dispose(disposing);
    }
}
