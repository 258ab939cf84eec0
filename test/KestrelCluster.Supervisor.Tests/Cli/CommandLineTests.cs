using KestrelCluster.Supervisor.Cli;
using KestrelCluster.Supervisor.Distribution;
using KestrelCluster.Tests.Infrastructure;

namespace KestrelCluster.Tests.Cli;

public sealed class CommandLineTests
{
    private static RunOptions ParseRun(params string[] args)
        => Assert.IsType<RunCommand>(CommandLine.Parse(["run", .. args])).Options;

    private static string ParseError(params string[] args)
        => Assert.Throws<CommandLineException>(() => CommandLine.Parse(args)).Message;

    [Fact]
    public void Parse_RunAlone_Defaults()
    {
        var options = ParseRun();

        Assert.Equal(Environment.ProcessorCount, options.Workers);
        Assert.Null(options.Name);
        Assert.Null(options.Urls);
        Assert.Null(options.Project);
        Assert.Empty(options.Command);
        Assert.Equal(BalanceMode.RoundRobin, options.Balance);
        Assert.Equal(TimeSpan.FromSeconds(30), options.KillTimeout);
        Assert.Equal(TimeSpan.FromSeconds(30), options.ReadyTimeout);
    }

    [Fact]
    public void Parse_EveryRunOption_SetsEachOne()
    {
        var options = ParseRun(
            "--workers", "3",
            "--name", "shop-api_v2.1",
            "--urls", "http://127.0.0.1:5000",
            "--project", "src/Shop",
            "--balance", "round-robin",
            "--kill-timeout", "12.5",
            "--ready-timeout", "45");

        Assert.Equal(3, options.Workers);
        Assert.Equal("shop-api_v2.1", options.Name);
        Assert.Equal("http://127.0.0.1:5000", options.Urls);
        Assert.Equal("src/Shop", options.Project);
        Assert.Equal(BalanceMode.RoundRobin, options.Balance);
        Assert.Equal(TimeSpan.FromSeconds(12.5), options.KillTimeout);
        Assert.Equal(TimeSpan.FromSeconds(45), options.ReadyTimeout);
    }

    [Theory]
    [InlineData("round-robin", "RoundRobin")]
    [InlineData("least-connections", "LeastConnections")]
    [InlineData("sticky", "Sticky")]
    [InlineData("shared", "Shared")]
    public void Parse_EachBalanceMode_SetsIt(string value, string expected)
    {
        Assert.Equal(Enum.Parse<BalanceMode>(expected), ParseRun("--balance", value).Balance);
    }

    [Theory]
    [InlineData("auto", "Auto")]
    [InlineData("on", "On")]
    [InlineData("off", "Off")]
    public void Parse_EachAffinityMode_SetsIt(string value, string expected)
    {
        Assert.Equal(Enum.Parse<AffinityMode>(expected), ParseRun("--affinity", value).Affinity);
    }

    [Fact]
    public void Parse_NoAffinity_Auto()
    {
        Assert.Equal(AffinityMode.Auto, ParseRun().Affinity);
    }

    [Fact]
    public void Parse_UnsupportedAffinity_ErrorNamesValue()
    {
        var message = ParseError("run", "--affinity", "cookie");

        Assert.Contains("--affinity", message);
        Assert.Contains("got 'cookie'", message);
    }

    [Fact]
    public void Parse_ShortOptions_SameAsLongOnes()
    {
        var options = ParseRun("-w", "2", "-n", "api");

        Assert.Equal(2, options.Workers);
        Assert.Equal("api", options.Name);
    }

    [Fact]
    public void Parse_EqualsForm_SetsEachOption()
    {
        var options = ParseRun(
            "--workers=4",
            "--name=api",
            "--urls=http://127.0.0.1:0;https://[::1]:5001",
            "--balance=round-robin",
            "--kill-timeout=0",
            "--ready-timeout=0.5");

        Assert.Equal(4, options.Workers);
        Assert.Equal("api", options.Name);
        Assert.Equal("http://127.0.0.1:0;https://[::1]:5001", options.Urls);
        Assert.Equal(TimeSpan.Zero, options.KillTimeout);
        Assert.Equal(TimeSpan.FromSeconds(0.5), options.ReadyTimeout);
    }

