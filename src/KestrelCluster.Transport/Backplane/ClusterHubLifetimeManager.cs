using System.Buffers;
using System.Collections.Concurrent;
using KestrelCluster.Protocol;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Protocol;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace KestrelCluster.Transport.Backplane;

// A hub's lifetime manager in a worker: keeps this worker's connections, groups and users like the default one, and
// relays every send through the supervisor to the other workers, which write it to their own matching clients. Sends
// go to the other workers first, then to this worker's clients; group changes and client results for a connection
// held elsewhere go to every worker and are answered by the one that holds it.
internal sealed class ClusterHubLifetimeManager<THub> : HubLifetimeManager<THub>, IHubFrameReceiver where THub : Hub
{
    // How long a group change or client result waits for the worker that holds the connection to answer.
    private static readonly TimeSpan AckTimeout = TimeSpan.FromSeconds(5);
    private static readonly string HubName = typeof(THub).FullName ?? typeof(THub).Name;
    private readonly HubConnectionStore _connections = new();
    private readonly Lock _groupsLock = new();
    private readonly Dictionary<string, HubConnectionStore> _groups = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<int, TaskCompletionSource> _acks = new();
    private readonly ConcurrentDictionary<string, PendingResult> _results = new(StringComparer.Ordinal);
    private readonly HubBackplane _backplane;
    private readonly IHubProtocolResolver _protocolResolver;
    private readonly IReadOnlyList<IHubProtocol> _protocols;
    private readonly ILogger _logger;
    private readonly string _invocationPrefix = $"kc{Environment.ProcessId}-";
    private int _nextId;

    public ClusterHubLifetimeManager(HubBackplane backplane, IHubProtocolResolver protocolResolver, IOptions<HubOptions> globalHubOptions, IOptions<HubOptions<THub>> hubOptions, ILogger<ClusterHubLifetimeManager<THub>> logger)
    {
        _backplane = backplane;
        _protocolResolver = protocolResolver;
        _logger = logger;
        var supported = hubOptions.Value.SupportedProtocols ?? globalHubOptions.Value.SupportedProtocols;
        _protocols = [.. protocolResolver.AllProtocols.Where(p => supported is null || supported.Contains(p.Name, StringComparer.OrdinalIgnoreCase))];
        backplane.Register(HubName, this);
        backplane.DrainStarted.Register(static state => ((ClusterHubLifetimeManager<THub>)state!).CloseForDrain(), this);
    }

    public override Task OnConnectedAsync(HubConnectionContext connection)
    {
        connection.Features.Set(new ConnectionGroups());
        _connections.Add(connection);
        if (_backplane.DrainStarted.IsCancellationRequested)
        {
            // Reached a worker that is leaving: straight on to another one.
            _ = CloseAsync(connection);
        }

        return Task.CompletedTask;
    }

    public override Task OnDisconnectedAsync(HubConnectionContext connection)
    {
        _connections.Remove(connection);
        if (connection.Features.Get<ConnectionGroups>() is { } groups)
        {
            foreach (var group in groups.Snapshot())
            {
                RemoveLocal(connection, group);
            }
        }

        foreach (var (invocationId, pending) in _results)
        {
            if (pending.ConnectionId == connection.ConnectionId && _results.TryRemove(invocationId, out _))
            {
                _ = pending.FailAsync(this, invocationId, $"Connection '{connection.ConnectionId}' disconnected.");
            }
        }

        return Task.CompletedTask;
    }

    public override Task SendAllAsync(string methodName, object?[] args, CancellationToken cancellationToken = default)
        => SendAsync(methodName, args, HubCommand.All, null, null, static (_, _, _) => true, cancellationToken);

    public override Task SendAllExceptAsync(string methodName, object?[] args, IReadOnlyList<string> excludedConnectionIds, CancellationToken cancellationToken = default)
        => SendAsync(methodName, args, HubCommand.All, null, excludedConnectionIds, static (c, _, excluded) => !excluded!.Contains(c.ConnectionId), cancellationToken);

