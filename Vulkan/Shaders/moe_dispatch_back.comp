#version 450
// Shapes: N tokens, k choices, R expert rows, C channels; dOutput [R, C], slots [N, k] I32, dInput [N, C].
// One invocation per (n, c): dInput[n, c] += Σ_j dOutput[slots[n, j], c] over kept choices, j ascending (each token
// reads its own rows: no races). A slot outside [−1, R) is flagged and skipped.
#include "common.glsl"
#include "index_error.glsl"

layout(push_constant) uniform PushConstants {
    uint offsets[4];
    uint tokens;     // N
    uint k;
    uint rows;       // R
    uint channels;   // C
} pc;

READONLY_BUFFER(0, float, dOutput);   // [R, C]
READONLY_BUFFER(1, int, slots);       // [N, k]
BUFFER(2, float, dInput);             // [N, C]
BUFFER(3, int, errors);               // [2]

void main() {
    FOR_EACH_INDEX(i, pc.tokens * pc.channels) {
        uint n = i / pc.channels, c = i - n * pc.channels;
        float sum = 0.0;
        for (uint j = 0u; j < pc.k; j++) {
            int s = slots[AT(1, n * pc.k + j)];
            if (s < -1 || s >= int(pc.rows)) { if (c == 0u) atomicMin(errors[AT(3, 0)], int(n * pc.k + j)); continue; }
            if (s >= 0) sum += dOutput[AT(0, uint(s) * pc.channels + c)];
        }
        dInput[AT(2, i)] += sum;
    }
}
