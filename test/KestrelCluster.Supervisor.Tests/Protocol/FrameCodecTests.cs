using System.Net;
using System.Net.Sockets;
using KestrelCluster.Protocol;

namespace KestrelCluster.Tests.Protocol;

public sealed class FrameCodecTests
{
    [Fact]
    public void WriteThenRead_EveryFieldType_RoundTrips()
    {
        Span<byte> buffer = stackalloc byte[64];
        var writer = new FrameWriter(buffer, FrameType.BindResult);
        writer.WriteByte(0xAB);
        writer.WriteUInt16(0xBEEF);
        writer.WriteInt32(-123456789);
        writer.WriteInt64(long.MinValue + 7);
        writer.WritePrefixedString("hub ✓");
        writer.WritePrefixedBytes([1, 2, 3]);
        writer.WriteRemainingString("127.0.0.1:5000 ✓");

        var reader = new FrameReader(writer.Written);
        Assert.Equal(FrameType.BindResult, reader.Type);
        Assert.Equal(0xAB, reader.ReadByte());
        Assert.Equal(0xBEEF, reader.ReadUInt16());
        Assert.Equal(-123456789, reader.ReadInt32());
        Assert.Equal(long.MinValue + 7, reader.ReadInt64());
        Assert.Equal("hub ✓", reader.ReadPrefixedString());
        Assert.Equal(new byte[] { 1, 2, 3 }, reader.ReadPrefixedBytes().ToArray());
        Assert.Equal("127.0.0.1:5000 ✓", reader.ReadRemainingString());
        Assert.Equal(0, reader.Remaining);
        reader.EnsureEnd();
    }

    [Fact]
    public void Write_Int32_IsLittleEndianAfterTheTypeByte()
    {
        Span<byte> buffer = stackalloc byte[8];
        var writer = new FrameWriter(buffer, FrameType.Hello);
        writer.WriteInt32(0x01020304);

        Assert.Equal(new byte[] { 1, 4, 3, 2, 1 }, writer.Written.ToArray());
        Assert.Equal(5, writer.Position);
    }

