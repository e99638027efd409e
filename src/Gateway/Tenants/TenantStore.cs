using System.Security.Cryptography;
using System.Text.Json;

namespace ProxyOrleans.Gateway.Tenants;

/// <summary>
/// Tenants by key hash. Keys are never stored in clear: the request's key is hashed and compared with
/// fixed-time equality. Loaded once at start from configuration and/or the tenants file.
/// </summary>
public sealed class TenantStore
{
    readonly Dictionary<string, Tenant> byHash = new(StringComparer.Ordinal);

    public IReadOnlyCollection<Tenant> All => byHash.Values;

    public TenantStore(IEnumerable<Tenant> tenants)
    {
        foreach (var t in tenants)
        {
            if (string.IsNullOrWhiteSpace(t.Name))
                throw new InvalidOperationException("A tenant has no Name: every tenant needs a name (used in logs and metrics).");
            var h = t.KeySha256.Trim().ToLowerInvariant();
            if (h.Length != 64 || !h.All(Uri.IsHexDigit))
                throw new InvalidOperationException(
                    $"Tenant '{t.Name}': KeySha256 must be 64 hex characters (SHA-256 of the API key); " +
                    "compute it with `dotnet run --project src/Gateway -- hash-key <key>` or `printf %s <key> | sha256sum`.");
            if (t.Models.Count == 0)
                throw new InvalidOperationException($"Tenant '{t.Name}': Models is empty; list the models it may use, or \"*\".");
            if (!byHash.TryAdd(h, t))
                throw new InvalidOperationException($"Tenant '{t.Name}': the same key hash is used by tenant '{byHash[h].Name}'.");
            t.KeySha256 = h;
        }
        if (byHash.Values.GroupBy(t => t.Name).FirstOrDefault(g => g.Count() > 1) is { } dup)
            throw new InvalidOperationException($"Two tenants are named '{dup.Key}'; tenant names must be unique.");
    }

    /// <summary>The tenant owning <paramref name="apiKey"/>, or null.</summary>
    public Tenant? Find(string apiKey)
    {
        var hash = Tenant.HashKey(apiKey);
        Tenant? found = null;
        // Fixed-time comparison against every entry: how long this takes says nothing about which hashes exist.
        foreach (var (h, t) in byHash)
            if (CryptographicOperations.FixedTimeEquals(System.Text.Encoding.ASCII.GetBytes(h), System.Text.Encoding.ASCII.GetBytes(hash)))
                found = t;
        return found;
    }

    /// <summary>Reads ProxyOrleans:Tenants and the file at ProxyOrleans:TenantsFile (both may be used).</summary>
    public static TenantStore FromConfiguration(IConfiguration config)
    {
        var tenants = config.GetSection("ProxyOrleans:Tenants").Get<List<Tenant>>() ?? [];
        if (config["ProxyOrleans:TenantsFile"] is { Length: > 0 } path)
            tenants.AddRange(LoadFile(path));
        return new TenantStore(tenants);
    }

    /// <summary>
    /// File format: {"tenants": [{"name", "keySha256", "models": [...], "requestsPerMinute", "tokensPerMinute", "maxConcurrency"}]}
    /// or just the array.
    /// </summary>
    public static List<Tenant> LoadFile(string path)
    {
        if (!File.Exists(path))
            throw new InvalidOperationException($"ProxyOrleans:TenantsFile is '{path}', which does not exist. Mount the tenants secret there or fix the path.");
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(path), new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
            var arr = doc.RootElement.ValueKind == JsonValueKind.Array ? doc.RootElement
                : doc.RootElement.TryGetProperty("tenants", out var t) ? t
                : throw new InvalidOperationException($"Tenants file '{path}' must be a JSON array of tenants or an object with a \"tenants\" array.");
            return arr.Deserialize<List<Tenant>>(new JsonSerializerOptions { PropertyNameCaseInsensitive = true }) ?? [];
        }
        catch (JsonException e)
        {
            throw new InvalidOperationException($"Tenants file '{path}' is not valid JSON: {e.Message}", e);
        }
    }
}
