using System.Globalization;
using System.Text.Json;

namespace ProxyOrleans.Gateway.OpenAi;

// The logits processors' request fields (vLLM's and OpenAI's), in their own file beside the parser's other fields.
public sealed partial class RequestParser
{
    /// <summary>The logits processors' fields, accepted on both endpoints (<see cref="ParseLogitsProcessors"/>).</summary>
    public static readonly string[] LogitsProcessorFields =
        ["logit_bias", "repetition_penalty", "frequency_penalty", "presence_penalty", "min_p", "stop_token_ids"];

    /// <summary>
    /// logit_bias (OpenAI: {"token id": bias in [-100, 100]}), repetition_penalty (vLLM: &gt; 0), frequency_penalty and
    /// presence_penalty (OpenAI: [-2, 2]), min_p (vLLM: [0, 1]), stop_token_ids (vLLM: token ids). Ids are checked
    /// against the base model's vocabulary by the coordinator (the gateway does not hold tokenizers).
    /// </summary>
    static SamplingSpec ParseLogitsProcessors(JsonElement root)
    {
        Dictionary<int, float>? bias = null;
        if (Get(root, "logit_bias") is { } lb)
        {
            if (lb.ValueKind != JsonValueKind.Object)
                throw ApiError.Invalid("logit_bias", "'logit_bias' must be an object mapping token ids to biases, e.g. {\"50256\": -100}.", "invalid_type");
            bias = [];
            foreach (var p in lb.EnumerateObject())
            {
                string key;
                try { key = p.Name; }
                catch (InvalidOperationException) { throw ApiError.Invalid("logit_bias", "A 'logit_bias' key is not valid Unicode text.", "invalid_value"); }
                if (!int.TryParse(key, NumberStyles.None, CultureInfo.InvariantCulture, out var id))
                    throw ApiError.Invalid("logit_bias",
                        $"'logit_bias' key '{Trim(key)}' is not a token id: keys are non-negative integers written as strings, e.g. {{\"50256\": -100}}. " +
                        "POST /tokenize gives a text's token ids.");
                if (!bias.TryAdd(id, 0))
                    throw ApiError.Invalid("logit_bias", $"'logit_bias' names token {id} twice ('{Trim(key)}'); give each token once.", "duplicate_parameter");
                var param = $"logit_bias.{key}";
                var value = OptionalFinite(lb, key, param) ?? throw ApiError.Invalid(param, $"'{param}' must be a number in [-100, 100].", "invalid_type");
                if (Math.Abs(value) > 100)
                    throw ApiError.Invalid("logit_bias", $"'logit_bias' gives token {id} the bias {value}; biases must be in [-100, 100] (-100 bans the token, 100 forces it).");
                bias[id] = (float)value;
            }
        }
        var repetition = OptionalFinite(root, "repetition_penalty") ?? 1.0;
        if (repetition <= 0)
            throw ApiError.Invalid("repetition_penalty", $"'repetition_penalty' must be greater than 0 (1 = off, above 1 discourages repeats); got {repetition}.");
        double Penalty(string name)
        {
            var v = OptionalFinite(root, name) ?? 0;
            if (v < -2 || v > 2) throw ApiError.Invalid(name, $"'{name}' must be between -2 and 2 (0 = off); got {v}.");
            return v;
        }
        var frequency = Penalty("frequency_penalty");
        var presence = Penalty("presence_penalty");
        var minP = OptionalFinite(root, "min_p") ?? 0;
        if (minP < 0 || minP > 1) throw ApiError.Invalid("min_p", $"'min_p' must be between 0 and 1 (0 = off); got {minP}.");
        int[] stopIds = [];
        if (Get(root, "stop_token_ids") is { } st)
        {
            if (st.ValueKind != JsonValueKind.Array)
                throw ApiError.Invalid("stop_token_ids", "'stop_token_ids' must be a list of token ids, e.g. [2].", "invalid_type");
            stopIds = TokenIds(st, "stop_token_ids", "stop_token_ids");
        }
        return new SamplingSpec
        {
            LogitBias = bias is { Count: > 0 } ? bias : null, RepetitionPenalty = (float)repetition, FrequencyPenalty = (float)frequency,
            PresencePenalty = (float)presence, MinP = (float)minP, StopTokenIds = [.. stopIds],
        };
    }
}
