namespace KestrelCluster.Supervisor.Cli;

internal enum BalanceMode
{
    RoundRobin,
}
