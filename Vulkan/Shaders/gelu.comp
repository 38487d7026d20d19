#version 450
// Shapes: any; L elements. GPT-2's tanh GeLU: y = ½x(1 + tanh(√(2/π)(x + 0.044715x³))).
#include "common.glsl"
#include "gelu.glsl"

layout(push_constant) uniform PushConstants {
    uint offsets[2];
    uint n;       // L
} pc;

READONLY_BUFFER(0, float, input_);    // [L]
WRITEONLY_BUFFER(1, float, output_);  // [L]

void main() {
    FOR_EACH_INDEX(j, pc.n) {
        float x = input_[AT(0, j)];
        output_[AT(1, j)] = 0.5 * x * (1.0 + geluTanh(x));
    }
}
