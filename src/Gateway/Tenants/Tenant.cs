using System.Security.Cryptography;
using System.Text;

namespace ProxyOrleans.Gateway.Tenants;

/// <summary>
/// One customer: its hashed API key, the models it may use and its limits.
/// Configuration: ProxyOrleans:Tenants:&lt;i&gt;:* or the JSON file at ProxyOrleans:TenantsFile.
/// </summary>
public sealed class Tenant
{
    public string Name { get; set; } = "";
    /// <summary>Lower-case hex SHA-256 of the UTF-8 API key (`proxyorleans-gateway hash-key KEY`, or `printf %s KEY | sha256sum`).</summary>
    public string KeySha256 { get; set; } = "";
    /// <summary>Models and combinations this tenant may name; "*" allows all.</summary>
    public List<string> Models { get; set; } = [];
    /// <summary>Requests per minute (0 = unlimited).</summary>
    public int RequestsPerMinute { get; set; }
    /// <summary>Prompt plus completion tokens per minute (0 = unlimited).</summary>
    public int TokensPerMinute { get; set; }
    /// <summary>Generations running at once (0 = unlimited).</summary>
    public int MaxConcurrency { get; set; }

    public bool Allows(string model) => Models.Contains("*") || Models.Contains(model);

    public static string HashKey(string apiKey) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(apiKey)));
}
