using System.Diagnostics;

namespace ProxyOrleans.Abstractions;

/// <summary>
/// ProxyOrleans' own spans (the gateway's request, each model's prefill and steps). With Orleans' activity
/// propagation on silos and clients, one request is one trace: HTTP → gateway → coordinator grain calls → models.
/// </summary>
public static class Tracing
{
    public const string SourceName = "ProxyOrleans";

    /// <summary>Every source a trace of one request draws from: ours, Orleans' application grain calls, ASP.NET Core's
    /// requests. Not "Microsoft.Orleans.Runtime": membership, timers and stream polling, hundreds of spans a second.</summary>
    // Before Source: creating Source asks listeners, whose filters may read this list.
    public static readonly string[] AllSources = [SourceName, "Microsoft.Orleans.Application", "Microsoft.AspNetCore"];

    public static readonly ActivitySource Source = new(SourceName);

    public const string ModelTag = "proxyorleans.model";
}
