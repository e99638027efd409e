using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using ProxyOrleans.Client.Benchmarks;
using Xunit;

namespace ProxyOrleans.Cluster.Tests;

/// <summary>The Orleans Dashboard: off unless asked for, refused without a password, and behind HTTP Basic authentication.</summary>
public sealed class DashboardTests
{
    static HostProcess Silo(int httpPort, params string[] more) =>
        new("dashboard silo", RepositoryLayout.BuiltDll("Silo"), new Dictionary<string, string>(), Environment.CurrentDirectory,
            ["--models", $"{TinyTrio.Base}={TinyTrio.Dir(TinyTrio.Base)}",
             "--silo-port", LoopbackPorts.Next().ToString(), "--gateway-port", LoopbackPorts.Next().ToString(),
             "--http-port", httpPort.ToString(), "--no-demo", "--threads", "1", "--ProxyOrleans:Dashboard:Enabled=true", .. more]);

    [Fact]
    public async Task Without_a_password_the_dashboard_is_refused_at_start()
    {
        using var p = Silo(LoopbackPorts.Next());
        Assert.True(await p.WaitForExitAsync(TimeSpan.FromSeconds(60)), "the silo still ran after 60 s");
        Assert.Equal(2, p.ExitCode);
        Assert.Contains("ProxyOrleans:Dashboard:PasswordSha256", p.StandardError);
    }

    [Fact]
    public async Task The_dashboard_answers_only_with_the_password()
    {
        int httpPort = LoopbackPorts.Next();
        var hash = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes("dashboard-secret"))).ToLowerInvariant();
        using var p = Silo(httpPort, $"--ProxyOrleans:Dashboard:PasswordSha256={hash}");
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{httpPort}"), Timeout = TimeSpan.FromSeconds(10) };
        var sw = Stopwatch.StartNew();
        while (true)
        {
            Assert.False(p.HasExited, $"the silo exited with {(p.HasExited ? p.ExitCode : 0)}");
            try { if ((await http.GetAsync("/healthz")).IsSuccessStatusCode) break; } catch (HttpRequestException) { }
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(120), "the silo's HTTP port did not answer");
            await Task.Delay(300);
        }
        async Task<HttpResponseMessage> Get(string? password)
        {
            var m = new HttpRequestMessage(HttpMethod.Get, "/dashboard/");
            if (password is not null) m.Headers.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes("ops:" + password)));
            return await http.SendAsync(m);
        }
        var none = await Get(null);
        Assert.Equal(HttpStatusCode.Unauthorized, none.StatusCode);
        Assert.Contains("Basic", none.Headers.WwwAuthenticate.ToString());
        Assert.Equal(HttpStatusCode.Unauthorized, (await Get("wrong")).StatusCode);
        var ok = await Get("dashboard-secret");
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        Assert.Contains("Orleans Dashboard", await ok.Content.ReadAsStringAsync());
    }
}
