using ScottPlot;

namespace ProxyOrleans.Client.Benchmarks;

/// <summary>`bench cluster --plot`: one horizontal bar per (trio, layout), split into where a decode step's time went.</summary>
public static class LatencyPlot
{
    private static readonly string[] Parts = ["model compute", "in model silo (queue, hops)", "wire (serialization, TCP, schedulers)", "combine + sample", "other"];

    public static void Write(string path, IReadOnlyList<(string Label, (double Model, double InSilo, double Wire, double CombineSample, double Other) Ms)> rows)
    {
        var palette = new ScottPlot.Palettes.Category10();
        var plt = new Plot();
        var bars = new List<Bar>();
        var ticks = new List<Tick>();
        for (int i = 0; i < rows.Count; i++)
        {
            var (label, ms) = rows[i];
            double[] parts = [ms.Model, ms.InSilo, ms.Wire, ms.CombineSample, ms.Other];
            double total = parts.Sum(), start = 0;
            int position = rows.Count - 1 - i; // first row on top
            for (int p = 0; p < parts.Length; p++)
            {
                double share = Math.Max(0, parts[p]) / total * 100; // percent of the step, so both trios fit one axis
                bars.Add(new Bar { Position = position, ValueBase = start, Value = start + share, FillColor = palette.GetColor(p) });
                start += share;
            }
            ticks.Add(new Tick(position, $"{label} ({total:F1} ms)"));
        }
        var barPlot = plt.Add.Bars(bars);
        barPlot.Horizontal = true;
        plt.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericManual(ticks.ToArray());
        for (int p = 0; p < Parts.Length; p++)
            plt.Legend.ManualItems.Add(new LegendItem { LabelText = Parts[p], FillColor = palette.GetColor(p) });
        plt.ShowLegend(Edge.Bottom);
        var target = plt.Add.VerticalLine(90, 1, Colors.Black, LinePattern.Dashed);
        target.LegendText = "models at 90% of the step (the < 10% overhead target)";
        plt.Axes.SetLimitsX(0, 100);
        plt.XLabel("share of one decode step (%)");
        plt.Title("Where a proxy-tuned decode step goes (bench cluster, loopback TCP)");
        plt.SavePng(path, 1000, 200 + 45 * rows.Count);
    }
}
