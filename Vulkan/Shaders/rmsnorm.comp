#version 450
// Shapes: N rows, C channels; input/output [N, C], weight [C], rstd [N]. One workgroup per row:
// rstd = 1/√(Σx²/C + eps), y = x·rstd·w (RMSNorm: no mean subtracted, no bias).
#include "common.glsl"
#include "row_reduce.glsl"

layout(push_constant) uniform PushConstants {
    uint offsets[4];
    uint rows;       // N
    uint channels;   // C
    float eps;
} pc;

READONLY_BUFFER(0, float, input_);     // [N, C]
READONLY_BUFFER(1, float, weight);     // [C]
WRITEONLY_BUFFER(2, float, output_);   // [N, C]
WRITEONLY_BUFFER(3, float, rstd);      // [N]

void main() {
    uint lane = gl_LocalInvocationIndex, width = gl_WorkGroupSize.x;
    for (uint n = gl_WorkGroupID.x; n < pc.rows; n += gl_NumWorkGroups.x) {   // uniform per workgroup
        uint row = n * pc.channels;
        float squares = 0.0;
        for (uint i = lane; i < pc.channels; i += width) {
            float x = input_[AT(0, row + i)];
            squares += x * x;
        }
        float s = 1.0 / sqrt(workgroupSum(squares) / float(pc.channels) + pc.eps);
        for (uint i = lane; i < pc.channels; i += width)
            output_[AT(2, row + i)] = input_[AT(0, row + i)] * s * weight[AT(1, i)];
        if (lane == 0u) rstd[AT(3, n)] = s;
    }
}
