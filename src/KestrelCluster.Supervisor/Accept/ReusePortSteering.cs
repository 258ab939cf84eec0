using System.Buffers.Binary;
using System.Net.Sockets;
using KestrelCluster.Interop;

namespace KestrelCluster.Supervisor.Accept;

// Chooses which socket of an SO_REUSEPORT group a new connection lands in, instead of the kernel's hash of the
// 4-tuple (random: 64 connections over 2 sockets split about 32 ± 4). The program runs on each SYN and returns an
// index into the group's socket array; `indexes` lists the group indexes that may take new connections.
//
// Round-robin first: an eBPF socket filter that counts SYNs in a one-entry array map, so consecutive connections
// go to consecutive sockets whatever their ports. Loading eBPF needs CAP_BPF (or root) where
// kernel.unprivileged_bpf_disabled is set, as most distributions do. Without it, a classic BPF program picks
// (source port / 2) mod N. Linux hands out connect() ports 2 apart, but since 5.18 it adds a random 0-7 extra steps
// between consecutive connections (so the next port cannot be guessed): on such clients this is as random as the
// kernel's own hash, even only in expectation, still deterministic per port.
internal sealed class ReusePortSteering : IDisposable
{
    // Where classic BPF reads relative to the network header; during reuseport selection the packet data starts
    // after the TCP header (a SYN has no payload), so the source port is only reachable this way.
    private const int SkfNetOff = -0x100000;
    private const int IPv4HeaderLength = 20;
    private const int IPv6HeaderLength = 40;

    private int _counterMap = -1;
    private bool _roundRobinUnavailable;

    public ReusePortSteering()
    {
    }

    /// <summary>How connections are spread, for the log: "round-robin (eBPF)" or "by client port (classic BPF)".</summary>
    public string Method { get; private set; } = "none yet";

    /// <summary>Steers the group <paramref name="member"/> belongs to: connection n goes to indexes[n mod count].</summary>
    public void Attach(Socket member, ReadOnlySpan<int> indexes)
    {
        if (indexes.IsEmpty)
        {
            return;
        }

        if (!_roundRobinUnavailable && TryAttachRoundRobin(member, indexes))
        {
            Method = "round-robin (eBPF)";
            return;
        }

        _roundRobinUnavailable = true;
        AttachByPort(member, indexes);
        Method = "by client port (classic BPF; eBPF needs CAP_BPF)";
    }

