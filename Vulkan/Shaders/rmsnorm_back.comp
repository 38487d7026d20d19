#version 450
// Shapes: N rows, C channels; dOutput/input/dInput [N, C], weight [C], rstd [N]. One workgroup per row:
// with x̂ = x·rstd and g = w·dy: dx += rstd·(g − x̂·mean(g·x̂)).
// dWeight (a sum over rows) is rmsnorm_back_params.comp's.
#include "common.glsl"
#include "row_reduce.glsl"

layout(push_constant) uniform PushConstants {
    uint offsets[5];
    uint rows;       // N
    uint channels;   // C
} pc;

READONLY_BUFFER(0, float, dOutput);   // [N, C]
READONLY_BUFFER(1, float, input_);    // [N, C]
READONLY_BUFFER(2, float, weight);    // [C]
READONLY_BUFFER(3, float, rstd);      // [N]
BUFFER(4, float, dInput);             // [N, C]

void main() {
    uint lane = gl_LocalInvocationIndex, width = gl_WorkGroupSize.x;
    for (uint n = gl_WorkGroupID.x; n < pc.rows; n += gl_NumWorkGroups.x) {   // uniform per workgroup
        uint row = n * pc.channels;
        float s = rstd[AT(3, n)];
        // the one row reduction of the normalization's Jacobian (no mean was subtracted, so no mean(g) term)
        float gxSum = 0.0;
        for (uint i = lane; i < pc.channels; i += width)
            gxSum += weight[AT(2, i)] * dOutput[AT(0, row + i)] * (input_[AT(1, row + i)] * s);
        float gxMean = workgroupSum(gxSum) / float(pc.channels);
        for (uint i = lane; i < pc.channels; i += width) {
            float xHat = input_[AT(1, row + i)] * s;
            float g = weight[AT(2, i)] * dOutput[AT(0, row + i)];
            dInput[AT(4, row + i)] += (g - xHat * gxMean) * s;
        }
    }
}
