using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;

namespace ProxyOrleans.Inference.Models;

/// <summary>
/// How long one forward of a model takes on an accelerator, as a function of the batch: a fixed cost per call (reading
/// the weights once: weight bytes / memory bandwidth), a cost per row (the row's FLOPs at peak tensor throughput) and a
/// cost per token of KV cache read (KV bytes per token / bandwidth). Prefill adds a cost per prompt token instead of per
/// row (compute-bound). For benchmarks only; the presets' arithmetic is in docs/distributed.md.
/// </summary>
/// <param name="Name">Preset name, or the spec it was parsed from.</param>
/// <param name="FixedMs">Per forward call, whatever the batch.</param>
/// <param name="PerRowMs">Per session in a decode batch.</param>
/// <param name="PerContextTokenUs">Per token of KV cache the call reads (all sessions' lengths), in microseconds.</param>
/// <param name="PrefillPerTokenMs">Per token appended by a prefill.</param>
public sealed record AcceleratorLatencyProfile(string Name, double FixedMs, double PerRowMs, double PerContextTokenUs, double PrefillPerTokenMs)
{
    public const string SpecHelp = "fixed=<ms>[,row=<ms>][,context_us=<µs>][,prefill_token=<ms>]";

    // Public figures the presets are derived from (docs/distributed.md shows the arithmetic).
    private const double H100Bandwidth = 3.35e12, H200Bandwidth = 4.8e12;       // HBM bytes/s (H100 SXM, H200)
    private const double Fp8Flops = 1979e12, Bf16Flops = 989e12;              // dense tensor FLOP/s, same on both
    private const double PrefillUtilisation = 0.5;                             // share of peak a long prefill reaches
    private const double Llama70BParams = 69e9, Llama70BFp8Bytes = 70e9;       // weights in fp8
    private const double Llama7BParams = 6.74e9, Llama7BFp16Bytes = 13.5e9;    // weights in fp16
    private const double Llama70BKvBytesPerToken = 80 * 8 * 128 * 2 * 2;       // layers · kv heads · head dim · (K,V) · fp16
    private const double Llama7BKvBytesPerToken = 32 * 32 * 128 * 2 * 2;

    private static AcceleratorLatencyProfile Derive(string name, double weightBytes, double parameters, double kvBytesPerToken, double bandwidth, double flops) =>
        new(name,
            FixedMs: weightBytes / bandwidth * 1e3,
            PerRowMs: 2 * parameters / flops * 1e3,
            PerContextTokenUs: kvBytesPerToken / bandwidth * 1e6,
            PrefillPerTokenMs: 2 * parameters / (flops * PrefillUtilisation) * 1e3);

    /// <summary>Llama-2-70B (fp8) as the base and Llama-2-7B (fp16) as experts, one H100 SXM or H200 each.</summary>
    public static IReadOnlyDictionary<string, AcceleratorLatencyProfile> Presets { get; } = new[]
    {
        Derive("base-70b-h200", Llama70BFp8Bytes, Llama70BParams, Llama70BKvBytesPerToken, H200Bandwidth, Fp8Flops),
        Derive("base-70b-h100", Llama70BFp8Bytes, Llama70BParams, Llama70BKvBytesPerToken, H100Bandwidth, Fp8Flops),
        Derive("expert-7b-h200", Llama7BFp16Bytes, Llama7BParams, Llama7BKvBytesPerToken, H200Bandwidth, Bf16Flops),
        Derive("expert-7b-h100", Llama7BFp16Bytes, Llama7BParams, Llama7BKvBytesPerToken, H100Bandwidth, Bf16Flops),
    }.ToDictionary(p => p.Name, StringComparer.Ordinal);

    /// <summary>Wall time of a decode call over <paramref name="rows"/> sessions holding <paramref name="contextTokens"/> tokens in all.</summary>
    public double DecodeMs(int rows, long contextTokens) => FixedMs + rows * PerRowMs + contextTokens * PerContextTokenUs / 1000;

