#version 450
// Shapes: N rows, C channels; dOutput/input/dInput [N, C], weight [C], mean/rstd [N]. One workgroup per row:
// with x̂ = (x − μ)·rstd and g = w·dy: dx += rstd·(g − mean(g) − x̂·mean(g·x̂)).
// dWeight and dBias (sums over rows) are layernorm_back_params.comp's.
#include "common.glsl"
#include "row_reduce.glsl"

layout(push_constant) uniform PushConstants {
    uint offsets[6];
    uint rows;       // N
    uint channels;   // C
} pc;

READONLY_BUFFER(0, float, dOutput);   // [N, C]
READONLY_BUFFER(1, float, input_);    // [N, C]
READONLY_BUFFER(2, float, weight);    // [C]
READONLY_BUFFER(3, float, mean);      // [N]
READONLY_BUFFER(4, float, rstd);      // [N]
BUFFER(5, float, dInput);             // [N, C]

void main() {
    uint lane = gl_LocalInvocationIndex, width = gl_WorkGroupSize.x;
    for (uint n = gl_WorkGroupID.x; n < pc.rows; n += gl_NumWorkGroups.x) {   // uniform per workgroup
        uint row = n * pc.channels;
        float m = mean[AT(3, n)], s = rstd[AT(4, n)];
        // the two row reductions of the normalization's Jacobian
        float gSum = 0.0, gxSum = 0.0;
        for (uint i = lane; i < pc.channels; i += width) {
            float g = weight[AT(2, i)] * dOutput[AT(0, row + i)];
            gSum += g;
            gxSum += g * ((input_[AT(1, row + i)] - m) * s);
        }
        float gMean = workgroupSum(gSum) / float(pc.channels);
        float gxMean = workgroupSum(gxSum) / float(pc.channels);
        for (uint i = lane; i < pc.channels; i += width) {
            float xHat = (input_[AT(1, row + i)] - m) * s;
            float g = weight[AT(2, i)] * dOutput[AT(0, row + i)];
            dInput[AT(5, row + i)] += (g - gMean - xHat * gxMean) * s;
        }
    }
}
