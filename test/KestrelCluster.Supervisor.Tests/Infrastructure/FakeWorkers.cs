using System.Collections.Concurrent;
using System.Net.Sockets;
using KestrelCluster.Protocol;
using KestrelCluster.Supervisor.Cli;
using KestrelCluster.Supervisor.Control;
using KestrelCluster.Supervisor.Hosting;
using KestrelCluster.Supervisor.Runtime;
using KestrelCluster.Supervisor.Workers;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;

namespace KestrelCluster.Tests.Infrastructure;

/// <summary>A clock the test moves by hand.</summary>
internal sealed class ManualClock
{
    private long _now = 1_000_000;

    public long Now => Volatile.Read(ref _now);

    public void Advance(TimeSpan by) => Interlocked.Add(ref _now, (long)by.TotalMilliseconds);
}

/// <summary>Starts fake workers: nothing is spawned; a test decides when each joins, becomes ready or exits, and can fail a spawn.</summary>
internal sealed class FakeLauncher : IWorkerLauncher
{
    private readonly ConcurrentQueue<FakeWorker> _launched = new();

    // Non-null: the next launches throw WorkerStartException with this reason, as a deleted working directory would.
    public volatile string? FailWith;

    public IReadOnlyList<FakeWorker> Launched => [.. _launched];

    public IWorkerProcess Launch(WorkerLaunch launch, Action<int> exited)
    {
        if (FailWith is { } reason)
        {
            throw new WorkerStartException(reason);
        }

        var worker = new FakeWorker(launch, exited);
        _launched.Enqueue(worker);
        return worker;
    }
}

/// <summary>Publishes nothing: each publish waits until the test completes it, with an app folder or a build error.</summary>
internal sealed class FakePublisher : IAppPublisher
{
    public const string FirstFolder = "/published/1";
    private readonly ConcurrentQueue<TaskCompletionSource<PublishResult>> _requests = new();

    public string Source => "/src/Shop/Shop.csproj";

    /// <summary>Folders the supervisor asked to remove, in order.</summary>
    public ConcurrentQueue<string> Deleted { get; } = new();

    public static WorkerCommand App(string folder) => new("dotnet", [folder + "/Shop.dll"], folder, "Shop") { PublishFolder = folder };

    public Task<PublishResult> PublishAsync(int generation, CancellationToken cancellationToken)
    {
        var request = new TaskCompletionSource<PublishResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        cancellationToken.Register(() => request.TrySetCanceled(cancellationToken));
        _requests.Enqueue(request);
        return request.Task;
    }

    public void Delete(WorkerCommand command) => Deleted.Enqueue(command.PublishFolder!);

    /// <summary>Waits (bounded) until the supervisor has asked for <paramref name="count"/> publishes in all; returns the last.</summary>
    public async Task<TaskCompletionSource<PublishResult>> RequestedAsync(int count)
    {
        await Wait.UntilAsync(() => _requests.Count >= count, TimeSpan.FromSeconds(10));
        return _requests.ElementAt(count - 1);
    }
}

/// <summary>
/// One fake worker process. Its pid is the test process's own, so the supervisor's peer check admits the channel
/// this test opens with the worker's token: the channel, the frames and the supervisor loop are real.
/// </summary>
internal sealed class FakeWorker(WorkerLaunch launch, Action<int> exited) : IWorkerProcess
{
    private int _exited;
    private Socket? _channel;

    public WorkerLaunch Launch { get; } = launch;

    public int Pid => Environment.ProcessId;

    public bool HasExited => Volatile.Read(ref _exited) != 0;

    public int? ExitCode { get; private set; }

    /// <summary>Joins the supervisor's channel (hello, welcome) and reports ready, as the transport does once Kestrel has started.</summary>
    public async Task JoinAndReadyAsync(string channelPath)
    {
        _channel = await ChannelPeer.ConnectAsync(channelPath);
        await _channel.SendAsync(ChannelPeer.Hello(Environment.ProcessId, Launch.Token));
        var buffer = new byte[FrameLimits.MaxFrameSize];
        var received = await _channel.ReceiveAsync(buffer).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(received > 0 && FrameReader.TypeOf(buffer.AsSpan(0, received)) == FrameType.Welcome, "the supervisor did not welcome the worker");
        await _channel.SendAsync(ReadyFrame.Write(new byte[ReadyFrame.MaxSize], features: null).ToArray());
    }

    /// <summary>The process ends with this code (137 = SIGKILL); the supervisor hears of it once.</summary>
    public void Exit(int code)
    {
        if (Interlocked.Exchange(ref _exited, 1) == 0)
        {
            ExitCode = code;
            _channel?.Dispose();
            exited(code);
        }
    }

    public void Kill() => Exit(128 + 9);

    public bool TrySample(int pid, out TimeSpan cpu, out long residentBytes)
    {
        cpu = default;
        residentBytes = 0;
        return false;
    }

