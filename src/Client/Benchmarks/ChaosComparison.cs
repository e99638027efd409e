using ProxyOrleans.Abstractions;

namespace ProxyOrleans.Client.Benchmarks;

/// <summary>
/// The faulty run's choices against their fault-free twins: each identical, different, failed cleanly (an error the
/// client can tell) or lost (neither finished nor failed).
/// </summary>
internal sealed record ChaosComparison(int Identical, int Different, int FailedCleanly, int Lost, Dictionary<ChaosStreamKind, int> IdenticalByKind)
{
    public static ChaosComparison Compare(IReadOnlyList<StreamPlan> plans, StreamOutcome[] reference, StreamOutcome[] outcomes, TextWriter? progress)
    {
        int identical = 0, different = 0, failed = 0, lost = 0;
        var identicalByKind = Enum.GetValues<ChaosStreamKind>().ToDictionary(k => k, _ => 0);
        for (int i = 0; i < plans.Count; i++)
            for (int c = 0; c < plans[i].Choices; c++)
            {
                var (calm, chaos) = (reference[i].Choices[c], outcomes[i].Choices[c]);
                var name = $"stream {i} ({plans[i].Kind}{(plans[i].Choices > 1 ? $", choice {c}" : "")})";
                if (chaos.Error is not null) { failed++; progress?.WriteLine($"{name} failed cleanly: {chaos.Error}"); }
                else if (chaos.Text is null || chaos.Finish == FinishKind.None) { lost++; progress?.WriteLine($"{name} lost"); }
                else if (calm.Text == chaos.Text) { identical++; identicalByKind[plans[i].Kind]++; }
                else { different++; progress?.WriteLine($"{name} differs from its fault-free twin"); }
            }
        return new ChaosComparison(identical, different, failed, lost, identicalByKind);
    }

    /// <summary>Stop streams whose stop sequence ended them in the fault-free run: the fault-free text stops where the
    /// probe's (same request, no stop sequence) goes on with the stop sequence.</summary>
    public static int StopsFired(IReadOnlyList<int> stopStreams, StreamOutcome[] probe, StreamOutcome[] reference, ChaosRequestMix mix) =>
        stopStreams.Select((i, k) => (Probe: probe[k].Choices[0].Text, Calm: reference[i].Choices[0], Stop: mix.StopOf(i)))
            .Count(s => s is { Probe: { } p, Calm: { Text: { } t, Finish: FinishKind.Stop }, Stop: { } stop }
                        && t.Length < p.Length && p.StartsWith(t, StringComparison.Ordinal) && p.AsSpan(t.Length).StartsWith(stop, StringComparison.Ordinal));
}
