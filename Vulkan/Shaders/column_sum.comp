#version 450
// Shapes: input [R, C] → output [G, C], G = ⌈R / rowsPerBlock⌉ row blocks (one row of workgroups each, y).
// output[g, c] (+)= Σ_{g·rowsPerBlock ≤ r < min((g+1)·rowsPerBlock, R)} input[r, c], rows in order: the row-block
// partials of a deterministic column sum, or (G = 1, accumulating) its ordered second pass over those partials.
#include "common.glsl"

layout(push_constant) uniform PushConstants {
    uint offsets[2];
    uint rows;           // R
    uint columns;        // C
    uint rowsPerBlock;
    uint accumulate;     // 1: output += sum (the gradient), 0: output = sum (a partial)
} pc;

READONLY_BUFFER(0, float, input_);   // [R, C]
BUFFER(1, float, output_);           // [G, C]

void main() {
    uint g = gl_WorkGroupID.y;
    uint begin = g * pc.rowsPerBlock, end = min(begin + pc.rowsPerBlock, pc.rows);
    FOR_EACH_INDEX(c, pc.columns) {
        float sum = 0.0;
        for (uint r = begin; r < end; r++) sum += input_[AT(0, r * pc.columns + c)];
        uint j = g * pc.columns + c;
        output_[AT(1, j)] = pc.accumulate != 0u ? output_[AT(1, j)] + sum : sum;
    }
}
