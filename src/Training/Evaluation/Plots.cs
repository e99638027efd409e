using ScottPlot;

namespace ProxyOrleans.Training.Evaluation;

/// <summary>The docs' figures: content per task and system across seeds, the alpha sweep, and the shift analysis.</summary>
public static class Plots
{
    public static void Write(string dir, IReadOnlyList<Evaluate.SeedResult> seeds, IReadOnlyList<(float Alpha, Evaluate.SystemResult Result)> sweep,
        IReadOnlyList<string> tasks, ShiftAnalysis? shift)
    {
        var palette = new ScottPlot.Palettes.Category10();
        var columns = tasks.Append("format").ToList();
        var labels = seeds[0].Systems.Select(s => s.System.Label).ToList();
        {
            // Bars: mean over seeds; whiskers: half the min–max range around it.
            var plt = new Plot();
            var bars = new List<Bar>();
            var ticks = new List<Tick>();
            int n = labels.Count;
            for (int ti = 0; ti < columns.Count; ti++)
            {
                for (int si = 0; si < n; si++)
                {
                    var values = seeds.Select(s => s.Systems.FirstOrDefault(r => r.System.Label == labels[si]))
                        .Where(r => r is not null).Select(r => 100 * Report.Score(r!, columns[ti])).Where(v => !double.IsNaN(v)).ToList();
                    if (values.Count == 0) continue;
                    bars.Add(new Bar
                    {
                        Position = ti * (n + 1) + si,
                        Value = values.Average(),
                        Error = (values.Max() - values.Min()) / 2,
                        FillColor = palette.GetColor(si),
                    });
                }
                ticks.Add(new Tick(ti * (n + 1) + (n - 1) / 2.0, columns[ti]));
            }
            plt.Add.Bars(bars);
            plt.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(ticks.ToArray());
            for (int si = 0; si < n; si++)
                plt.Legend.ManualItems.Add(new LegendItem { LabelText = labels[si], FillColor = palette.GetColor(si) });
            plt.ShowLegend(Alignment.UpperRight);
            plt.Axes.SetLimitsY(0, 125);
            plt.YLabel("score (%)");
            plt.Title($"Proxy-tuning on the demo family: mean over {seeds.Count} training seed(s), whiskers span the seeds");
            plt.SavePng(Path.Combine(dir, "evaluation.png"), 1000, 500);
        }
        if (sweep.Count > 0)
        {
            var plt = new Plot();
            double[] xs = sweep.Select(s => (double)s.Alpha).ToArray();
            var tuned = seeds[0].Systems.FirstOrDefault(r => r.System.Label == "tuned-large");
            for (int ti = 0; ti < columns.Count; ti++)
            {
                double[] ys = sweep.Select(s => 100 * Report.Score(s.Result, columns[ti])).ToArray();
                var line = plt.Add.Scatter(xs, ys, palette.GetColor(ti));
                line.LegendText = columns[ti];
                if (tuned is not null)
                    plt.Add.HorizontalLine(100 * Report.Score(tuned, columns[ti]), 1, palette.GetColor(ti), LinePattern.Dashed);
            }
            plt.ShowLegend(Alignment.LowerRight);
            plt.Axes.SetLimitsY(0, 105);
            plt.XLabel("alpha (base-large + alpha · (tuned-small − base-small)); dashed: tuned-large");
            plt.YLabel("score (%)");
            plt.Title($"Alpha sweep (seed {seeds[0].Seed})");
            plt.SavePng(Path.Combine(dir, "evaluation-alpha.png"), 900, 500);
        }
        if (shift is not null)
        {
            var plt = new Plot();
            var bars = new List<Bar>();
            var ticks = new List<Tick>();
            for (int i = 0; i < shift.Rows.Count; i++)
            {
                var r = shift.Rows[i];
                bars.Add(new Bar { Position = 3 * i, Value = r.BaseP, FillColor = palette.GetColor(0) });
                bars.Add(new Bar { Position = 3 * i + 1, Value = r.CombinedP, FillColor = palette.GetColor(1) });
                ticks.Add(new Tick(3 * i + 0.5, $"{r.Kind} tokens (n={r.Tokens}, {100 * r.Flipped:0}% flipped)"));
            }
            plt.Add.Bars(bars);
            plt.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(ticks.ToArray());
            plt.Legend.ManualItems.Add(new LegendItem { LabelText = "p(token) under base-large alone", FillColor = palette.GetColor(0) });
            plt.Legend.ManualItems.Add(new LegendItem { LabelText = "p(token) under the combination", FillColor = palette.GetColor(1) });
            plt.ShowLegend(Alignment.UpperRight);
            plt.Axes.SetLimitsY(0, 1.25);
            plt.YLabel("mean probability of the generated token");
            plt.Title("Where the expert − anti-expert shift acts (proxy-large, greedy)");
            plt.SavePng(Path.Combine(dir, "evaluation-shift.png"), 900, 500);
        }
    }
}
