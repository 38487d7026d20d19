#version 450
// Shapes: N rows, C channels, G = ⌈N / rowsPerBlock⌉ row blocks; dOutput/input [N, C], mean/rstd [N], partials [G, C].
// dWeightPart[g, c] = Σ_{n in block g} dy[n, c]·x̂[n, c], dBiasPart[g, c] = Σ_{n in block g} dy[n, c], x̂ = (x − μ)·rstd:
// the first level of dWeight and dBias (column_sum.comp adds the blocks in order); rows in order, no atomics.
#include "common.glsl"

layout(push_constant) uniform PushConstants {
    uint offsets[6];
    uint rows;           // N of this chunk
    uint channels;       // C
    uint rowsPerBlock;
} pc;

READONLY_BUFFER(0, float, dOutput);   // [N, C]
READONLY_BUFFER(1, float, input_);    // [N, C]
READONLY_BUFFER(2, float, mean);      // [N]
READONLY_BUFFER(3, float, rstd);      // [N]
WRITEONLY_BUFFER(4, float, dWeightPart);   // [G, C]
WRITEONLY_BUFFER(5, float, dBiasPart);     // [G, C]

void main() {
    uint g = gl_WorkGroupID.y;
    uint begin = g * pc.rowsPerBlock, end = min(begin + pc.rowsPerBlock, pc.rows);
    FOR_EACH_INDEX(c, pc.channels) {
        float dw = 0.0, db = 0.0;
        for (uint n = begin; n < end; n++) {
            uint j = n * pc.channels + c;
            float dy = dOutput[AT(0, j)];
            dw += (input_[AT(1, j)] - mean[AT(2, n)]) * rstd[AT(3, n)] * dy;
            db += dy;
        }
        dWeightPart[AT(4, g * pc.channels + c)] = dw;
        dBiasPart[AT(5, g * pc.channels + c)] = db;
    }
}
