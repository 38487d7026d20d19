#version 450
// Shapes: N rows, V vocabulary, C channels; dOutput [N, C], ids [N] I32, dTable [V, C].
// dTable[ids[n], c] += dOutput[n, c]. One invocation per channel walks the positions in order, so a row hit by
// several ids sums them in a fixed order without atomics (deterministic, and the CPU's order). Bad ids are flagged
// and skipped.
#include "common.glsl"
#include "index_error.glsl"

layout(push_constant) uniform PushConstants {
    uint offsets[4];
    uint rows;       // N
    uint channels;   // C
    uint vocab;      // V
    uint firstRow;   // position of row 0 of this chunk in the whole ids tensor (the host splits long N)
} pc;

READONLY_BUFFER(0, float, dOutput);   // [N, C]
READONLY_BUFFER(1, int, ids);         // [N]
BUFFER(2, float, dTable);             // [V, C]
BUFFER(3, int, errors);               // [2]: first bad row, its id

void main() {
    FOR_EACH_INDEX(c, pc.channels) {
        for (uint n = 0u; n < pc.rows; n++) {
            int id = ids[AT(1, n)];
            if (uint(id) >= pc.vocab) {
                if (c == 0u) atomicMin(errors[AT(3, 0)], int(pc.firstRow + n));
                continue;
            }
            dTable[AT(2, uint(id) * pc.channels + c)] += dOutput[AT(0, n * pc.channels + c)];
        }
    }
}