    /// <summary>Wall time of a prefill appending <paramref name="tokens"/> onto a cache that then holds <paramref name="contextTokens"/>.</summary>
    public double PrefillMs(int tokens, long contextTokens) => FixedMs + tokens * PrefillPerTokenMs + contextTokens * PerContextTokenUs / 1000;

    /// <summary>A preset name (<see cref="Presets"/>) or <see cref="SpecHelp"/>, e.g. "fixed=20,row=0.07".</summary>
    public static AcceleratorLatencyProfile Parse(string spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        spec = spec.Trim();
        if (Presets.TryGetValue(spec, out var preset)) return preset;
        string Problem(string what) =>
            $"Latency model '{spec}': {what}. Use a preset ({string.Join(", ", Presets.Keys)}) or {SpecHelp}, all values ≥ 0.";
        if (!spec.Contains('=')) throw new FormatException(Problem("unknown preset"));
        double fixedMs = double.NaN, row = 0, context = 0, prefill = 0;
        foreach (var part in spec.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var eq = part.IndexOf('=');
            if (eq <= 0) throw new FormatException(Problem($"'{part}' is not key=value"));
            var key = part[..eq].Trim();
            if (!double.TryParse(part[(eq + 1)..], NumberStyles.Float, CultureInfo.InvariantCulture, out var value) || value < 0 || !double.IsFinite(value))
                throw new FormatException(Problem($"'{part[(eq + 1)..]}' is not a number ≥ 0"));
            switch (key)
            {
                case "fixed": fixedMs = value; break;
                case "row": row = value; break;
                case "context_us": context = value; break;
                case "prefill_token": prefill = value; break;
                default: throw new FormatException(Problem($"unknown key '{key}'"));
            }
        }
        if (double.IsNaN(fixedMs)) throw new FormatException(Problem("'fixed=<ms>' is missing"));
        return new AcceleratorLatencyProfile(spec, fixedMs, row, context, prefill);
    }

    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"{Name} (fixed {FixedMs:F3} ms + {PerRowMs:F4} ms/row + {PerContextTokenUs:F4} µs/context token; prefill {PrefillPerTokenMs:F4} ms/token)");
}

/// <summary>
/// A model whose logits come from <paramref name="inner"/> (a real model) while each call's wall time is padded to an
/// <see cref="AcceleratorLatencyProfile"/>, the thread sleeping (CPU idle) for the rest as it waits while a GPU computes.
/// For benchmarks of the distributed system: everything around the model is real, only the accelerator is simulated.
/// When the inner model alone takes longer than the profile, the call takes that long and <see cref="Overruns"/> counts it.
/// </summary>
public sealed class AcceleratorLatencyModel(ILogitsModel inner, AcceleratorLatencyProfile profile) : ILogitsModel
{
    public AcceleratorLatencyProfile Profile { get; } = profile;
    public ILogitsModel Inner { get; } = inner;
    public string Name => Inner.Name;
    public int VocabSize => Inner.VocabSize;
    public int MaxSequenceLength => Inner.MaxSequenceLength;
    public long KvBytesPerToken => Inner.KvBytesPerToken;

    private long _calls, _overruns, _hostTicks;
    /// <summary>
    /// Wall time the inner model's real forwards took on this host's CPU, all calls together (the rest of each call was
    /// the simulated wait): what the simulation costs the CPU that a real accelerator would not.
    /// </summary>
    public double HostComputeMs => Interlocked.Read(ref _hostTicks) * 1000.0 / Stopwatch.Frequency;
    /// <summary>Forward calls made (prefills and decode batches).</summary>
    public long Calls => Interlocked.Read(ref _calls);
    /// <summary>Calls in which the inner model alone took longer than the profile (the figures then overstate the accelerator).</summary>
    public long Overruns => Interlocked.Read(ref _overruns);

