using ProxyOrleans.Gateway;
using ProxyOrleans.Gateway.Tenants;

const string Usage = """
    Usage: dotnet run --project src/Gateway -c Release -- [options]
           dotnet run --project src/Gateway -c Release -- hash-key <api-key>
      (no options)              serve the OpenAI-compatible API as an Orleans client of the silos (localhost clustering, port 30000)
      hash-key <api-key>        print the key's SHA-256, the KeySha256 of a tenant in the tenants file
      --urls <url>              where to listen (ASP.NET Core's default: http://localhost:5000)
      --<Section:Key>=<value>   any configuration key, e.g. --ProxyOrleans:TenantsFile=tenants.json,
                                --ProxyOrleans:Clustering=redis --ProxyOrleans:Redis=localhost:6379 (see docs/gateway.md)
      -h, --help                this help
    Exit codes: 0 stopped cleanly (Ctrl+C / SIGTERM), --help or hash-key; 1 could not start (a port in use, tenants
    or combinations misconfigured); 2 bad command line (the message names the argument).
    """;

if (args.Any(a => a is "-h" or "--help" or "-?"))
{
    Console.WriteLine(Usage);
    return 0;
}
// `hash-key <key>` prints the SHA-256 to put in a tenant's KeySha256 (keys are never stored in clear).
if (args is ["hash-key", var key])
{
    Console.WriteLine(Tenant.HashKey(key));
    return 0;
}
if (args is ["hash-key", ..])
{
    Console.Error.WriteLine("error: hash-key takes exactly one argument, the API key.\nusage: proxyorleans-gateway hash-key <api-key>");
    return 2;
}
if (UnknownArgument(args) is { } bad)
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
catch (IOException e)
{
    Console.Error.WriteLine("error: the gateway could not listen: " + e.Message);
    return 1;
}
return 0;

// Only --urls and configuration keys (--Section:Key=value or --Section:Key value) are meaningful to the host.
static string? UnknownArgument(string[] args)
{
    for (int i = 0; i < args.Length; i++)
    {
        var a = args[i];
        if (a == "--urls" || (a.StartsWith("--") && a.Contains(':') && !a.StartsWith("--urls=")))
        {
            if (!a.Contains('=') && (i + 1 >= args.Length || args[i + 1].StartsWith("--"))) return $"Option '{a}' needs a value.";
            if (!a.Contains('=')) i++;
            continue;
        }
        if (a.StartsWith("--urls=")) continue;
        return a.StartsWith('-') ? $"Unknown option '{a}'." : $"Unexpected argument '{a}'.";
    }
    return null;
}
