using System.Text;

namespace KestrelCluster.Supervisor.Upgrade;

// Passes stderr through and keeps the last "kestrel-cluster: error: …" line: the reason an upgrade's new
// supervisor gives the running one when it cannot serve.
internal sealed class LastErrorWriter(TextWriter inner) : TextWriter
{
    private const string Prefix = "kestrel-cluster: error: ";
    private readonly StringBuilder _line = new();
    private readonly Lock _lock = new();
    private string? _lastError;

    public override Encoding Encoding => inner.Encoding;

    public string? LastError
    {
        get
        {
            lock (_lock)
            {
                return _lastError;
            }
        }
    }

    public override void Write(char value)
    {
        lock (_lock)
        {
            inner.Write(value);
            if (value != '\n')
            {
                _line.Append(value);
                return;
            }

            var line = _line.ToString();
            _line.Clear();
            if (line.StartsWith(Prefix, StringComparison.Ordinal))
            {
                _lastError = line[Prefix.Length..];
            }
        }
    }

    public override void Write(string? value)
    {
        foreach (var c in value ?? "")
        {
            Write(c);
        }
    }

    public override void WriteLine(string? value)
    {
        Write(value);
        Write('\n');
    }

    public override void Flush() => inner.Flush();
}
