using System.Runtime.InteropServices;
using ProxyOrleans.Abstractions;
using ProxyOrleans.Grains.Models;
using Xunit;

namespace ProxyOrleans.Cluster.Tests;

public sealed class LogitsCodecTests
{
    [Fact]
    public void Fp32ResultsAreReadInPlaceAndFp16OnesConverted()
    {
        float[] logits = [1.5f, -2.25f, 3f, 1e-3f];
        var bytes = LogitsCodec.Encode(logits, LogitsPrecision.Float32);
        var view = LogitsCodec.ToFloats(new StepResult { Logits = new(bytes), Precision = LogitsPrecision.Float32 });
        Assert.Equal(logits, view.ToArray());
        // The view is the received bytes, not a copy (a copy per vector was most of the coordinator's combining time).
        MemoryMarshal.Cast<byte, float>(bytes.AsSpan())[2] = 42f;
        Assert.Equal(42f, view.Span[2]);
        using (var pinned = view.Pin())
            unsafe { Assert.Equal(42f, ((float*)pinned.Pointer)[2]); }

        var half = LogitsCodec.ToFloats(new StepResult { Logits = new(LogitsCodec.Encode(logits, LogitsPrecision.Float16)), Precision = LogitsPrecision.Float16 });
        for (int i = 0; i < logits.Length; i++) Assert.Equal(logits[i], half.Span[i], 3);
    }
}
