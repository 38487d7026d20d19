namespace Llm.Common;

/// <summary>
/// Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as 1, 2, 3", SC 2011; Random123): a
/// counter-based generator, output = bijection_key(counter), in 32-bit multiplies only, so a GPU shader computes the
/// same bits (Vulkan/Shaders/random.glsl). Known answers from Random123's kat_vectors: ctr = key = 0 →
/// 6627e8d5 e169c58d bc57ac4c 9b00dbd8.
/// </summary>
public static class Philox
{
    private const uint M0 = 0xD2511F53, M1 = 0xCD9E8D57;   // round multipliers
    private const uint W0 = 0x9E3779B9, W1 = 0xBB67AE85;   // Weyl key bumps: golden ratio, √3 − 1

    /// <summary>All four outputs of 10 rounds on counter (c0, c1, c2, c3) under key (k0, k1).</summary>
    public static (uint, uint, uint, uint) Block(uint c0, uint c1, uint c2, uint c3, uint k0, uint k1)
    {
        for (int round = 0; round < 10; round++)
        {
            if (round > 0) { k0 += W0; k1 += W1; }
            ulong p0 = (ulong)M0 * c0, p1 = (ulong)M1 * c2;
            (c0, c1, c2, c3) = ((uint)(p1 >> 32) ^ c1 ^ k0, (uint)p1, (uint)(p0 >> 32) ^ c3 ^ k1, (uint)p0);
        }
        return (c0, c1, c2, c3);
    }

    /// <summary>H(seed, counter): the first output word for the 64-bit counter (lo, hi, 0, 0) under the 64-bit seed as key.</summary>
    public static uint Hash(ulong seed, ulong counter) =>
        Block((uint)counter, (uint)(counter >> 32), 0, 0, (uint)seed, (uint)(seed >> 32)).Item1;
}
