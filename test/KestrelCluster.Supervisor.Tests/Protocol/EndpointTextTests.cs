using System.Net;
using System.Net.Sockets;
using KestrelCluster.Protocol;

namespace KestrelCluster.Tests.Protocol;

// The text a worker sends in a Bind frame must name, in the supervisor, the endpoint the app meant.
public sealed class EndpointTextTests
{
    [Theory]
    [InlineData("127.0.0.1:0")]
    [InlineData("127.0.0.1:5000")]
    [InlineData("0.0.0.0:80")]
    [InlineData("[::1]:0")]
    [InlineData("[::]:8080")]
    [InlineData("[::ffff:127.0.0.1]:5000")]
    [InlineData("unix:/tmp/app.sock")]
    [InlineData("unix:/tmp/a folder/app.sock")]
    [InlineData("unix:@abstract-name")]
    public void FormatOfParse_SupportedEndpoint_GivesTheSameText(string text)
    {
        Assert.True(EndpointText.TryParse(text, out var endPoint));
        Assert.Equal(text, EndpointText.Format(endPoint));
    }

    [Fact]
    public void Format_IPv6Endpoint_UsesBrackets()
    {
        Assert.Equal("[::1]:5000", EndpointText.Format(new IPEndPoint(IPAddress.IPv6Loopback, 5000)));
    }

    [Fact]
    public void TryParse_AtName_GivesAnAbstractSocketNotAFile()
    {
        Assert.True(EndpointText.TryParse("unix:@abstract-name", out var endPoint));
        var unix = Assert.IsType<UnixDomainSocketEndPoint>(endPoint);
        Assert.True(IsAbstract(unix));
        Assert.Equal(new UnixDomainSocketEndPoint("\0abstract-name"), unix);
    }

    [Fact]
    public void Format_AbstractSocket_WritesAtName()
    {
        var abstractSocket = new UnixDomainSocketEndPoint("\0abstract-name");
        Assert.True(IsAbstract(abstractSocket));
        Assert.Equal("unix:@abstract-name", EndpointText.Format(abstractSocket));
    }

    [Fact]
    public void Format_RelativeUnixPath_WritesTheAbsolutePathOfThisProcess()
    {
        // The supervisor's working folder is not the worker's: it must be told the absolute path.
        var text = EndpointText.Format(new UnixDomainSocketEndPoint("app.sock"));
        Assert.Equal("unix:" + Path.Combine(Directory.GetCurrentDirectory(), "app.sock"), text);
    }

    [Theory]
    [InlineData("")]
    [InlineData("unix:")]
    [InlineData("unix:@")]
    [InlineData("localhost:80")]
    [InlineData("127.0.0.1")]
    [InlineData("5000")]
    public void TryParse_NotAnEndpoint_ReturnsFalse(string text)
    {
        Assert.False(EndpointText.TryParse(text, out _));
    }

    [Fact]
    public void TryParse_UnixPathLongerThanSunPath_ReturnsFalse()
    {
        Assert.False(EndpointText.TryParse("unix:/" + new string('x', 107), out _));
    }

    [Fact]
    public void IsAbstract_UnixEndpoints_TrueOnlyForANameStartingWithNul()
    {
        Assert.True(EndpointText.IsAbstract(new UnixDomainSocketEndPoint("\0name")));
        Assert.False(EndpointText.IsAbstract(new UnixDomainSocketEndPoint("@name")));
        Assert.False(EndpointText.IsAbstract(new UnixDomainSocketEndPoint("/tmp/app.sock")));
        Assert.False(EndpointText.IsAbstract(new UnixDomainSocketEndPoint("app.sock")));
    }

    // sun_path starts at byte 2 of sockaddr_un; an abstract name starts with NUL.
    private static bool IsAbstract(UnixDomainSocketEndPoint endPoint) => endPoint.Serialize()[2] == 0;
}
