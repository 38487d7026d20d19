#version 450
// Shapes: N tokens, k choices, R expert rows, C channels; dOutput [N, C], slots/gates [N, k], dExpertOutput [R, C].
// One invocation per (n, j, c): dExpertOutput[slots[n, j], c] += gates[n, j]·dOutput[n, c] for a kept choice (each
// kept slot has one owner: no races). A slot outside [−1, R) is flagged and skipped.
#include "common.glsl"
#include "index_error.glsl"

layout(push_constant) uniform PushConstants {
    uint offsets[5];
    uint tokens;     // N
    uint k;
    uint rows;       // R
    uint channels;   // C
} pc;

READONLY_BUFFER(0, float, dOutput);   // [N, C]
READONLY_BUFFER(1, int, slots);       // [N, k]
READONLY_BUFFER(2, float, gates);     // [N, k]
BUFFER(3, float, dExpertOutput);      // [R, C]
BUFFER(4, int, errors);               // [2]

void main() {
    FOR_EACH_INDEX(i, pc.tokens * pc.k * pc.channels) {
        uint choice = i / pc.channels, c = i - choice * pc.channels, n = choice / pc.k;
        int s = slots[AT(1, choice)];
        if (s < -1 || s >= int(pc.rows)) { if (c == 0u) atomicMin(errors[AT(4, 0)], int(choice)); continue; }
        if (s >= 0) dExpertOutput[AT(3, uint(s) * pc.channels + c)] += gates[AT(2, choice)] * dOutput[AT(0, n * pc.channels + c)];
    }
}
