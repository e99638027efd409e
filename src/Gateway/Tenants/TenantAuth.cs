using ProxyOrleans.Gateway.OpenAi;

namespace ProxyOrleans.Gateway.Tenants;

/// <summary>Finds the tenant of a /v1 request from "Authorization: Bearer &lt;key&gt;" (401 otherwise).</summary>
public sealed class TenantAuth(TenantStore store, GatewayOptions options)
{
    const string ItemKey = "proxyorleans.tenant";

    /// <summary>With AllowAnonymous and no tenants: one tenant that may use everything, without limits (loopback callers only).</summary>
    static readonly Tenant Anonymous = new() { Name = "anonymous", Models = ["*"] };

    public static Tenant Current(HttpContext ctx) =>
        ctx.Items[ItemKey] as Tenant ?? throw new InvalidOperationException("No tenant: the /v1 auth filter did not run.");

    public void Authenticate(HttpContext ctx)
    {
        string? header = ctx.Request.Headers.Authorization;
        if (store.All.Count == 0 && options.AllowAnonymous)
        {
            // Keyless access is for a person on this machine; a caller from elsewhere (the API bound to 0.0.0.0,
            // or behind a proxy) must not get everything without limits.
            if (ctx.Connection.RemoteIpAddress is not { } remote || !System.Net.IPAddress.IsLoopback(remote.IsIPv4MappedToIPv6 ? remote.MapToIPv4() : remote))
                throw ApiError.Unauthorized(
                    $"Requests without an API key are accepted from this machine (loopback) only; {ctx.Connection.RemoteIpAddress} is not loopback. " +
                    "Configure tenants with API keys (ProxyOrleans__TenantsFile=tenants.json, see docs/gateway.md) to serve other machines.");
            ctx.Items[ItemKey] = Anonymous;
            return;
        }
        if (string.IsNullOrWhiteSpace(header))
            throw ApiError.Unauthorized("You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.");
        if (!header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
            throw ApiError.Unauthorized("The Authorization header must be 'Bearer <key>'.");
        var key = header["Bearer ".Length..].Trim();
        var tenant = key.Length == 0 ? null : store.Find(key);
        if (tenant is null)
            throw ApiError.Unauthorized(store.All.Count == 0
                ? "Incorrect API key provided: this gateway has no tenants configured (ProxyOrleans:TenantsFile or ProxyOrleans:Tenants)."
                : "Incorrect API key provided.");
        ctx.Items[ItemKey] = tenant;
    }
}
