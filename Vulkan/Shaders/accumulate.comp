#version 450
// Shapes: any; L elements. destination += source (the backward of Add and of any fan-out).
#include "common.glsl"

layout(push_constant) uniform PushConstants {
    uint offsets[2];
    uint n;       // L
} pc;

READONLY_BUFFER(0, float, source);    // [L]
BUFFER(1, float, destination);        // [L]

void main() {
    FOR_EACH_INDEX(j, pc.n) destination[AT(1, j)] += source[AT(0, j)];
}
