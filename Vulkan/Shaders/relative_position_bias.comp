#version 450
// Shapes: NB buckets, NH heads, P = Tq·Tk positions; table [NB, NH], buckets [Tq, Tk] I32, output [NH, Tq, Tk].
// output[h, p] = table[buckets[p], h]: one invocation per output element, grid-stride, over the heads
// [firstHead, firstHead + heads) whose planes are bound (the host splits an output larger than one binding by heads).
// A bucket outside [0, NB) is flagged (first bad position) and its outputs are 0.
#include "common.glsl"
#include "index_error.glsl"

layout(push_constant) uniform PushConstants {
    uint offsets[4];
    uint positions;   // P
    uint heads;       // heads bound in output
    uint buckets;     // NB
    uint tableHeads;  // NH, the table's row length
    uint firstHead;   // the head of the bound output's first plane
} pc;

READONLY_BUFFER(0, float, table);      // [NB, NH]
READONLY_BUFFER(1, int, bucketIds);    // [P]
WRITEONLY_BUFFER(2, float, output_);   // [heads, P]: planes firstHead.. of the [NH, P] output
BUFFER(3, int, errors);                // [2]: first bad position, its bucket

void main() {
    FOR_EACH_INDEX(e, pc.heads * pc.positions) {
        uint h = e / pc.positions, p = e - h * pc.positions;
        int id = bucketIds[AT(1, p)];
        if (uint(id) >= pc.buckets) {
            if (h == 0u && pc.firstHead == 0u) atomicMin(errors[AT(3, 0)], int(p));
            output_[AT(2, e)] = 0.0;
            continue;
        }
        output_[AT(2, e)] = table[AT(0, uint(id) * pc.tableHeads + pc.firstHead + h)];
    }
}
