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
        var bytes = GC.AllocateUninitializedArray<byte>(logits.Length * 2);
        WriteHalves(logits, bytes);
        return bytes;
    }

    /// <summary>
    /// The wire bytes of <paramref name="count"/> logits that <paramref name="fill"/> writes: in fp32 it writes straight
    /// into the bytes (no float array first, then a copy), in fp16 into a pooled buffer that is then rounded. Written
    /// into <paramref name="into"/> when it has the right size (a session's buffer, reused every step), else into new bytes.
    /// </summary>
    public static byte[] EncodeFrom<TState>(int count, LogitsPrecision precision, TState state, System.Buffers.SpanAction<float, TState> fill, byte[]? into = null)
    {
        int size = count * (precision == LogitsPrecision.Float32 ? sizeof(float) : 2);
        var bytes = into?.Length == size ? into : GC.AllocateUninitializedArray<byte>(size); // every entry is written
        if (precision == LogitsPrecision.Float32)
        {
            fill(MemoryMarshal.Cast<byte, float>(bytes.AsSpan()), state);
            return bytes;
        }
        var buffer = System.Buffers.ArrayPool<float>.Shared.Rent(count);
        try
        {
            fill(buffer.AsSpan(0, count), state);
            WriteHalves(buffer.AsSpan(0, count), bytes);
            return bytes;
        }
        finally { System.Buffers.ArrayPool<float>.Shared.Return(buffer); }
    }

    private static void WriteHalves(ReadOnlySpan<float> logits, Span<byte> bytes)
    {
        var halves = MemoryMarshal.Cast<byte, Half>(bytes);
        for (int i = 0; i < logits.Length; i++) halves[i] = (Half)logits[i];
    }

    /// <summary>
    /// The fp32 wire bytes behind <paramref name="logits"/> when they are a whole <see cref="FloatBytes"/> row (a model
    /// worker's session row): sent as they are, with no copy.
    /// </summary>
    public static bool TryGetWireBytes(ReadOnlyMemory<float> logits, out byte[] bytes)
    {
        if (MemoryMarshal.TryGetMemoryManager(logits, out FloatBytes? row, out int start, out int length) && start == 0 && length * sizeof(float) == row.Bytes.Length)
        {
            bytes = row.Bytes;
            return true;
        }
        bytes = [];
        return false;
    }

    public static float[] Decode(byte[] bytes, LogitsPrecision precision)
    {
        if (precision == LogitsPrecision.Float32) return MemoryMarshal.Cast<byte, float>(bytes.AsSpan()).ToArray();
        var halves = MemoryMarshal.Cast<byte, Half>(bytes.AsSpan());
        var result = new float[halves.Length];
        for (int i = 0; i < halves.Length; i++) result[i] = (float)halves[i];
        return result;
    }

    /// <summary>fp32 view of a result: no copy for fp32, a conversion for fp16.</summary>
    /// <remarks>
    /// A Memory over the received bytes rather than a copy: at a 32k vocabulary the copy (128 KiB allocated and
    /// written per vector, twice per proxy-tuned step) was most of the coordinator's ~0.3 ms of combining per step,
    /// which at 64 streams is a whole core (`bench cluster --accelerator-sim`).
    /// </remarks>
    public static ReadOnlyMemory<float> ToFloats(StepResult result) =>
        result.Precision == LogitsPrecision.Float32
            ? new FloatBytes(result.Logits.Value).Memory
            : Decode(result.Logits.Value, result.Precision);
}

/// <summary>fp32 bytes seen as floats (Memory, unlike a span, can be held across awaits).</summary>
public sealed class FloatBytes(byte[] bytes) : System.Buffers.MemoryManager<float>
{
    /// <summary>New uninitialized bytes for <paramref name="count"/> floats.</summary>
    public FloatBytes(int count) : this(GC.AllocateUninitializedArray<byte>(count * sizeof(float))) { }

    public byte[] Bytes { get; } = bytes;

    public override Span<float> GetSpan() => MemoryMarshal.Cast<byte, float>(Bytes.AsSpan());

    public override unsafe System.Buffers.MemoryHandle Pin(int elementIndex = 0)
    {
        var handle = GCHandle.Alloc(Bytes, GCHandleType.Pinned);
        return new System.Buffers.MemoryHandle((float*)handle.AddrOfPinnedObject() + elementIndex, handle);
    }

    public override void Unpin() { }

    protected override void Dispose(bool disposing) { }
}
