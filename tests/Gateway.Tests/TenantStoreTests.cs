using ProxyOrleans.Gateway.Tenants;

namespace ProxyOrleans.Gateway.Tests;

/// <summary>Tenant configuration: keys only as SHA-256, and clear errors for mistakes an operator makes.</summary>
public sealed class TenantStoreTests
{
    [Fact]
    public void Key_hash_is_plain_sha256_hex_as_sha256sum_prints_it()
    {
        // printf %s abc | sha256sum
        Assert.Equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", Tenant.HashKey("abc"));
    }

    [Fact]
    public void Finds_a_tenant_by_key_and_never_by_hash_or_wrong_key()
    {
        var store = new TenantStore([new Tenant { Name = "t", KeySha256 = Tenant.HashKey("sk-1").ToUpperInvariant(), Models = ["*"] }]);
        Assert.Equal("t", store.Find("sk-1")?.Name);
        Assert.Null(store.Find("sk-2"));
        Assert.Null(store.Find(Tenant.HashKey("sk-1")));
    }

    [Theory]
    [InlineData("", "abc", "Name")]
    [InlineData("t", "not-a-hash", "hash-key")]
    public void Bad_tenant_entries_are_refused_with_what_to_do(string name, string hash, string hint)
    {
        var ex = Assert.Throws<InvalidOperationException>(() =>
            new TenantStore([new Tenant { Name = name, KeySha256 = hash == "abc" ? Tenant.HashKey("k") : hash, Models = ["*"] }]));
        Assert.Contains(hint, ex.Message);
    }

    [Fact]
    public void Missing_tenants_file_names_the_path()
    {
        var ex = Assert.Throws<InvalidOperationException>(() => TenantStore.LoadFile("/nonexistent/tenants.json"));
        Assert.Contains("/nonexistent/tenants.json", ex.Message);
    }
}
