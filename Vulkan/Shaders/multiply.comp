#version 450
// Shapes: any; L elements. output = a ⊙ b (the gate of GLU, SwiGLU, GEGLU).
#include "common.glsl"

layout(push_constant) uniform PushConstants {
    uint offsets[3];
    uint n;       // L
} pc;

READONLY_BUFFER(0, float, a);        // [L]
READONLY_BUFFER(1, float, b);        // [L]
WRITEONLY_BUFFER(2, float, output_); // [L]

void main() {
    FOR_EACH_INDEX(j, pc.n) output_[AT(2, j)] = a[AT(0, j)] * b[AT(1, j)];
}
