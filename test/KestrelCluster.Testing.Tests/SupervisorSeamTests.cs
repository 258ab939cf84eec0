using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;

namespace KestrelCluster.Testing.Tests;

/// <summary>
/// KestrelCluster.Testing reaches the supervisor assembly it carries through one internal seam (Hosting/InProcessCluster.cs),
/// so the supervisor's other internals can change without breaking the package.
/// </summary>
public sealed class SupervisorSeamTests
{
    [Fact]
    public void TestingAssembly_TypesItUsesFromTheSupervisor_AreOnlyTheInProcessClusterSeam()
    {
        using var file = File.OpenRead(typeof(ClusterApplicationFactory<>).Assembly.Location);
        using var pe = new PEReader(file);
        var metadata = pe.GetMetadataReader();

        var used = metadata.TypeReferences
            .Select(metadata.GetTypeReference)
            .Where(t => t.ResolutionScope.Kind == HandleKind.AssemblyReference
                && metadata.GetString(metadata.GetAssemblyReference((AssemblyReferenceHandle)t.ResolutionScope).Name) == "kestrel-cluster")
            .Select(t => $"{metadata.GetString(t.Namespace)}.{metadata.GetString(t.Name)}")
            .Distinct()
            .Order(StringComparer.Ordinal)
            .ToList();

        Assert.Contains("KestrelCluster.Supervisor.Hosting.InProcessCluster", used);
        Assert.All(used, name => Assert.StartsWith("KestrelCluster.Supervisor.Hosting.InProcess", name, StringComparison.Ordinal));
    }
}
