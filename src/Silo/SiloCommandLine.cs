using System.CommandLine;

namespace ProxyOrleans.Silo;

/// <summary>
/// The silo's command line (System.CommandLine, as the client's): friendly options translated into the
/// "ProxyOrleans" configuration keys (docs/distributed.md); any configuration key also passes as --Section:Key=value.
/// </summary>
public static class SiloCommandLine
{
    public const string Description = """
        A ProxyOrleans silo. With no options: the local main job, one silo hosting every bundled demo model
        (models/demo/*), the OpenAI-compatible API and playground on http://127.0.0.1:8000, a printed demo; it keeps
        serving until Ctrl+C. Any configuration key also works: --ProxyOrleans:KvBudgetMB=512, or in the environment
        ProxyOrleans__Models__0__Name=base-large ...
        Exit codes: 0 stopped cleanly (Ctrl+C / SIGTERM) or --help; 1 could not start (a port in use, models that do
        not load); 2 bad command line or configuration (the message names the option).
        """;

    static readonly Option<string> Models = new("--models") { Description = "Models to host: name=dir,... or dir,... (the name is the directory's name).", HelpName = "list" };
    static readonly Option<int> SiloPort = new("--silo-port") { Description = "Silo-to-silo port (11111).", HelpName = "n" };
    static readonly Option<int> GatewayPort = new("--gateway-port") { Description = "Client gateway port (30000).", HelpName = "n" };
    static readonly Option<int> PrimaryPort = new("--primary-port") { Description = "Localhost clustering: the primary silo's port (several silo processes on one machine).", HelpName = "n" };
    static readonly Option<string> Redis = new("--redis") { Description = "Redis clustering, e.g. localhost:6379.", HelpName = "conn" };
    static readonly Option<string> ClusterId = new("--cluster-id") { Description = "Cluster id (proxyorleans).", HelpName = "id" };
    static readonly Option<int> HttpPort = new("--http-port") { Description = "/healthz /readyz /metrics (8080 + silo port − 11111; 0 = off).", HelpName = "n" };
    static readonly Option<string> Name = new("--name") { Description = "Silo name (POD_NAME when set).", HelpName = "silo name" };
    static readonly Option<bool> Demo = new("--demo") { Description = "Print the demo generation (default: only with no options)." };
    static readonly Option<bool> NoDemo = new("--no-demo") { Description = "Do not print the demo generation." };
    static readonly Option<bool> FastFailure = new("--fast-failure") { Description = "Declare dead silos within seconds (loopback demos, tests)." };
    static readonly Option<string> Device = new("--device") { Description = "Device of the hosted models: cpu or cuda[:n] (cpu).", HelpName = "device" };
    static readonly Option<int> Threads = new("--threads") { Description = "Torch threads (0 = torch's default).", HelpName = "n" };
    static readonly Option<string> LatencyModel = new("--latency-model")
    {
        Description = "Benchmarks only: pad each forward to a simulated accelerator (base-70b-h200, expert-7b-h200, base-70b-h100, " +
                      "expert-7b-h100, or fixed=<ms>,row=<ms>,...); the logits stay the real model's.",
        HelpName = "model",
    };
    static readonly Option<bool> Api = new("--api") { Description = "Serve the OpenAI-compatible API and the playground (default: only with no options)." };
    static readonly Option<bool> NoApi = new("--no-api") { Description = "Do not serve them." };
    static readonly Option<string> ApiUrl = new("--api-url") { Description = "Where to serve them (http://127.0.0.1:8000); implies --api.", HelpName = "url" };

    static RootCommand Command()
    {
        var root = new RootCommand(Description)
        {
            Models, SiloPort, GatewayPort, PrimaryPort, Redis, ClusterId, HttpPort, Name, Demo, NoDemo, FastFailure, Device, Threads, LatencyModel, Api, NoApi, ApiUrl,
        };
        // Configuration keys are not options of the command: they are checked below and passed to the host.
        root.TreatUnmatchedTokensAsErrors = false;
        return root;
    }

