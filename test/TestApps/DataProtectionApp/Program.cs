using Microsoft.AspNetCore.Antiforgery;
using Microsoft.AspNetCore.DataProtection;

var builder = WebApplication.CreateBuilder(args);

// Run by kestrel-cluster, this app is one of N workers; run alone, nothing changes.
builder.WebHost.UseClusterTransport();
builder.Services.AddAntiforgery();

// An app that keeps its keys itself (APP_KEYS_PATH): its choice must win over the cluster's key ring.
if (Environment.GetEnvironmentVariable("APP_KEYS_PATH") is { Length: > 0 } keys)
{
    builder.Services.AddDataProtection().PersistKeysToFileSystem(new DirectoryInfo(keys));
}

var app = builder.Build();

// The form: an antiforgery cookie and the request token a page would embed.
app.MapGet("/form", (IAntiforgery antiforgery, HttpContext context) =>
{
    var tokens = antiforgery.GetAndStoreTokens(context);
    return new FormTokens(Environment.ProcessId, tokens.HeaderName!, tokens.RequestToken!);
});

// The post: 200 when the token and cookie validate on this worker, 400 (with the reason) when not.
app.MapPost("/form", async (IAntiforgery antiforgery, HttpContext context) =>
{
    try
    {
        await antiforgery.ValidateRequestAsync(context);
        return Results.Text($"accepted by {Environment.ProcessId}");
    }
    catch (AntiforgeryValidationException ex)
    {
        return Results.Text($"refused by {Environment.ProcessId}: {ex.Message}", statusCode: StatusCodes.Status400BadRequest);
    }
});

app.MapGet("/", () => $"Hello from {Environment.ProcessId}");

app.Run();

internal sealed record FormTokens(int Pid, string HeaderName, string RequestToken);
