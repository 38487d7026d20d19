#version 450
// Shapes: any; L elements. Swish: y = x·σ(βx); SiLU at β = 1.
#include "common.glsl"
#include "swish.glsl"

layout(push_constant) uniform PushConstants {
    uint offsets[2];
    uint n;       // L
    float beta;
} pc;

READONLY_BUFFER(0, float, input_);    // [L]
WRITEONLY_BUFFER(1, float, output_);  // [L]

void main() {
    FOR_EACH_INDEX(j, pc.n) {
        float x = input_[AT(0, j)];
        output_[AT(1, j)] = x * sigmoid(pc.beta * x);
    }
}
