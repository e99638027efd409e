using System.Globalization;
using System.Text;

namespace ProxyOrleans.Inference.Tokenization.Jinja;

internal enum SegmentKind { Text, Output, Statement }

/// <summary>A piece of the template: literal text, an {{ expression }} or a {% statement %} with its tokens.</summary>
internal sealed record Segment(SegmentKind Kind, string Text, List<Token> Tokens, int Line);

internal enum TokenKind { Name, String, Integer, Float, Operator, End }

internal sealed record Token(TokenKind Kind, string Text, int Line)
{
    public override string ToString() => Kind == TokenKind.End ? "end of tag" : $"'{Text}'";
}

/// <summary>
/// Cuts a template into text, output and statement segments the way jinja2's lexer does, with Hugging Face's
/// settings: trim_blocks (a block tag eats the one newline after it), lstrip_blocks (spaces and tabs before a
/// block tag at the start of a line go), "-" on either side of a tag strips all whitespace on that side, "+"
/// turns lstrip_blocks/trim_blocks off for that side; the source's final newline is dropped (keep_trailing_newline
/// is off) and line endings become "\n".
/// </summary>
internal static class JinjaLexer
{
    public static List<Segment> Lex(string source, JinjaOptions options)
    {
        source = source.Replace("\r\n", "\n").Replace('\r', '\n');
        if (source.EndsWith('\n')) source = source[..^1];

        var segments = new List<Segment>();
        int pos = 0, line = 1;
        bool lineStarting = true; // the previous tag's match ended in a newline (or we are at the start)
        while (pos <= source.Length)
        {
            int open = FindTagStart(source, pos);
            string text = source[pos..(open < 0 ? source.Length : open)];
            if (open < 0)
            {
                AddText(segments, text, line);
                break;
            }
            char kind = source[open + 1];
            char sign = open + 2 < source.Length ? source[open + 2] : '\0';
            if (sign == '-') text = PythonRStrip(text);
            else if (sign != '+' && kind != '{' && options.LstripBlocks)
            {
                int lPos = text.LastIndexOf('\n') + 1;
                if ((lPos > 0 || lineStarting) && lPos < text.Length && AllPythonSpace(text, lPos))
                    text = text[..lPos];
            }
            AddText(segments, text, line);
            line += Count(source, pos, open, '\n');

            int bodyStart = open + 2 + (sign is '-' or '+' ? 1 : 0);
            int tagLine = line;
            int end; // index just past the closing delimiter
            bool stripAfter;
            bool plusAfter = false;
            if (kind == '#')
            {
                int close = source.IndexOf("#}", bodyStart, StringComparison.Ordinal);
                if (close < 0) throw new JinjaException($"a comment opened on line {tagLine} is never closed with '#}}'", tagLine);
                stripAfter = close > bodyStart && source[close - 1] == '-';
                plusAfter = close > bodyStart && source[close - 1] == '+';
                end = close + 2;
            }
            else
            {
                var tokens = new List<Token>();
                end = LexExpression(source, bodyStart, kind == '{' ? '}' : '%', tokens, ref line, out stripAfter, out plusAfter);
                segments.Add(new Segment(kind == '{' ? SegmentKind.Output : SegmentKind.Statement, "", tokens, tagLine));
                if (kind == '%' && IsRawStart(tokens))
                {
                    // {% raw %}...{% endraw %}: the body is literal text.
                    segments.RemoveAt(segments.Count - 1);
                    int rawEnd = FindEndRaw(source, end, out int rawBodyEnd, out bool stripBefore, out int afterEndRaw, out stripAfter);
                    if (rawEnd < 0) throw new JinjaException("'{% raw %}' is never closed with '{% endraw %}'", tagLine);
                    string body = source[end..rawBodyEnd];
                    if (stripBefore) body = PythonRStrip(body);
                    AddText(segments, body, line);
                    line += Count(source, end, afterEndRaw, '\n');
                    end = afterEndRaw;
                }
            }
            line += kind == '#' ? Count(source, bodyStart, end, '\n') : 0;
            if (stripAfter)
            {
                int e = end;
                while (e < source.Length && PythonString.IsSpace(source[e])) e++;
                line += Count(source, end, e, '\n');
                lineStarting = e > end && source[e - 1] == '\n';
                end = e;
            }
            else if (kind != '{' && !plusAfter && options.TrimBlocks && end < source.Length && source[end] == '\n')
            {
                end++; line++;
                lineStarting = true;
            }
            else lineStarting = false;
            pos = end;
            if (pos == source.Length) break;
        }
        return segments;
    }