    public void Dispose() => _channel?.Dispose();
}

/// <summary>A real ClusterSupervisor loop with fake workers and a manual clock: each lifecycle rule, without processes or waiting.</summary>
internal sealed class SupervisorUnderTest : IAsyncDisposable
{
    private readonly TemporaryFolder _folder = new();
    private readonly RuntimeDirectory _runtime;
    private readonly ClusterSupervisor _supervisor;
    private readonly ILoggerFactory _loggers;

    public SupervisorUnderTest(ITestOutputHelper output, int workers, int maxConcurrentStarts = 4, TimeSpan? readyTimeout = null, TimeSpan? killTimeout = null, FakePublisher? publisher = null)
    {
        _runtime = RuntimeDirectory.Create("lifecycle", _folder.Path);
        var options = new RunOptions
        {
            Workers = workers,
            ReadyTimeout = readyTimeout ?? TimeSpan.FromSeconds(30),
            KillTimeout = killTimeout ?? TimeSpan.FromSeconds(30),
            // fake workers send no heartbeats
            HeartbeatTimeout = TimeSpan.Zero,
        };
        _loggers = LoggerFactory.Create(logging => logging.AddProvider(new TestOutputLoggerProvider(output, Log)));
        var command = publisher is null ? new WorkerCommand("fake", [], "/", "fake") : FakePublisher.App(FakePublisher.FirstFolder);
        _supervisor = new ClusterSupervisor(options, command, _runtime, _loggers.CreateLogger("kestrel-cluster"), TextWriter.Null, Errors,
            Launcher, () => Clock.Now, manualTicks: true, maxConcurrentStarts: maxConcurrentStarts, publisher: publisher);
        Completion = Task.Run(() => _supervisor.RunAsync(CancellationToken.None));
    }

    public ManualClock Clock { get; } = new();

    public FakeLauncher Launcher { get; } = new();

    public StringWriter Errors { get; } = new();

    public ConcurrentQueue<string> Log { get; } = new();

    public Task<int> Completion { get; }

    public string ChannelPath => _runtime.ChannelSocketPath;

    public Task<ControlResponse> SendAsync(ControlRequest request) => _supervisor.ExecuteAsync(request).WaitAsync(TimeSpan.FromSeconds(30));

    /// <summary>The `list` rows. Also a barrier: every event posted before it has been handled.</summary>
    public async Task<IReadOnlyList<WorkerRow>> ListAsync() => (await SendAsync(new ControlRequest(ControlCommands.List))).Workers ?? [];

    /// <summary>Moves the clock, runs the periodic passes once and waits until they have run.</summary>
    public async Task AdvanceAsync(TimeSpan by)
    {
        Clock.Advance(by);
        _supervisor.TickNow();
        await ListAsync();
    }

    /// <summary>Waits (bounded) until the launcher has started <paramref name="count"/> workers in all.</summary>
    public async Task<FakeWorker> LaunchedAsync(int count)
    {
        await Wait.UntilAsync(() => Launcher.Launched.Count >= count, TimeSpan.FromSeconds(10));
        return Launcher.Launched[count - 1];
    }

    /// <summary>Joins and readies the worker and waits until `list` shows it ready.</summary>
    public async Task ReadyAsync(FakeWorker worker)
    {
        await worker.JoinAndReadyAsync(ChannelPath);
        await Wait.UntilAsync(async () => (await ListAsync()).Any(r => r.Id == worker.Launch.SlotId && r.Generation == worker.Launch.Generation && r.State == "ready"), TimeSpan.FromSeconds(10));
    }

    public async ValueTask DisposeAsync()
    {
        _supervisor.RequestStop("test over");
        // Fake workers do not read their Stop frame: the stop moves on as the clock passes the kill timeout.
        for (var i = 0; i < 200 && !Completion.IsCompleted; i++)
        {
            Clock.Advance(TimeSpan.FromSeconds(10));
            _supervisor.TickNow();
            await Task.WhenAny(Completion, Task.Delay(10));
        }

        await Completion.WaitAsync(TimeSpan.FromSeconds(10));
        _supervisor.Dispose();
        _runtime.Dispose();
        _loggers.Dispose();
        _folder.Dispose();
    }
}

internal sealed class TestOutputLoggerProvider(ITestOutputHelper output, ConcurrentQueue<string> lines) : ILoggerProvider
{
    public ILogger CreateLogger(string categoryName) => new Logger(output, lines);

    public void Dispose()
    {
    }

    private sealed class Logger(ITestOutputHelper output, ConcurrentQueue<string> lines) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var line = $"{logLevel}: {formatter(state, exception)}";
            lines.Enqueue(line);
            try
            {
                output.WriteLine(line);
            }
            catch (InvalidOperationException)
            {
                // the test has finished
            }
        }
    }
}
