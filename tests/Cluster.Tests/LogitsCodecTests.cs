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

    [Theory]
    [InlineData(LogitsPrecision.Float32)]
    [InlineData(LogitsPrecision.Float16)]
    public void Filling_the_wire_bytes_in_place_gives_the_bytes_of_encoding_a_vector(LogitsPrecision precision)
    {
        var rng = new Random(3);
        float[] logits = [.. Enumerable.Range(0, 32003).Select(_ => (float)(rng.NextDouble() * 40 - 20))];
        var expected = LogitsCodec.Encode(logits, precision);
        for (int run = 0; run < 2; run++) // the fp16 path's buffer is pooled: a second fill must not see the first
            Assert.Equal(expected, LogitsCodec.EncodeFrom(logits.Length, precision, logits, static (d, src) => src.CopyTo(d)));
    }

    [Theory]
    [InlineData(LogitsPrecision.Float32)]
    [InlineData(LogitsPrecision.Float16)]
    public void Encoding_into_a_session_buffer_reuses_it_when_its_size_fits(LogitsPrecision precision)
    {
        float[] logits = [0.5f, -1f, 2f];
        var fresh = LogitsCodec.EncodeFrom(3, precision, logits, static (d, x) => x.CopyTo(d));
        var reused = LogitsCodec.EncodeFrom(3, precision, logits, static (d, x) => x.CopyTo(d), into: fresh);
        Assert.Same(fresh, reused);
        Assert.Equal(LogitsCodec.Encode(logits, precision), reused);
        // A buffer of another size (the session's precision or vocabulary differs) is not written into.
        var other = new byte[fresh.Length + 4];
        Assert.NotSame(other, LogitsCodec.EncodeFrom(3, precision, logits, static (d, x) => x.CopyTo(d), into: other));
        Assert.All(other, b => Assert.Equal(0, b));
    }
}
