namespace Llm.Common;

/// <summary>
/// A small seeded generator whose whole state is one ulong, so training state can save and restore it exactly.
/// SplitMix64 (Steele, Lea, Flood 2014): state += φ·2⁶⁴; output = mix(state).
/// </summary>
public sealed class Rng(ulong seed)
{
    public ulong State { get; set; } = seed;

    public ulong NextUInt64()
    {
        ulong z = State += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform in [0, 1) with 53 random bits.</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>Uniform integer in [0, n).</summary>
    public int NextInt(int n)
    {
        if (n <= 0) throw new ArgumentOutOfRangeException($"a uniform integer in [0, n) needs n > 0, got n = {n}", innerException: null);
        return (int)((NextUInt64() >> 33) % (ulong)n);
    }

    /// <summary>Standard normal by Box–Muller: √(−2 ln u₁) cos(2π u₂).</summary>
    public double NextGaussian()
    {
        double u1 = 1.0 - NextDouble(); // (0, 1]: avoids log(0)
        double u2 = NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2.0 * Math.PI * u2);
    }
}
