#version 450
// Shapes: N rows, V vocabulary, C channels; ids [N] I32, table [V, C], output [N, C].
// output[n, c] = table[ids[n], c]. An id outside [0, V) is flagged (first bad row) and its output row is 0.
#include "common.glsl"
#include "index_error.glsl"

layout(push_constant) uniform PushConstants {
    uint offsets[4];
    uint rows;       // N
    uint channels;   // C
    uint vocab;      // V
} pc;

READONLY_BUFFER(0, int, ids);          // [N]
READONLY_BUFFER(1, float, table);      // [V, C]
WRITEONLY_BUFFER(2, float, output_);   // [N, C]
BUFFER(3, int, errors);                // [2]: first bad row, its id

void main() {
    FOR_EACH_INDEX(j, pc.rows * pc.channels) {
        uint n = j / pc.channels, c = j - n * pc.channels;
        int id = ids[AT(0, n)];
        if (uint(id) >= pc.vocab) {
            if (c == 0u) atomicMin(errors[AT(3, 0)], int(n));
            output_[AT(2, j)] = 0.0;
            continue;
        }
        output_[AT(2, j)] = table[AT(1, uint(id) * pc.channels + c)];
    }
}
