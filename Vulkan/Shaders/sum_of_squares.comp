#version 450
// Shapes: values [L] → partials [G], G = number of workgroups. partials[g] = Σ over the g-th workgroup's grid-stride
// share of values[j]² (or of values[j] when square = 0: the second, one-workgroup pass that sums the partials).
// Variants: SUBGROUPS reduces with subgroupAdd, then across subgroups through shared memory;
// NO_SUBGROUPS is a shared-memory tree (workgroup size must be a power of two). fp32 throughout.
#ifdef SUBGROUPS
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif
#include "common.glsl"

layout(push_constant) uniform PushConstants {
    uint offsets[2];
    uint n;        // L
    uint square;   // 1: Σ x², 0: Σ x
} pc;

READONLY_BUFFER(0, float, values);     // [L]
WRITEONLY_BUFFER(1, float, partials);  // [G]

shared float shared_[gl_WorkGroupSize.x];

void main() {
    float sum = 0.0;
    FOR_EACH_INDEX(j, pc.n) {
        float x = values[AT(0, j)];
        sum += pc.square != 0u ? x * x : x;
    }
#ifdef SUBGROUPS
    sum = subgroupAdd(sum);
    if (subgroupElect()) shared_[gl_SubgroupID] = sum;
    barrier();
    if (gl_SubgroupID == 0u) {
        float total = 0.0;
        for (uint s = gl_SubgroupInvocationID; s < gl_NumSubgroups; s += gl_SubgroupSize) total += shared_[s];
        total = subgroupAdd(total);
        if (subgroupElect()) partials[AT(1, gl_WorkGroupID.x)] = total;
    }
#else
    uint lane = gl_LocalInvocationIndex;
    shared_[lane] = sum;
    barrier();
    for (uint stride = gl_WorkGroupSize.x / 2u; stride > 0u; stride /= 2u) {
        if (lane < stride) shared_[lane] += shared_[lane + stride];
        barrier();
    }
    if (lane == 0u) partials[AT(1, gl_WorkGroupID.x)] = shared_[0];
#endif
}
