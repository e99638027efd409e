using ScottPlot;

namespace ProxyOrleans.Training.Evaluation;

/// <summary>The docs' two figures: accuracy per task and system, and accuracy against alpha.</summary>
public static class Plots
{
    public static void Write(string barsPath, string sweepPath, IReadOnlyList<Evaluate.SystemResult> results,
        IReadOnlyList<(float Alpha, Evaluate.SystemResult Result)> sweep, IReadOnlyList<string> tasks)
    {
        var palette = new ScottPlot.Palettes.Category10();
        {
            var plt = new Plot();
            var bars = new List<Bar>();
            var ticks = new List<Tick>();
            int n = results.Count;
            for (int ti = 0; ti < tasks.Count; ti++)
            {
                for (int si = 0; si < n; si++)
                    bars.Add(new Bar
                    {
                        Position = ti * (n + 1) + si,
                        Value = 100 * Report.Acc(results[si], tasks[ti]) is var v && double.IsNaN(v) ? 0 : v,
                        FillColor = palette.GetColor(si),
                    });
                ticks.Add(new Tick(ti * (n + 1) + (n - 1) / 2.0, tasks[ti]));
            }
            plt.Add.Bars(bars);
            plt.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(ticks.ToArray());
            for (int si = 0; si < n; si++)
                plt.Legend.ManualItems.Add(new LegendItem { LabelText = results[si].System.Label, FillColor = palette.GetColor(si) });
            plt.ShowLegend(Alignment.UpperRight);
            plt.Axes.SetLimitsY(0, 125);
            plt.YLabel("accuracy (%)");
            plt.Title("Proxy-tuning on the demo family (greedy, exact format)");
            plt.SavePng(barsPath, 900, 500);
        }
        if (sweep.Count > 0)
        {
            var plt = new Plot();
            double[] xs = sweep.Select(s => (double)s.Alpha).ToArray();
            for (int ti = 0; ti < tasks.Count; ti++)
            {
                double[] ys = sweep.Select(s => 100 * Report.Acc(s.Result, tasks[ti])).ToArray();
                var line = plt.Add.Scatter(xs, ys, palette.GetColor(ti));
                line.LegendText = tasks[ti];
                var tuned = results.FirstOrDefault(r => r.System.Label == "tuned-large");
                if (tuned is not null)
                {
                    var h = plt.Add.HorizontalLine(100 * Report.Acc(tuned, tasks[ti]), 1, palette.GetColor(ti), LinePattern.Dashed);
                    h.LegendText = $"tuned-large {tasks[ti]}";
                }
            }
            plt.ShowLegend(Alignment.LowerRight);
            plt.Axes.SetLimitsY(0, 105);
            plt.XLabel("alpha (base-large + alpha · (tuned-small − base-small))");
            plt.YLabel("accuracy (%)");
            plt.Title("Alpha sweep");
            plt.SavePng(sweepPath, 900, 500);
        }
    }
}
