namespace KestrelCluster.Supervisor.Distribution;

internal enum BalanceMode
{
    // The supervisor accepts; the next ready worker with window room.
    RoundRobin,

    // The supervisor accepts; the ready worker with the fewest open connections.
    LeastConnections,

    // The supervisor accepts; a hash of the client's address picks the worker (rendezvous hashing).
    Sticky,

    // The workers accept on the listening socket the supervisor passes them; the kernel spreads the load.
    Shared,
}
