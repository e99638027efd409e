using ProxyOrleans.Abstractions;

namespace ProxyOrleans.Client.Benchmarks;

/// <summary>One choice's end: its text when it finished, else the error it failed with (both null: lost).</summary>
internal sealed record ChoiceOutcome(string? Text, FinishKind Finish, string? Error);

/// <summary>One stream's end, choice by choice.</summary>
internal sealed record StreamOutcome(ChoiceOutcome[] Choices)
{
    public static StreamOutcome Failed(int choices, string error) => new([.. Enumerable.Repeat(new ChoiceOutcome(null, FinishKind.Error, error), choices)]);
    public static StreamOutcome Lost(int choices) => new([.. Enumerable.Repeat(new ChoiceOutcome(null, FinishKind.None, null), choices)]);
}

/// <summary>
/// Runs the chaos run's streams and reads how each ended: as streamed POST /v1/completions through the gateways, or
/// straight from the cluster through <see cref="GenerationClient"/> when there are none.
/// </summary>
internal static class ChaosStreams
{
    /// <summary>The combination's name at the gateways.</summary>
    public const string CombinationName = "chaos";

    /// <summary>The given streams at once, their outcomes in that order: through the gateways (stream i through gateway
    /// i mod count) when there are some, else straight to the cluster.</summary>
    public static async Task<StreamOutcome[]> RunAsync(LoopbackCluster cluster, List<GatewayProcess> gateways, HttpClient http, ChaosOptions o,
        IReadOnlyList<int> streams, Func<int, StreamPlan> plan, string run, CancellationToken ct)
    {
        var id = Guid.NewGuid().ToString("N")[..8];
        return await Task.WhenAll(streams.Select(async i =>
        {
            var p = plan(i);
            using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
            limit.CancelAfter(o.StreamLimit);
            try
            {
                return gateways.Count > 0
                    ? await ThroughGatewayAsync(http, gateways[i % gateways.Count], p, limit.Token)
                    : await FromClusterAsync(cluster, p, $"chaos:{run}-{id}-{i}", limit.Token);
            }
            catch (OperationCanceledException) when (limit.IsCancellationRequested && !ct.IsCancellationRequested)
            {
                return StreamOutcome.Lost(p.Choices); // hung past the limit
            }
            catch (Exception e) when (!ct.IsCancellationRequested)
            {
                return StreamOutcome.Failed(p.Choices, $"{e.GetType().Name}: {e.Message.Split('\n')[0]}");
            }
        }));
    }

    /// <summary>Each choice its own generation, seeded seed + j as the gateway seeds choice j.</summary>
    private static async Task<StreamOutcome> FromClusterAsync(LoopbackCluster cluster, StreamPlan plan, string id, CancellationToken ct) =>
        new(await Task.WhenAll(Enumerable.Range(0, plan.Choices).Select(async j =>
        {
            var sampling = plan.Request.Sampling;
            var request = plan.Request with { Sampling = sampling with { Seed = sampling.Seed is { } s ? s + (ulong)j : null } };
            var text = new System.Text.StringBuilder();
            var finish = FinishKind.None;
            await foreach (var ev in GenerationClient.StreamAsync(cluster.Grains, request, plan.Choices > 1 ? $"{id}-{j}" : id, ct))
            {
                text.Append(ev.Text);
                if (ev.Finish != FinishKind.None) { finish = ev.Finish; break; }
            }
            if (finish == FinishKind.Error) return new ChoiceOutcome(null, finish, "the coordinator reported an error");
            return new ChoiceOutcome(finish == FinishKind.None ? null : text.ToString(), finish, null);
        })));

