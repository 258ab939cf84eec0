using System.Text;
using System.Text.RegularExpressions;
using KestrelCluster.Tests.Infrastructure;

namespace KestrelCluster.Tests.Hosting;

// The supervisor's folders (one namespace each) depend on each other without a cycle, and only Program uses Hosting,
// the composition root (issue 16). Read from the source tree, so a cycle cannot come back unnoticed.
public sealed partial class FolderDependencyTests
{
    private const string Root = "(root)";

    private static readonly string SupervisorSource = Path.Combine(TestPaths.RepoRoot, "src", "KestrelCluster.Supervisor");

    [Fact]
    public void SupervisorFolders_DependOnEachOther_WithoutACycle()
    {
        var graph = ReadGraph();

        var cycle = FindCycle(graph);

        Assert.True(cycle is null, cycle is null ? "" : "folder cycle: " + string.Join(" -> ", cycle)
            + "\n" + string.Join("\n", cycle.Zip(cycle.Skip(1), (from, to) => $"  {from} -> {to}: {string.Join(", ", graph[from][to])}")));
    }

    [Fact]
    public void Hosting_IsUsedByProgramAlone()
    {
        var graph = ReadGraph();

        var users = graph.Where(folder => folder.Key is not (Root or "Hosting") && folder.Value.ContainsKey("Hosting"))
            .Select(folder => $"{folder.Key}: {string.Join(", ", folder.Value["Hosting"])}")
            .ToList();

        Assert.True(graph.ContainsKey("Hosting"), $"no Hosting folder in {SupervisorSource}");
        Assert.True(users.Count == 0, "Hosting is the composition root, yet used by " + string.Join("; ", users));
    }

    // folder -> folder it uses -> files that use it. A use is `KestrelCluster.Supervisor.<Folder>` (using directives,
    // fully qualified names) or a name qualified by a sibling folder (`Workers.ChannelServer`), in code only.
    private static Dictionary<string, Dictionary<string, SortedSet<string>>> ReadGraph()
    {
        var files = Directory.EnumerateFiles(SupervisorSource, "*.cs", SearchOption.AllDirectories)
            .Select(path => Path.GetRelativePath(SupervisorSource, path))
            .Where(path => !path.StartsWith("bin/", StringComparison.Ordinal) && !path.StartsWith("obj/", StringComparison.Ordinal))
            .ToList();
        var folders = files.Select(FolderOf).Where(folder => folder != Root).ToHashSet();
        var code = files.ToDictionary(file => file, file => CodeOnly(File.ReadAllText(Path.Combine(SupervisorSource, file))));
        var typesIn = folders.ToDictionary(folder => folder, folder => files.Where(file => FolderOf(file) == folder)
            .SelectMany(file => TypeDeclaration().Matches(code[file]).Select(match => match.Groups[1].Value))
            .ToHashSet());

        var graph = files.Select(FolderOf).Distinct().ToDictionary(folder => folder, _ => new Dictionary<string, SortedSet<string>>());
        foreach (var file in files)
        {
            var from = FolderOf(file);
            var used = NamespaceUse().Matches(code[file]).Select(match => match.Groups[1].Value)
                .Concat(QualifiedName().Matches(code[file])
                    .Where(match => typesIn.TryGetValue(match.Groups[1].Value, out var types) && types.Contains(match.Groups[2].Value))
                    .Select(match => match.Groups[1].Value));
            foreach (var to in used.Where(to => folders.Contains(to) && to != from))
            {
                if (!graph[from].TryGetValue(to, out var users))
                {
                    graph[from][to] = users = new SortedSet<string>(StringComparer.Ordinal);
                }

                users.Add(file);
            }
        }

        return graph;
    }

    private static string FolderOf(string relativePath)
        => relativePath.IndexOf('/') is var slash and > 0 ? relativePath[..slash] : Root;

    private static List<string>? FindCycle(Dictionary<string, Dictionary<string, SortedSet<string>>> graph)
    {
        var done = new HashSet<string>();
        var path = new List<string>();

        List<string>? Visit(string folder)
        {
            if (path.IndexOf(folder) is var start and >= 0)
            {
                return [.. path[start..], folder];
            }

            if (!done.Add(folder))
            {
                return null;
            }

            path.Add(folder);
            foreach (var next in graph.GetValueOrDefault(folder)?.Keys.Order(StringComparer.Ordinal) ?? Enumerable.Empty<string>())
            {
                if (Visit(next) is { } cycle)
                {
                    return cycle;
                }
            }

            path.RemoveAt(path.Count - 1);
            return null;
        }

        return graph.Keys.Order(StringComparer.Ordinal).Select(Visit).FirstOrDefault(cycle => cycle is not null);
    }

    // The source without comments, string and character literals: a folder named in a comment is no dependency.
    private static string CodeOnly(string source)
    {
        var code = new StringBuilder(source.Length);
        for (var i = 0; i < source.Length; i++)
        {
            var c = source[i];
            var next = i + 1 < source.Length ? source[i + 1] : '\0';
            if (c == '/' && next == '/')
            {
                i = source.IndexOf('\n', i) is var end and >= 0 ? end : source.Length;
                code.Append('\n');
            }
            else if (c == '/' && next == '*')
            {
                i = source.IndexOf("*/", i + 2, StringComparison.Ordinal) is var end and >= 0 ? end + 1 : source.Length;
                code.Append(' ');
            }
            else if (c is '"' or '\'')
            {
                var verbatim = c == '"' && i > 0 && (source[i - 1] == '@' || (source[i - 1] == '$' && i > 1 && source[i - 2] == '@'));
                for (i++; i < source.Length; i++)
                {
                    // An escaped character, or a verbatim string's doubled quote, does not end the literal.
                    if ((!verbatim && source[i] == '\\') || (verbatim && source[i] == '"' && i + 1 < source.Length && source[i + 1] == '"'))
                    {
                        i++;
                    }
                    else if (source[i] == c)
                    {
                        break;
                    }
                }

                code.Append(' ');
            }
            else
            {
                code.Append(c);
            }
        }

        return code.ToString();
    }

    [GeneratedRegex(@"(?:\bKestrelCluster\s*\.\s*|(?<![\w.]))Supervisor\s*\.\s*(\w+)")]
    private static partial Regex NamespaceUse();

    [GeneratedRegex(@"(?<![\w.])(\w+)\s*\.\s*([A-Z]\w*)")]
    private static partial Regex QualifiedName();

    [GeneratedRegex(@"\b(?:class|struct|interface|enum|record|delegate\s+[\w<>\[\]?,. ]+?)\s+([A-Z]\w*)")]
    private static partial Regex TypeDeclaration();
}