    private static bool AllPythonSpace(string s, int from)
    {
        for (int i = from; i < s.Length; i++) if (!PythonString.IsSpace(s[i])) return false;
        return true;
    }

    private static bool IsRawStart(List<Token> t) => t.Count == 2 && t[0] is { Kind: TokenKind.Name, Text: "raw" };

    private static int FindEndRaw(string s, int from, out int bodyEnd, out bool stripBefore, out int after, out bool stripAfter)
    {
        bodyEnd = after = -1; stripBefore = stripAfter = false;
        var m = System.Text.RegularExpressions.Regex.Match(s[from..], @"\{%([-+]?)\s*endraw\s*([-+]?)%\}");
        if (!m.Success) return -1;
        bodyEnd = from + m.Index;
        stripBefore = m.Groups[1].Value == "-";
        stripAfter = m.Groups[2].Value == "-";
        after = from + m.Index + m.Length;
        return bodyEnd;
    }

    private static void AddText(List<Segment> segments, string text, int line)
    {
        if (text.Length > 0) segments.Add(new Segment(SegmentKind.Text, text, [], line));
    }

    private static int FindTagStart(string s, int from)
    {
        for (int i = s.IndexOf('{', from); i >= 0 && i + 1 < s.Length; i = s.IndexOf('{', i + 1))
            if (s[i + 1] is '{' or '%' or '#') return i;
        return -1;
    }

    private static int Count(string s, int from, int to, char c)
    {
        int n = 0;
        for (int i = from; i < to; i++) if (s[i] == c) n++;
        return n;
    }

    private static string PythonRStrip(string s)
    {
        int end = s.Length;
        while (end > 0 && PythonString.IsSpace(s[end - 1])) end--;
        return s[..end];
    }

