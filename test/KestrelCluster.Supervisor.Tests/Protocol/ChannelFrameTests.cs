using System.Net.Sockets;
using KestrelCluster.Protocol;

namespace KestrelCluster.Tests.Protocol;

// Every channel frame through its codec: the bytes on the wire (a contract between supervisor and worker versions,
// written out here by hand from FrameType's layouts), the round trip, and what a peer's broken frame raises.
public sealed class ChannelFrameTests
{
    private delegate ReadOnlySpan<byte> Encoder(Span<byte> buffer);

    [Fact]
    public void Hello_Write_PidThenTokenToTheEnd()
    {
        var frame = Write(HelloFrame.SizeFor("tk"), b => HelloFrame.Write(b, 0x01020304, "tk"));

        Assert.Equal(new byte[] { 1, 4, 3, 2, 1, (byte)'t', (byte)'k' }, frame);
        Assert.Equal((0x01020304, "tk"), HelloFrame.Read(frame));
    }

    [Fact]
    public void Welcome_Write_WorkerIdThenGeneration()
    {
        var frame = Write(WelcomeFrame.Size, b => WelcomeFrame.Write(b, 2, 3));

        Assert.Equal(new byte[] { 2, 2, 0, 0, 0, 3, 0, 0, 0 }, frame);
        Assert.Equal((2, 3), WelcomeFrame.Read(frame));
    }

    [Fact]
    public void Bind_Write_RequestIdThenEndpointToTheEnd()
    {
        var frame = Write(BindFrame.MaxSize, b => BindFrame.Write(b, 7, "[::1]:0"));

        Assert.Equal((byte[])[3, 7, 0, 0, 0, .. "[::1]:0"u8], frame);
        Assert.Equal((7, "[::1]:0"), BindFrame.Read(frame));
    }

    [Fact]
    public void BindResult_Write_RequestListenerErrorThenText()
    {
        var frame = Write(BindResultFrame.MaxSize, b => BindResultFrame.Write(b, 7, -1, SocketError.AddressAlreadyInUse, "in use"));

        Assert.Equal((byte[])[4, 7, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0x40, 0x27, 0, 0, .. "in use"u8], frame);
        Assert.Equal((7, -1, SocketError.AddressAlreadyInUse, "in use"), BindResultFrame.Read(frame));
    }

    [Fact]
    public void BindResult_TextLongerThanTheLimit_IsCutToTheLimit()
    {
        var frame = Write(BindResultFrame.MaxSize, b => BindResultFrame.Write(b, 1, 0, SocketError.Success, new string('x', 100_000)));

        Assert.Equal(BindResultFrame.MaxTextChars, BindResultFrame.Read(frame).Text.Length);
    }

    [Fact]
    public void Ready_WithAndWithoutFeatures_FeatureByteOnlyWhenGiven()
    {
        var withFeatures = Write(ReadyFrame.MaxSize, b => ReadyFrame.Write(b, WorkerFeatures.RealTimeEndpoints));
        var forOldSupervisor = Write(ReadyFrame.MaxSize, b => ReadyFrame.Write(b, null));

        Assert.Equal(new byte[] { 5, 1 }, withFeatures);
        Assert.Equal(new byte[] { 5 }, forOldSupervisor);
        Assert.Equal(WorkerFeatures.RealTimeEndpoints, ReadyFrame.Read(withFeatures));
        Assert.Equal(WorkerFeatures.None, ReadyFrame.Read(forOldSupervisor));
    }

    [Fact]
    public void Connections_Write_CountThenListenerAndSequencePerConnection()
    {
        Span<byte> buffer = stackalloc byte[ConnectionsFrame.MaxSize];
        var writer = ConnectionsFrame.Begin(buffer, 2);
        ConnectionsFrame.Add(ref writer, 1, 0x0102030405060708);
        ConnectionsFrame.Add(ref writer, -1, 9);
        var frame = writer.Written.ToArray();

        Assert.Equal(new byte[] { 6, 2, 1, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1, 0xFF, 0xFF, 0xFF, 0xFF, 9, 0, 0, 0, 0, 0, 0, 0 }, frame);
        Assert.Equal(ConnectionsFrame.SizeFor(2), frame.Length);
        var reader = ConnectionsFrame.Read(frame, out var count);
        Assert.Equal(2, count);
        Assert.Equal((1, 0x0102030405060708L), ConnectionsFrame.Next(ref reader));
        Assert.Equal((-1, 9L), ConnectionsFrame.Next(ref reader));
    }

