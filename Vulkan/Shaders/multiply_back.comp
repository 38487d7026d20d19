#version 450
// Shapes: any; L elements. gradient += dOutput ⊙ other: dA with other = b, dB with other = a (one dispatch each).
#include "common.glsl"

layout(push_constant) uniform PushConstants {
    uint offsets[3];
    uint n;       // L
} pc;

READONLY_BUFFER(0, float, dOutput);   // [L]
READONLY_BUFFER(1, float, other);     // [L]
BUFFER(2, float, gradient);           // [L]

void main() {
    FOR_EACH_INDEX(j, pc.n) gradient[AT(2, j)] += dOutput[AT(0, j)] * other[AT(1, j)];
}