    [Fact]
    public void Parse_EqualsFormProject_KeepsEqualsSignsInTheValue()
    {
        Assert.Equal("/srv/a=b/App.csproj", ParseRun("--project=/srv/a=b/App.csproj").Project);
    }

    [Fact]
    public void Parse_WorkersMax_IsProcessorCount()
    {
        Assert.Equal(Environment.ProcessorCount, ParseRun("--workers", "max").Workers);
    }

    [Theory]
    [InlineData("1", 1)]
    [InlineData("1024", 1024)]
    [InlineData("007", 7)]
    public void Parse_WorkersInRange_Accepted(string value, int expected)
    {
        Assert.Equal(expected, ParseRun("--workers", value).Workers);
    }

    [Fact]
    public void Parse_UrlsWithSpacesAndEmptyParts_NormalizedToSemicolonList()
    {
        Assert.Equal("http://127.0.0.1:5000;https://0.0.0.0:5001", ParseRun("--urls", " http://127.0.0.1:5000 ;; https://0.0.0.0:5001; ").Urls);
    }

    [Fact]
    public void Parse_UrlsSchemeInUpperCase_Accepted()
    {
        Assert.Equal("HTTP://127.0.0.1:5000", ParseRun("--urls", "HTTP://127.0.0.1:5000").Urls);
    }

    [Fact]
    public void Parse_LaterOptionRepeated_LastOneWins()
    {
        Assert.Equal(5, ParseRun("--workers", "2", "-w", "5").Workers);
    }

    [Fact]
    public void Parse_DoubleDash_EverythingAfterIsTheCommand()
    {
        var options = ParseRun("--workers", "2", "--", "dotnet", "App.dll", "--urls", "http://x", "--", "-w");

        Assert.Equal(2, options.Workers);
        Assert.Null(options.Urls);
        Assert.Equal(["dotnet", "App.dll", "--urls", "http://x", "--", "-w"], options.Command);
    }

    [Fact]
    public void Parse_HelpAfterDoubleDash_IsPartOfTheCommand()
    {
        Assert.Equal(["./app", "--help"], ParseRun("--", "./app", "--help").Command);
    }

    [Theory]
    [InlineData("-h")]
    [InlineData("--help")]
    [InlineData("help")]
    public void Parse_TopLevelHelp_ReturnsUsage(string arg)
    {
        var help = Assert.IsType<HelpCommand>(CommandLine.Parse([arg]));
        Assert.Contains("kestrel-cluster <command>", help.Text);
    }

    [Theory]
    [InlineData("-h")]
    [InlineData("--help")]
    public void Parse_RunHelp_ReturnsUsageEvenWithOtherOptions(string arg)
    {
        Assert.IsType<HelpCommand>(CommandLine.Parse(["run", "--workers", "2", arg, "--bogus"]));
    }

    [Fact]
    public void Parse_Version_ReturnsVersionCommand()
    {
        Assert.IsType<VersionCommand>(CommandLine.Parse(["--version"]));
    }

    [Fact]
    public void Parse_NoArguments_ErrorSaysNoCommand()
    {
        Assert.Contains("no command", ParseError());
    }

    [Fact]
    public void Parse_UnknownCommand_ErrorNamesIt()
    {
        Assert.Contains("unknown command 'start'", ParseError("start"));
    }

    [Fact]
    public void Parse_UnknownTopLevelOption_ErrorNamesIt()
    {
        Assert.Contains("unknown option '--bogus'", ParseError("--bogus"));
    }

    [Theory]
    [InlineData("--bogus")]
    [InlineData("-x")]
    [InlineData("--bogus=1")]
    [InlineData("-w=3")]
    public void Parse_UnknownRunOption_ErrorNamesIt(string option)
    {
        var message = ParseError("run", option);

        Assert.Contains($"unknown option '{option}'", message);
    }

