using System.Text;

namespace ProxyOrleans.Inference.Tokenization;

/// <summary>
/// GPT-2's byte-to-unicode table used by byte-level BPE (GPT-2, Llama 3, Qwen2): every byte maps to one
/// printable character (space becomes 'Ġ', newline 'Ċ'), so a vocabulary of strings covers all byte sequences.
/// </summary>
public static class ByteLevel
{
    private static readonly char[] ByteToChar = BuildTable();
    private static readonly Dictionary<char, byte> CharToByte =
        Enumerable.Range(0, 256).ToDictionary(b => ByteToChar[b], b => (byte)b);

    /// <summary>The 256 byte symbols in byte order; a byte-level vocabulary must contain all of them.</summary>
    public static IReadOnlyList<string> ByteSymbols { get; } = ByteToChar.Select(c => c.ToString()).ToArray();

    private static char[] BuildTable()
    {
        // Same as bytes_to_unicode() in GPT-2's encoder.py: printable Latin-1 bytes keep their code point,
        // the others are shifted to 256 + n in byte order.
        var table = new char[256];
        int n = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            table[b] = printable ? (char)b : (char)(256 + n++);
        }
        return table;
    }

    public static char ToChar(byte b) => ByteToChar[b];

    /// <summary>Bytes to their byte-level symbols (what vocabulary and merges of such a tokenizer contain).</summary>
    public static string Encode(ReadOnlySpan<byte> bytes)
    {
        var sb = new StringBuilder(bytes.Length);
        foreach (byte b in bytes) sb.Append(ByteToChar[b]);
        return sb.ToString();
    }

    /// <summary>UTF-8 text to byte-level symbols.</summary>
    public static string Encode(string text) => Encode(Encoding.UTF8.GetBytes(text));

    /// <summary>Appends the bytes a byte-level token stands for; false if it holds a character outside the table.</summary>
    public static bool TryAppendBytes(string token, List<byte> output)
    {
        foreach (char c in token)
        {
            if (!CharToByte.TryGetValue(c, out byte b)) return false;
            output.Add(b);
        }
        return true;
    }
}
