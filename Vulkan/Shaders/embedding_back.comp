#version 450
// Shapes: N rows, V vocabulary, C channels; dOutput [N, C], keys [P, 2] = (id, position) sorted (embedding_back_sort.comp),
// dTable [V, C] (rows [firstId, firstId + sliceRows) bound). dTable[ids[n], c] += dOutput[n, c]. One invocation per
// (run of equal ids in keys[begin, end), channel) adds the run's positions onto its row in position order: the CPU's
// additions in the CPU's order (bit-identical), without atomics; a run cut by `begin` continues from the previous pass.
#include "common.glsl"

layout(push_constant) uniform PushConstants {
    uint offsets[3];
    uint channels;    // C
    uint firstId;     // first table row bound
    uint sliceRows;   // table rows bound
    uint begin, end;  // this pass's sorted pairs
} pc;

READONLY_BUFFER(0, float, dOutput);   // [N, C]
READONLY_BUFFER(1, uint, keys);       // [P, 2]: (id, position); bad ids and padding are 0xFFFFFFFF
BUFFER(2, float, dTable);             // [sliceRows, C]: rows firstId.. of the [V, C] gradient

void main() {
    FOR_EACH_INDEX(j, (pc.end - pc.begin) * pc.channels) {
        uint e = pc.begin + j / pc.channels, c = j % pc.channels;
        uint id = keys[AT(1, 2u * e)];
        uint row = id - pc.firstId;   // wraps to a large value below the slice (and for 0xFFFFFFFF)
        if (row >= pc.sliceRows || (e > pc.begin && keys[AT(1, 2u * e - 2u)] == id)) continue;   // not a run start here
        uint at = row * pc.channels + c;
        float sum = dTable[AT(2, at)];
        for (uint f = e; f < pc.end && keys[AT(1, 2u * f)] == id; f++) sum += dOutput[AT(0, keys[AT(1, 2u * f + 1u)] * pc.channels + c)];
        dTable[AT(2, at)] = sum;
    }
}