    public IModelSession CreateSession(int capacity) => new Session(this, Inner.CreateSession(capacity));

    public void StepBatch(IReadOnlyList<IModelSession> sessions, ReadOnlySpan<int> tokens, Span<float> logits)
    {
        long start = Stopwatch.GetTimestamp();
        var inners = new IModelSession[sessions.Count];
        long context = 0;
        for (int i = 0; i < inners.Length; i++)
        {
            inners[i] = Unwrap(sessions[i]);
            context += inners[i].Length + 1;
        }
        Inner.StepBatch(inners, tokens, logits);
        PadTo(start, Profile.DecodeMs(inners.Length, context));
    }

    private IModelSession Unwrap(IModelSession s) =>
        s is Session mine && ReferenceEquals(mine.Owner, this) ? mine.Inner
            : throw new ArgumentException($"Session was not created by the accelerator-latency model '{Name}': create sessions with its CreateSession.");

    private void PadTo(long start, double targetMs)
    {
        Interlocked.Increment(ref _calls);
        Interlocked.Add(ref _hostTicks, Stopwatch.GetTimestamp() - start);
        long deadline = start + (long)(targetMs * Stopwatch.Frequency / 1000);
        if (Stopwatch.GetTimestamp() > deadline) Interlocked.Increment(ref _overruns);
        else SleepUntil(deadline);
    }

    /// <summary>Sleeps (no spinning) until the Stopwatch timestamp <paramref name="deadline"/>.</summary>
    /// <remarks>
    /// On Linux through clock_nanosleep, which wakes within ~0.1 ms; Thread.Sleep rounds to whole milliseconds,
    /// which would add up to 1 ms to every simulated step.
    /// </remarks>
    internal static void SleepUntil(long deadline)
    {
        while (true)
        {
            long remaining = deadline - Stopwatch.GetTimestamp();
            if (remaining <= 0) return;
            long ns = (long)(remaining * (1e9 / Stopwatch.Frequency));
            if (OperatingSystem.IsLinux())
            {
                var ts = new Timespec { Seconds = ns / 1_000_000_000, Nanoseconds = ns % 1_000_000_000 };
                _ = clock_nanosleep(ClockMonotonic, 0, ref ts, IntPtr.Zero); // returns early on a signal: the loop sleeps again
            }
            else Thread.Sleep(TimeSpan.FromTicks(Math.Max(1, ns / 100)));
        }
    }

    private const int ClockMonotonic = 1;

    [StructLayout(LayoutKind.Sequential)]
    private struct Timespec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [DllImport("libc", EntryPoint = "clock_nanosleep")]
    private static extern int clock_nanosleep(int clock, int flags, ref Timespec request, IntPtr remain);

    public void Dispose() => Inner.Dispose();

    private sealed class Session(AcceleratorLatencyModel owner, IModelSession inner) : IModelSession
    {
        public AcceleratorLatencyModel Owner { get; } = owner;
        public IModelSession Inner { get; } = inner;
        public int Length => Inner.Length;

        public void Append(ReadOnlySpan<int> tokens, Span<float> lastLogits)
        {
            long start = Stopwatch.GetTimestamp();
            Inner.Append(tokens, lastLogits);
            Owner.PadTo(start, tokens.Length == 1
                ? Owner.Profile.DecodeMs(1, Inner.Length)
                : Owner.Profile.PrefillMs(tokens.Length, Inner.Length));
        }

        public void AppendScoringEveryPosition(ReadOnlySpan<int> tokens, Span<float> logitsPerPosition)
        {
            long start = Stopwatch.GetTimestamp();
            Inner.AppendScoringEveryPosition(tokens, logitsPerPosition);
            Owner.PadTo(start, Owner.Profile.PrefillMs(tokens.Length, Inner.Length));
        }

        public void Dispose() => Inner.Dispose();
    }
}