    private unsafe bool TryAttachRoundRobin(Socket member, ReadOnlySpan<int> indexes)
    {
        if (_counterMap < 0)
        {
            Span<byte> map = stackalloc byte[64];
            map.Clear();
            BinaryPrimitives.WriteUInt32LittleEndian(map, 2); // BPF_MAP_TYPE_ARRAY
            BinaryPrimitives.WriteUInt32LittleEndian(map[4..], 4); // key: u32
            BinaryPrimitives.WriteUInt32LittleEndian(map[8..], 8); // value: u64 counter
            BinaryPrimitives.WriteUInt32LittleEndian(map[12..], 1);
            fixed (byte* attributes = map)
            {
                _counterMap = Libc.Bpf(Libc.BPF_MAP_CREATE, attributes, map.Length);
            }

            if (_counterMap < 0)
            {
                return false;
            }
        }

        var program = new List<ulong>(16 + (3 * indexes.Length))
        {
            Ebpf(0x62, 10, 0, -4, 0),                 // *(u32 *)(r10 - 4) = 0: the key
            Ebpf(0xbf, 2, 10, 0, 0),                  // r2 = r10
            Ebpf(0x07, 2, 0, 0, -4),                  // r2 += -4
            Ebpf(0x18, 1, 1, 0, _counterMap),         // r1 = the map (ld_imm64, BPF_PSEUDO_MAP_FD)
            0,
            Ebpf(0x85, 0, 0, 0, 1),                   // call bpf_map_lookup_elem
            Ebpf(0x15, 0, 0, (short)(3 + (3 * indexes.Length)), 0), // if r0 == 0 goto fallback
            Ebpf(0xb7, 1, 0, 0, 1),                   // r1 = 1
            Ebpf(0xdb, 0, 1, 0, 0x01),                // r1 = atomic_fetch_add((u64 *)(r0 + 0), r1)
            Ebpf(0x97, 1, 0, 0, indexes.Length),      // r1 %= count
        };
        for (var i = 0; i < indexes.Length; i++)
        {
            program.Add(Ebpf(0x55, 1, 0, 2, i));     // if r1 != i goto next
            program.Add(Ebpf(0xb7, 0, 0, 0, indexes[i])); // r0 = its group index
            program.Add(Ebpf(0x95, 0, 0, 0, 0));     // exit
        }

        program.Add(Ebpf(0xb7, 0, 0, 0, -1));        // fallback: an index past the group → the kernel's hash
        program.Add(Ebpf(0x95, 0, 0, 0, 0));

        var instructions = program.ToArray();
        var license = "GPL\0"u8;
        int fd;
        fixed (ulong* code = instructions)
        fixed (byte* licenseText = license)
        {
            Span<byte> load = stackalloc byte[128];
            load.Clear();
            BinaryPrimitives.WriteUInt32LittleEndian(load, 1); // BPF_PROG_TYPE_SOCKET_FILTER
            BinaryPrimitives.WriteUInt32LittleEndian(load[4..], (uint)instructions.Length);
            BinaryPrimitives.WriteUInt64LittleEndian(load[8..], (ulong)code);
            BinaryPrimitives.WriteUInt64LittleEndian(load[16..], (ulong)licenseText);
            fixed (byte* attributes = load)
            {
                fd = Libc.Bpf(Libc.BPF_PROG_LOAD, attributes, load.Length);
            }
        }

        if (fd < 0)
        {
            return false;
        }

        try
        {
            Span<byte> value = stackalloc byte[4];
            BinaryPrimitives.WriteInt32LittleEndian(value, fd);
            member.SetRawSocketOption(Libc.SOL_SOCKET, Libc.SO_ATTACH_REUSEPORT_EBPF, value);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
        finally
        {
            // The group holds its own reference to the program.
            Libc.Close(fd);
        }
    }

    private static unsafe void AttachByPort(Socket member, ReadOnlySpan<int> indexes)
    {
        var program = new List<ulong>(10 + (2 * indexes.Length))
        {
            Classic(0x30, 0, 0, SkfNetOff),                       // A = first byte of the IP header
            Classic(0x74, 0, 0, 4),                               // A >>= 4: the IP version
            Classic(0x15, 2, 0, 6),                               // IPv6? skip to its load
            Classic(0x28, 0, 0, SkfNetOff + IPv4HeaderLength),    // A = TCP source port after an IPv4 header without options
            Classic(0x05, 0, 0, 1),                               // goto shift
            Classic(0x28, 0, 0, SkfNetOff + IPv6HeaderLength),    // A = TCP source port after a plain IPv6 header
            Classic(0x74, 0, 0, 1),                               // A >>= 1: connect() ports step by 2
            Classic(0x94, 0, 0, indexes.Length),                  // A %= count
        };
        for (var i = 0; i < indexes.Length; i++)
        {
            program.Add(Classic(0x15, 0, 1, i));                  // A == i?
            program.Add(Classic(0x06, 0, 0, indexes[i]));         // return its group index
        }

        program.Add(Classic(0x06, 0, 0, -1));                     // unreachable: past the group → the kernel's hash

        var filter = program.ToArray();
        fixed (ulong* code = filter)
        {
            // struct sock_fprog: u16 length, then the pointer at offset 8.
            Span<byte> value = stackalloc byte[16];
            value.Clear();
            BinaryPrimitives.WriteUInt16LittleEndian(value, (ushort)filter.Length);
            BinaryPrimitives.WriteUInt64LittleEndian(value[8..], (ulong)code);
            member.SetRawSocketOption(Libc.SOL_SOCKET, Libc.SO_ATTACH_REUSEPORT_CBPF, value);
        }
    }

    // struct bpf_insn: u8 code, u8 dst:4 src:4, s16 offset, s32 imm (little-endian).
    private static ulong Ebpf(byte code, int dst, int src, short offset, int imm)
        => code | ((ulong)(byte)((src << 4) | dst) << 8) | ((ulong)(ushort)offset << 16) | ((ulong)(uint)imm << 32);

    // struct sock_filter: u16 code, u8 jt, u8 jf, u32 k.
    private static ulong Classic(ushort code, byte jumpTrue, byte jumpFalse, int k)
        => code | ((ulong)jumpTrue << 16) | ((ulong)jumpFalse << 24) | ((ulong)(uint)k << 32);

    public void Dispose()
    {
        if (_counterMap >= 0)
        {
            Libc.Close(_counterMap);
            _counterMap = -1;
        }
    }
}
