using StackExchange.Redis;

namespace ProxyOrleans.Gateway;

/// <summary>
/// The Redis that holds the Orleans membership table, for silos and gateways alike: ProxyOrleans:Redis is a
/// StackExchange.Redis connection string ("redis:6379", options such as ",password=..." allowed) and
/// ProxyOrleans:RedisPassword, when set, is its password. On Kubernetes the password comes from a Secret
/// (env ProxyOrleans__RedisPassword, secretKeyRef) so that the connection string in the ConfigMap carries none.
/// </summary>
public static class RedisConnection
{
    public const string Key = "ProxyOrleans:Redis";
    public const string PasswordKey = "ProxyOrleans:RedisPassword";

    public static ConfigurationOptions Options(IConfiguration config)
    {
        var conn = config[Key];
        if (string.IsNullOrWhiteSpace(conn))
            throw new InvalidOperationException($"ProxyOrleans:Clustering is 'redis' but {Key} (a connection string, e.g. redis:6379) is not set.");
        ConfigurationOptions options;
        try { options = ConfigurationOptions.Parse(conn); }
        catch (ArgumentException e)
        {
            throw new InvalidOperationException($"{Key} is not a Redis connection string (host:port[,password=...]): {e.Message}", e);
        }
        if (options.EndPoints.Count == 0)
            throw new InvalidOperationException($"{Key} names no host:port; set it to e.g. redis:6379.");
        var password = config[PasswordKey];
        if (!string.IsNullOrEmpty(password))
        {
            if (!string.IsNullOrEmpty(options.Password))
                throw new InvalidOperationException($"{Key} has a password= and {PasswordKey} is set too: give the password in one place ({PasswordKey}).");
            options.Password = password;
        }
        return options;
    }
}
