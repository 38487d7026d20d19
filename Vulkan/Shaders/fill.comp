#version 450
// Shapes: any; L elements. destination[j] = value, as a 32-bit pattern (the same shader fills F32 and I32).
#include "common.glsl"

layout(push_constant) uniform PushConstants {
    uint offsets[1];
    uint n;       // L
    uint bits;    // floatBitsToUint(value) for F32, the int for I32
} pc;

WRITEONLY_BUFFER(0, uint, destination);  // [L]

void main() {
    FOR_EACH_INDEX(j, pc.n) destination[AT(0, j)] = pc.bits;
}
