#version 450
// Shapes: N rows, C channels, G = ⌈N / rowsPerBlock⌉ row blocks; dOutput/input [N, C], rstd [N], partials [G, C].
// dWeightPart[g, c] = Σ_{n in block g} dy[n, c]·x[n, c]·rstd[n]: the first level of dWeight (column_sum.comp adds
// the blocks in order); rows in order, no atomics.
#include "common.glsl"

layout(push_constant) uniform PushConstants {
    uint offsets[4];
    uint rows;           // N of this chunk
    uint channels;       // C
    uint rowsPerBlock;
} pc;

READONLY_BUFFER(0, float, dOutput);        // [N, C]
READONLY_BUFFER(1, float, input_);         // [N, C]
READONLY_BUFFER(2, float, rstd);           // [N]
WRITEONLY_BUFFER(3, float, dWeightPart);   // [G, C]

void main() {
    uint g = gl_WorkGroupID.y;
    uint begin = g * pc.rowsPerBlock, end = min(begin + pc.rowsPerBlock, pc.rows);
    FOR_EACH_INDEX(c, pc.channels) {
        float dw = 0.0;
        for (uint n = begin; n < end; n++) {
            uint j = n * pc.channels + c;
            dw += input_[AT(1, j)] * rstd[AT(2, n)] * dOutput[AT(0, j)];
        }
        dWeightPart[AT(3, g * pc.channels + c)] = dw;
    }
}