    [Fact]
    public void Parse_StrayArgument_ErrorPointsToDoubleDash()
    {
        var message = ParseError("run", "App.dll");

        Assert.Contains("unexpected argument 'App.dll'", message);
        Assert.Contains("'--'", message);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("1025")]
    [InlineData("-1")]
    [InlineData("+2")]
    [InlineData(" 2")]
    [InlineData("2.0")]
    [InlineData("abc")]
    [InlineData("MAX")]
    [InlineData("99999999999")]
    [InlineData("")]
    public void Parse_BadWorkers_ErrorNamesOptionAndValue(string value)
    {
        var message = ParseError("run", "--workers", value);

        Assert.Contains("--workers", message);
        Assert.Contains($"got '{value}'", message);
    }

    [Fact]
    public void Parse_EmptyWorkersInEqualsForm_ErrorNamesOption()
    {
        Assert.Contains("--workers", ParseError("run", "--workers="));
    }

    [Theory]
    [InlineData("--workers")]
    [InlineData("-w")]
    [InlineData("--name")]
    [InlineData("--urls")]
    [InlineData("--project")]
    [InlineData("--balance")]
    [InlineData("--kill-timeout")]
    [InlineData("--ready-timeout")]
    public void Parse_OptionWithoutValue_ErrorNeedsAValue(string option)
    {
        Assert.Contains($"option '{option}' needs a value", ParseError("run", option));
    }

    [Fact]
    public void Parse_OptionFollowedByDoubleDash_ErrorNeedsAValue()
    {
        Assert.Contains("option '--workers' needs a value", ParseError("run", "--workers", "--", "dotnet", "App.dll"));
    }

    [Theory]
    [InlineData("")]
    [InlineData(".")]
    [InlineData("..")]
    [InlineData("a/b")]
    [InlineData("has space")]
    [InlineData("naïve")]
    public void Parse_BadName_ErrorNamesOptionAndValue(string value)
    {
        var message = ParseError("run", "--name", value);

        Assert.Contains("--name", message);
        Assert.Contains($"got '{value}'", message);
    }

    [Fact]
    public void Parse_NameTooLong_Error()
    {
        Assert.Contains("--name", ParseError("run", "--name", new string('a', 65)));
        Assert.Equal(new string('a', 64), ParseRun("--name", new string('a', 64)).Name);
    }

    [Theory]
    [InlineData("")]
    [InlineData(";")]
    [InlineData(" ; ")]
    public void Parse_UrlsWithoutAnyUrl_Error(string value)
    {
        Assert.Contains("--urls needs at least one URL", ParseError("run", "--urls", value));
    }

    [Theory]
    [InlineData("127.0.0.1:5000")]
    [InlineData("ftp://127.0.0.1:21")]
    [InlineData("http://127.0.0.1:5000;unix:/run/app.sock")]
    public void Parse_UrlNotHttp_ErrorNamesTheUrl(string value)
    {
        var message = ParseError("run", "--urls", value);

        Assert.Contains("--urls", message);
        Assert.Contains("is not an http:// or https:// URL", message);
    }

    [Theory]
    [InlineData("least-connection")]
    [InlineData("Round-Robin")]
    [InlineData("")]
    public void Parse_UnsupportedBalance_ErrorNamesValue(string value)
    {
        var message = ParseError("run", "--balance", value);

        Assert.Contains("--balance", message);
        Assert.Contains($"got '{value}'", message);
    }

    [Theory]
    [InlineData("--kill-timeout", "-1")]
    [InlineData("--kill-timeout", "86401")]
    [InlineData("--kill-timeout", "NaN")]
    [InlineData("--kill-timeout", "Infinity")]
    [InlineData("--kill-timeout", "1e3")]
    [InlineData("--kill-timeout", "10s")]
    [InlineData("--kill-timeout", "1,5")]
    [InlineData("--ready-timeout", "0")]
    [InlineData("--ready-timeout", "0.0")]
    [InlineData("--ready-timeout", "-5")]
    [InlineData("--ready-timeout", "abc")]
    public void Parse_BadSeconds_ErrorNamesOptionAndValue(string option, string value)
    {
        var message = ParseError("run", option, value);

        Assert.StartsWith(option, message);
        Assert.Contains($"got '{value}'", message);
    }

