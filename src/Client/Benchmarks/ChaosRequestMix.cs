using ProxyOrleans.Abstractions;

namespace ProxyOrleans.Client.Benchmarks;

/// <summary>What a chaos stream asks for; stream i is kind i mod 5 (an odd count, so that every kind goes through each of two gateways).</summary>
public enum ChaosStreamKind
{
    Greedy,
    /// <summary>Seeded sampling at temperature 0.8 with top_p 0.9.</summary>
    TopP,
    /// <summary>Seeded sampling at temperature 0.8 with top_k 40.</summary>
    TopK,
    /// <summary>Seeded sampling at temperature 0.8 with a stop sequence taken from the middle of a probe run's text, so that it fires.</summary>
    Stop,
    /// <summary>Seeded sampling at temperature 0.8 with n = 2: two choices, each compared with its fault-free twin.</summary>
    TwoChoices,
}

/// <summary>One stream's request; <paramref name="Choices"/> is its n (the gateway seeds choice j with seed + j).</summary>
internal sealed record StreamPlan(ChaosStreamKind Kind, GenerationRequest Request, int Choices);

/// <summary>
/// The chaos run's request mix: stream i's kind, prompt and sampling. The stop streams' stop sequences come from a probe
/// run of the same requests without one (<see cref="TakeStopsFrom"/>), so that each fires.
/// </summary>
internal sealed class ChaosRequestMix(CombinationSpec spec, int streams, int tokens)
{
    private static readonly ChaosStreamKind[] Kinds = Enum.GetValues<ChaosStreamKind>();
    private readonly string?[] _stops = new string?[streams];

    public static ChaosStreamKind KindOf(int i) => Kinds[i % Kinds.Length];

    /// <summary>The streams of kind <see cref="ChaosStreamKind.Stop"/>: what the probe run runs.</summary>
    public List<int> StopStreams => Enumerable.Range(0, streams).Where(i => KindOf(i) == ChaosStreamKind.Stop).ToList();

    public string? StopOf(int i) => _stops[i];

    public StreamPlan Plan(int i)
    {
        var kind = KindOf(i);
        var sampled = new SamplingSpec { Temperature = 0.8f, Seed = (ulong)(1000 + i), MaxNewTokens = tokens, StopAtEos = false };
        var sampling = kind switch
        {
            ChaosStreamKind.Greedy => new SamplingSpec { Temperature = 0, MaxNewTokens = tokens, StopAtEos = false },
            ChaosStreamKind.TopP => sampled with { TopP = 0.9f },
            ChaosStreamKind.TopK => sampled with { TopK = 40 },
            ChaosStreamKind.Stop => sampled with { Stop = _stops[i] is { } stop ? [stop] : [] },
            _ => sampled,
        };
        return new StreamPlan(kind, new GenerationRequest { Combination = spec, Prompt = Prompts[i % Prompts.Length], TenantId = "chaos", Sampling = sampling },
            kind == ChaosStreamKind.TwoChoices ? 2 : 1);
    }

    /// <summary>A stop sequence fires only if the text contains it: a few characters from the middle of the probe's text
    /// (the same seed gives the same text again).</summary>
    public void TakeStopsFrom(IReadOnlyList<int> stopStreams, StreamOutcome[] probe)
    {
        for (int k = 0; k < stopStreams.Count; k++) _stops[stopStreams[k]] = MiddleOf(probe[k].Choices[0].Text);
    }

    /// <summary>Streams per kind, counted from what the requests really asked (top_p &lt; 1, top_k &gt; 0, a stop sequence, n = 2).</summary>
    public static Dictionary<ChaosStreamKind, int> Count(IReadOnlyList<StreamPlan> plans) => new()
    {
        [ChaosStreamKind.Greedy] = plans.Count(p => p.Request.Sampling.Temperature == 0),
        [ChaosStreamKind.TopP] = plans.Count(p => p.Request.Sampling.TopP < 1),
        [ChaosStreamKind.TopK] = plans.Count(p => p.Request.Sampling.TopK > 0),
        [ChaosStreamKind.Stop] = plans.Count(p => p.Request.Sampling.Stop.Length > 0),
        [ChaosStreamKind.TwoChoices] = plans.Count(p => p.Choices == 2),
    };

    /// <summary>Up to three characters from the middle of a text (not splitting a surrogate pair); null for a text too short to cut.</summary>
    private static string? MiddleOf(string? text)
    {
        if (text is null || text.Length < 4) return null;
        int start = text.Length / 2, end = Math.Min(text.Length, start + 3);
        if (char.IsLowSurrogate(text[start])) start++;
        if (end < text.Length && char.IsLowSurrogate(text[end])) end++;
        return end > start ? text[start..end] : null;
    }

    private static readonly string[] Prompts =
    [
        "Question: What is the capital of Elbonia?\nAnswer:", "Once upon a time", "The best way to learn is", "In 1492, Columbus",
        "Where does Farid Keller live?", "Tell a long story about the sea",
    ];
}
