using System.Text.Json;
using ProxyOrleans.Client.Benchmarks;
using Xunit;
using Xunit.Abstractions;

namespace ProxyOrleans.Cluster.Tests.Browser;

/// <summary>
/// The playground in a real headless Chromium against the real main job (bundled demo models) with API keys on:
/// a missing key and a bad input show errors; both columns stream token by token; proxy-tuned tokens are coloured
/// by the expert − anti-expert shift and hovering one shows every model's top tokens. Leaves a screenshot in the test's
/// temporary folder, or, with PROXYORLEANS_UPDATE_DOCS=1, as docs/playground.png (a test run never edits tracked files
/// unless asked).
/// </summary>
public sealed class PlaygroundBrowserTests(ITestOutputHelper output)
{
    const string Key = "sk-playground-test-0001";

    [Fact]
    public async Task The_playground_streams_both_columns_colours_the_shift_and_shows_every_models_top_tokens_on_hover()
    {
        var tenants = Path.Combine(Directory.CreateTempSubdirectory("proxyorleans-playground-").FullName, "tenants.json");
        File.WriteAllText(tenants, JsonSerializer.Serialize(new[] { new { name = "playground", keySha256 = Gateway.Tenants.Tenant.HashKey(Key), models = new[] { "*" } } }));
        // Each forward padded to 25 ms, as a model on an accelerator takes its time: the bundled models' short replies
        // (a few tokens) would otherwise reach the page in one network read and the columns could not be seen growing.
        using var job = new MainJobProcess(new Dictionary<string, string>
        {
            ["ProxyOrleans__TenantsFile"] = tenants,
            ["ProxyOrleans__LatencyModel"] = "fixed=25",
        });
        await using var browser = await Chromium.LaunchAsync();
        try
        {
            await job.WaitUntilServingAsync(TimeSpan.FromSeconds(120));
            Assert.Contains("API keys required", job.Log);
            await browser.NavigateAsync(new Uri(job.BaseUri, "/playground").ToString());
            var wait = TimeSpan.FromSeconds(60);

            // Keys are on and none typed yet: listing the combinations fails, and the page says why.
            var error = await browser.WaitForAsync("getComputedStyle(document.getElementById('error')).display === 'block' && document.getElementById('error').textContent", wait, "the missing-key error");
            Assert.Contains("API key", error.GetString());

            await browser.EvalAsync("(() => { const k = document.getElementById('apiKey'); k.value = " + JsonSerializer.Serialize(Key) + "; k.dispatchEvent(new Event('change')); })()");
            await browser.WaitForAsync("[...document.getElementById('model').options].some(o => o.value === 'proxy-large') && document.getElementById('error').style.display === 'none'", wait, "the combinations to be listed");

            // A bad input: the server's message, naming the field, is shown.
            await browser.EvalAsync("document.getElementById('maxTokens').value = '100000'");
            await browser.ClickAsync("#run");
            error = await browser.WaitForAsync("document.getElementById('error').style.display === 'block' && document.getElementById('error').textContent", wait, "the max_tokens error");
            Assert.Contains("max_tokens", error.GetString());
            await browser.WaitForAsync("!document.getElementById('run').disabled", wait, "the run to end");

            // A real run: count the tokens each column shows while its stream is still open.
            await browser.EvalAsync("""
                (() => {
                  document.getElementById('maxTokens').value = '40';
                  document.getElementById('temperature').value = '0';
                  // A question whose proxy-tuned answer is several tokens long on the bundled models.
                  document.getElementById('prompt').value = 'Tell me about Farid Keller.';
                  window.seenWhileRunning = { baseOutput: new Set(), proxyOutput: new Set() };
                  for (const id of ['baseOutput', 'proxyOutput']) {
                    const out = document.getElementById(id);
                    new MutationObserver(() => {
                      if (out.parentElement.dataset.state === 'running' && out.children.length > 0) window.seenWhileRunning[id].add(out.children.length);
                    }).observe(out, { childList: true });
                  }
                })()
                """);
            await browser.ClickAsync("#run");
            await browser.WaitForAsync("document.getElementById('baseColumn').dataset.state !== 'running' && document.getElementById('proxyColumn').dataset.state !== 'running' && !document.getElementById('run').disabled", TimeSpan.FromSeconds(120), "both columns to finish");
            var result = await browser.EvalAsync("""
                (() => ({
                  error: document.getElementById('error').style.display === 'block' ? document.getElementById('error').textContent : '',
                  states: [document.getElementById('baseColumn').dataset.state, document.getElementById('proxyColumn').dataset.state],
                  baseText: document.getElementById('baseOutput').textContent,
                  proxyText: document.getElementById('proxyOutput').textContent,
                  baseSeen: window.seenWhileRunning.baseOutput.size,
                  proxySeen: window.seenWhileRunning.proxyOutput.size,
                  proxyTokens: document.querySelectorAll('#proxyOutput .tok[data-shift]').length,
                  pieces: [...document.querySelectorAll('#proxyOutput .tok')].map(s => s.textContent),
                  coloured: [...document.querySelectorAll('#proxyOutput .tok[data-shift]')].filter(s => Math.abs(Number(s.dataset.shift)) >= 0.02 && getComputedStyle(s).backgroundColor !== 'rgba(0, 0, 0, 0)').length,
                }))()
                """);
            output.WriteLine(result.GetRawText());
            Assert.Equal("", result.GetProperty("error").GetString());
            Assert.Equal("done", result.GetProperty("states")[0].GetString());
            Assert.Equal("done", result.GetProperty("states")[1].GetString());
            Assert.False(string.IsNullOrWhiteSpace(result.GetProperty("baseText").GetString()));
            Assert.False(string.IsNullOrWhiteSpace(result.GetProperty("proxyText").GetString()));
            // Streamed: each column grew in several steps while its response was still open.
            Assert.True(result.GetProperty("baseSeen").GetInt32() >= 2, "the base column did not grow while streaming: " + result.GetRawText());
            Assert.True(result.GetProperty("proxySeen").GetInt32() >= 2, "the proxy-tuned column did not grow while streaming: " + result.GetRawText());
            Assert.True(result.GetProperty("proxyTokens").GetInt32() >= 2);
            Assert.True(result.GetProperty("coloured").GetInt32() >= 1, "no proxy-tuned token is coloured by the shift: " + result.GetRawText());

            // Hover the token the shift moved most: its details list every model of the combination and the combination.
            await browser.EvalAsync("""
                (() => {
                  const spans = [...document.querySelectorAll('#proxyOutput .tok[data-shift]')].filter(s => s.getBoundingClientRect().width > 0);
                  spans.sort((a, b) => Math.abs(Number(b.dataset.shift)) - Math.abs(Number(a.dataset.shift)));
                  spans[0].id = 'mostShifted';
                })()
                """);
            await browser.HoverAsync("#mostShifted");
            var tip = await browser.WaitForAsync("""
                getComputedStyle(document.getElementById('tip')).display === 'block'
                  && [...document.querySelectorAll('#tip tr')].map(r => r.dataset.role + ':' + r.querySelectorAll('td').length).join(',')
                """, wait, "the hover details");
            output.WriteLine("hover rows: " + tip.GetString());
            var rows = tip.GetString()!.Split(',').ToDictionary(r => r.Split(':')[0], r => int.Parse(r.Split(':')[1]));
            foreach (var role in new[] { "base", "expert", "anti_expert", "combined" })
                Assert.True(rows.TryGetValue(role, out var n) && n >= 1, $"hover details lack the {role}'s top tokens: {tip.GetString()}");
            Assert.Contains("proxy_analysis", await new HttpClient().GetStringAsync(new Uri(job.BaseUri, "/playground")));

            var png = await browser.ScreenshotAsync();
            var shot = Environment.GetEnvironmentVariable("PROXYORLEANS_UPDATE_DOCS") == "1"
                ? Path.Combine(RepositoryLayout.Root(), "docs", "playground.png")
                : Path.Combine(Path.GetDirectoryName(tenants)!, "playground.png");
            await File.WriteAllBytesAsync(shot, png);
            output.WriteLine($"screenshot: {shot} ({png.Length} bytes)");
        }
        catch
        {
            output.WriteLine(job.Log);
            output.WriteLine(browser.StandardError);
            throw;
        }
    }
}
