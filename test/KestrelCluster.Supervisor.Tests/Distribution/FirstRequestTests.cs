using System.Text;
using KestrelCluster.Supervisor.Distribution;

namespace KestrelCluster.Tests.Distribution;

// What request-aware affinity reads in a connection's first bytes.
public sealed class FirstRequestTests
{
    private static FirstRequestHint Read(string text, bool final = false) => FirstRequest.Read(Encoding.ASCII.GetBytes(text), final);

    [Fact]
    public void Read_WebSocketUpgradeWithAffinityCookie_NamesThatWorker()
    {
        var hint = Read("GET /chat?id=abc HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nCookie: theme=dark; kc-worker=3; other=1\r\n\r\n");

        Assert.Equal(new FirstRequestHint(FirstRequestKind.Http, 3), hint);
    }

    [Theory]
    [InlineData("cookie: kc-worker=12\r\n")]
    [InlineData("COOKIE:kc-worker=12\r\n")]
    [InlineData("Cookie: a=b\r\nCookie: kc-worker=12 \r\n")]
    public void Read_CookieHeaderSpellings_NameTheWorker(string cookieLines)
    {
        Assert.Equal(12, Read($"POST /chat/negotiate?negotiateVersion=1 HTTP/1.1\r\nHost: x\r\n{cookieLines}Content-Length: 0\r\n\r\n").Worker);
    }

    [Theory]
    [InlineData("GET / HTTP/1.1\r\nHost: x\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nCookie: xkc-worker=1\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nCookie: kc-worker=\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nCookie: kc-worker=1a\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nCookie: kc-worker=99999\r\n\r\n")]
    [InlineData("GET /?kc-worker=1 HTTP/1.1\r\nX-Cookie: kc-worker=1\r\n\r\n")]
    public void Read_NoUsableCookie_NoWorker(string request)
    {
        Assert.Equal(new FirstRequestHint(FirstRequestKind.Http, -1), Read(request));
    }

    [Theory]
    [InlineData("")]
    [InlineData("GET /chat HTTP/1.1\r\nCookie: kc-wor")]
    [InlineData("PRI * HTTP")]
    public void Read_PartOfTheHeaders_Incomplete(string partial)
    {
        Assert.Equal(FirstRequestKind.Incomplete, Read(partial).Kind);
    }

    [Fact]
    public void Read_PartOfTheHeadersWhenTimeIsUp_ReadsWhatCame()
    {
        Assert.Equal(new FirstRequestHint(FirstRequestKind.Http, 2), Read("GET /chat HTTP/1.1\r\nCookie: kc-worker=2\r\nAccept: ", final: true));
    }

    [Fact]
    public void Read_TlsClientHello_Opaque()
    {
        Assert.Equal(FirstRequestKind.Opaque, FirstRequest.Read([0x16, 0x03, 0x01, 0x02, 0x00], final: false).Kind);
    }

    [Fact]
    public void Read_Http2PriorKnowledge_Opaque()
    {
        Assert.Equal(FirstRequestKind.Opaque, Read("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").Kind);
    }

    [Fact]
    public void Read_HeadersLongerThanThePeekBuffer_ReadsTheCookieWithinIt()
    {
        var request = "GET / HTTP/1.1\r\nCookie: kc-worker=1\r\nX-Big: " + new string('a', FirstRequest.PeekSize) + "\r\n\r\n";

        Assert.Equal(new FirstRequestHint(FirstRequestKind.Http, 1), FirstRequest.Read(Encoding.ASCII.GetBytes(request)[..FirstRequest.PeekSize], final: false));
    }
}
