using System.Runtime.InteropServices;

namespace ProxyOrleans.Grains.Models;

/// <summary>Logits on the wire: little-endian fp32 bytes (exact) or fp16 bytes (half the size, rounded).</summary>
public static class LogitsCodec
{
    /// <param name="fp32Bytes">When the logits already are an fp32 byte array, it is returned as is (no copy).</param>
    public static byte[] Encode(ReadOnlySpan<float> logits, LogitsPrecision precision, byte[]? fp32Bytes = null)
    {
        if (precision == LogitsPrecision.Float32) return fp32Bytes ?? MemoryMarshal.AsBytes(logits).ToArray();
        var bytes = new byte[logits.Length * 2];
        var halves = MemoryMarshal.Cast<byte, Half>(bytes.AsSpan());
        for (int i = 0; i < logits.Length; i++) halves[i] = (Half)logits[i];
        return bytes;
    }

    /// <summary>Reinterprets fp32 bytes without copying (the common, exact path).</summary>
    public static ReadOnlySpan<float> AsFloats(byte[] bytes) => MemoryMarshal.Cast<byte, float>(bytes.AsSpan());

    public static float[] Decode(byte[] bytes, LogitsPrecision precision)
    {
        if (precision == LogitsPrecision.Float32) return AsFloats(bytes).ToArray();
        var halves = MemoryMarshal.Cast<byte, Half>(bytes.AsSpan());
        var result = new float[halves.Length];
        for (int i = 0; i < halves.Length; i++) result[i] = (float)halves[i];
        return result;
    }

    /// <summary>fp32 view of a result: no copy for fp32, a conversion for fp16.</summary>
    public static ReadOnlyMemory<float> ToFloats(StepResult result) =>
        result.Precision == LogitsPrecision.Float32
            ? MemoryMarshal.Cast<byte, float>(result.Logits.Value.AsSpan()).ToArray() // one copy; spans cannot live in async state
            : Decode(result.Logits.Value, result.Precision);
}
