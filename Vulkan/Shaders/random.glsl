// Philox4x32-10 (Salmon et al., SC 2011; Random123), the twin of Reference/Common/Philox.cs: same rounds, same bits.
#ifndef LLM_RANDOM_GLSL
#define LLM_RANDOM_GLSL

// All four words of 10 rounds on counter c under key k; kat_vectors: c = k = 0 → 6627e8d5 e169c58d bc57ac4c 9b00dbd8.
uvec4 philox4x32_10(uvec4 c, uvec2 k) {
    for (int round = 0; round < 10; round++) {
        if (round > 0) k += uvec2(0x9E3779B9u, 0xBB67AE85u);   // Weyl key bumps
        uint hi0, lo0, hi1, lo1;
        umulExtended(0xD2511F53u, c.x, hi0, lo0);
        umulExtended(0xCD9E8D57u, c.z, hi1, lo1);
        c = uvec4(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
    }
    return c;
}

// H(seed, base + j): the first word for the 64-bit counter (base + j, 0) under the 64-bit seed, base and seed as (lo, hi).
uint philox_hash(uvec2 seed, uvec2 base, uint j) {
    uint carry;
    uint lo = uaddCarry(base.x, j, carry);
    return philox4x32_10(uvec4(lo, base.y + carry, 0u, 0u), seed).x;
}

#endif