    [Theory]
    [InlineData("--kill-timeout", "0", 0)]
    [InlineData("--kill-timeout", "86400", 86400)]
    [InlineData("--ready-timeout", "0.25", 0.25)]
    [InlineData("--ready-timeout", "86400", 86400)]
    public void Parse_SecondsAtTheLimits_Accepted(string option, string value, double seconds)
    {
        var options = ParseRun(option, value);

        Assert.Equal(TimeSpan.FromSeconds(seconds), option == "--kill-timeout" ? options.KillTimeout : options.ReadyTimeout);
    }

    [Fact]
    public void Parse_EmptyProject_ErrorNeedsAValue()
    {
        Assert.Contains("option '--project' needs a value", ParseError("run", "--project="));
    }

    [Fact]
    public void Parse_DoubleDashWithoutCommand_Error()
    {
        Assert.Contains("'--' must be followed by the command", ParseError("run", "--workers", "2", "--"));
    }

    [Theory]
    [InlineData("--project", "src/App", "--", "dotnet", "App.dll")]
    [InlineData("--project=src/App", "--", "./app")]
    public void Parse_ProjectAndCommandTogether_ErrorSaysNotBoth(params string[] args)
    {
        Assert.Contains("not both", ParseError(["run", .. args]));
    }

    [Fact]
    public void Parse_FirstBadOption_IsTheOneReported()
    {
        var message = ParseError("run", "--workers", "0", "--bogus");

        Assert.Contains("--workers", message);
        Assert.DoesNotContain("--bogus", message);
    }

    [Fact]
    public void Usage_MentionsEveryRunOption()
    {
        foreach (var option in new[] { "--project", "--workers", "-w", "--name", "-n", "--urls", "--balance", "--kill-timeout", "--ready-timeout", "--control-group", "--user", "--help", "--version" })
        {
            Assert.Contains(option, CommandLine.Usage);
        }
    }

    [Fact]
    public void Usage_IsTheReadmeCommandLineBlock()
    {
        // The README's reference block is what `kestrel-cluster --help` prints; an option added to one only fails here.
        var readme = File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "README.md")).ReplaceLineEndings("\n");
        var start = readme.IndexOf("```\nUsage: kestrel-cluster <command>", StringComparison.Ordinal);
        Assert.True(start >= 0, "README.md has no ``` block starting with the usage line");
        start += "```\n".Length;
        var end = readme.IndexOf("```", start, StringComparison.Ordinal);

        Assert.Equal(CommandLine.Usage.ReplaceLineEndings("\n").Trim(), readme[start..end].Trim());
    }

    [Theory]
    [InlineData("65534", 65534u)]
    [InlineData("nobody", 65534u)]
    [InlineData("root", 0u)]
    public void Parse_ControlVerbWithUser_NameOrUidBecomesTheOwner(string user, uint expected)
    {
        var verb = Assert.IsType<ControlVerb>(CommandLine.Parse(["reload", "--user", user, "-n", "api"]));

        Assert.Equal(expected, verb.Owner);
        Assert.Equal("api", verb.Name);
    }

    [Theory]
    [InlineData("4242", 4242u)]
    [InlineData("root", 0u)]
    public void Parse_RunWithControlGroup_NameOrGid(string group, uint expected)
        => Assert.Equal(expected, ParseRun("--control-group", group).ControlGroup);

    [Theory]
    [InlineData("list", "--user", "no-such-user-kc")]
    [InlineData("list", "--user")]
    [InlineData("run", "--control-group", "no-such-group-kc")]
    [InlineData("run", "--control-group", "")]
    public void Parse_UnknownUserOrGroup_OneClearError(params string[] args)
        => Assert.Matches("^(--user|--control-group|option '--user')", ParseError(args));
}
