#version 450
// Shapes: N tokens, E experts, k choices; dGates/experts [N, k], probs/dProbs [N, E]. One invocation per token:
// S = Σ_j p[e_j]; dProbs[e_j] += normalize ? (dg_j − Σ_i dg_i·p[e_i]/S)/S : dg_j (the k experts are distinct).
// An expert outside [0, E) is flagged and the token skipped.
#include "common.glsl"
#include "index_error.glsl"

layout(push_constant) uniform PushConstants {
    uint offsets[5];
    uint tokens;     // N
    uint experts;    // E
    uint k;
    uint normalize;
} pc;

READONLY_BUFFER(0, float, dGates);   // [N, k]
READONLY_BUFFER(1, float, probs);    // [N, E]
READONLY_BUFFER(2, int, chosen);     // [N, k]
BUFFER(3, float, dProbs);            // [N, E]
BUFFER(4, int, errors);              // [2]

void main() {
    FOR_EACH_INDEX(n, pc.tokens) {
        bool bad = false;
        for (uint j = 0u; j < pc.k; j++)
            if (uint(chosen[AT(2, n * pc.k + j)]) >= pc.experts) { atomicMin(errors[AT(4, 0)], int(n * pc.k + j)); bad = true; }
        if (bad) continue;
        uint row = n * pc.experts;
        float sum = 0.0, weighted = 0.0;
        for (uint j = 0u; j < pc.k; j++) sum += probs[AT(1, row + uint(chosen[AT(2, n * pc.k + j)]))];
        for (uint j = 0u; j < pc.k; j++)
            weighted += dGates[AT(0, n * pc.k + j)] * (probs[AT(1, row + uint(chosen[AT(2, n * pc.k + j)]))] / sum);
        for (uint j = 0u; j < pc.k; j++) {
            uint at = row + uint(chosen[AT(2, n * pc.k + j)]);
            float g = dGates[AT(0, n * pc.k + j)];
            dProbs[AT(3, at)] += pc.normalize != 0u ? (g - weighted) / sum : g;
        }
    }
}
