using System.Runtime.InteropServices;

namespace ProxyOrleans.Grains.Models;

/// <summary>
/// Logits on the wire: little-endian fp32 bytes (exact) or fp16 bytes (half the size, rounded). Models work in
/// floats; a grain encodes once when it answers, the coordinator decodes once per step.
/// </summary>
public static class LogitsCodec
{
    public static byte[] Encode(ReadOnlySpan<float> logits, LogitsPrecision precision)
    {
        if (precision == LogitsPrecision.Float32) return MemoryMarshal.AsBytes(logits).ToArray();
        var bytes = new byte[logits.Length * 2];
        var halves = MemoryMarshal.Cast<byte, Half>(bytes.AsSpan());
        for (int i = 0; i < logits.Length; i++) halves[i] = (Half)logits[i];
        return bytes;
    }

    public static float[] Decode(byte[] bytes, LogitsPrecision precision)
    {
        if (precision == LogitsPrecision.Float32) return MemoryMarshal.Cast<byte, float>(bytes.AsSpan()).ToArray();
        var halves = MemoryMarshal.Cast<byte, Half>(bytes.AsSpan());
        var result = new float[halves.Length];
        for (int i = 0; i < halves.Length; i++) result[i] = (float)halves[i];
        return result;
    }

    /// <summary>A result's logits as floats (one copy: spans cannot live in the coordinator's async state).</summary>
    public static ReadOnlyMemory<float> ToFloats(StepResult result) => Decode(result.Logits.Value, result.Precision);
}
