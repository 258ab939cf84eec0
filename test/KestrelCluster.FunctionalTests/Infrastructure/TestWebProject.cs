namespace KestrelCluster.Tests.Infrastructure;

/// <summary>
/// A small web app's sources in a private temp folder, as a user's project: `GET /` answers "Hello from {pid}",
/// `GET /version` a text the test sets, every response names its pid in X-Pid, and a Razor component with
/// scoped CSS makes the build generate a static asset (`Shop.styles.css`) served by MapStaticAssets.
/// It uses the transport dll this test run was built with, so publishing it compiles only the app.
/// </summary>
internal sealed class TestWebProject : IDisposable
{
    public const string AppName = "Shop";
    private readonly TemporaryFolder _folder = new();

    public TestWebProject(string version)
    {
        var transport = Path.Combine(AppContext.BaseDirectory, "KestrelCluster.Transport.dll");
        File.WriteAllText(Path.Combine(Folder, $"{AppName}.csproj"), $"""
            <Project Sdk="Microsoft.NET.Sdk.Web">
              <PropertyGroup>
                <TargetFramework>net10.0</TargetFramework>
                <Nullable>enable</Nullable>
                <ImplicitUsings>enable</ImplicitUsings>
              </PropertyGroup>
              <ItemGroup>
                <Reference Include="KestrelCluster.Transport" HintPath="{transport}" />
              </ItemGroup>
            </Project>
            """);
        File.WriteAllText(Path.Combine(Folder, "appsettings.json"), """{ "Logging": { "LogLevel": { "Default": "Warning", "Microsoft.Hosting.Lifetime": "Information" } } }""");
        Directory.CreateDirectory(Path.Combine(Folder, "Components"));
        File.WriteAllText(Path.Combine(Folder, "Components", "Banner.razor"), "<p class=\"banner\">shop</p>\n");
        File.WriteAllText(Path.Combine(Folder, "Components", "Banner.razor.css"), ".banner { color: teal; }\n");
        Directory.CreateDirectory(Path.Combine(Folder, "wwwroot"));
        File.WriteAllText(Path.Combine(Folder, "wwwroot", "site.css"), "body { margin: 0; }\n");
        SetVersion(version);
    }

    public string Folder => _folder.Path;

    /// <summary>Rewrites Program.cs so that `GET /version` answers <paramref name="version"/>; <paramref name="broken"/> leaves out a semicolon (CS1002).</summary>
    public void SetVersion(string version, bool broken = false) => File.WriteAllText(Path.Combine(Folder, "Program.cs"), $$"""
        var builder = WebApplication.CreateBuilder(args);
        builder.WebHost.UseClusterTransport();
        var app = builder.Build();
        app.Use((context, next) =>
        {
            context.Response.Headers["X-Pid"] = Environment.ProcessId.ToString();
            return next(context);
        });
        app.MapStaticAssets();
        app.MapGet("/", () => $"Hello from {Environment.ProcessId}");
        app.MapGet("/version", () => "{{version}}"){{(broken ? "" : ";")}}
        app.Run();
        """);

    public void Dispose() => _folder.Dispose();
}
