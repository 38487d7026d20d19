#version 450
// Shapes: N rows, V vocabulary; dLosses/targets [N], probs/dLogits [N, V].
// dLogits[n, v] += dLosses[n]·(probs[n, v] − [v = targets[n]]); ignoreIndex rows are left untouched, and so are rows
// whose target is outside [0, V) (flagged).
#include "common.glsl"
#include "index_error.glsl"

layout(push_constant) uniform PushConstants {
    uint offsets[5];
    uint rows;         // N
    uint vocab;        // V
    int ignoreIndex;
    uint firstRow;     // position of this chunk's row 0 in the whole targets tensor (the host splits large N·V)
} pc;

READONLY_BUFFER(0, float, dLosses);   // [N]
READONLY_BUFFER(1, float, probs);     // [N, V]
READONLY_BUFFER(2, int, targets);     // [N]
BUFFER(3, float, dLogits);            // [N, V]
BUFFER(4, int, errors);               // [2]: first bad row, its target

void main() {
    FOR_EACH_INDEX(j, pc.rows * pc.vocab) {
        uint n = j / pc.vocab, v = j - n * pc.vocab;
        int t = targets[AT(2, n)];
        if (t == pc.ignoreIndex) continue;
        if (uint(t) >= pc.vocab) {
            if (v == 0u) atomicMin(errors[AT(4, 0)], int(pc.firstRow + n));
            continue;
        }
        float indicator = v == uint(t) ? 1.0 : 0.0;
        dLogits[AT(3, j)] += dLosses[AT(0, n)] * (probs[AT(1, j)] - indicator);
    }
}