    [Fact]
    public void Connections_MoreThanAFrameMayCarry_WriteAndReadRefuse()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => ConnectionsFrame.Begin(new byte[ConnectionsFrame.SizeFor(FrameLimits.MaxFdsPerFrame + 1)], FrameLimits.MaxFdsPerFrame + 1));
        var ex = Assert.Throws<InvalidFrameException>(() => ConnectionsFrame.Read([(byte)FrameType.Connections, FrameLimits.MaxFdsPerFrame + 1], out _));
        Assert.Contains("connections in one frame", ex.Message);
    }

    [Fact]
    public void Connections_EntryCutShort_NextThrowsInvalidFrame()
    {
        var frame = Write(ConnectionsFrame.MaxSize, b =>
        {
            var writer = ConnectionsFrame.Begin(b, 2);
            ConnectionsFrame.Add(ref writer, 1, 1);
            ConnectionsFrame.Add(ref writer, 1, 2);
            return writer.Written;
        });

        var ex = Assert.Throws<InvalidFrameException>(() =>
        {
            var reader = ConnectionsFrame.Read(frame.AsSpan(0, frame.Length - 1), out _);
            ConnectionsFrame.Next(ref reader);
            ConnectionsFrame.Next(ref reader);
        });
        Assert.Contains("truncated", ex.Message);
    }

    [Fact]
    public void Acks_Write_CountThenSequenceAndVerdictPerConnection()
    {
        var frame = Write(AcksFrame.SizeFor(2), b => AcksFrame.Write(b, [5, 6], accepted: true));

        Assert.Equal(new byte[] { 7, 2, 0, 5, 0, 0, 0, 0, 0, 0, 0, 1, 6, 0, 0, 0, 0, 0, 0, 0, 1 }, frame);
        var reader = AcksFrame.Read(frame, out var count);
        Assert.Equal(2, count);
        Assert.Equal((5L, true), AcksFrame.Next(ref reader));
        Assert.Equal((6L, true), AcksFrame.Next(ref reader));
        reader.EnsureEnd();
    }

    // The hot path: one Connections frame per batch of passed sockets, one Acks frame back.
    [Fact]
    public void ConnectionsAndAcks_WriteThenRead_AllocateNothing()
    {
        Span<byte> connections = stackalloc byte[ConnectionsFrame.MaxSize];
        Span<byte> acks = stackalloc byte[AcksFrame.SizeFor(FrameLimits.MaxFdsPerFrame)];
        Span<long> sequences = stackalloc long[FrameLimits.MaxFdsPerFrame];
        var checksum = PassAndAcknowledge(connections, acks, sequences);

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 1000; i++)
        {
            checksum += PassAndAcknowledge(connections, acks, sequences);
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        Assert.Equal(1001 * FrameLimits.MaxFdsPerFrame, checksum);
    }

    [Fact]
    public void Acks_Refused_VerdictByteIsZero()
    {
        var frame = Write(AcksFrame.SizeFor(1), b => AcksFrame.Write(b, [5], accepted: false));

        var reader = AcksFrame.Read(frame, out _);
        Assert.Equal((5L, false), AcksFrame.Next(ref reader));
    }

    [Fact]
    public void Acks_CountOverTheLimit_ThrowsInvalidFrame()
    {
        var frame = Write(AcksFrame.SizeFor(0), b =>
        {
            var writer = new FrameWriter(b, FrameType.Acks);
            writer.WriteUInt16(AcksFrame.MaxCount + 1);
            return writer.Written;
        });

        var ex = Assert.Throws<InvalidFrameException>(() => AcksFrame.Read(frame, out _));
        Assert.Contains($"{AcksFrame.MaxCount + 1} acknowledgements", ex.Message);
    }

    [Fact]
    public void Acks_VerdictNeitherZeroNorOne_ThrowsInvalidFrame()
    {
        byte[] frame = [.. Write(AcksFrame.SizeFor(1), b => AcksFrame.Write(b, [5], accepted: true))[..^1], 2];

        var ex = Assert.Throws<InvalidFrameException>(() =>
        {
            var reader = AcksFrame.Read(frame, out _);
            AcksFrame.Next(ref reader);
        });
        Assert.Contains("acknowledgement value 2", ex.Message);
    }

    [Fact]
    public void Acks_MoreEntriesThanCounted_EnsureEndThrowsInvalidFrame()
    {
        byte[] frame = [.. Write(AcksFrame.SizeFor(1), b => AcksFrame.Write(b, [5], accepted: true)), 0xEE];

        Assert.Throws<InvalidFrameException>(() =>
        {
            var reader = AcksFrame.Read(frame, out _);
            AcksFrame.Next(ref reader);
            reader.EnsureEnd();
        });
    }

    [Fact]
    public void UnbindStatusStop_Write_TypeThenOneInt32OrNothing()
    {
        var unbind = Write(UnbindFrame.Size, b => UnbindFrame.Write(b, 4));
        var status = Write(StatusFrame.Size, b => StatusFrame.Write(b, 12));
        var stop = Write(StopFrame.Size, StopFrame.Write);

        Assert.Equal(new byte[] { 8, 4, 0, 0, 0 }, unbind);
        Assert.Equal(new byte[] { 10, 12, 0, 0, 0 }, status);
        Assert.Equal(new byte[] { 9 }, stop);
        Assert.Equal(4, UnbindFrame.Read(unbind));
        Assert.Equal(12, StatusFrame.Read(status));
    }

    [Fact]
    public void MessageAndHub_Write_PeerThenPayloadToTheEnd()
    {
        var message = Write(MessageFrame.SizeFor(2), b => MessageFrame.Write(b, MessageTargets.Supervisor, "{}"u8));
        var hub = Write(HubFrame.SizeFor(1), b => HubFrame.Write(b, MessageTargets.OtherWorkers, [9]));

        Assert.Equal(new byte[] { 11, 0xFF, 0xFF, 0xFF, 0xFF, (byte)'{', (byte)'}' }, message);
        Assert.Equal(new byte[] { 12, 0xFE, 0xFF, 0xFF, 0xFF, 9 }, hub);
        Assert.Equal(MessageTargets.Supervisor, MessageFrame.Read(message, out var json));
        Assert.Equal("{}"u8.ToArray(), json.ToArray());
        Assert.Equal(MessageTargets.OtherWorkers, HubFrame.Read(hub, out var payload));
        Assert.Equal(new byte[] { 9 }, payload.ToArray());
    }

    [Fact]
    public void HubFrame_LargestPayload_FillsAFrameExactly()
    {
        Assert.Equal(FrameLimits.MaxFrameSize, HubFrame.SizeFor(HubFrame.MaxPayloadBytes));
        Assert.True(MessageFrame.SizeFor(MessageFrame.MaxJsonBytes) <= FrameLimits.MaxFrameSize);
    }

    public static TheoryData<string> CutFrames =>
        ["Hello", "Welcome", "Bind", "BindResult", "Connections", "Acks", "Unbind", "Status", "Message", "Hub"];

    // Each decoder on its frame cut one byte inside its fixed fields, as a broken or hostile peer might send it.
    [Theory]
    [MemberData(nameof(CutFrames))]
    public void Read_FrameCutInsideItsFields_ThrowsInvalidFrame(string type)
    {
        var ex = Assert.Throws<InvalidFrameException>(() => Decode(type, cut: true));
        Assert.Contains("truncated", ex.Message);
    }

    [Theory]
    [MemberData(nameof(CutFrames))]
    public void Read_FrameOfAnotherType_ThrowsInvalidFrameNamingTheExpectedType(string type)
    {
        var ex = Assert.Throws<InvalidFrameException>(() => Decode(type, cut: false, retype: true));
        Assert.Contains($"expected {type}, got frame type {(byte)FrameType.Stop}", ex.Message);
    }

    [Theory]
    [InlineData("Welcome")]
    [InlineData("Ready")]
    [InlineData("Unbind")]
    [InlineData("Status")]
    public void Read_FixedSizeFrameWithTrailingBytes_ThrowsInvalidFrame(string type)
    {
        var ex = Assert.Throws<InvalidFrameException>(() => Decode(type, cut: false, extend: true));
        Assert.Contains("trailing bytes", ex.Message);
    }

    [Fact]
    public void Read_EmptyFrame_EveryDecoderThrowsInvalidFrame()
    {
        Assert.Throws<InvalidFrameException>(() => HelloFrame.Read([]));
        Assert.Throws<InvalidFrameException>(() => AcksFrame.Read([], out _));
        Assert.Throws<InvalidFrameException>(() => ConnectionsFrame.Read([], out _));
        Assert.Throws<InvalidFrameException>(() => FrameReader.TypeOf([]));
    }

    private static void Decode(string type, bool cut, bool retype = false, bool extend = false)
    {
        var frame = type switch
        {
            "Hello" => Write(HelloFrame.SizeFor(""), b => HelloFrame.Write(b, 1, "")),
            "Welcome" => Write(WelcomeFrame.Size, b => WelcomeFrame.Write(b, 1, 1)),
            "Bind" => Write(BindFrame.MaxSize, b => BindFrame.Write(b, 1, "")),
            "BindResult" => Write(BindResultFrame.MaxSize, b => BindResultFrame.Write(b, 1, 1, SocketError.Success, "")),
            "Ready" => Write(ReadyFrame.MaxSize, b => ReadyFrame.Write(b, WorkerFeatures.None)),
            "Connections" => Write(ConnectionsFrame.SizeFor(0), b => ConnectionsFrame.Begin(b, 0).Written),
            "Acks" => Write(AcksFrame.SizeFor(0), b => AcksFrame.Write(b, [], accepted: true)),
            "Unbind" => Write(UnbindFrame.Size, b => UnbindFrame.Write(b, 1)),
            "Status" => Write(StatusFrame.Size, b => StatusFrame.Write(b, 1)),
            "Message" => Write(MessageFrame.SizeFor(0), b => MessageFrame.Write(b, 1, [])),
            _ => Write(HubFrame.SizeFor(0), b => HubFrame.Write(b, 1, [])),
        };
        if (cut)
        {
            frame = frame[..^1];
        }

        if (retype)
        {
            frame = Write(StopFrame.Size, StopFrame.Write);
        }

        if (extend)
        {
            frame = [.. frame, 0];
        }

        switch (type)
        {
            case "Hello": HelloFrame.Read(frame); break;
            case "Welcome": WelcomeFrame.Read(frame); break;
            case "Bind": BindFrame.Read(frame); break;
            case "BindResult": BindResultFrame.Read(frame); break;
            case "Ready": ReadyFrame.Read(frame); break;
            case "Connections": ConnectionsFrame.Read(frame, out _); break;
            case "Acks": AcksFrame.Read(frame, out _).EnsureEnd(); break;
            case "Unbind": UnbindFrame.Read(frame); break;
            case "Status": StatusFrame.Read(frame); break;
            case "Message": MessageFrame.Read(frame, out _); break;
            default: HubFrame.Read(frame, out _); break;
        }
    }

    private static long PassAndAcknowledge(Span<byte> connectionsBuffer, Span<byte> acksBuffer, Span<long> sequences)
    {
        var writer = ConnectionsFrame.Begin(connectionsBuffer, sequences.Length);
        for (var i = 0; i < sequences.Length; i++)
        {
            ConnectionsFrame.Add(ref writer, i, 1000 + i);
        }

        var connections = ConnectionsFrame.Read(writer.Written, out var count);
        for (var i = 0; i < count; i++)
        {
            sequences[i] = ConnectionsFrame.Next(ref connections).Sequence;
        }

        var acks = AcksFrame.Read(AcksFrame.Write(acksBuffer, sequences, accepted: true), out count);
        var accepted = 0L;
        for (var i = 0; i < count; i++)
        {
            accepted += AcksFrame.Next(ref acks).Accepted ? 1 : 0;
        }

        acks.EnsureEnd();
        return accepted;
    }

    private static byte[] Write(int size, Encoder encode) => encode(new byte[size]).ToArray();
}
