#version 450
// Shapes: N tokens, E experts, k choices; experts/slots [N, k] I32, counts [E] I32, load [E]. One invocation per
// expert e scans a tile of tokens [first, first + count) of choice j in token order: a token choosing e gets slot
// e·capacity + counts[e] while counts[e] < capacity, else −1, and counts[e] grows. The host runs the tiles in order
// (choice 0 over all tokens, then choice 1, ...: GShard's priority), so the positions are the CPU's, with no atomics;
// tiles keep each invocation's loop within lavapipe's iteration limit. writeLoad: load[e] = counts[e]/N (after choice 0).
#include "common.glsl"

layout(push_constant) uniform PushConstants {
    uint offsets[4];
    uint tokens;     // N
    uint experts;    // E
    uint k;
    uint capacity;
    uint choice;     // j
    uint first;      // first token of this tile
    uint count;      // tokens in this tile
    uint writeLoad;  // 1: after the scan, load[e] = counts[e]/N
} pc;

READONLY_BUFFER(0, int, chosen);   // [N, k]
BUFFER(1, int, slots);             // [N, k]
BUFFER(2, int, counts);            // [E]: tokens offered to each expert so far
WRITEONLY_BUFFER(3, float, load);  // [E]

void main() {
    uint e = gl_GlobalInvocationID.x;
    if (e >= pc.experts) return;
    int held = counts[AT(2, e)];
    for (uint t = 0u; t < pc.count; t++) {
        uint i = (pc.first + t) * pc.k + pc.choice;
        if (uint(chosen[AT(0, i)]) != e) continue;
        slots[AT(1, i)] = uint(held) < pc.capacity ? int(e * pc.capacity) + held : -1;
        held++;
    }
    counts[AT(2, e)] = held;
    if (pc.writeLoad != 0u) load[AT(3, e)] = float(held) / float(pc.tokens);
}
