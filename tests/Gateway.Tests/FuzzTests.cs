using System.Net;
using System.Text;
using System.Text.Json;

namespace ProxyOrleans.Gateway.Tests;

/// <summary>
/// Property: whatever body arrives, the gateway answers with a status below 500 and, for a refusal, OpenAI's error
/// body with a message. Bodies come from a seeded generator (a failure prints its seed and body to replay): valid
/// requests mutated field by field with values of every JSON type, sizes at and past the limits, unicode (astral,
/// combining, RTL, NUL, lone surrogate escapes), deep nesting, duplicate keys, wrong-case and unknown names, and
/// n × max_tokens at its largest.
/// </summary>
[Collection(GatewayCollection.Name)]
public sealed class FuzzTests(GatewayFixture fx)
{
    [Theory]
    [InlineData(1, 120)]
    [InlineData(2, 120)]
    public async Task Generated_bodies_never_get_a_5xx(int seed, int count)
    {
        var generator = new BodyGenerator(new Random(seed), fx);
        var statuses = new Dictionary<int, int>();
        for (int i = 0; i < count; i++)
        {
            var (path, body) = generator.Next();
            using var request = Http.Post(path, body, GatewayFixture.AliceKey);
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            using var response = await fx.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cts.Token);
            var status = (int)response.StatusCode;
            var text = await response.Content.ReadAsStringAsync(cts.Token);
            statuses[status] = statuses.GetValueOrDefault(status) + 1;
            Assert.True(status < 500, $"seed {seed} body {i}: {status} for {path} {Trim(body)}\n{Trim(text)}");
            if (status >= 400)
            {
                var error = JsonDocument.Parse(text).RootElement.GetProperty("error");
                Assert.False(string.IsNullOrWhiteSpace(error.GetProperty("message").GetString()), $"seed {seed} body {i}: no message");
            }
        }
        // The generator must reach both sides of the parser, or the property says little.
        Assert.True(statuses.GetValueOrDefault(200) > 0, "no generated body was accepted: " + string.Join(", ", statuses));
        Assert.True(statuses.GetValueOrDefault(400) > count / 4, "too few refusals: " + string.Join(", ", statuses));
        using var health = await fx.Http.GetAsync("/healthz");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
    }

    static string Trim(string s) => s.Length <= 600 ? s : s[..600] + "…";

    /// <summary>Request bodies as raw JSON text (so duplicate keys, odd escapes and huge numbers can be written).</summary>
    sealed class BodyGenerator(Random random, GatewayFixture fx)
    {
        static readonly string[] Fields =
        [
            "model", "prompt", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k", "seed", "stop", "n",
            "stream", "stream_options", "alpha", "proxy", "user", "echo", "logprobs", "best_of", "suffix", "frequency_penalty",
            "presence_penalty", "logit_bias", "repetition_penalty", "min_p", "stop_token_ids", "response_format", "tools", "tool_choice", "Model", "PROMPT", "tempérture", "",
        ];

        static readonly string[] Texts =
        [
            "hi", "", " ", "Once upon a time", "日本語のテキスト", "😀🚀 astral", "e\u0301\u0301\u0301 combining", "\u202Eright-to-left",
            "tab\tnew\nline", "nul\u0000inside", "{prompt}", "Question: {prompt}\nAnswer:", "<|im_start|>system", "\uFEFFbom",
        ];

        public (string Path, string Body) Next()
        {
            var chat = random.Next(2) == 0;
            var path = chat ? "/v1/chat/completions" : "/v1/completions";
            // Start from a valid request, then mutate a few fields (or write a wholly random value).
            var fields = new List<(string Name, string Json)>
            {
                ("model", Str(Pick([fx.Combination, fx.BaseModel, fx.ExpertModel]))),
                chat ? ("messages", $"[{{\"role\":\"user\",\"content\":{Str(Pick(Texts.Where(t => t.Length > 0).ToArray()))}}}]")
                     : ("prompt", Str(Pick(Texts.Where(t => t.Length > 0).ToArray()))),
                ("max_tokens", random.Next(1, 6).ToString()),
                ("temperature", Pick(["0", "0.8", "1"])),
                ("seed", random.Next(100).ToString()),
            };
            int mutations = random.Next(0, 4);
            for (int m = 0; m < mutations; m++)
            {
                var name = Pick(Fields);
                var value = ValueFor(name, depth: 0);
                switch (random.Next(4))
                {
                    case 0: fields.Add((name, value)); break;                                   // maybe a duplicate key
                    case 1: fields.RemoveAll(f => f.Name == name); break;                       // a field left out
                    default: fields.RemoveAll(f => f.Name == name); fields.Add((name, value)); break; // replaced
                }
            }
            if (random.Next(40) == 0) return (path, Pick(["", "null", "[]", "\"x\"", "{", "{\"model\":", new string('[', 200)]));
            var sb = new StringBuilder("{");
            for (int i = 0; i < fields.Count; i++) sb.Append(i > 0 ? "," : "").Append(Str(fields[i].Name)).Append(':').Append(fields[i].Json);
            return (path, sb.Append('}').ToString());
        }

        string ValueFor(string name, int depth) => random.Next(3) == 0 ? Any(depth) : name switch
        {
            "max_tokens" or "max_completion_tokens" => Pick(["1", "2000", "2001", "0", "-1", "4294967296", "9223372036854775808", "1e3", "2.5", "\"5\""]),
            "n" => Pick(["1", "8", "9", "0", "-3", "1e9"]),
            "temperature" => Pick(["0", "1e-40", "5e-324", "2", "2.0000001", "-0", "1e999", "\"NaN\"", "0.5"]),
            "top_p" => Pick(["1", "1e-50", "0", "1.0000001", "0.9", "-1"]),
            "top_k" => Pick(["0", "1", "50", "-1", "2147483648", "1.5"]),
            "seed" => Pick(["0", "-1", "9223372036854775807", "-9223372036854775808", "18446744073709551616"]),
            "stop" => Pick(["\"\\n\"", "[\"a\",\"b\"]", "[]", "[\"\"]", "[1]", $"\"{new string('s', 300)}\"", "[\"a\",\"b\",\"c\",\"d\",\"e\"]"]),
            "prompt" => Pick([Str(Pick(Texts)), "[\"a\",\"b\"]", "[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\"]", $"\"{new string('p', fx.MaxPromptChars + 1)}\"", "\"\\ud800\"", "[[1,2]]"]),
            "messages" => Pick(["[]", "[{\"role\":\"system\",\"content\":\"be brief\"},{\"role\":\"user\",\"content\":\"hi\"}]",
                "[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"hi\"}]}]", "[{\"role\":\"tool\",\"content\":\"x\"}]",
                "[{\"role\":\"user\",\"content\":\"\\udfff\"}]", "[{\"role\":\"user\",\"content\":null}]", "[{\"role\":\"user\",\"content\":\"a\",\"content\":\"b\"}]"]),
            "stream" => Pick(["true", "false", "1", "\"true\""]),
            "stream_options" => Pick(["{\"include_usage\":true}", "{}", "[]", "{\"include_usage\":\"yes\"}"]),
            "alpha" => Pick(["0", "1", "-100", "100.5", "1e-45", "1e308"]),
            "proxy" => Pick(["{}", "{\"alpha\":0.5}", $"{{\"base\":{Str(fx.BaseModel)}}}", "{\"experts\":[]}",
                $"{{\"experts\":[{{\"expert\":{Str(fx.ExpertModel)},\"anti_expert\":{Str(fx.BaseModel)}}}]}}",
                $"{{\"experts\":[{{\"expert\":{Str(fx.ExpertModel)},\"anti_expert\":{Str(fx.AntiExpertModel)},\"weight\":1e40}}]}}",
                "{\"answer_cue\":\"Q: {prompt} A:\"}", "{\"answer_cue\":\"none\"}", "{\"experts\":{}}"]),
            "frequency_penalty" or "presence_penalty" => Pick(["0", "2", "-2", "2.0000001", "-1e999", "\"1\"", "0.5"]),
            "repetition_penalty" => Pick(["1", "0", "-1", "1e-45", "1e38", "1.3"]),
            "min_p" => Pick(["0", "1", "1.5", "-0", "0.05", "1e-45"]),
            "logit_bias" => Pick(["{}", "{\"5\":100}", "{\"5\":-100,\"6\":1e999}", "{\"x\":1}", "{\"-1\":1}", "{\"99999999999\":1}",
                "{\"4000000\":1}", "{\"5\":1,\"005\":2}", "[1]", "{\"5\":\"1\"}"]),
            "stop_token_ids" => Pick(["[]", "[2]", "[1,2,3]", "[-1]", "[2.5]", "[4000000]", "2", "[\"2\"]"]),
            "model" => Pick([Str(fx.Combination), Str(fx.BaseModel), "\"no-such-model\"", "\"\"", "42", Str(fx.Combination.ToUpperInvariant())]),
            _ => Any(depth),
        };

        /// <summary>Any JSON value: scalars of every kind, strings of every size, arrays and objects nested up to past the parser's limit.</summary>
        string Any(int depth) => random.Next(depth > 3 ? 7 : 10) switch
        {
            0 => "null",
            1 => Pick(["true", "false"]),
            2 => Pick(["0", "-0", "1", "-1", "3.5", "1e999", "-1e999", "1e-400", "123456789012345678901234567890"]),
            3 => Str(Pick(Texts)),
            4 => Str(new string('x', Pick([0, 1, 255, 4096, 20000]))),
            5 => Pick(["\"\\ud800\"", "\"\\udc00x\"", "\"\\u0000\""]),
            6 => Pick(["{}", "[]"]),
            7 => "[" + string.Join(",", Enumerable.Range(0, random.Next(1, 4)).Select(_ => Any(depth + 1))) + "]",
            8 => "{" + string.Join(",", Enumerable.Range(0, random.Next(1, 4)).Select(_ => $"{Str(Pick(Fields))}:{Any(depth + 1)}")) + "}",
            _ => new string('[', 40) + new string(']', 40),
        };

        T Pick<T>(T[] items) => items[random.Next(items.Length)];

        static string Str(string s) => JsonSerializer.Serialize(s);
    }
}
