#version 450
// Shapes: N tokens, k choices, R expert rows, C channels; expertOutput [R, C], slots/gates [N, k], output [N, C].
// One invocation per (n, c): output[n, c] = Σ_j gates[n, j]·expertOutput[slots[n, j], c] over kept choices, j ascending
// (0 when all were dropped). A slot outside [−1, R) is flagged and skipped.
#include "common.glsl"
#include "index_error.glsl"

layout(push_constant) uniform PushConstants {
    uint offsets[5];
    uint tokens;     // N
    uint k;
    uint rows;       // R
    uint channels;   // C
} pc;

READONLY_BUFFER(0, float, expertOutput);   // [R, C]
READONLY_BUFFER(1, int, slots);            // [N, k]
READONLY_BUFFER(2, float, gates);          // [N, k]
WRITEONLY_BUFFER(3, float, output_);       // [N, C]
BUFFER(4, int, errors);                    // [2]

void main() {
    FOR_EACH_INDEX(i, pc.tokens * pc.channels) {
        uint n = i / pc.channels, c = i - n * pc.channels;
        float sum = 0.0;
        for (uint j = 0u; j < pc.k; j++) {
            int s = slots[AT(1, n * pc.k + j)];
            if (s < -1 || s >= int(pc.rows)) { if (c == 0u) atomicMin(errors[AT(4, 0)], int(n * pc.k + j)); continue; }
            if (s >= 0) sum += gates[AT(2, n * pc.k + j)] * expertOutput[AT(0, uint(s) * pc.channels + c)];
        }
        output_[AT(3, i)] = sum;
    }
}
