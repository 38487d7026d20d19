#version 450
// Shapes: N tokens, k choices, R expert rows, C channels; dOutput [N, C], expertOutput [R, C], slots/dGates [N, k].
// One invocation per choice (n, j): dGates[n, j] += Σ_c expertOutput[slots[n, j], c]·dOutput[n, c], c ascending (the
// host checks C fits the loop budget); a dropped choice gets nothing. A slot outside [−1, R) is flagged and skipped.
#include "common.glsl"
#include "index_error.glsl"

layout(push_constant) uniform PushConstants {
    uint offsets[5];
    uint tokens;     // N
    uint k;
    uint rows;       // R
    uint channels;   // C
} pc;

READONLY_BUFFER(0, float, dOutput);        // [N, C]
READONLY_BUFFER(1, float, expertOutput);   // [R, C]
READONLY_BUFFER(2, int, slots);            // [N, k]
BUFFER(3, float, dGates);                  // [N, k]
BUFFER(4, int, errors);                    // [2]

void main() {
    FOR_EACH_INDEX(choice, pc.tokens * pc.k) {
        uint n = choice / pc.k;
        int s = slots[AT(2, choice)];
        if (s < -1 || s >= int(pc.rows)) { atomicMin(errors[AT(4, 0)], int(choice)); continue; }
        if (s < 0) continue;
        float dot = 0.0;
        for (uint c = 0u; c < pc.channels; c++) dot += expertOutput[AT(1, uint(s) * pc.channels + c)] * dOutput[AT(0, n * pc.channels + c)];
        dGates[AT(3, choice)] += dot;
    }
}
