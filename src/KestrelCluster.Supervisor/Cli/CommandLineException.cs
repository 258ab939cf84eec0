namespace KestrelCluster.Supervisor.Cli;

// Bad input from the user: printed as one line on stderr, exit code 2.
internal sealed class CommandLineException(string message) : Exception(message);
