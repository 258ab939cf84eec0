using System.Text;
using KestrelCluster.Protocol;
using KestrelCluster.Supervisor.Upgrade;

namespace KestrelCluster.Tests.Upgrade;

// The upgrade frames, supervisor to supervisor, written and read through the same FrameWriter/FrameReader as the
// channel frames.
public sealed class UpgradeFramesTests
{
    [Fact]
    public void UpgradeFrame_Encode_TypeByteThenText()
    {
        var frame = UpgradeFrames.Encode(UpgradeFrame.ListenersDone, "2");

        Assert.Equal(new byte[] { 3, (byte)'2' }, frame);
        Assert.Equal((UpgradeFrame.ListenersDone, "2"), UpgradeFrames.Decode(frame));
        Assert.Equal(new byte[] { (byte)UpgradeFrame.TakeOver }, UpgradeFrames.Encode(UpgradeFrame.TakeOver));
        Assert.Equal((UpgradeFrame.TakeOver, ""), UpgradeFrames.Decode(UpgradeFrames.Encode(UpgradeFrame.TakeOver)));
    }

    [Fact]
    public void UpgradeFrame_DecodeEmpty_ThrowsInvalidFrame()
    {
        var ex = Assert.Throws<InvalidFrameException>(() => UpgradeFrames.Decode([]));
        Assert.Contains("empty", ex.Message);
    }

    [Fact]
    public void UpgradeFrame_WireValues_NeverRenumbered()
    {
        Assert.Equal(
            Enumerable.Range(1, 8),
            new[] { UpgradeFrame.Hello, UpgradeFrame.Listener, UpgradeFrame.ListenersDone, UpgradeFrame.Ready, UpgradeFrame.Failed, UpgradeFrame.TakeOver, UpgradeFrame.TookOver, UpgradeFrame.Connections }.Select(t => (int)t));
    }
}
