using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Orleans.Dashboard;

namespace ProxyOrleans.Silo;

/// <summary>
/// The Orleans Dashboard, opt-in (ProxyOrleans:Dashboard:Enabled) on the silo's HTTP port at /dashboard, behind HTTP
/// Basic authentication: any user name, the password whose SHA-256 is ProxyOrleans:Dashboard:PasswordSha256.
/// </summary>
public static class Dashboard
{
    public const string Path = "/dashboard";

    public static bool Enabled(IConfiguration config) => config.GetValue("ProxyOrleans:Dashboard:Enabled", false);

    /// <summary>The configured password hash; a dashboard without one is refused (it shows every grain and silo).</summary>
    public static byte[] PasswordHash(IConfiguration config)
    {
        var hex = config["ProxyOrleans:Dashboard:PasswordSha256"]?.Trim();
        if (hex is not { Length: 64 } || !hex.All(Uri.IsHexDigit))
            throw new InvalidOperationException(
                "ProxyOrleans:Dashboard:Enabled is true but ProxyOrleans:Dashboard:PasswordSha256 is not 64 hex characters: " +
                "set it to the SHA-256 of the dashboard's password (`printf %s <password> | sha256sum`).");
        return Convert.FromHexString(hex);
    }

    public static void Map(WebApplication app, byte[] passwordHash)
    {
        app.Use(async (ctx, next) =>
        {
            if (ctx.Request.Path.StartsWithSegments(Path) && !Authorized(ctx.Request, passwordHash))
            {
                ctx.Response.StatusCode = StatusCodes.Status401Unauthorized;
                ctx.Response.Headers.WWWAuthenticate = "Basic realm=\"ProxyOrleans dashboard\", charset=\"UTF-8\"";
                await ctx.Response.WriteAsync("The dashboard needs the password configured by ProxyOrleans:Dashboard:PasswordSha256 (HTTP Basic).");
                return;
            }
            await next(ctx);
        });
        app.MapOrleansDashboard(routePrefix: Path);
    }

    static bool Authorized(HttpRequest request, byte[] passwordHash)
    {
        string? header = request.Headers.Authorization;
        if (header is null || !header.StartsWith("Basic ", StringComparison.OrdinalIgnoreCase)) return false;
        string decoded;
        try { decoded = Encoding.UTF8.GetString(Convert.FromBase64String(header["Basic ".Length..].Trim())); }
        catch (FormatException) { return false; }
        var colon = decoded.IndexOf(':');
        if (colon < 0) return false;
        return CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(decoded[(colon + 1)..])), passwordHash);
    }
}
