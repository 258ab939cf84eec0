using KestrelCluster.Protocol;

namespace KestrelCluster.Supervisor.Accept;

// How many supervisor threads accept on each TCP endpoint (round-robin, least-connections, sticky); the figures
// behind the rule are in README "Performance".
internal static class AcceptThreadCount
{
    // An upgrade hands an endpoint's sockets over in one frame.
    public const int Max = FrameLimits.MaxFdsPerFrame;

    // One accept thread (24-30 µs a connection) keeps about three worker cores (40-50 µs each) busy with the cheapest
    // app there is, a hello world where every request is a new connection; one per 4 cores leaves room for the
    // supervisor's other threads and covers any app that spends a little more per connection.
    private const int CoresPerThread = 4;

    // The dispatcher's lock is held across sendmsg: past this, more threads wait on it rather than accept.
    private const int DefaultMax = 8;

    public static int DefaultFor(int cores) => Math.Clamp(cores / CoresPerThread, 1, DefaultMax);
}
