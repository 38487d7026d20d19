#version 450
// Shapes: NB buckets, NH heads, P = Tq·Tk positions; dOutput [NH, Tq, Tk], buckets [Tq, Tk] I32, dTable [NB, NH].
// dTable[b, h] += Σ_{p in [begin, end), buckets[p] = b} dOutput[h, p]: one workgroup per (b, h − firstHead) = (x, y)
// over the heads whose planes of dOutput are bound (the host splits a dOutput larger than one binding by heads); each lane
// sums the positions begin + lane, begin + lane + W, … in order, then a fixed shared-memory tree adds the lanes
// (row_reduce.glsl): deterministic without atomics. The host splits P into passes within the loop budget, in order.
// Bad buckets (outside [0, NB)) add nothing and are flagged by workgroup (0, 0).
#include "common.glsl"
#include "index_error.glsl"
#include "row_reduce.glsl"

layout(push_constant) uniform PushConstants {
    uint offsets[4];
    uint positions;   // P
    uint heads;       // NH, the table's row length
    uint buckets;     // NB
    uint firstHead;   // the head of the bound dOutput's first plane
    uint begin, end;  // this pass's positions
} pc;

READONLY_BUFFER(0, float, dOutput);    // [heads bound, P]: planes firstHead.. of the [NH, P] gradient
READONLY_BUFFER(1, int, bucketIds);    // [P]
BUFFER(2, float, dTable);              // [NB, NH]
BUFFER(3, int, errors);                // [2]: first bad position, its bucket

void main() {
    uint b = gl_WorkGroupID.x, h = gl_WorkGroupID.y, lane = gl_LocalInvocationID.x;
    bool reports = b == 0u && h == 0u && pc.firstHead == 0u;
    float sum = 0.0;
    for (uint p = pc.begin + lane; p < pc.end; p += gl_WorkGroupSize.x) {
        int id = bucketIds[AT(1, p)];
        if (uint(id) == b) sum += dOutput[AT(0, h * pc.positions + p)];
        else if (reports && uint(id) >= pc.buckets) atomicMin(errors[AT(3, 0)], int(p));
    }
    float total = workgroupSum(sum);
    if (lane == 0u) dTable[AT(2, b * pc.heads + pc.firstHead + h)] += total;
}
