using ProxyOrleans.Gateway;
using ProxyOrleans.Gateway.Tenants;

// `hash-key <key>` prints the SHA-256 to put in a tenant's KeySha256 (keys are never stored in clear).
if (args is ["hash-key", var key])
{
    Console.WriteLine(Tenant.HashKey(key));
    return 0;
}
if (args is ["hash-key", ..])
{
    Console.Error.WriteLine("usage: proxyorleans-gateway hash-key <api-key>");
    return 2;
}

var app = GatewayApp.Build(args);
await app.RunAsync();
return 0;