    private static readonly string[] Operators =
        ["//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">", "=", "(", ")", "[", "]", "{", "}", ",", ".", ":", "|", ";"];

    // Reads tokens up to the closing "}}" / "%}" (ignored while brackets are open, as jinja2's balancing stack does).
    private static int LexExpression(string s, int i, char closer, List<Token> tokens, ref int line, out bool stripAfter, out bool plusAfter)
    {
        int depth = 0;
        int startLine = line;
        while (true)
        {
            while (i < s.Length && char.IsWhiteSpace(s[i])) { if (s[i] == '\n') line++; i++; }
            if (i >= s.Length)
                throw new JinjaException($"a tag opened on line {startLine} is never closed with '{(closer == '}' ? "}}" : "%}")}'", startLine);
            if (depth == 0)
            {
                foreach (char sign in "-+")
                    if (s[i] == sign && Matches(s, i + 1, closer))
                    {
                        tokens.Add(new Token(TokenKind.End, "", line));
                        stripAfter = sign == '-'; plusAfter = sign == '+';
                        return i + 3;
                    }
                if (Matches(s, i, closer))
                {
                    tokens.Add(new Token(TokenKind.End, "", line));
                    stripAfter = plusAfter = false;
                    return i + 2;
                }
            }
            char c = s[i];
            if (c == '_' || char.IsLetter(c))
            {
                int start = i;
                while (i < s.Length && (s[i] == '_' || char.IsLetterOrDigit(s[i]))) i++;
                tokens.Add(new Token(TokenKind.Name, s[start..i], line));
            }
            else if (char.IsAsciiDigit(c))
            {
                int start = i;
                while (i < s.Length && (char.IsAsciiDigit(s[i]) || s[i] == '_')) i++;
                bool isFloat = false;
                if (i + 1 < s.Length && s[i] == '.' && char.IsAsciiDigit(s[i + 1]))
                {
                    isFloat = true; i++;
                    while (i < s.Length && (char.IsAsciiDigit(s[i]) || s[i] == '_')) i++;
                }
                if (i < s.Length && s[i] is 'e' or 'E')
                {
                    int j = i + 1;
                    if (j < s.Length && s[j] is '+' or '-') j++;
                    if (j < s.Length && char.IsAsciiDigit(s[j]))
                    {
                        isFloat = true; i = j;
                        while (i < s.Length && char.IsAsciiDigit(s[i])) i++;
                    }
                }
                tokens.Add(new Token(isFloat ? TokenKind.Float : TokenKind.Integer, s[start..i].Replace("_", ""), line));
            }
            else if (c is '\'' or '"')
            {
                tokens.Add(new Token(TokenKind.String, ReadString(s, ref i, ref line), line));
            }
            else
            {
                string? op = null;
                foreach (var candidate in Operators)
                    if (string.CompareOrdinal(s, i, candidate, 0, candidate.Length) == 0) { op = candidate; break; }
                if (op is null) throw new JinjaException($"unexpected character '{c}' on line {line}", line);
                if (op is "(" or "[" or "{") depth++;
                else if (op is ")" or "]" or "}") depth = Math.Max(0, depth - 1);
                tokens.Add(new Token(TokenKind.Operator, op, line));
                i += op.Length;
            }
        }
    }

    private static bool Matches(string s, int i, char closer) =>
        i + 1 < s.Length && s[i] == closer && s[i + 1] == '}';

    // A Python string literal's body with its escapes (jinja2 decodes them with Python's unicode-escape codec).
    private static string ReadString(string s, ref int i, ref int line)
    {
        char quote = s[i];
        int startLine = line;
        var sb = new StringBuilder();
        i++;
        while (true)
        {
            if (i >= s.Length) throw new JinjaException($"a string literal opened on line {startLine} is never closed", startLine);
            char c = s[i];
            if (c == quote) { i++; return sb.ToString(); }
            if (c == '\n') line++;
            if (c != '\\' || i + 1 >= s.Length) { sb.Append(c); i++; continue; }
            char e = s[i + 1];
            i += 2;
            switch (e)
            {
                case 'n': sb.Append('\n'); break;
                case 't': sb.Append('\t'); break;
                case 'r': sb.Append('\r'); break;
                case '\\': sb.Append('\\'); break;
                case '\'': sb.Append('\''); break;
                case '"': sb.Append('"'); break;
                case 'a': sb.Append('\a'); break;
                case 'b': sb.Append('\b'); break;
                case 'f': sb.Append('\f'); break;
                case 'v': sb.Append('\v'); break;
                case '\n': line++; break; // a backslash-newline continues the line
                case 'x': sb.Append(HexChar(s, ref i, 2)); break;
                case 'u': sb.Append(HexChar(s, ref i, 4)); break;
                case 'U': sb.Append(HexChar(s, ref i, 8)); break;
                default:
                    if (e is >= '0' and <= '7')
                    {
                        int start = i - 1, n = 0;
                        while (i < s.Length && i - start < 3 && s[i] is >= '0' and <= '7') i++;
                        n = Convert.ToInt32(s[start..i], 8);
                        sb.Append((char)n);
                    }
                    else sb.Append('\\').Append(e); // Python keeps unknown escapes as they are
                    break;
            }
        }
    }

    private static string HexChar(string s, ref int i, int digits)
    {
        if (i + digits > s.Length || !int.TryParse(s.AsSpan(i, digits), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out int code))
            throw new JinjaException($"a string literal has a malformed \\{(digits == 2 ? 'x' : digits == 4 ? 'u' : 'U')} escape", 0);
        i += digits;
        return char.ConvertFromUtf32(code);
    }
}
