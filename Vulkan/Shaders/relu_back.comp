#version 450
// Shapes: any; L elements. dInput += dOutput · [x > 0] (0 at x = 0 and for a NaN x).
#include "common.glsl"

layout(push_constant) uniform PushConstants {
    uint offsets[3];
    uint n;       // L
} pc;

READONLY_BUFFER(0, float, dOutput);   // [L]
READONLY_BUFFER(1, float, input_);    // [L]
BUFFER(2, float, dInput);             // [L]

void main() {
    FOR_EACH_INDEX(j, pc.n) {
        if (input_[AT(1, j)] > 0.0) dInput[AT(2, j)] += dOutput[AT(0, j)];
    }
}