    public override Task SendConnectionAsync(string connectionId, string methodName, object?[] args, CancellationToken cancellationToken = default)
        => SendConnectionsAsync([connectionId], methodName, args, cancellationToken);

    public override Task SendConnectionsAsync(IReadOnlyList<string> connectionIds, string methodName, object?[] args, CancellationToken cancellationToken = default)
    {
        // Connections of this worker only: nothing for the others to do.
        if (connectionIds.All(id => _connections[id] is not null))
        {
            return WriteAsync(connectionIds.Select(id => _connections[id]!), new SerializedHubMessage(new InvocationMessage(methodName, args)), cancellationToken);
        }

        return SendAsync(methodName, args, HubCommand.Connections, connectionIds, null, static (c, ids, _) => ids!.Contains(c.ConnectionId), cancellationToken);
    }

    public override Task SendGroupAsync(string groupName, string methodName, object?[] args, CancellationToken cancellationToken = default)
        => SendGroupsAsync([groupName], methodName, args, cancellationToken);

    public override Task SendGroupsAsync(IReadOnlyList<string> groupNames, string methodName, object?[] args, CancellationToken cancellationToken = default)
        => SendAsync(methodName, args, HubCommand.Groups, groupNames, null, (c, groups, _) => InAnyGroup(c, groups!), cancellationToken);

    public override Task SendGroupExceptAsync(string groupName, string methodName, object?[] args, IReadOnlyList<string> excludedConnectionIds, CancellationToken cancellationToken = default)
        => SendAsync(methodName, args, HubCommand.Groups, [groupName], excludedConnectionIds, (c, groups, excluded) => InAnyGroup(c, groups!) && !excluded!.Contains(c.ConnectionId), cancellationToken);

    public override Task SendUserAsync(string userId, string methodName, object?[] args, CancellationToken cancellationToken = default)
        => SendUsersAsync([userId], methodName, args, cancellationToken);

    public override Task SendUsersAsync(IReadOnlyList<string> userIds, string methodName, object?[] args, CancellationToken cancellationToken = default)
        => SendAsync(methodName, args, HubCommand.Users, userIds, null, static (c, users, _) => c.UserIdentifier is { } user && users!.Contains(user), cancellationToken);

    public override Task AddToGroupAsync(string connectionId, string groupName, CancellationToken cancellationToken = default)
        => ChangeGroupAsync(connectionId, groupName, HubCommand.AddToGroup, cancellationToken);

    public override Task RemoveFromGroupAsync(string connectionId, string groupName, CancellationToken cancellationToken = default)
        => ChangeGroupAsync(connectionId, groupName, HubCommand.RemoveFromGroup, cancellationToken);

    // A connection of this worker changes here; one of another worker is asked for, and answered by its worker.
    private async Task ChangeGroupAsync(string connectionId, string groupName, HubCommand command, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(connectionId);
        ArgumentNullException.ThrowIfNull(groupName);
        if (_connections[connectionId] is { } connection)
        {
            if (command == HubCommand.AddToGroup)
            {
                AddLocal(connection, groupName);
            }
            else
            {
                RemoveLocal(connection, groupName);
            }

            return;
        }

        await AskAndWaitAsync(command, connectionId, groupName, cancellationToken).ConfigureAwait(false);
    }

