#version 450
// Shapes: N rows, E classes (a router's experts); logits/probs [N, E], logSumExp [N]. One invocation per row (E is a
// router's width, the host checks 3E iterations fit the loop budget): m = max x, Σ = Σ exp(x − m), probs = exp(x − m)/Σ,
// lse = m + log Σ — the CPU's order of operations.
#include "common.glsl"

layout(push_constant) uniform PushConstants {
    uint offsets[3];
    uint rows;    // N
    uint width;   // E
} pc;

READONLY_BUFFER(0, float, logits);      // [N, E]
BUFFER(1, float, probs);                // [N, E]: exp(x − m) first, then normalized
WRITEONLY_BUFFER(2, float, logSumExp);  // [N]

void main() {
    FOR_EACH_INDEX(n, pc.rows) {
        uint row = n * pc.width;
        float m = uintBitsToFloat(0xFF800000u);   // −∞
        for (uint e = 0u; e < pc.width; e++) m = max(m, logits[AT(0, row + e)]);
        float sum = 0.0;
        for (uint e = 0u; e < pc.width; e++) {
            float x = exp(logits[AT(0, row + e)] - m);
            probs[AT(1, row + e)] = x;
            sum += x;
        }
        float inverse = 1.0 / sum;
        for (uint e = 0u; e < pc.width; e++) probs[AT(1, row + e)] *= inverse;
        logSumExp[AT(2, n)] = m + log(sum);
    }
}
