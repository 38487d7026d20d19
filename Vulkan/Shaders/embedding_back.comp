#version 450
// Shapes: N rows, V vocabulary, C channels; dOutput [N, C], ids [N] I32, dTable [V, C] (rows [firstId,
// firstId + sliceRows) bound). dTable[ids[n], c] += dOutput[n, c]. One invocation per channel walks the positions in
// order, so a row hit by several ids sums them in a fixed order without atomics (deterministic, and the CPU's
// order). The host splits long N and large tables into dispatches; bad ids are flagged (first slice) and skipped.
#include "common.glsl"
#include "index_error.glsl"

layout(push_constant) uniform PushConstants {
    uint offsets[4];
    uint rows;        // N of this chunk
    uint channels;    // C
    uint vocab;       // V
    uint firstId;     // first table row bound
    uint sliceRows;   // table rows bound
    uint firstRow;    // position of this chunk's row 0 in the whole ids tensor
} pc;

READONLY_BUFFER(0, float, dOutput);   // [N, C]
READONLY_BUFFER(1, int, ids);         // [N]
BUFFER(2, float, dTable);             // [sliceRows, C]: rows firstId.. of the [V, C] gradient
BUFFER(3, int, errors);               // [2]: first bad row, its id

void main() {
    FOR_EACH_INDEX(c, pc.channels) {
        for (uint n = 0u; n < pc.rows; n++) {
            int id = ids[AT(1, n)];
            if (uint(id) >= pc.vocab) {
                if (c == 0u && pc.firstId == 0u) atomicMin(errors[AT(3, 0)], int(pc.firstRow + n));
                continue;
            }
            uint row = uint(id) - pc.firstId;   // wraps to a large value below the slice
            if (row < pc.sliceRows) dTable[AT(2, row * pc.channels + c)] += dOutput[AT(0, n * pc.channels + c)];
        }
    }
}