    public override async Task<T> InvokeConnectionAsync<T>(string connectionId, string methodName, object?[] args, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(connectionId);
        var invocationId = _invocationPrefix + Interlocked.Increment(ref _nextId).ToString(System.Globalization.CultureInfo.InvariantCulture);
        var pending = new PendingResult<T>(connectionId);
        _results[invocationId] = pending;
        try
        {
            var invocation = new InvocationMessage(invocationId, methodName, args);
            if (_connections[connectionId] is { } connection)
            {
                await connection.WriteAsync(invocation, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                var ackId = Interlocked.Increment(ref _nextId);
                var payload = new HubPayloadWriter(HubName, HubCommand.Invoke);
                payload.WriteInt32(ackId);
                payload.WriteString(connectionId);
                payload.WriteString(invocationId);
                payload.WriteMessage(Serialize(invocation));
                if (!await SendAndWaitForAckAsync(ackId, payload, cancellationToken).ConfigureAwait(false))
                {
                    throw new IOException($"Connection '{connectionId}' does not exist.");
                }
            }

            return await pending.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _results.TryRemove(invocationId, out _);
        }
    }

    public override async Task SetConnectionResultAsync(string connectionId, CompletionMessage result)
    {
        if (!_results.TryGetValue(result.InvocationId!, out var pending) || pending.ConnectionId != connectionId || !_results.TryRemove(result.InvocationId!, out _))
        {
            // Unknown, or answered by a connection that was not asked: ignored, as the default manager does.
            return;
        }

        await pending.CompleteAsync(this, result, _connections[connectionId]?.Protocol.Name).ConfigureAwait(false);
    }

    public override bool TryGetReturnType(string invocationId, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out Type? type)
    {
        type = _results.TryGetValue(invocationId, out var pending) ? pending.ResultType : null;
        return type is not null;
    }

    async Task IHubFrameReceiver.ReceiveAsync(int sender, byte[] payload)
    {
        var (command, message, targets, excluded, ackId, text) = Parse(payload);
        switch (command)
        {
            case HubCommand.All:
                await WriteAsync(Local(c => !excluded!.Contains(c.ConnectionId)), message!, default).ConfigureAwait(false);
                break;
            case HubCommand.Connections:
                await WriteAsync(targets!.Select(id => _connections[id]).OfType<HubConnectionContext>(), message!, default).ConfigureAwait(false);
                break;
            case HubCommand.Groups:
                await WriteAsync(Local(c => InAnyGroup(c, targets!) && !excluded!.Contains(c.ConnectionId)), message!, default).ConfigureAwait(false);
                break;
            case HubCommand.Users:
                await WriteAsync(Local(c => c.UserIdentifier is { } user && targets!.Contains(user)), message!, default).ConfigureAwait(false);
                break;
            case HubCommand.AddToGroup or HubCommand.RemoveFromGroup:
                if (_connections[targets![0]] is { } member)
                {
                    if (command == HubCommand.AddToGroup)
                    {
                        AddLocal(member, text!);
                    }
                    else
                    {
                        RemoveLocal(member, text!);
                    }

                    await AckAsync(sender, ackId).ConfigureAwait(false);
                }

                break;
            case HubCommand.Ack:
                if (_acks.TryRemove(ackId, out var ack))
                {
                    ack.TrySetResult();
                }

                break;
            case HubCommand.Invoke:
                if (_connections[targets![0]] is { } asked)
                {
                    // The answer comes back through SetConnectionResultAsync here, kept raw for the asking worker to read.
                    _results[text!] = new RelayedResult(asked.ConnectionId, sender);
                    await AckAsync(sender, ackId).ConfigureAwait(false);
                    await asked.WriteAsync(message!, default).ConfigureAwait(false);
                }

                break;
            case HubCommand.Result:
                if (_results.TryRemove(text!, out var pending))
                {
                    pending.CompleteFromOtherWorker(this, text!, payload);
                }

                break;
            default:
                throw new InvalidFrameException($"unknown hub command {(byte)command}");
        }
    }

    private static (HubCommand Command, SerializedHubMessage? Message, string[]? Targets, string[]? Excluded, int AckId, string? Text) Parse(byte[] payload)
    {
        var reader = new HubPayloadReader(payload);
        reader.ReadString();
        var command = (HubCommand)reader.ReadByte();
        string[]? targets = null;
        string[]? excluded = null;
        string? text = null;
        var ackId = 0;
        switch (command)
        {
            case HubCommand.All:
                excluded = reader.ReadStrings();
                break;
            case HubCommand.Connections or HubCommand.Users:
                targets = reader.ReadStrings();
                break;
            case HubCommand.Groups:
                targets = reader.ReadStrings();
                excluded = reader.ReadStrings();
                break;
            case HubCommand.AddToGroup or HubCommand.RemoveFromGroup or HubCommand.Invoke:
                ackId = reader.ReadInt32();
                targets = [reader.ReadString()];
                text = reader.ReadString();
                break;
            case HubCommand.Ack:
                ackId = reader.ReadInt32();
                break;
            case HubCommand.Result:
                text = reader.ReadString();
                break;
        }

        var message = command is HubCommand.All or HubCommand.Connections or HubCommand.Users or HubCommand.Groups or HubCommand.Invoke
            ? new SerializedHubMessage(reader.ReadMessage())
            : null;
        return (command, message, targets, excluded, ackId, text);
    }

    private async Task SendAsync(string methodName, object?[] args, HubCommand command, IReadOnlyList<string>? targets, IReadOnlyList<string>? excluded, Func<HubConnectionContext, IReadOnlyList<string>?, IReadOnlyList<string>?, bool> include, CancellationToken cancellationToken)
    {
        var serialized = Serialize(new InvocationMessage(methodName, args));
        var payload = new HubPayloadWriter(HubName, command);
        if (command != HubCommand.All)
        {
            payload.WriteStrings(targets);
        }

        if (command is HubCommand.All or HubCommand.Groups)
        {
            payload.WriteStrings(excluded);
        }

        payload.WriteMessage(serialized);
        await _backplane.SendAsync(MessageTargets.OtherWorkers, payload.Written, cancellationToken).ConfigureAwait(false);
        await WriteAsync(Local(c => include(c, targets, excluded)), new SerializedHubMessage(serialized), cancellationToken).ConfigureAwait(false);
    }

    // Every protocol the hub supports, once: each worker writes the bytes its clients' protocol needs.
    private List<SerializedMessage> Serialize(HubMessage message)
        => [.. _protocols.Select(p => new SerializedMessage(p.Name, p.GetMessageBytes(message)))];

    private static async Task WriteAsync(IEnumerable<HubConnectionContext> connections, SerializedHubMessage message, CancellationToken cancellationToken)
    {
        List<Task>? pending = null;
        foreach (var connection in connections)
        {
            var write = connection.WriteAsync(message, cancellationToken);
            if (!write.IsCompletedSuccessfully)
            {
                (pending ??= []).Add(write.AsTask());
            }
        }

        if (pending is not null)
        {
            await Task.WhenAll(pending).ConfigureAwait(false);
        }
    }

    private async Task AskAndWaitAsync(HubCommand command, string connectionId, string groupName, CancellationToken cancellationToken)
    {
        var ackId = Interlocked.Increment(ref _nextId);
        var payload = new HubPayloadWriter(HubName, command);
        payload.WriteInt32(ackId);
        payload.WriteString(connectionId);
        payload.WriteString(groupName);
        // No answer: no worker holds that connection (any more), which the default manager ignores too.
        await SendAndWaitForAckAsync(ackId, payload, cancellationToken).ConfigureAwait(false);
    }

    private async Task<bool> SendAndWaitForAckAsync(int ackId, HubPayloadWriter payload, CancellationToken cancellationToken)
    {
        var ack = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _acks[ackId] = ack;
        try
        {
            await _backplane.SendAsync(MessageTargets.OtherWorkers, payload.Written, cancellationToken).ConfigureAwait(false);
            await ack.Task.WaitAsync(AckTimeout, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
        finally
        {
            _acks.TryRemove(ackId, out _);
        }
    }

    private ValueTask AckAsync(int target, int ackId)
    {
        var payload = new HubPayloadWriter(HubName, HubCommand.Ack);
        payload.WriteInt32(ackId);
        return _backplane.SendAsync(target, payload.Written, default);
    }

    private void AddLocal(HubConnectionContext connection, string group)
    {
        if (connection.Features.Get<ConnectionGroups>() is not { } groups || !groups.Add(group))
        {
            return;
        }

        lock (_groupsLock)
        {
            if (!_groups.TryGetValue(group, out var members))
            {
                _groups[group] = members = new HubConnectionStore();
            }

            members.Add(connection);
        }
    }

    private void RemoveLocal(HubConnectionContext connection, string group)
    {
        connection.Features.Get<ConnectionGroups>()?.Remove(group);
        lock (_groupsLock)
        {
            if (_groups.TryGetValue(group, out var members))
            {
                members.Remove(connection);
                if (members.Count == 0)
                {
                    _groups.Remove(group);
                }
            }
        }
    }

    private List<HubConnectionContext> Local(Func<HubConnectionContext, bool> include)
    {
        var matching = new List<HubConnectionContext>();
        foreach (var connection in _connections)
        {
            if (include(connection))
            {
                matching.Add(connection);
            }
        }

        return matching;
    }

    private static bool InAnyGroup(HubConnectionContext connection, IReadOnlyList<string> groups)
        => connection.Features.Get<ConnectionGroups>() is { } member && groups.Any(member.Contains);

    // A reload or stop: tell each client to reconnect (to a worker that stays) now, rather than hold its
    // WebSocket open until the drain window ends and the app stops.
    private void CloseForDrain()
    {
        ClusterTransportLog.HubConnectionsClosing(_logger, _connections.Count, HubName);
        foreach (var connection in _connections)
        {
            _ = CloseAsync(connection);
        }
    }

    private static async Task CloseAsync(HubConnectionContext connection)
    {
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await connection.WriteAsync(new CloseMessage("The server is restarting.", allowReconnect: true), timeout.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or InvalidOperationException)
        {
            // Gone already, or too slow to take it: aborted all the same.
        }

        connection.Abort();
    }

    private sealed class ConnectionGroups
    {
        private readonly HashSet<string> _groups = new(StringComparer.Ordinal);

        public bool Add(string group)
        {
            lock (_groups)
            {
                return _groups.Add(group);
            }
        }

        public void Remove(string group)
        {
            lock (_groups)
            {
                _groups.Remove(group);
            }
        }

        public bool Contains(string group)
        {
            lock (_groups)
            {
                return _groups.Contains(group);
            }
        }

        public string[] Snapshot()
        {
            lock (_groups)
            {
                return [.. _groups];
            }
        }
    }

    // A client result this worker waits for: asked here (PendingResult<T>), or asked by another worker of a
    // connection held here (RelayedResult).
    private abstract class PendingResult(string connectionId)
    {
        public string ConnectionId { get; } = connectionId;

        public abstract Type ResultType { get; }

        public abstract Task CompleteAsync(ClusterHubLifetimeManager<THub> manager, CompletionMessage result, string? protocol);

        public abstract Task FailAsync(ClusterHubLifetimeManager<THub> manager, string invocationId, string error);

        public abstract void CompleteFromOtherWorker(ClusterHubLifetimeManager<THub> manager, string invocationId, byte[] payload);
    }

    private sealed class PendingResult<T>(string connectionId) : PendingResult(connectionId)
    {
        private readonly TaskCompletionSource<T> _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task<T> Task => _completion.Task;

        public override Type ResultType => typeof(T);

        public override Task CompleteAsync(ClusterHubLifetimeManager<THub> manager, CompletionMessage result, string? protocol)
        {
            Complete(result);
            return System.Threading.Tasks.Task.CompletedTask;
        }

        public override Task FailAsync(ClusterHubLifetimeManager<THub> manager, string invocationId, string error)
        {
            _completion.TrySetException(new IOException(error));
            return System.Threading.Tasks.Task.CompletedTask;
        }

        public override void CompleteFromOtherWorker(ClusterHubLifetimeManager<THub> manager, string invocationId, byte[] payload)
        {
            var reader = new HubPayloadReader(payload);
            reader.ReadString();
            reader.ReadByte();
            reader.ReadString();
            var protocolName = reader.ReadString();
            var outcome = reader.ReadByte();
            var body = reader.ReadBytes();
            switch (outcome)
            {
                case 1:
                    // The answer's bytes are in the asked client's protocol: that protocol reads them as T.
                    var protocol = manager._protocolResolver.GetProtocol(protocolName, null);
                    if (protocol is null)
                    {
                        _completion.TrySetException(new HubException($"The client answered in protocol '{protocolName}', which this worker does not have."));
                        return;
                    }

                    var buffer = new ArrayBufferWriter<byte>();
                    protocol.WriteMessage(CompletionMessage.WithResult(invocationId, new RawResult(new ReadOnlySequence<byte>(body))), buffer);
                    var sequence = new ReadOnlySequence<byte>(buffer.WrittenMemory);
                    if (protocol.TryParseMessage(ref sequence, new ResultBinder(invocationId, typeof(T)), out var parsed) && parsed is CompletionMessage completion)
                    {
                        Complete(completion);
                    }
                    else
                    {
                        _completion.TrySetException(new HubException("The client's answer could not be read."));
                    }

                    break;
                case 2:
                    _completion.TrySetException(new HubException(System.Text.Encoding.UTF8.GetString(body)));
                    break;
                default:
                    _completion.TrySetResult(default!);
                    break;
            }
        }

        private void Complete(CompletionMessage result)
        {
            if (result.Error is { } error)
            {
                _completion.TrySetException(new HubException(error));
            }
            else
            {
                _completion.TrySetResult(result.Result is T value ? value : default!);
            }
        }
    }

    private sealed class RelayedResult(string connectionId, int asker) : PendingResult(connectionId)
    {
        // Kept raw: only the asking worker knows the type to read it as.
        public override Type ResultType => typeof(RawResult);

        public override Task CompleteAsync(ClusterHubLifetimeManager<THub> manager, CompletionMessage result, string? protocol)
        {
            if (result.Error is { } error)
            {
                return SendAsync(manager, result.InvocationId!, protocol ?? "", 2, System.Text.Encoding.UTF8.GetBytes(error));
            }

            return result.HasResult && result.Result is RawResult raw
                ? SendAsync(manager, result.InvocationId!, protocol ?? "", 1, raw.RawSerializedData.ToArray())
                : SendAsync(manager, result.InvocationId!, protocol ?? "", 0, []);
        }

        public override Task FailAsync(ClusterHubLifetimeManager<THub> manager, string invocationId, string error)
            => SendAsync(manager, invocationId, "", 2, System.Text.Encoding.UTF8.GetBytes(error));

        public override void CompleteFromOtherWorker(ClusterHubLifetimeManager<THub> manager, string invocationId, byte[] payload)
        {
        }

        private async Task SendAsync(ClusterHubLifetimeManager<THub> manager, string invocationId, string protocol, byte outcome, byte[] body)
        {
            var payload = new HubPayloadWriter(HubName, HubCommand.Result);
            payload.WriteString(invocationId);
            payload.WriteString(protocol);
            payload.WriteByte(outcome);
            payload.WriteBytes(body);
            await manager._backplane.SendAsync(asker, payload.Written, default).ConfigureAwait(false);
        }
    }

    private sealed class ResultBinder(string invocationId, Type resultType) : IInvocationBinder
    {
        public Type GetReturnType(string id) => id == invocationId ? resultType : throw new InvalidOperationException($"unexpected invocation {id}");

        public IReadOnlyList<Type> GetParameterTypes(string methodName) => throw new NotSupportedException();

        public Type GetStreamItemType(string streamId) => throw new NotSupportedException();
    }
}
