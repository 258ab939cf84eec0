using Microsoft.AspNetCore.Mvc;

namespace ControllersApp.Controllers;

/// <summary>Which process answered, and what it was configured with.</summary>
[ApiController]
[Route("[controller]")]
public class WorkerController(IConfiguration configuration, IWebHostEnvironment environment) : ControllerBase
{
    [HttpGet]
    public WorkerInfo Get() => new(
        Environment.ProcessId,
        Environment.GetEnvironmentVariable("KESTREL_CLUSTER_WORKER_ID"),
        environment.EnvironmentName,
        configuration["Greeting:Text"],
        environment.ContentRootPath);

    // Holds a request in flight, for tests of what a stop does to it.
    [HttpGet("wait")]
    public async Task<string> Wait(int seconds, CancellationToken cancellationToken)
    {
        await Task.Delay(TimeSpan.FromSeconds(seconds), cancellationToken);
        return $"Waited in {Environment.ProcessId}";
    }

    [HttpPost("echo")]
    public ActionResult<EchoReply> Echo(EchoRequest request) => request.Text.Length == 0
        ? BadRequest()
        : new EchoReply(request.Text, Environment.ProcessId);
}

public sealed record WorkerInfo(int Pid, string? WorkerId, string Environment, string? Greeting, string ContentRoot);

public sealed record EchoRequest(string Text);

public sealed record EchoReply(string Text, int Pid);
