var builder = WebApplication.CreateBuilder(args);

// Run by kestrel-cluster, this app is one of N workers; run alone, nothing changes.
builder.WebHost.UseClusterTransport();

// Add services to the container.

builder.Services.AddControllers();

var app = builder.Build();

// Configure the HTTP request pipeline.

app.UseHttpsRedirection();

app.UseAuthorization();

app.MapControllers();

app.Run();
