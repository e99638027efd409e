using System.Net;
using System.Text;
using System.Text.Json;
using Xunit;
using Xunit.Abstractions;

namespace ProxyOrleans.Cluster.Tests;

/// <summary>The README's first command as a newcomer runs it, then an OpenAI request without a key from this machine.</summary>
public sealed class MainJobTests(ITestOutputHelper output)
{
    [Fact]
    public async Task With_no_arguments_it_serves_the_OpenAI_API_without_a_key_on_loopback_and_stops_on_SIGTERM()
    {
        using var job = new MainJobProcess();
        try
        {
            await job.WaitUntilServingAsync(TimeSpan.FromSeconds(120));
            using var http = new HttpClient { BaseAddress = job.BaseUri, Timeout = TimeSpan.FromSeconds(60) };
            var body = """{"model":"proxy-large","messages":[{"role":"user","content":"Where does Farid Keller live?"}],"max_tokens":8,"temperature":0}""";
            var answer = await http.PostAsync("/v1/chat/completions", new StringContent(body, Encoding.UTF8, "application/json"));
            var text = await answer.Content.ReadAsStringAsync();
            output.WriteLine(text);
            Assert.True(answer.StatusCode == HttpStatusCode.OK, $"{(int)answer.StatusCode}: {text}\n{job.Log}");
            using (var doc = JsonDocument.Parse(text))
                Assert.False(string.IsNullOrEmpty(doc.RootElement.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString()));

            var page = await http.GetAsync("/playground");
            Assert.Equal(HttpStatusCode.OK, page.StatusCode);
            Assert.Contains("ProxyOrleans playground", await page.Content.ReadAsStringAsync());

            var banner = job.Log;
            Assert.Contains($"Playground: {job.BaseUri}playground", banner);
            Assert.Contains("requests without a key are accepted from this machine (loopback) only", banner);
            Assert.Contains("ProxyOrleans__TenantsFile", banner);

            Assert.True(await job.TerminateAsync(TimeSpan.FromSeconds(30)), "still running 30 s after SIGTERM\n" + job.Log);
            Assert.True(job.ExitCode == 0, $"exit code {job.ExitCode}\n{job.Log}");
        }
        finally { output.WriteLine(job.Log); }
    }
}
