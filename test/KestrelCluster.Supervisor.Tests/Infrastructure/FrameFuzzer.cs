using System.Text;
using KestrelCluster.Protocol;

namespace KestrelCluster.Tests.Infrastructure;

/// <summary>
/// Random and malformed channel frames and control requests, reproducible from a seed: well-formed frames
/// of every type, then truncated, extended, bit-flipped, retyped, with oversized counts, or plain noise.
/// </summary>
internal sealed class FrameFuzzer(int seed)
{
    private static readonly string[] Commands = ["list", "reload", "scale", "stop", "", "LIST", "send", "list\0", "ürk"];

    private readonly Random _random = new(seed);

    public Random Random => _random;

    /// <summary>What a worker might send after its hello: every worker→supervisor type and then some.</summary>
    public byte[] NextWorkerFrame() => Mutate(_random.Next(9) switch
    {
        8 => WithText(FrameType.Message, _random.Next(3) switch { 0 => MessageTargets.Supervisor, 1 => MessageTargets.OtherWorkers, _ => _random.Next() }, RandomText()),
        0 => Acks(),
        1 => WithText(FrameType.Bind, _random.Next(), RandomText()),
        2 => StatusFrame.Write(new byte[StatusFrame.Size], _random.Next(4) == 0 ? _random.Next(int.MinValue, 0) : _random.Next(1000)).ToArray(),
        3 => ReadyFrame.Write(new byte[ReadyFrame.MaxSize], features: null).ToArray(),
        4 => UnbindFrame.Write(new byte[UnbindFrame.Size], _random.Next(4) == 0 ? _random.Next() : _random.Next(-2, 70)).ToArray(),
        5 => WithText(FrameType.Hello, _random.Next(), RandomText()),
        6 => [(byte)_random.Next(12, 256)],
        _ => Noise(_random.Next(0, 64)),
    });

    /// <summary>A peer's first frame on the channel socket: a hello, more or less.</summary>
    public byte[] NextHello() => Mutate(_random.Next(4) switch
    {
        0 => Noise(_random.Next(0, 128)),
        1 => [(byte)_random.Next(0, 256), .. Noise(_random.Next(0, 80))],
        _ => WithText(FrameType.Hello, _random.Next(), RandomText()),
    });

    /// <summary>One control request: JSON, more or less.</summary>
    public byte[] NextControlRequest()
    {
        var command = Commands[_random.Next(Commands.Length)];
        string text = _random.Next(10) switch
        {
            0 => $"{{\"command\":\"{command}\",\"workers\":{_random.Next(int.MinValue, int.MaxValue)}}}",
            1 => $"{{\"command\":{_random.Next()}}}",
            2 => $"{{\"workers\":\"{RandomText()}\"}}",
            3 => $"[\"{command}\"]",
            4 => "{\"command\":\"list\",\"workers\":1e400}",
            5 => new string('[', _random.Next(1, 2000)),
            6 => "null",
            7 => $"{{\"command\":\"{command}\",\"command\":\"{command}\",\"extra\":{{\"a\":[1,2,{{}}]}}}}",
            _ => $"{{\"command\":\"{command}\"}}",
        };
        return _random.Next(3) == 0 ? Encoding.UTF8.GetBytes(text) : Mutate(Encoding.UTF8.GetBytes(text));
    }

    // The Acks layout field by field, since AcksFrame.Write cannot name a count other than its entries' or a value other than 0 or 1.
    private byte[] Acks()
    {
        var count = _random.Next(4) == 0 ? _random.Next(0, ushort.MaxValue + 1) : _random.Next(0, 5);
        var entries = Math.Min(count, 200);
        var frame = new byte[AcksFrame.SizeFor(entries)];
        var writer = new FrameWriter(frame, FrameType.Acks);
        writer.WriteUInt16((ushort)count);
        for (var i = 0; i < entries; i++)
        {
            writer.WriteInt64(_random.Next(4) == 0 ? _random.NextInt64() : _random.Next(-1, 100));
            writer.WriteByte((byte)(_random.Next(3) == 0 ? _random.Next(256) : _random.Next(2)));
        }

        return frame;
    }

    // An i32 then raw bytes to the end: the layout of Hello, Bind and Message, with text that need not be UTF-8.
    private static byte[] WithText(FrameType type, int value, byte[] text)
    {
        var header = type switch
        {
            FrameType.Hello => HelloFrame.HeaderSize,
            FrameType.Bind => BindFrame.HeaderSize,
            _ => MessageFrame.HeaderSize,
        };
        var frame = new byte[header + text.Length];
        var writer = new FrameWriter(frame, type);
        writer.WriteInt32(value);
        writer.WriteRemaining(text);
        return frame;
    }

    private byte[] RandomText() => _random.Next(6) switch
    {
        0 => Noise(_random.Next(0, 64)),
        1 => Encoding.UTF8.GetBytes(new string('a', _random.Next(0, 70_000))),
        2 => [0xC3, 0x28, 0xFF, 0xFE, 0xED, 0xA0, 0x80],
        3 => Encoding.UTF8.GetBytes("127.0.0.1:" + _random.Next(-5, 70000)),
        4 => Encoding.UTF8.GetBytes("unix:" + new string('/', _random.Next(0, 300))),
        _ => Encoding.UTF8.GetBytes(Convert.ToHexString(Noise(32))),
    };

    private byte[] Noise(int length)
    {
        var bytes = new byte[length];
        _random.NextBytes(bytes);
        return bytes;
    }

    private byte[] Mutate(byte[] frame)
    {
        switch (_random.Next(6))
        {
            case 0 when frame.Length > 0:
                return frame[.._random.Next(frame.Length)];
            case 1:
                return [.. frame, .. Noise(_random.Next(1, 16))];
            case 2 when frame.Length > 0:
                var flipped = (byte[])frame.Clone();
                for (var i = _random.Next(1, 4); i > 0; i--)
                {
                    flipped[_random.Next(flipped.Length)] ^= (byte)(1 << _random.Next(8));
                }

                return flipped;
            case 3 when frame.Length > 0:
                var retyped = (byte[])frame.Clone();
                retyped[0] = (byte)_random.Next(256);
                return retyped;
            default:
                return frame;
        }
    }
}
