#version 450
// Shapes: N rows, E classes; dProbs/probs/dLogits [N, E], dLogSumExp [N]. One invocation per row:
// dLogits += p ⊙ (dProbs − Σ_e dProbs⊙p) + dLse·p. A null gradient is flagged off (its binding is a stand-in, never read).
#include "common.glsl"

layout(push_constant) uniform PushConstants {
    uint offsets[4];
    uint rows;          // N
    uint width;         // E
    uint hasDProbs;     // 0: dProbs is null
    uint hasDLogSumExp; // 0: dLogSumExp is null
} pc;

READONLY_BUFFER(0, float, dProbs);      // [N, E]
READONLY_BUFFER(1, float, dLogSumExp);  // [N]
READONLY_BUFFER(2, float, probs);       // [N, E]
BUFFER(3, float, dLogits);              // [N, E]

void main() {
    FOR_EACH_INDEX(n, pc.rows) {
        uint row = n * pc.width;
        float dot = 0.0;
        if (pc.hasDProbs != 0u) for (uint e = 0u; e < pc.width; e++) dot += dProbs[AT(0, row + e)] * probs[AT(2, row + e)];
        float dLse = pc.hasDLogSumExp != 0u ? dLogSumExp[AT(1, n)] : 0.0;
        for (uint e = 0u; e < pc.width; e++) {
            float p = probs[AT(2, row + e)];
            float dp = pc.hasDProbs != 0u ? dProbs[AT(0, row + e)] : 0.0;
            dLogits[AT(3, row + e)] += p * (dp - dot) + dLse * p;
        }
    }
}
