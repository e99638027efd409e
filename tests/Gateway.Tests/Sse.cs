using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace ProxyOrleans.Gateway.Tests;

/// <summary>Plain HTTP helpers: what curl would send and see (raw SSE lines, raw error bodies).</summary>
internal static class Http
{
    public static HttpRequestMessage Post(string path, string json, string? key)
    {
        var m = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(json, Encoding.UTF8, "application/json") };
        if (key is not null) m.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return m;
    }

    public static HttpRequestMessage Get(string path, string? key, HttpMethod? method = null)
    {
        var m = new HttpRequestMessage(method ?? HttpMethod.Get, path);
        if (key is not null) m.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return m;
    }

    /// <summary>Reads an SSE body: every "data: " payload in order (the last one is "[DONE]").</summary>
    public static async Task<List<string>> ReadEventsAsync(HttpResponseMessage response)
    {
        var events = new List<string>();
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        string? line;
        while ((line = await reader.ReadLineAsync()) is not null)
        {
            if (line.Length == 0) continue;
            Assert.StartsWith("data: ", line);
            events.Add(line["data: ".Length..]);
        }
        return events;
    }

    /// <summary>Asserts an OpenAI error body and returns its "error" object.</summary>
    public static async Task<JsonElement> AssertErrorAsync(HttpResponseMessage response, int status, string? param, string? code = null)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == status, $"expected {status}, got {(int)response.StatusCode}: {body}");
        Assert.StartsWith("application/json", response.Content.Headers.ContentType?.ToString());
        var error = JsonDocument.Parse(body).RootElement.GetProperty("error");
        Assert.False(string.IsNullOrWhiteSpace(error.GetProperty("message").GetString()));
        Assert.False(string.IsNullOrWhiteSpace(error.GetProperty("type").GetString()));
        Assert.Equal(param, error.GetProperty("param").GetString());
        if (code is not null) Assert.Equal(code, error.GetProperty("code").GetString());
        return error.Clone();
    }
}