    // Was SetByteAt_CountPatchedAfterEntries_ReadsBackPatchedCount: the count is now written first, from the codec.
    [Fact]
    public void ConnectionsFrame_CountThenEntries_ReadsBackEveryEntry()
    {
        Span<byte> buffer = stackalloc byte[ConnectionsFrame.MaxSize];
        var writer = ConnectionsFrame.Begin(buffer, 3);
        for (var i = 0; i < 3; i++)
        {
            ConnectionsFrame.Add(ref writer, i, 100 + i);
        }

        Assert.Equal(ConnectionsFrame.SizeFor(3), writer.Written.Length);
        var reader = ConnectionsFrame.Read(writer.Written, out var count);
        Assert.Equal(3, count);
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal((i, 100L + i), ConnectionsFrame.Next(ref reader));
        }
    }

    [Fact]
    public void Read_TypeOnlyFrame_HasNothingRemaining()
    {
        var reader = new FrameReader([(byte)FrameType.Ready]);

        Assert.Equal(FrameType.Ready, reader.Type);
        Assert.Equal(0, reader.Remaining);
        reader.EnsureEnd();
    }

    [Fact]
    public void Read_EmptyFrame_ThrowsInvalidFrame()
    {
        var ex = Assert.Throws<InvalidFrameException>(() => new FrameReader([]));
        Assert.Contains("empty", ex.Message);
    }

    [Theory]
    [InlineData(0, "byte")]
    [InlineData(1, "uint16")]
    [InlineData(3, "int32")]
    [InlineData(7, "int64")]
    public void Read_FieldPastTheEnd_ThrowsInvalidFrame(int payloadLength, string field)
    {
        byte[] frame = [(byte)FrameType.Acks, .. new byte[payloadLength]];

        var ex = Assert.Throws<InvalidFrameException>(() =>
        {
            var reader = new FrameReader(frame);
            _ = field switch
            {
                "byte" => reader.ReadByte(),
                "uint16" => reader.ReadUInt16(),
                "int32" => reader.ReadInt32(),
                _ => reader.ReadInt64(),
            };
        });
        Assert.Contains("truncated", ex.Message);
    }

    [Fact]
    public void Read_HelloCutInsidePid_ThrowsInvalidFrame()
    {
        var frame = new byte[] { (byte)FrameType.Hello, 0x39, 0x30 };

        Assert.Throws<InvalidFrameException>(() =>
        {
            var reader = new FrameReader(frame);
            reader.ReadInt32();
        });
    }

    [Fact]
    public void Read_FailedRead_DoesNotConsumeTheRest()
    {
        var frame = new byte[] { (byte)FrameType.Unbind, 1, 2, 3 };
        var reader = new FrameReader(frame);

        try
        {
            reader.ReadInt32();
            Assert.Fail("a 3-byte payload cannot hold an int32");
        }
        catch (InvalidFrameException)
        {
        }

        Assert.Equal(3, reader.Remaining);
    }

    [Fact]
    public void EnsureEnd_TrailingBytes_ThrowsInvalidFrameNamingTheCount()
    {
        var frame = new byte[] { (byte)FrameType.Unbind, 7, 0, 0, 0, 0xEE, 0xFF };

        var ex = Assert.Throws<InvalidFrameException>(() =>
        {
            var reader = new FrameReader(frame);
            Assert.Equal(7, reader.ReadInt32());
            reader.EnsureEnd();
        });
        Assert.Contains("Unbind", ex.Message);
        Assert.Contains("2 unexpected trailing bytes", ex.Message);
    }

    [Theory]
    [InlineData(new byte[] { 0xC3, 0x28 })]
    [InlineData(new byte[] { 0xFF })]
    [InlineData(new byte[] { 0xE2, 0x82 })]
    [InlineData(new byte[] { 0xED, 0xA0, 0x80 })]
    [InlineData(new byte[] { 0xC0, 0xAF })]
    public void ReadRemainingString_InvalidUtf8_ThrowsInvalidFrame(byte[] text)
    {
        byte[] frame = [(byte)FrameType.Bind, .. text];

        var ex = Assert.Throws<InvalidFrameException>(() => new FrameReader(frame).ReadRemainingString());
        Assert.Contains("UTF-8", ex.Message);
    }

    [Fact]
    public void ReadRemainingString_NothingLeft_ReturnsEmptyString()
    {
        var reader = new FrameReader([(byte)FrameType.BindResult]);

        Assert.Equal(string.Empty, reader.ReadRemainingString());
        reader.EnsureEnd();
    }

    [Fact]
    public void Read_UnknownTypeByte_ReadsTypeWithoutThrowing()
    {
        var reader = new FrameReader([200]);

        Assert.Equal((FrameType)200, reader.Type);
        Assert.False(Enum.IsDefined(reader.Type));
    }

    [Fact]
    public void FrameType_WireValues_NeverRenumbered()
    {
        Assert.Equal(
            new[] { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 },
            new[] { FrameType.Hello, FrameType.Welcome, FrameType.Bind, FrameType.BindResult, FrameType.Ready, FrameType.Connections, FrameType.Acks, FrameType.Unbind, FrameType.Stop, FrameType.Status, FrameType.Message, FrameType.Hub }.Select(t => (int)t));
    }

    public static TheoryData<string> EndpointTexts =>
    [
        "127.0.0.1:5000",
        "0.0.0.0:0",
        "10.1.2.3:65535",
        "[::1]:80",
        "[::]:0",
        "[fe80::1:2]:8443",
        "[2001:db8::7]:5001",
        "unix:/run/app.sock",
        "unix:/tmp/kestrel cluster/with space.sock",
    ];

    [Theory]
    [MemberData(nameof(EndpointTexts))]
    public void EndpointText_ParseThenFormat_RoundTrips(string text)
    {
        Assert.True(EndpointText.TryParse(text, out var endPoint));
        Assert.Equal(text, EndpointText.Format(endPoint));
    }

    [Fact]
    public void EndpointText_IPv4_FormatsAndParsesBack()
    {
        var endPoint = new IPEndPoint(IPAddress.Loopback, 5000);

        var text = EndpointText.Format(endPoint);

        Assert.Equal("127.0.0.1:5000", text);
        Assert.True(EndpointText.TryParse(text, out var parsed));
        Assert.Equal(endPoint, parsed);
    }

    [Fact]
    public void EndpointText_IPv6_FormatsWithBracketsAndParsesBack()
    {
        var endPoint = new IPEndPoint(IPAddress.IPv6Loopback, 8080);

        var text = EndpointText.Format(endPoint);

        Assert.Equal("[::1]:8080", text);
        Assert.True(EndpointText.TryParse(text, out var parsed));
        Assert.Equal(AddressFamily.InterNetworkV6, parsed.AddressFamily);
        Assert.Equal(endPoint, parsed);
    }

    [Fact]
    public void EndpointText_UnixPath_FormatsWithPrefixAndParsesBack()
    {
        var endPoint = new UnixDomainSocketEndPoint("/run/user/1000/app.sock");

        var text = EndpointText.Format(endPoint);

        Assert.Equal("unix:/run/user/1000/app.sock", text);
        Assert.True(EndpointText.TryParse(text, out var parsed));
        var unix = Assert.IsType<UnixDomainSocketEndPoint>(parsed);
        Assert.Equal("/run/user/1000/app.sock", unix.ToString());
    }

    [Fact]
    public void EndpointText_LongestUnixPath_RoundTrips()
    {
        var path = "/" + new string('a', 106);

        Assert.True(EndpointText.TryParse("unix:" + path, out var parsed));
        Assert.Equal("unix:" + path, EndpointText.Format(parsed));
    }

    [Theory]
    [InlineData("")]
    [InlineData("unix:")]
    [InlineData("127.0.0.1")]
    [InlineData("localhost:5000")]
    [InlineData("127.0.0.1:65536")]
    [InlineData("127.0.0.1:-1")]
    [InlineData("[::1]:")]
    [InlineData("http://127.0.0.1:5000")]
    public void EndpointText_NotAnEndpoint_TryParseReturnsFalse(string text)
    {
        Assert.False(EndpointText.TryParse(text, out var endPoint));
        Assert.Null(endPoint);
    }

    [Fact]
    public void EndpointText_UnixPathTooLongForSunPath_TryParseReturnsFalse()
    {
        Assert.False(EndpointText.TryParse("unix:/" + new string('a', 107), out _));
    }

    [Fact]
    public void EndpointText_DnsEndPoint_FormatThrowsNotSupported()
    {
        Assert.Throws<NotSupportedException>(() => EndpointText.Format(new DnsEndPoint("localhost", 80)));
    }
}
