#version 450
// Shapes: N tokens, k choices, R expert rows, C channels; input [N, C], slots [N, k] I32, output [R, C] (zeroed by
// the host first). One invocation per (n, j, c): output[slots[n, j], c] = input[n, c] for a kept choice; each kept slot
// belongs to one choice, so no two invocations write one element. A slot outside [−1, R) is flagged and skipped.
#include "common.glsl"
#include "index_error.glsl"

layout(push_constant) uniform PushConstants {
    uint offsets[4];
    uint tokens;     // N
    uint k;
    uint rows;       // R
    uint channels;   // C
} pc;

READONLY_BUFFER(0, float, input_);     // [N, C]
READONLY_BUFFER(1, int, slots);        // [N, k]
WRITEONLY_BUFFER(2, float, output_);   // [R, C]
BUFFER(3, int, errors);                // [2]: first bad slot element, its value

void main() {
    FOR_EACH_INDEX(i, pc.tokens * pc.k * pc.channels) {
        uint choice = i / pc.channels, c = i - choice * pc.channels, n = choice / pc.k;
        int s = slots[AT(1, choice)];
        if (s < -1 || s >= int(pc.rows)) { if (c == 0u) atomicMin(errors[AT(3, 0)], int(choice)); continue; }
        if (s >= 0) output_[AT(2, uint(s) * pc.channels + c)] = input_[AT(0, n * pc.channels + c)];
    }
}
