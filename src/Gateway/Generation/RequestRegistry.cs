using System.Collections.Concurrent;

namespace ProxyOrleans.Gateway.Generation;

/// <summary>
/// Requests running in this gateway, keyed by (tenant, request id): a tenant lists and cancels only its own;
/// another tenant's id is simply not found. Cancelling trips the same token a client disconnect trips.
/// </summary>
public sealed class RequestRegistry
{
    public sealed record Entry(string Tenant, string Id, string Model, DateTimeOffset Created, int Generations, CancellationTokenSource Cancel);

    readonly ConcurrentDictionary<(string Tenant, string Id), Entry> entries = new();

    public void Add(Entry e) => entries[(e.Tenant, e.Id)] = e;
    public void Remove(string tenant, string id) => entries.TryRemove((tenant, id), out _);

    public IReadOnlyList<Entry> List(string tenant) =>
        entries.Values.Where(e => e.Tenant == tenant).OrderBy(e => e.Created).ToList();

    public bool TryCancel(string tenant, string id)
    {
        if (!entries.TryGetValue((tenant, id), out var e)) return false;
        e.Cancel.Cancel();
        return true;
    }
}
