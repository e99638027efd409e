using System.Text.Json;
using ProxyOrleans.Gateway.Generation;

namespace ProxyOrleans.Gateway.OpenAi;

/// <summary>
/// Extension field "proxy_analysis": {"top_tokens": k} on a streamed request: every chunk then also carries, for its
/// token, the probability of that token and the top k tokens under the base, each expert, each anti-expert and the
/// combination (softmax of each model's logits, before temperature and top-p). What the playground colours and shows.
/// </summary>
public static class ProxyAnalysis
{
    public const string Field = "proxy_analysis";
    public const int MaxTopTokens = 20, DefaultTopTokens = 5;

    /// <summary>The request with the analysis asked of the cluster, or unchanged when the field is absent.</summary>
    public static ParsedRequest Apply(JsonElement root, ParsedRequest req)
    {
        if (!root.TryGetProperty(Field, out var a) || a.ValueKind == JsonValueKind.Null) return req;
        if (a.ValueKind != JsonValueKind.Object)
            throw ApiError.Invalid(Field, $"'{Field}' must be an object such as {{\"top_tokens\": {DefaultTopTokens}}}.", "invalid_type");
        RequestFields.Check(a, Field, RequestFields.ProxyAnalysisFields);
        if (!req.Stream)
            throw ApiError.Invalid(Field, $"'{Field}' is sent with each streamed token only: set \"stream\": true.");
        int k = DefaultTopTokens;
        if (a.TryGetProperty("top_tokens", out var t) && t.ValueKind != JsonValueKind.Null
            && (t.ValueKind != JsonValueKind.Number || !t.TryGetInt32(out k) || k < 1 || k > MaxTopTokens))
            throw ApiError.Invalid($"{Field}.top_tokens", $"'{Field}.top_tokens' must be an integer from 1 to {MaxTopTokens}; got {t.GetRawText()}.");
        // Each expert's and anti-expert's own logits are needed, not a co-hosted pair's difference.
        return req with { Generation = req.Generation with { TopTokens = k, CoHostedPairs = false } };
    }

    /// <summary>Writes "proxy_analysis": {"token_id", "models": [{"model", "role", "p", "top": [{"id", "text", "p"}]}]}.</summary>
    public static void Write(Utf8JsonWriter w, StepTokens step, CombinationSpec spec)
    {
        w.WritePropertyName(Field);
        w.WriteStartObject();
        w.WriteNumber("token_id", step.TokenId);
        w.WritePropertyName("models");
        w.WriteStartArray();
        foreach (var (name, role) in Roles(spec))
        {
            if (!step.Top.TryGetValue(name, out var top)) continue;
            w.WriteStartObject();
            w.WriteString("model", name);
            w.WriteString("role", role);
            if (step.Chosen.TryGetValue(name, out var p)) w.WriteNumber("p", p); else w.WriteNull("p");
            w.WritePropertyName("top");
            w.WriteStartArray();
            foreach (var x in top)
            {
                w.WriteStartObject();
                w.WriteNumber("id", x.TokenId);
                w.WriteString("text", x.Text);
                w.WriteNumber("p", x.Probability);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteEndObject();
    }

    /// <summary>Base first, then each expert and its anti-expert, then the combination.</summary>
    internal static IEnumerable<(string Name, string Role)> Roles(CombinationSpec spec)
    {
        var seen = new HashSet<string>();
        if (seen.Add(spec.Base)) yield return (spec.Base, "base");
        foreach (var e in spec.Experts)
        {
            if (seen.Add(e.Expert)) yield return (e.Expert, "expert");
            if (seen.Add(e.AntiExpert)) yield return (e.AntiExpert, "anti_expert");
        }
        yield return ("combined", "combined");
    }
}
