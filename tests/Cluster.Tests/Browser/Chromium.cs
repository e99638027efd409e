using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace ProxyOrleans.Cluster.Tests.Browser;

/// <summary>
/// Headless Chromium (Debian's `chromium`, installed by scripts/install-test-deps.sh) driven over the DevTools
/// protocol: one page, JavaScript evaluation, real mouse events, screenshots. Nothing else is needed: no driver
/// binary, no browser download.
/// </summary>
public sealed class Chromium : IAsyncDisposable
{
    readonly Process process;
    readonly string profile;
    readonly ClientWebSocket socket = new();
    readonly ConcurrentDictionary<int, TaskCompletionSource<JsonElement>> pending = new();
    readonly CancellationTokenSource closing = new();
    readonly StringBuilder stderr = new();
    Task? receiving;
    int nextId;

    Chromium(Process process, string profile) { this.process = process; this.profile = profile; }

    public static string FindExecutable() =>
        new[] { "chromium", "chromium-browser", "google-chrome" }
            .SelectMany(name => (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Select(dir => Path.Combine(dir, name)))
            .FirstOrDefault(File.Exists)
        ?? throw new FileNotFoundException("No chromium on PATH: run scripts/install-test-deps.sh (it installs Debian's chromium package).");

    public static async Task<Chromium> LaunchAsync(int width = 1400, int height = 900)
    {
        var profile = Directory.CreateTempSubdirectory("proxyorleans-chromium-").FullName;
        var psi = new ProcessStartInfo(FindExecutable()) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in new[]
        {
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
            "--disable-extensions", "--disable-background-networking", "--remote-debugging-port=0",
            $"--user-data-dir={profile}", $"--window-size={width},{height}", "about:blank",
        }) psi.ArgumentList.Add(a);
        var browser = new Chromium(Process.Start(psi)!, profile);
        var endpoint = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        browser.process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (browser.stderr) browser.stderr.AppendLine(e.Data);
            const string marker = "DevTools listening on ";
            if (e.Data.StartsWith(marker)) endpoint.TrySetResult(e.Data[marker.Length..].Trim());
        };
        browser.process.OutputDataReceived += (_, _) => { };
        browser.process.BeginErrorReadLine();
        browser.process.BeginOutputReadLine();
        try
        {
            var browserUrl = new Uri(await endpoint.Task.WaitAsync(TimeSpan.FromSeconds(60)));
            // The page target's own socket (the browser socket would need Target.attachToTarget sessions).
            using var http = new HttpClient();
            var targets = JsonNode.Parse(await http.GetStringAsync($"http://{browserUrl.Authority}/json/list"))!.AsArray();
            var page = targets.First(t => (string?)t!["type"] == "page")!;
            await browser.socket.ConnectAsync(new Uri((string)page["webSocketDebuggerUrl"]!), CancellationToken.None);
            browser.receiving = Task.Run(browser.ReceiveLoop);
            await browser.SendAsync("Page.enable");
            await browser.SendAsync("Runtime.enable");
            return browser;
        }
        catch (Exception e)
        {
            var log = browser.StandardError;
            await browser.DisposeAsync();
            throw new InvalidOperationException($"Chromium did not start: {e.Message}\n{log}", e);
        }
    }

    public string StandardError { get { lock (stderr) return stderr.ToString(); } }

    public async Task<JsonElement> SendAsync(string method, object? parameters = null)
    {
        int id = Interlocked.Increment(ref nextId);
        var done = new TaskCompletionSource<JsonElement>(TaskCreationOptions.RunContinuationsAsynchronously);
        pending[id] = done;
        var message = JsonSerializer.SerializeToUtf8Bytes(new { id, method, @params = parameters ?? new { } });
        await socket.SendAsync(message, WebSocketMessageType.Text, true, closing.Token);
        return await done.Task.WaitAsync(TimeSpan.FromSeconds(60));
    }

    async Task ReceiveLoop()
    {
        var buffer = new byte[1 << 16];
        var message = new MemoryStream();
        try
        {
            while (socket.State == WebSocketState.Open)
            {
                var r = await socket.ReceiveAsync(buffer, closing.Token);
                if (r.MessageType == WebSocketMessageType.Close) break;
                message.Write(buffer, 0, r.Count);
                if (!r.EndOfMessage) continue;
                using (var doc = JsonDocument.Parse(message.ToArray()))
                {
                    var root = doc.RootElement;
                    if (root.TryGetProperty("id", out var idElement) && pending.TryRemove(idElement.GetInt32(), out var waiter))
                    {
                        if (root.TryGetProperty("error", out var error)) waiter.TrySetException(new InvalidOperationException("DevTools: " + error.GetRawText()));
                        else waiter.TrySetResult(root.GetProperty("result").Clone());
                    }
                }
                message.SetLength(0);
            }
        }
        catch (Exception) when (closing.IsCancellationRequested || socket.State != WebSocketState.Open) { }
        foreach (var w in pending.Values) w.TrySetException(new InvalidOperationException("The DevTools connection closed.\n" + StandardError));
    }

    /// <summary>Evaluates JavaScript in the page (promises awaited) and returns its JSON value.</summary>
    public async Task<JsonElement> EvalAsync(string expression)
    {
        var r = await SendAsync("Runtime.evaluate", new { expression, awaitPromise = true, returnByValue = true });
        if (r.TryGetProperty("exceptionDetails", out var ex))
            throw new InvalidOperationException($"JavaScript failed: {ex.GetRawText()}\nin: {expression}");
        return r.GetProperty("result").TryGetProperty("value", out var v) ? v.Clone() : default;
    }

    /// <summary>Polls <paramref name="condition"/> (a JavaScript expression) until it is truthy; returns its value.</summary>
    public async Task<JsonElement> WaitForAsync(string condition, TimeSpan timeout, string what)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            var v = await EvalAsync(condition);
            if (v.ValueKind is not (JsonValueKind.Undefined or JsonValueKind.Null or JsonValueKind.False)
                && !(v.ValueKind == JsonValueKind.Number && v.GetDouble() == 0) && !(v.ValueKind == JsonValueKind.String && v.GetString() == ""))
                return v;
            if (sw.Elapsed > timeout)
                throw new TimeoutException($"Waited {timeout.TotalSeconds:F0} s for {what}. Page text:\n{(await EvalAsync("document.body.innerText")).GetString()}");
            await Task.Delay(100);
        }
    }

    public async Task NavigateAsync(string url)
    {
        await SendAsync("Page.navigate", new { url });
        await WaitForAsync("document.readyState === 'complete' && location.href !== 'about:blank'", TimeSpan.FromSeconds(30), "the page to load");
    }

    /// <summary>Moves the real mouse pointer onto the centre of the first element matching <paramref name="selector"/>.</summary>
    public async Task HoverAsync(string selector)
    {
        var rect = await EvalAsync($"(() => {{ const r = document.querySelector({JsonSerializer.Serialize(selector)}).getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()");
        await SendAsync("Input.dispatchMouseEvent", new { type = "mouseMoved", x = rect[0].GetDouble(), y = rect[1].GetDouble() });
    }

    public async Task ClickAsync(string selector)
    {
        var rect = await EvalAsync($"(() => {{ const r = document.querySelector({JsonSerializer.Serialize(selector)}).getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()");
        foreach (var type in new[] { "mousePressed", "mouseReleased" })
            await SendAsync("Input.dispatchMouseEvent", new { type, x = rect[0].GetDouble(), y = rect[1].GetDouble(), button = "left", clickCount = 1 });
    }

    public async Task<byte[]> ScreenshotAsync()
    {
        var r = await SendAsync("Page.captureScreenshot", new { format = "png" });
        return Convert.FromBase64String(r.GetProperty("data").GetString()!);
    }

    public async ValueTask DisposeAsync()
    {
        closing.Cancel();
        try { socket.Abort(); } catch { }
        try { if (!process.HasExited) { process.Kill(entireProcessTree: true); await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10)); } } catch { }
        process.Dispose();
        if (receiving is not null) try { await receiving.WaitAsync(TimeSpan.FromSeconds(5)); } catch { }
        try { Directory.Delete(profile, recursive: true); } catch { }
    }
}
