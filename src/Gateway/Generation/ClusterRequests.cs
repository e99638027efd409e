namespace ProxyOrleans.Gateway.Generation;

/// <summary>
/// The gateway's side of <see cref="ITenantRequestsGrain"/>: registers the requests this replica serves (renewed while
/// they run), lists a tenant's requests from every replica, and cancels one wherever it runs. Failures of the cluster
/// here never fail a request: the local <see cref="RequestRegistry"/> still lists and cancels what this replica serves.
/// </summary>
public sealed class ClusterRequests(IGrainFactory grains, GatewayOptions options, ILogger<ClusterRequests> log)
{
    ITenantRequestsGrain Grain(string tenant) => grains.GetGrain<ITenantRequestsGrain>(tenant);

    public RunningRequest Describe(string tenant, string id, string model, string baseModel, long created, IEnumerable<string> generationIds) =>
        new(id, tenant, model, baseModel, created, [.. generationIds], options.QuotaLeaseSeconds);

    /// <summary>Registers the request and renews it every third of its lease until <paramref name="ct"/> ends; then unregisters it.</summary>
    public async Task KeepRegisteredAsync(RunningRequest request, CancellationToken ct)
    {
        var every = TimeSpan.FromSeconds(Math.Max(0.2, options.QuotaLeaseSeconds / 3));
        while (!ct.IsCancellationRequested)
        {
            try { await Grain(request.Tenant).Register(request).WaitAsync(TimeSpan.FromSeconds(5), ct); }
            catch (OperationCanceledException) when (ct.IsCancellationRequested) { break; }
            catch (Exception e) { log.LogDebug(e, "Registering request {Request} with the cluster failed; retrying", request.Id); }
            try { await Task.Delay(every, ct); } catch (OperationCanceledException) { break; }
        }
        try { await Grain(request.Tenant).Unregister(request.Id).WaitAsync(TimeSpan.FromSeconds(5)); }
        catch (Exception e) { log.LogDebug(e, "Unregistering request {Request} failed; its entry lapses", request.Id); }
    }

    public async Task<RunningRequest[]?> ListAsync(string tenant, CancellationToken ct)
    {
        try { return await Grain(tenant).List().WaitAsync(TimeSpan.FromSeconds(5), ct); }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            log.LogWarning(e, "Listing the running requests of {Tenant} from the cluster failed; answering with this replica's", tenant);
            return null;
        }
    }

    /// <summary>True: the request was found (on some replica) and cancelled on the cluster.</summary>
    public async Task<bool> CancelAsync(string tenant, string id, CancellationToken ct)
    {
        try { return await Grain(tenant).Cancel(id).WaitAsync(TimeSpan.FromSeconds(10), ct); }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            throw OpenAi.ApiError.Unavailable($"The cluster could not cancel request '{id}' right now ({e.GetType().Name}); retry shortly.", "cluster_unavailable");
        }
    }
}
