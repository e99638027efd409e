using Microsoft.Extensions.Logging;

namespace ProxyOrleans.Grains;

/// <summary>
/// A tenant's running requests, shared by every gateway replica, so that listing and cancelling by id work on any
/// replica. Cancelling reaches each generation's live coordinator, resumed attempts included. In memory: if this
/// grain's silo dies, the gateways' next renewals (a third of the lease) register their requests again.
/// </summary>
public sealed class TenantRequestsGrain(ILogger<TenantRequestsGrain> log) : Grain, ITenantRequestsGrain
{
    private static readonly TimeProvider time = TimeProvider.System;
    private readonly Dictionary<string, (RunningRequest Request, long Expires)> _requests = new(StringComparer.Ordinal);

    private string Tenant => this.GetPrimaryKeyString();

    public Task Register(RunningRequest request)
    {
        if (!string.Equals(request.Tenant, Tenant, StringComparison.Ordinal))
            throw new AccessDeniedException($"A request of tenant '{request.Tenant}' cannot be registered under tenant '{Tenant}'.");
        _requests[request.Id] = (request, time.GetTimestamp() + (long)(Math.Max(1, request.LeaseSeconds) * time.TimestampFrequency));
        return Task.CompletedTask;
    }

    public Task Unregister(string requestId)
    {
        _requests.Remove(requestId);
        return Task.CompletedTask;
    }

    public Task<RunningRequest[]> List() => Task.FromResult(Live().OrderBy(r => r.CreatedUnixSeconds).ToArray());

    public async Task<bool> Cancel(string requestId)
    {
        if (Live().FirstOrDefault(r => r.Id == requestId) is not { } r) return false;
        log.LogInformation("Cancelling request {Request} of tenant {Tenant} ({Generations} generations)", requestId, Tenant, r.GenerationIds.Length);
        await Task.WhenAll(r.GenerationIds.Select(g => GenerationClient.CancelAllAttemptsAsync(GrainFactory, r.BaseModel, g, Tenant)));
        return true;
    }

    private IEnumerable<RunningRequest> Live()
    {
        var now = time.GetTimestamp();
        foreach (var id in _requests.Where(kv => kv.Value.Expires < now).Select(kv => kv.Key).ToList()) _requests.Remove(id);
        return _requests.Values.Select(v => v.Request);
    }
}