    public sealed class HelpRequestedException(ParseResult parsed) : Exception("--help")
    {
        /// <summary>Prints the generated help to standard output.</summary>
        public void Print() => parsed.Invoke();
    }

    /// <summary>Configuration from the options, and the configuration-key arguments for the host (<paramref name="rest"/>).</summary>
    /// <exception cref="ArgumentException">A bad command line; the message names the argument.</exception>
    public static Dictionary<string, string?> Parse(string[] args, out List<string> rest)
    {
        var parsed = Command().Parse(args);
        // --help, --version: the root has no action of its own, so any action is one of those.
        if (parsed.Errors.Count == 0 && parsed.Action is not null) throw new HelpRequestedException(parsed);
        if (parsed.Errors.Count > 0)
            throw new ArgumentException(string.Join(" ", parsed.Errors.Select(e => e.Message)) + " Run with --help for the options.");
        rest = ConfigurationKeys(parsed.UnmatchedTokens);

        var d = new Dictionary<string, string?>();
        bool Given(Option o) => parsed.GetResult(o) is { Implicit: false };
        void Set<T>(Option<T> o, string key) { if (Given(o)) d[key] = Convert.ToString(parsed.GetValue(o), System.Globalization.CultureInfo.InvariantCulture); }
        if (Given(Models))
        {
            int k = 0;
            foreach (var item in parsed.GetValue(Models)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                var eq = item.IndexOf('=');
                var path = eq > 0 ? item[(eq + 1)..] : item;
                d[$"ProxyOrleans:Models:{k}:Name"] = eq > 0 ? item[..eq] : new DirectoryInfo(path.TrimEnd('/')).Name;
                d[$"ProxyOrleans:Models:{k}:Path"] = Path.GetFullPath(path);
                k++;
            }
        }
        Set(SiloPort, "ProxyOrleans:SiloPort");
        Set(GatewayPort, "ProxyOrleans:GatewayPort");
        Set(PrimaryPort, "ProxyOrleans:PrimarySiloPort");
        Set(HttpPort, "ProxyOrleans:HttpPort");
        if (Given(Redis)) { d["ProxyOrleans:Clustering"] = "redis"; d["ProxyOrleans:Redis"] = parsed.GetValue(Redis); }
        Set(ClusterId, "ProxyOrleans:ClusterId");
        Set(Name, "ProxyOrleans:SiloName");
        if (Given(Demo)) d["ProxyOrleans:Demo"] = "true";
        if (Given(NoDemo)) d["ProxyOrleans:Demo"] = "false";
        if (Given(FastFailure)) d["ProxyOrleans:FastFailureDetection"] = "true";
        Set(Device, "ProxyOrleans:Device");
        Set(Threads, "ProxyOrleans:Threads");
        Set(LatencyModel, "ProxyOrleans:LatencyModel");
        Set(ApiUrl, "ProxyOrleans:ApiUrl");
        if (Given(Api) || Given(ApiUrl)) d["ProxyOrleans:Api"] = "true";
        if (Given(NoApi)) d["ProxyOrleans:Api"] = "false";
        return d;
    }

    /// <summary>The arguments that are configuration keys (--Section:Key=value, or --Section:Key value); anything else is an error.</summary>
    static List<string> ConfigurationKeys(IReadOnlyList<string> unmatched)
    {
        var rest = new List<string>();
        for (int i = 0; i < unmatched.Count; i++)
        {
            var a = unmatched[i];
            if (!(a.StartsWith("--") && a.Contains(':')))
                throw new ArgumentException(a.StartsWith('-')
                    ? $"Unknown option '{a}'. Run with --help for the options; configuration keys are given as --Section:Key=value."
                    : $"Unexpected argument '{a}': the silo takes only options. Run with --help for the options.");
            rest.Add(a);
            if (!a.Contains('=') && i + 1 < unmatched.Count && !unmatched[i + 1].StartsWith("--")) rest.Add(unmatched[++i]);
        }
        return rest;
    }
}
