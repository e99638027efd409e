namespace ProxyOrleans.Inference.Tokenization;

/// <summary>Python's str.strip() (also Jinja's trim filter), whose whitespace set differs from .NET's Trim().</summary>
internal static class PythonString
{
    // str.isspace(): Unicode White_Space plus the bidirectional classes B/S/WS, which adds U+001C..U+001F.
    public static bool IsSpace(char c) =>
        c is (>= '\t' and <= '\r') or (>= '\u001C' and <= ' ') or '\u0085' or '\u00A0' or '\u1680'
            or (>= '\u2000' and <= '\u200A') or '\u2028' or '\u2029' or '\u202F' or '\u205F' or '\u3000';

    public static string Strip(string s)
    {
        int start = 0, end = s.Length;
        while (start < end && IsSpace(s[start])) start++;
        while (end > start && IsSpace(s[end - 1])) end--;
        return s[start..end];
    }
}
