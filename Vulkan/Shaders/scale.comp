#version 450
// Shapes: any; L elements. tensor *= factor (gradient clipping, loss scaling).
#include "common.glsl"

layout(push_constant) uniform PushConstants {
    uint offsets[1];
    uint n;        // L
    float factor;
} pc;

BUFFER(0, float, tensor);   // [L]

void main() {
    FOR_EACH_INDEX(j, pc.n) tensor[AT(0, j)] *= pc.factor;
}
