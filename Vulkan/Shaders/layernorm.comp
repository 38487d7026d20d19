#version 450
// Shapes: N rows, C channels; input/output [N, C], weight/bias [C], mean/rstd [N]. One workgroup per row:
// μ = Σx/C, σ² = Σ(x − μ)²/C (a second pass, not E[x²] − μ², which cancels in fp32), rstd = 1/√(σ² + eps),
// y = (x − μ)·rstd·w + b.
#include "common.glsl"
#include "row_reduce.glsl"

layout(push_constant) uniform PushConstants {
    uint offsets[6];
    uint rows;       // N
    uint channels;   // C
    float eps;
} pc;

READONLY_BUFFER(0, float, input_);     // [N, C]
READONLY_BUFFER(1, float, weight);     // [C]
READONLY_BUFFER(2, float, bias);       // [C]
WRITEONLY_BUFFER(3, float, output_);   // [N, C]
WRITEONLY_BUFFER(4, float, mean);      // [N]
WRITEONLY_BUFFER(5, float, rstd);      // [N]

void main() {
    uint lane = gl_LocalInvocationIndex, width = gl_WorkGroupSize.x;
    for (uint n = gl_WorkGroupID.x; n < pc.rows; n += gl_NumWorkGroups.x) {   // uniform per workgroup
        uint row = n * pc.channels;
        float sum = 0.0;
        for (uint i = lane; i < pc.channels; i += width) sum += input_[AT(0, row + i)];
        float m = workgroupSum(sum) / float(pc.channels);
        float squares = 0.0;
        for (uint i = lane; i < pc.channels; i += width) {
            float d = input_[AT(0, row + i)] - m;
            squares += d * d;
        }
        float s = 1.0 / sqrt(workgroupSum(squares) / float(pc.channels) + pc.eps);
        for (uint i = lane; i < pc.channels; i += width)
            output_[AT(3, row + i)] = (input_[AT(0, row + i)] - m) * s * weight[AT(1, i)] + bias[AT(2, i)];
        if (lane == 0u) {
            mean[AT(4, n)] = m;
            rstd[AT(5, n)] = s;
        }
    }
}
