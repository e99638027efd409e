namespace ProxyOrleans.Gateway;

/// <summary>The playground page (Playground/playground.html, embedded): one dependency-free HTML file.</summary>
public static class Playground
{
    static readonly Lazy<string> html = new(() =>
    {
        using var stream = typeof(Playground).Assembly.GetManifestResourceStream("ProxyOrleans.Gateway.playground.html")
            ?? throw new InvalidOperationException("The playground page is not embedded in the gateway assembly (see ProxyOrleans.Gateway.csproj).");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    });

    public static string Html => html.Value;
}
