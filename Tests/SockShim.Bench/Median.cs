using System.Diagnostics;

/// <summary>The timing every per-operation bench here prints: a warm-up round (JIT, first
/// touches), then the median of five rounds of <c>n</c>, in nanoseconds per operation.</summary>
internal static class Median
{
    public static double OfFive(Action<int> round, int n)
    {
        round(Math.Min(n, 1000));
        var samples = new List<double>();
        for (int run = 0; run < 5; run++)
        {
            var sw = Stopwatch.StartNew();
            round(n);
            samples.Add(sw.Elapsed.TotalNanoseconds / n);
        }
        samples.Sort();
        return samples[2];
    }
}