    /// <summary>
    /// One streamed POST /v1/completions. Ends with [DONE] and a finish reason per choice; an error event, a refusal or a
    /// stream cut without [DONE] (its gateway died: the connection drops) is a clean failure of every choice not finished
    /// by then, which the client can tell and retry. A choice missing from a stream that ended with [DONE] is lost.
    /// </summary>
    private static async Task<StreamOutcome> ThroughGatewayAsync(HttpClient http, GatewayProcess gateway, StreamPlan plan, CancellationToken ct)
    {
        var s = plan.Request.Sampling;
        var fields = new Dictionary<string, object?>
        {
            ["model"] = CombinationName, ["prompt"] = plan.Request.Prompt, ["max_tokens"] = s.MaxNewTokens, ["temperature"] = s.Temperature,
            ["seed"] = s.Seed is { } seed ? (long)seed : null, ["stream"] = true,
        };
        // Only what differs from the API's defaults, so that a greedy stream's body stays the plain one.
        if (s.TopP < 1) fields["top_p"] = s.TopP;
        if (s.TopK > 0) fields["top_k"] = s.TopK;
        if (s.Stop.Length > 0) fields["stop"] = s.Stop;
        if (plan.Choices > 1) fields["n"] = plan.Choices;
        var body = System.Text.Json.JsonSerializer.Serialize(fields);
        using var post = new HttpRequestMessage(HttpMethod.Post, new Uri(gateway.BaseUri, "/v1/completions"))
        {
            Content = new StringContent(body, System.Text.Encoding.UTF8, "application/json"),
        };
        var texts = Enumerable.Range(0, plan.Choices).Select(_ => new System.Text.StringBuilder()).ToArray();
        var finishes = new string?[plan.Choices];
        // A choice whose finish reason arrived is complete even if the stream is cut afterwards; the others fail with the cut.
        StreamOutcome Cut(string why) => new([.. finishes.Select((f, j) => f is null ? new ChoiceOutcome(null, FinishKind.Error, why) : Finished(j))]);
        ChoiceOutcome Finished(int j) => new(texts[j].ToString(), finishes[j] == "length" ? FinishKind.Length : FinishKind.Stop, null);
        try
        {
            using var response = await http.SendAsync(post, HttpCompletionOption.ResponseHeadersRead, ct);
            if (!response.IsSuccessStatusCode)
                return StreamOutcome.Failed(plan.Choices, $"{gateway.Name} answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync(ct)}");
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(ct));
            while (await reader.ReadLineAsync(ct) is { } line)
            {
                if (!line.StartsWith("data: ", StringComparison.Ordinal)) continue;
                var data = line["data: ".Length..];
                if (data == "[DONE]")
                    return new([.. finishes.Select((f, j) => f is null ? new ChoiceOutcome(null, FinishKind.None, null) : Finished(j))]);
                using var json = System.Text.Json.JsonDocument.Parse(data);
                if (json.RootElement.TryGetProperty("error", out var error))
                    return StreamOutcome.Failed(plan.Choices, $"{gateway.Name} reported an error mid-stream: {error.GetRawText()}");
                foreach (var choice in json.RootElement.GetProperty("choices").EnumerateArray())
                {
                    var j = choice.GetProperty("index").GetInt32();
                    if (j < 0 || j >= plan.Choices)
                        return StreamOutcome.Failed(plan.Choices, $"{gateway.Name} sent choice {j} of a request with n = {plan.Choices}");
                    if (choice.TryGetProperty("text", out var t)) texts[j].Append(t.GetString());
                    if (choice.TryGetProperty("finish_reason", out var f) && f.ValueKind == System.Text.Json.JsonValueKind.String) finishes[j] = f.GetString();
                }
            }
        }
        catch (Exception e) when (e is IOException or HttpRequestException && !ct.IsCancellationRequested)
        {
            return Cut($"the stream through {gateway.Name} was cut{(gateway.HasExited ? " (the gateway was killed)" : "")}: {e.Message}");
        }
        return Cut($"the stream through {gateway.Name} ended without [DONE]{(gateway.HasExited ? " (the gateway was killed)" : "")}");
    }
}
