// Workgroup-wide reductions for the one-workgroup-per-row kernels (layernorm, rmsnorm and their _back, cross_entropy):
// every invocation passes its partial and receives the total. A shared-memory tree in a fixed order, so the result
// is deterministic for a given workgroup size (a power of two, as LinearWorkgroupSize is). Every invocation of the
// workgroup must call it in uniform control flow (it has barriers).
#ifndef LLM_ROW_REDUCE_GLSL
#define LLM_ROW_REDUCE_GLSL

shared float reduction_[gl_WorkGroupSize.x];

// Σ over the workgroup of x.
float workgroupSum(float x) {
    uint lane = gl_LocalInvocationIndex;
    reduction_[lane] = x;
    barrier();
    for (uint stride = gl_WorkGroupSize.x / 2u; stride > 0u; stride /= 2u) {
        if (lane < stride) reduction_[lane] += reduction_[lane + stride];
        barrier();
    }
    float total = reduction_[0];
    barrier();   // everyone has read the total before the next reduction overwrites it
    return total;
}

// max over the workgroup of x.
float workgroupMax(float x) {
    uint lane = gl_LocalInvocationIndex;
    reduction_[lane] = x;
    barrier();
    for (uint stride = gl_WorkGroupSize.x / 2u; stride > 0u; stride /= 2u) {
        if (lane < stride) reduction_[lane] = max(reduction_[lane], reduction_[lane + stride]);
        barrier();
    }
    float total = reduction_[0];
    barrier();
    return total;
}

#endif
