using System.CommandLine;
using ProxyOrleans.Gateway;
using ProxyOrleans.Gateway.Tenants;

// The command line (System.CommandLine, as the silo's and the client's): --urls, configuration keys, hash-key.
var urls = new Option<string>("--urls") { Description = "Where to listen, e.g. http://127.0.0.1:8000 (ASP.NET Core's default: http://localhost:5000).", HelpName = "url" };
var key = new Argument<string>("api-key") { Description = "The API key to hash." };
var hashKey = new Command("hash-key", "Print the key's SHA-256: a tenant's KeySha256 in the tenants file (keys are never stored in clear).") { key };
hashKey.SetAction(p => { Console.WriteLine(Tenant.HashKey(p.GetValue(key)!)); return 0; });
var root = new RootCommand("""
    The OpenAI-compatible HTTP gateway: an Orleans client of the silos (localhost clustering on port 30000 by default).
    Any configuration key also works: --ProxyOrleans:TenantsFile=tenants.json, --ProxyOrleans:Clustering=redis
    --ProxyOrleans:Redis=localhost:6379 ... (see docs/gateway.md), or in the environment ProxyOrleans__TenantsFile=...
    Exit codes: 0 stopped cleanly (Ctrl+C / SIGTERM), --help or hash-key; 1 could not start (a port in use, tenants or
    combinations misconfigured); 2 bad command line (the message names the argument).
    """) { urls, hashKey };
// Configuration keys are not options of the command: checked below, then read by the host's configuration.
root.TreatUnmatchedTokensAsErrors = false;
root.SetAction(async (parsed, ct) =>
{
    if (UnknownArgument(parsed.UnmatchedTokens) is { } bad)
    {
        Console.Error.WriteLine($"error: {bad} Run with --help for the options.");
        return 2;
    }
    WebApplication app;
    try { app = GatewayApp.Build(args); }
    catch (InvalidOperationException e)
    {
        Console.Error.WriteLine("error: " + e.Message);
        return 1;
    }
    try { await app.RunAsync(); }
    // Ctrl+C / SIGTERM while the Orleans client still waits for the silos: a clean stop all the same.
    catch (OperationCanceledException) { }
    catch (IOException e)
    {
        Console.Error.WriteLine("error: the gateway could not listen: " + e.Message);
        return 1;
    }
    return 0;
});

var parsed = root.Parse(args);
if (parsed.Errors.Count > 0)
{
    foreach (var e in parsed.Errors) Console.Error.WriteLine("error: " + e.Message);
    Console.Error.WriteLine("Run with --help for the options.");
    return 2;
}
// The host stops on Ctrl+C / SIGTERM itself (and drains); System.CommandLine must not cancel it first.
return await parsed.InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null });

// Only configuration keys (--Section:Key=value or --Section:Key value) may remain.
static string? UnknownArgument(IReadOnlyList<string> unmatched)
{
    for (int i = 0; i < unmatched.Count; i++)
    {
        var a = unmatched[i];
        if (!(a.StartsWith("--") && a.Contains(':'))) return a.StartsWith('-') ? $"Unknown option '{a}'." : $"Unexpected argument '{a}'.";
        if (!a.Contains('=') && (i + 1 >= unmatched.Count || unmatched[i + 1].StartsWith("--"))) return $"Option '{a}' needs a value.";
        if (!a.Contains('=')) i++;
    }
    return null;
}
