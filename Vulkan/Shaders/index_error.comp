#version 450
// Shapes: indices [N] I32, slot [2] I32. Runs after an op that flagged its first bad row in slot[0] (or left
// NO_INDEX_ERROR there): copies that row's index into slot[1], so the host can name both when it reads the slot.
#include "common.glsl"
#include "index_error.glsl"

layout(push_constant) uniform PushConstants {
    uint offsets[2];
} pc;

READONLY_BUFFER(0, int, indices);   // [N]
BUFFER(1, int, slot);               // [2]: first bad row, its index

void main() {
    int row = slot[AT(1, 0)];
    if (gl_LocalInvocationIndex == 0u && row != NO_INDEX_ERROR) slot[AT(1, 1)] = indices[AT(0, uint(row))];
}
