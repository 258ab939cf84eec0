namespace KestrelCluster.Tests.Infrastructure;

/// <summary>Waiting for a condition, polled, always bounded by a timeout: never a bare sleep.</summary>
internal static class Wait
{
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(50);

    public static Task UntilAsync(Func<bool> condition, TimeSpan timeout)
        => ForAsync(() => Task.FromResult(condition()), ok => ok, timeout);

    public static Task UntilAsync(Func<Task<bool>> condition, TimeSpan timeout)
        => ForAsync(condition, ok => ok, timeout);

    /// <summary>Reads until the value satisfies the condition; returns that value.</summary>
    public static async Task<T> ForAsync<T>(Func<Task<T>> read, Func<T, bool> condition, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var value = await read();
            if (condition(value))
            {
                return value;
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"condition not met within {timeout.TotalSeconds} s (last value: {value})");
            }

            await Task.Delay(PollInterval);
        }
    }
}
