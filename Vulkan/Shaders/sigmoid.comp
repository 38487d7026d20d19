#version 450
// Shapes: any; L elements. y = σ(x) = 1/(1 + e^−x).
#include "common.glsl"
#include "swish.glsl"

layout(push_constant) uniform PushConstants {
    uint offsets[2];
    uint n;       // L
} pc;

READONLY_BUFFER(0, float, input_);    // [L]
WRITEONLY_BUFFER(1, float, output_);  // [L]

void main() {
    FOR_EACH_INDEX(j, pc.n) output_[AT(1, j)] = sigmoid(input_[AT(0, j)]);
}
