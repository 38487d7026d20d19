#version 450
// Shapes: N rows, V vocabulary, C channels; ids [N] I32, table [V, C] (rows [firstId, firstId + sliceRows) bound),
// output [N, C]. output[n, c] = table[ids[n], c]. The host splits tensors larger than one binding into chunks of
// positions and slices of the table, one dispatch each: a dispatch writes the positions whose id is in its slice. An id outside [0, V) is flagged (first bad row)
// and its output row is 0 (by the dispatch of the first slice).
#include "common.glsl"
#include "index_error.glsl"

layout(push_constant) uniform PushConstants {
    uint offsets[4];
    uint rows;        // N
    uint channels;    // C
    uint vocab;       // V
    uint firstId;     // first table row bound
    uint sliceRows;   // table rows bound
    uint firstRow;    // position of this chunk's row 0 in the whole ids tensor (the host splits large N·C)
} pc;

READONLY_BUFFER(0, int, ids);          // [N]
READONLY_BUFFER(1, float, table);      // [sliceRows, C]: rows firstId.. of the [V, C] table
WRITEONLY_BUFFER(2, float, output_);   // [N, C]
BUFFER(3, int, errors);                // [2]: first bad row, its id

void main() {
    FOR_EACH_INDEX(j, pc.rows * pc.channels) {
        uint n = j / pc.channels, c = j - n * pc.channels;
        int id = ids[AT(0, n)];
        if (uint(id) >= pc.vocab) {
            if (pc.firstId == 0u) {
                if (c == 0u) atomicMin(errors[AT(3, 0)], int(pc.firstRow + n));
                output_[AT(2, j)] = 0.0;
            }
            continue;
        }
        uint row = uint(id) - pc.firstId;   // wraps to a large value below the slice
        if (row < pc.sliceRows) output_[AT(2, j)] = table[AT(1, row * pc.channels + c)];
    }
}
