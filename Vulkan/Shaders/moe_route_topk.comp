#version 450
// Shapes: N tokens, E experts, k choices; probs [N, E], experts/gates [N, k]. One invocation per token: the k largest
// probs in decreasing order (strict >, so a tie keeps the lower expert), gates = their probs, / their sum when normalize.
#include "common.glsl"

const uint MAX_K = 8u;

layout(push_constant) uniform PushConstants {
    uint offsets[3];
    uint tokens;     // N
    uint experts;    // E
    uint k;
    uint normalize;  // 1: gates /= Σ_j gates
} pc;

READONLY_BUFFER(0, float, probs);   // [N, E]
WRITEONLY_BUFFER(1, int, chosen);   // [N, k]
BUFFER(2, float, gates);            // [N, k]

void main() {
    FOR_EACH_INDEX(n, pc.tokens) {
        uint row = n * pc.experts;
        float sum = 0.0;
        int bestPrevious[8];   // the choices so far (the host keeps k ≤ MAX_K)
        for (uint j = 0u; j < pc.k; j++) {
            int best = -1;
            for (uint e = 0u; e < pc.experts; e++) {
                bool used = false;
                for (uint i = 0u; i < j; i++) used = used || uint(bestPrevious[i]) == e;
                if (used) continue;
                if (best < 0 || probs[AT(0, row + e)] > probs[AT(0, row + uint(best))]) best = int(e);
            }
            bestPrevious[j] = best;
            float p = probs[AT(0, row + uint(best))];
            chosen[AT(1, n * pc.k + j)] = best;
            gates[AT(2, n * pc.k + j)] = p;
            sum += p;
        }
        if (pc.normalize != 0u) for (uint j = 0u; j < pc.k; j++) gates[AT(2, n * pc.k + j)] /= sum;
    }
}
